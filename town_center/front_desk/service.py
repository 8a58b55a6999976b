"""The township's front desk as services: the register of complaints 投诉, petitions 信访 and
consultations 咨询件, appointments at the window, AB posts with absences and 顶岗, and the queue of
the day. The rules are `shared.domain.front_desk`; this module loads, checks, saves and clocks.

Answer clocks live in the deadline tables like a matter's hop clocks, keyed by the register number
(投诉〔2026〕7号) and a Chinese hop name (投诉答复), so the deadline watch warns, marks overdue and
raises 督办 exactly once, and its notices name the case as staff know it. A 督办 of a register entry is
kept in the township's own chain only (`is_register_no` lets the bootstrap route it), never sent to a
village.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.deadline_watch.notify import Audience, Notification, NotificationKind
from shared.documents.chain import document_record
from shared.documents.content import instant_zh
from shared.documents.drafts import DocumentDraft
from shared.domain.deadlines import ClockState
from shared.domain.front_desk import (
    Absence,
    AppointmentState,
    CaseKind,
    CaseStage,
    Channel,
    Complexity,
    Feedback,
    QueueEntry,
    absence_problem,
    answer_clock,
    answered_clock,
    arrival_problem,
    change_problem,
    consultation_notice_lines,
    covering,
    forfeit_problem,
    hop_name,
    queue_order,
    register_no,
    staff_text_problem,
)
from shared.domain.handling import Actor, Role, Stage
from shared.errors import HandlingError
from shared.sealing import open_sealed, seal_to
from town_center.errors import ConcurrentEditError
from town_center.front_desk.documents import (
    WRITTEN_CHANNELS,
    RegisterFacts,
    complaint_answer_draft,
    consultation_notice_draft,
    petition_assignment_draft,
    petition_notice_draft,
)
from town_center.front_desk.errors import FrontDeskError, StaleEntry, UnknownEntry
from town_center.front_desk.tables import absence, appointment, desk_case, desk_event, post, queue_ticket
from town_center.front_desk.window import WindowIntake
from town_center.handling import HandlingService, StaffDirectory
from town_center.store.matter_tables import town_matter

__all__ = ["FrontDesk", "CaseView", "AppointmentView", "AbsenceView", "TicketView", "is_register_no",
           "may_see_identity", "DeskEvent"]

log = logging.getLogger(__name__)
# An absence registered ahead whose holdings have not moved yet (its handover list is written when they do).
_NOT_YET = ""

_OPEN_MATTER_STAGES = (Stage.RECEIVED, Stage.IN_PROGRESS, Stage.WAITING_MATERIALS, Stage.ESCALATING, Stage.ESCALATED)


def is_register_no(subject_id: str) -> bool:
    """A front-desk register number (投诉〔2026〕7号) rather than a matter id."""
    return "〔" in subject_id


def may_see_identity(role: Role) -> bool:
    """The complainant's or petitioner's identity: the director and the supervision role only (004 投诉)."""
    return role in (Role.DIRECTOR, Role.SUPERVISOR)


@dataclass(frozen=True)
class DeskEvent:
    at: dt.datetime
    actor: str
    text_zh: str


@dataclass(frozen=True)
class CaseView:
    case_id: str
    kind: CaseKind
    register_no: str
    received_at: dt.datetime
    channel: Channel
    complexity: Complexity
    anonymous: bool
    person: dict[str, str] | None      # None: anonymous, or not shown to this viewer
    identity_hidden: bool              # someone is named but this viewer may not see who
    subject: str
    content: str
    catalog_code: str
    linked_matter_id: str
    linked_staff_id: str
    handler: str
    registered_by: str
    stage: CaseStage
    answer: str
    answered_at: dt.datetime | None
    answered_by: str
    feedback: Feedback | None
    feedback_note: str
    due_at: dt.datetime | None
    state: ClockState | None
    version: int
    events: tuple[DeskEvent, ...] = ()


@dataclass(frozen=True)
class AppointmentView:
    appointment_id: str
    applicant_name: str
    catalog_code: str
    catalog_name: str
    scheduled_at: dt.datetime
    elderly_or_disabled: bool
    state: AppointmentState
    handler: str
    contact_failed_at: dt.datetime | None
    arrived_at: dt.datetime | None
    late_reason: str
    version: int
    events: tuple[DeskEvent, ...] = ()


@dataclass(frozen=True)
class AbsenceView:
    absence_id: int
    absence: Absence
    registered_by: str
    handover: list[dict[str, str]]
    returned_at: dt.datetime | None


@dataclass(frozen=True)
class TicketView:
    ticket_id: int
    number: int
    applicant_name: str
    elderly_or_disabled: bool
    appointment_at: dt.datetime | None
    arrived_at: dt.datetime
    called_at: dt.datetime | None
    called_by: str


class FrontDesk:
    def __init__(self, handling: HandlingService, window: WindowIntake, clock: Clock) -> None:
        self.handling = handling
        self.window = window
        self.store = handling.store
        self.deadlines = handling.deadlines
        self.clock = clock
        self.township = handling.signer

    @property
    def staff(self) -> StaffDirectory | None:
        return self.handling.staff

    def _now(self) -> dt.datetime:
        return from_unix_ms(to_unix_ms(self.clock.now()))

    def today(self) -> dt.date:
        return self.handling.calendar.local_date(self.clock.now())

    def _event(self, conn: Connection, subject_id: str, actor: str, action: str, text: str, now: dt.datetime) -> None:
        conn.execute(insert(desk_event).values(subject_id=subject_id, at_ms=to_unix_ms(now), actor=actor[:64],
                                               action=action[:32], text_zh=text))

    def events(self, subject_id: str) -> tuple[DeskEvent, ...]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(desk_event).where(desk_event.c.subject_id == subject_id)
                                .order_by(desk_event.c.event_id)).all()
        return tuple(DeskEvent(from_unix_ms(int(r.at_ms)), r.actor, r.text_zh) for r in rows)

    def _name(self, staff_id: str) -> str:
        """A colleague by name in history lines and handover reasons (their login when not known)."""
        name = self.staff.active_name(staff_id) if self.staff is not None else None
        return name or staff_id

    def _active(self, staff_id: str) -> bool:
        return self.staff is None or self.staff.active_name(staff_id) is not None

    def _staff_text(self, **fields: str) -> None:
        for label, text in fields.items():
            if len(text) > 2000:
                raise FrontDeskError(f"{label}不超过 2000 字")
            problem = staff_text_problem(label, text)
            if problem:
                raise FrontDeskError(problem)

    # ================================================================== the register: 投诉 / 信访 / 咨询

    def register_case(self, kind: CaseKind, *, actor: Actor, channel: Channel, subject: str, content: str,
                      complexity: Complexity = Complexity.SIMPLE, anonymous: bool = False, person_name: str = "",
                      person_contact: str = "", handler: str = "", linked_matter_id: str = "",
                      linked_staff_id: str = "", catalog_code: str = "", answer: str = "") -> CaseView:
        """Register a complaint, petition or consultation. A complaint or petition starts its answer clock
        at once; a consultation is answered on the spot (its answer is registered with it)."""
        subject, content, answer = subject.strip(), content.strip(), answer.strip()
        if not subject:
            raise FrontDeskError("请填写" + ("咨询事项" if kind is CaseKind.CONSULTATION else "反映的对象或事项（投诉谁、什么事）"))
        if kind is not CaseKind.CONSULTATION and not content:
            raise FrontDeskError("请填写反映的主要内容")
        self._staff_text(反映对象或事项=subject, 主要内容=content, 答复内容=answer)
        if kind is CaseKind.CONSULTATION:
            if not answer:
                raise FrontDeskError("咨询件须当场登记答复内容")
            if catalog_code and catalog_code not in self.handling.catalog:
                raise FrontDeskError("请从服务事项目录中选择所咨询的事项")
        if kind is CaseKind.PETITION and anonymous:
            raise FrontDeskError("信访须登记来访人，才能送达告知书；匿名反映请按投诉（举报）登记")
        if not anonymous and not person_name.strip():
            raise FrontDeskError("请填写" + ("咨询人" if kind is CaseKind.CONSULTATION else "来访人") + "姓名，或选择匿名举报")
        if len(person_name) > 30 or len(person_contact) > 60:
            raise FrontDeskError("姓名不超过 30 字，联系方式不超过 60 字")
        handler = (handler or actor.staff_id).strip().lower()
        if not self._active(handler):
            raise FrontDeskError("承办人须是本中心在岗的工作人员")
        if linked_staff_id and not self._active(linked_staff_id.strip().lower()):
            raise FrontDeskError("被投诉的工作人员须从本中心工作人员中选择")
        if linked_matter_id:
            with self.store.engine.connect() as conn:
                if conn.execute(select(town_matter.c.matter_id).where(town_matter.c.matter_id == linked_matter_id)).first() is None:
                    raise FrontDeskError("所关联的办件不存在，请从办件页进入登记或核对后重试")
        now = self._now()
        clock = answer_clock(kind, complexity, now)
        sealed = None
        if not anonymous:
            doc = {"name": person_name.strip(), "contact": person_contact.strip()}
            sealed = seal_to(self.township.public_key, json.dumps(doc, ensure_ascii=False).encode())
        year = self.today().year
        case_id = str(uuid.uuid4())
        for _attempt in range(5):
            try:
                with self.store.engine.begin() as conn:
                    self.store.lock_own_tip(conn, self.township.key_id)   # one writer order with matter actions
                    serial = int(conn.execute(select(func.coalesce(func.max(desk_case.c.serial), 0)).where(
                        desk_case.c.kind == kind.value, desk_case.c.year == year)).scalar_one()) + 1
                    number = register_no(kind, year, serial)
                    due = clock.due_at(self.handling.calendar) if clock is not None else None
                    stage = CaseStage.CLOSED if kind is CaseKind.CONSULTATION else CaseStage.OPEN
                    conn.execute(insert(desk_case).values(
                        case_id=case_id, kind=kind.value, register_no=number, year=year, serial=serial,
                        received_at_ms=to_unix_ms(now), channel=channel.value, complexity=complexity.value,
                        anonymous=anonymous, sealed_person=sealed, subject=subject, content=content,
                        catalog_code=catalog_code or None, linked_matter_id=linked_matter_id or None,
                        linked_staff_id=linked_staff_id.strip().lower() or None, handler=handler,
                        registered_by=actor.staff_id, stage=stage.value, answer=answer,
                        answered_at_ms=to_unix_ms(now) if answer else None, answered_by=actor.staff_id if answer else "",
                        feedback="", feedback_note="", due_at_ms=to_unix_ms(due) if due else None, version=1))
                    if clock is not None:
                        self.deadlines.save_clock(number, hop_name(kind), clock, now=now, responsible=handler, conn=conn)
                    facts = RegisterFacts(case_id, kind, number, instant_zh(now), channel, complexity, subject, content,
                                          self._name(handler), self._name(actor.staff_id), instant_zh(due) if due else "")
                    if kind is CaseKind.PETITION:
                        self._issue(conn, [petition_assignment_draft(facts), petition_notice_draft(facts)], now)
                    elif kind is CaseKind.CONSULTATION and catalog_code:
                        self._issue(conn, [consultation_notice_draft(facts, self.handling.catalog.item(catalog_code), answer)], now)
                    limit = clock.limit.describe_zh() if clock is not None else ""
                    answer = f"，{complexity.label_zh}，{limit}内答复" if clock else "，当场答复"
                    text = f"登记{kind.label_zh}（{channel.label_zh}）" + answer
                    self._event(conn, case_id, actor.staff_id, "registered", text, now)
                break
            except IntegrityError:
                continue   # a colleague took the same serial at the same moment: take the next one
        else:
            raise FrontDeskError("登记未成功（编号冲突），请重试")
        self.handling._saved()
        return self.case(case_id, viewer=actor)

    def _issue(self, conn: Connection, drafts: Sequence[DocumentDraft], now: dt.datetime) -> None:
        """Number, sign and store the entry's documents in the caller's transaction (docs/front-desk.md
        "Documents"): a rolled-back registration leaves no document and no gap in the numbers."""
        documents = self.handling.documents
        if documents is None:
            return
        from town_center.handling import INTERNAL_AUDIENCE

        issued_ms = to_unix_ms(now)
        for draft in drafts:
            doc = documents.archive.issue_in(conn, draft, now=now)
            # A record of the township's own chain, as its notices are (docs/wire-v1.md "Written documents");
            # never sent up: the county does not see the registers.
            self.store.publish_in(conn, self.township, document_record(doc, kind=draft.kind, matter_id=draft.matter_id,
                                                                       issued_at_ms=issued_ms),
                                  [INTERNAL_AUDIENCE], now_ms=max(issued_ms, to_unix_ms(self.clock.now())))

    def _facts(self, row: Any) -> RegisterFacts:
        due = from_unix_ms(int(row.due_at_ms)) if row.due_at_ms else None
        return RegisterFacts(row.case_id, CaseKind(row.kind), row.register_no, instant_zh(from_unix_ms(int(row.received_at_ms))),
                             Channel(row.channel), Complexity(row.complexity), row.subject, row.content,
                             self._name(row.handler), self._name(row.registered_by), instant_zh(due) if due else "")

    def documents(self, case_id: str) -> list[Any]:
        """The entry's issued documents (number, title, check code), oldest first."""
        documents = self.handling.documents
        return documents.of_matter(case_id) if documents is not None else []

    def _case_row(self, conn: Connection, case_id: str, *, for_update: bool = False) -> Any:
        query = select(desk_case).where(desk_case.c.case_id == case_id)
        row = conn.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            raise UnknownEntry("找不到该登记，可能链接有误")
        return row

    def case(self, case_id: str, *, viewer: Actor) -> CaseView:
        with self.store.engine.connect() as conn:
            row = self._case_row(conn, case_id)
        return self._case_view(row, viewer, with_events=True)

    def _case_view(self, row: Any, viewer: Actor, *, with_events: bool = False) -> CaseView:
        kind = CaseKind(row.kind)
        person = None
        if row.sealed_person is not None and may_see_identity(viewer.role):
            person = json.loads(open_sealed(self.township.seed(), bytes(row.sealed_person)))
        clock = self.deadlines.load_clock(row.register_no, hop_name(kind)) if kind is not CaseKind.CONSULTATION else None
        state = None
        if clock is not None and clock.is_open and clock.start_at is not None:
            state = clock.state_at(self.clock.now(), self.handling.calendar, self.handling.thresholds)
        return CaseView(
            case_id=row.case_id, kind=kind, register_no=row.register_no, received_at=from_unix_ms(int(row.received_at_ms)),
            channel=Channel(row.channel), complexity=Complexity(row.complexity), anonymous=bool(row.anonymous),
            person=person, identity_hidden=row.sealed_person is not None and person is None, subject=row.subject,
            content=row.content, catalog_code=row.catalog_code or "", linked_matter_id=row.linked_matter_id or "",
            linked_staff_id=row.linked_staff_id or "", handler=row.handler, registered_by=row.registered_by,
            stage=CaseStage(row.stage), answer=row.answer,
            answered_at=from_unix_ms(int(row.answered_at_ms)) if row.answered_at_ms else None, answered_by=row.answered_by,
            feedback=Feedback(row.feedback) if row.feedback else None, feedback_note=row.feedback_note,
            due_at=from_unix_ms(int(row.due_at_ms)) if row.due_at_ms else None, state=state, version=int(row.version),
            events=self.events(row.case_id) if with_events else ())

    def cases(self, kind: CaseKind, *, viewer: Actor, open_only: bool = False) -> list[CaseView]:
        query = select(desk_case).where(desk_case.c.kind == kind.value)
        if open_only:
            query = query.where(desk_case.c.stage != CaseStage.CLOSED.value)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query.order_by(desk_case.c.received_at_ms.desc()).limit(500)).all()
        return [self._case_view(r, viewer) for r in rows]

    def _move_case(self, case_id: str, expected_version: int | None, actor: Actor, action: str, text: str,
                   values: dict[str, Any], *, stop_clock: bool = False,
                   also: Callable[[Connection, Any, dt.datetime], None] | None = None) -> CaseView:
        now = self._now()
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.township.key_id)
            row = self._case_row(conn, case_id, for_update=True)
            if expected_version is not None and int(row.version) != expected_version:
                raise StaleEntry("该登记刚被其他人修改过，您的操作未保存，请刷新页面后重做")
            conn.execute(update(desk_case).where(desk_case.c.case_id == case_id, desk_case.c.version == row.version)
                         .values(version=int(row.version) + 1, **values))
            kind = CaseKind(row.kind)
            if stop_clock and kind is not CaseKind.CONSULTATION:
                clock = self.deadlines.load_clock(row.register_no, hop_name(kind), conn=conn)
                if clock is not None and clock.is_open:
                    self.deadlines.save_clock(row.register_no, hop_name(kind), answered_clock(clock, now), now=now, conn=conn)
            self._event(conn, case_id, actor.staff_id, action, text, now)
            if also is not None:
                also(conn, row, now)
        self.handling._saved()
        return self.case(case_id, viewer=actor)

    def answer_case(self, case_id: str, answer: str, *, actor: Actor, expected_version: int | None = None) -> CaseView:
        """The recorded answer: the clock stops; the case waits for the complainant's feedback."""
        answer = answer.strip()
        if not answer:
            raise FrontDeskError("请填写答复内容（处理意见及结果）")
        self._staff_text(答复内容=answer)
        view = self.case(case_id, viewer=actor)
        if view.stage is not CaseStage.OPEN:
            raise FrontDeskError(f"该登记当前为“{view.stage.label_zh}”，不能再答复")
        if actor.role is not Role.DIRECTOR and actor.staff_id != view.handler:
            raise FrontDeskError("只有承办人或中心主任可以登记答复")
        late = view.state is not None and view.state.rank >= ClockState.OVERDUE.rank

        def written_answer(conn: Connection, row: Any, now: dt.datetime) -> None:
            # 书面投诉必须书面答复 (004 投诉制度 第七条); an anonymous one has nobody to send it to.
            if view.kind is CaseKind.COMPLAINT and view.channel in WRITTEN_CHANNELS and not view.anonymous:
                self._issue(conn, [complaint_answer_draft(self._facts(row), answer, self._name(actor.staff_id))], now)

        return self._move_case(case_id, expected_version, actor, "answered",
                               "已答复" + ("（超期答复）" if late else "") + f"：{answer}",
                               {"stage": CaseStage.ANSWERED.value, "answer": answer, "answered_at_ms": to_unix_ms(self._now()),
                                "answered_by": actor.staff_id}, stop_clock=True, also=written_answer)

    def record_feedback(self, case_id: str, feedback: Feedback, note: str = "", *, actor: Actor,
                        expected_version: int | None = None) -> CaseView:
        """The complainant's feedback on the answer closes the case (an anonymous report: 无法联系)."""
        self._staff_text(反馈说明=note.strip())
        view = self.case(case_id, viewer=actor)
        if view.stage is not CaseStage.ANSWERED:
            raise FrontDeskError("答复之后才能登记反馈")
        return self._move_case(case_id, expected_version, actor, "feedback",
                               f"反馈：{feedback.label_zh}" + (f"（{note.strip()}）" if note.strip() else ""),
                               {"stage": CaseStage.CLOSED.value, "feedback": feedback.value, "feedback_note": note.strip(),
                                "feedback_at_ms": to_unix_ms(self._now())})

    def consultation_notice(self, case_id: str, *, viewer: Actor) -> tuple[CaseView, list[str]]:
        view = self.case(case_id, viewer=viewer)
        if view.kind is not CaseKind.CONSULTATION or view.catalog_code not in self.handling.catalog:
            raise FrontDeskError("该咨询未关联服务事项，没有一次性告知书")
        return view, consultation_notice_lines(self.handling.catalog.item(view.catalog_code))

    def counts(self, since: dt.datetime | None = None) -> dict[str, int]:
        """Figures: how many of each register (this year unless `since`), and how many answered late."""
        since = since or dt.datetime(self.today().year, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(desk_case.c.kind, func.count()).where(
                desk_case.c.received_at_ms >= to_unix_ms(since)).group_by(desk_case.c.kind)).all()
        out = {k.value: 0 for k in CaseKind}
        out.update({k: int(n) for k, n in rows})
        return out

    # ================================================================== appointments 预约

    def book(self, *, actor: Actor, applicant_name: str, phone: str, catalog_code: str, scheduled_at: dt.datetime,
             elderly_or_disabled: bool = False) -> AppointmentView:
        """A confirmed appointment at the window (the hall confirms it when it is made)."""
        name = applicant_name.strip()
        if not name or len(name) > 30:
            raise FrontDeskError("请填写预约人姓名（30 字以内）")
        phone = phone.strip().replace(" ", "")
        if not (7 <= len(phone) <= 20 and all(ch in "0123456789-" for ch in phone)):
            raise FrontDeskError("请填写预约人的手机号码或带区号的固定电话，以便联系")
        if catalog_code not in self.handling.catalog:
            raise FrontDeskError("请从服务事项目录中选择预约办理的事项")
        now = self._now()
        if scheduled_at <= now:
            raise FrontDeskError("预约时间须晚于现在")
        calendar = self.handling.calendar
        if not calendar.is_working_day(calendar.local_date(scheduled_at)):
            raise FrontDeskError("预约时间须在工作日")
        appointment_id = str(uuid.uuid4())
        with self.store.engine.begin() as conn:
            conn.execute(insert(appointment).values(
                appointment_id=appointment_id, applicant_name=name,
                sealed_phone=seal_to(self.township.public_key, phone.encode()), catalog_code=catalog_code,
                scheduled_at_ms=to_unix_ms(scheduled_at), elderly_or_disabled=elderly_or_disabled,
                state=AppointmentState.CONFIRMED.value, handler=actor.staff_id, late_reason="", version=1))
            item = self.handling.catalog.item(catalog_code)
            self._event(conn, appointment_id, actor.staff_id, "confirmed",
                        f"预约已确认：{_bj(scheduled_at)} 到窗口办理“{item.name}”，已一次性告知所需材料", now)
        return self.appointment(appointment_id)

    def appointment(self, appointment_id: str) -> AppointmentView:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(appointment).where(appointment.c.appointment_id == appointment_id)).first()
        if row is None:
            raise UnknownEntry("找不到该预约")
        return self._appointment_view(row, with_events=True)

    def _appointment_view(self, row: Any, *, with_events: bool = False) -> AppointmentView:
        catalog = self.handling.catalog
        return AppointmentView(
            appointment_id=row.appointment_id, applicant_name=row.applicant_name, catalog_code=row.catalog_code,
            catalog_name=catalog.item(row.catalog_code).name if row.catalog_code in catalog else "（目录中已无此事项）",
            scheduled_at=from_unix_ms(int(row.scheduled_at_ms)), elderly_or_disabled=bool(row.elderly_or_disabled),
            state=AppointmentState(row.state), handler=row.handler,
            contact_failed_at=from_unix_ms(int(row.contact_failed_at_ms)) if row.contact_failed_at_ms else None,
            arrived_at=from_unix_ms(int(row.arrived_at_ms)) if row.arrived_at_ms else None, late_reason=row.late_reason,
            version=int(row.version), events=self.events(row.appointment_id) if with_events else ())

    def appointment_phone(self, appointment_id: str) -> str:
        with self.store.engine.connect() as conn:
            sealed = conn.execute(select(appointment.c.sealed_phone).where(appointment.c.appointment_id == appointment_id)).scalar()
        return open_sealed(self.township.seed(), bytes(sealed)).decode() if sealed else ""

    def appointments(self, day: dt.date | None = None) -> list[AppointmentView]:
        day = day or self.today()
        start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.timezone(dt.timedelta(hours=8)))
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(appointment).where(
                appointment.c.scheduled_at_ms >= to_unix_ms(start),
                appointment.c.scheduled_at_ms < to_unix_ms(start + dt.timedelta(days=1)))
                .order_by(appointment.c.scheduled_at_ms)).all()
        return [self._appointment_view(r) for r in rows]

    def upcoming_appointments(self) -> list[AppointmentView]:
        start = dt.datetime.combine(self.today(), dt.time(0), tzinfo=dt.timezone(dt.timedelta(hours=8)))
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(appointment).where(appointment.c.scheduled_at_ms >= to_unix_ms(start))
                                .order_by(appointment.c.scheduled_at_ms).limit(300)).all()
        return [self._appointment_view(r) for r in rows]

    def _move_appointment(self, appointment_id: str, expected_version: int | None, actor: Actor, action: str,
                          text: str, values: dict[str, Any], *,
                          sms: Callable[[Any], Notification | None] | None = None) -> AppointmentView:
        now = self._now()
        with self.store.engine.begin() as conn:
            row = conn.execute(select(appointment).where(appointment.c.appointment_id == appointment_id).with_for_update()).first()
            if row is None:
                raise UnknownEntry("找不到该预约")
            if expected_version is not None and int(row.version) != expected_version:
                raise StaleEntry("该预约刚被其他人修改过，您的操作未保存，请刷新页面后重做")
            moved = conn.execute(update(appointment).where(appointment.c.appointment_id == appointment_id,
                                                           appointment.c.version == row.version)
                                 .values(version=int(row.version) + 1, **values)).rowcount
            if moved != 1:
                raise StaleEntry("该预约刚被其他人修改过，您的操作未保存，请刷新页面后重做")
            self._event(conn, appointment_id, actor.staff_id, action, text, now)
            # The applicant's SMS goes in the same transaction as the change, so it is sent exactly when
            # the change is kept (the outbox relay delivers it and then forgets the number).
            notice = sms(row) if sms is not None else None
            if notice is not None:
                self.deadlines.enqueue_notification(notice, now=now, conn=conn)
        return self.appointment(appointment_id)

    def contact_attempt(self, appointment_id: str, *, reached: bool, note: str, actor: Actor,
                        expected_version: int | None = None) -> AppointmentView:
        view = self.appointment(appointment_id)
        if view.state is not AppointmentState.CONFIRMED:
            raise FrontDeskError(f"该预约当前为“{view.state.label_zh}”，无须联系")
        self._staff_text(联系情况=note.strip())
        values: dict[str, Any] = {} if reached else {"contact_failed_at_ms": to_unix_ms(self._now())}
        text = ("已联系上申请人" if reached else "联系申请人未成功") + (f"：{note.strip()}" if note.strip() else "")
        return self._move_appointment(appointment_id, expected_version, actor, "contact", text, values)

    def forfeit(self, appointment_id: str, *, actor: Actor, expected_version: int | None = None) -> AppointmentView:
        view = self.appointment(appointment_id)
        problem = forfeit_problem(view.state, view.scheduled_at, self._now(), view.contact_failed_at)
        if problem:
            raise FrontDeskError(problem)
        return self._move_appointment(appointment_id, expected_version, actor, "forfeited",
                                      "超过约定时间 30 分钟未到场，经联系仍无法到场，视为放弃预约",
                                      {"state": AppointmentState.FORFEITED.value})

    def arrived(self, appointment_id: str, *, late_reason: str = "", actor: Actor,
                expected_version: int | None = None) -> AppointmentView:
        """The applicant came: always recorded (late, or after the forfeit, with the reason); they join the queue."""
        view = self.appointment(appointment_id)
        now = self._now()
        problem = arrival_problem(view.state, view.scheduled_at, now, late_reason)
        if problem:
            raise FrontDeskError(problem)
        self._staff_text(迟到原因=late_reason.strip())
        late = now > view.scheduled_at + dt.timedelta(minutes=30) or view.state is AppointmentState.FORFEITED
        text = "申请人已到场" + (f"（迟到，原因：{late_reason.strip()}）" if late else "")
        after = self._move_appointment(appointment_id, expected_version, actor, "arrived", text, {
            "state": AppointmentState.ARRIVED.value, "arrived_at_ms": to_unix_ms(now), "late_reason": late_reason.strip()})
        self.take_ticket(applicant_name=view.applicant_name, elderly_or_disabled=view.elderly_or_disabled,
                         appointment_id=appointment_id)
        return after

    def change_appointment(self, appointment_id: str, *, new_at: dt.datetime | None, reason: str, approved_by: str,
                           applicant_told: bool, actor: Actor, expected_version: int | None = None) -> AppointmentView:
        """Change (new_at) or cancel (None): only with the hall's approval and the applicant told first."""
        view = self.appointment(appointment_id)
        approver = approved_by.strip().lower()
        if approver and (self.staff is None or self.staff.active_name(approver) is None):
            raise FrontDeskError("批准人须是本中心在岗的工作人员")
        problem = change_problem(view.state, approver, applicant_told, reason)
        if problem:
            raise FrontDeskError(problem)
        self._staff_text(原因=reason.strip())
        sms = self._appointment_sms(view, new_at, reason.strip())
        if new_at is None:
            return self._move_appointment(appointment_id, expected_version, actor, "cancelled",
                                          f"经 {self._name(approver)} 批准取消预约，已告知申请人（并发短信）；原因：{reason.strip()}",
                                          {"state": AppointmentState.CANCELLED.value}, sms=sms)
        if new_at <= self._now() or not self.handling.calendar.is_working_day(self.handling.calendar.local_date(new_at)):
            raise FrontDeskError("新的预约时间须晚于现在，且在工作日")
        return self._move_appointment(appointment_id, expected_version, actor, "changed",
                                      f"经 {self._name(approver)} 批准改约至 {_bj(new_at)}，已告知申请人（并发短信）；"
                                      f"原因：{reason.strip()}",
                                      {"scheduled_at_ms": to_unix_ms(new_at), "state": AppointmentState.CONFIRMED.value,
                                       "contact_failed_at_ms": None}, sms=sms)

    def _appointment_sms(self, view: AppointmentView, new_at: dt.datetime | None,
                         reason: str) -> Callable[[Any], Notification | None]:
        """The applicant's SMS for a change or cancellation, to the number they gave when booking. It
        names the matter and the times only: no name, no ID (the reason is staff text already refused
        when it carries an ID or mobile number)."""
        def build(row: Any) -> Notification | None:
            if row.sealed_phone is None:
                return None
            phone = open_sealed(self.township.seed(), bytes(row.sealed_phone)).decode()
            what = f"“{view.catalog_name}”"
            if new_at is None:
                text = (f"您预约于 {_bj(view.scheduled_at)} 到乡镇便民服务中心窗口办理{what}，经批准已取消，原因：{reason}。"
                        "如需办理，请重新预约或直接到窗口。")
            else:
                text = (f"您预约到乡镇便民服务中心窗口办理{what}的时间，经批准由 {_bj(view.scheduled_at)} 改为 "
                        f"{_bj(new_at)}，原因：{reason}。请按新时间带齐材料到窗口办理。")
            return Notification(f"appointment:{row.appointment_id}:{int(row.version) + 1}", NotificationKind.APPOINTMENT_NOTICE,
                                Audience.APPLICANT, phone, text,
                                {"appointment_at": (new_at or view.scheduled_at).isoformat(),
                                 "change": "cancelled" if new_at is None else "changed"})
        return build

    # ================================================================== the queue of the day

    def take_ticket(self, *, applicant_name: str, elderly_or_disabled: bool = False,
                    appointment_id: str | None = None) -> TicketView:
        name = applicant_name.strip()
        if not name or len(name) > 30:
            raise FrontDeskError("请填写取号人姓名（30 字以内）")
        day = self.today().isoformat()
        now = self._now()
        for _attempt in range(5):
            try:
                with self.store.engine.begin() as conn:
                    number = int(conn.execute(select(func.coalesce(func.max(queue_ticket.c.number), 0))
                                              .where(queue_ticket.c.day == day)).scalar_one()) + 1
                    ticket_id = conn.execute(insert(queue_ticket).values(
                        day=day, number=number, applicant_name=name, elderly_or_disabled=elderly_or_disabled,
                        appointment_id=appointment_id, arrived_at_ms=to_unix_ms(now), called_by="")
                        .returning(queue_ticket.c.ticket_id)).scalar_one()
                return next(t for t in self.queue(include_called=True) if t.ticket_id == int(ticket_id))
            except IntegrityError:
                continue
        raise FrontDeskError("取号未成功，请重试")

    def queue(self, *, include_called: bool = False) -> list[TicketView]:
        """The window's queue of the day in the order it is called: elderly and disabled first, then by
        appointment time (for those who booked) or arrival (walk-ins)."""
        day = self.today().isoformat()
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(queue_ticket, appointment.c.scheduled_at_ms).select_from(
                queue_ticket.outerjoin(appointment, appointment.c.appointment_id == queue_ticket.c.appointment_id))
                .where(queue_ticket.c.day == day)).all()
        tickets = {str(r.ticket_id): TicketView(
            int(r.ticket_id), int(r.number), r.applicant_name, bool(r.elderly_or_disabled),
            from_unix_ms(int(r.scheduled_at_ms)) if r.scheduled_at_ms else None, from_unix_ms(int(r.arrived_at_ms)),
            from_unix_ms(int(r.called_at_ms)) if r.called_at_ms else None, r.called_by) for r in rows}
        waiting = [t for t in tickets.values() if t.called_at is None]
        ordered = [tickets[e.ticket] for e in queue_order(
            QueueEntry(str(t.ticket_id), t.arrived_at, t.elderly_or_disabled, t.appointment_at) for t in waiting)]
        if include_called:
            ordered += sorted((t for t in tickets.values() if t.called_at is not None), key=lambda t: t.called_at or t.arrived_at)
        return ordered

    def call_next(self, *, actor: Actor) -> TicketView | None:
        for ticket in self.queue():
            with self.store.engine.begin() as conn:
                moved = conn.execute(update(queue_ticket).where(queue_ticket.c.ticket_id == ticket.ticket_id,
                                                                queue_ticket.c.called_at_ms.is_(None))
                                     .values(called_at_ms=to_unix_ms(self._now()), called_by=actor.staff_id)).rowcount
            if moved:
                return ticket
        return None

    # ================================================================== AB posts and 顶岗

    def add_post(self, name: str, a_staff: str, b_staff: str, *, actor: Actor) -> None:
        if actor.role is not Role.DIRECTOR:
            raise FrontDeskError("设置 AB 岗须由中心主任办理")
        name, a_staff, b_staff = name.strip(), a_staff.strip().lower(), b_staff.strip().lower()
        if not name or len(name) > 60:
            raise FrontDeskError("请填写岗位名称（60 字以内）")
        if a_staff == b_staff:
            raise FrontDeskError("A 岗与 B 岗须是两个人")
        if not (self._active(a_staff) and self._active(b_staff)):
            raise FrontDeskError("A 岗、B 岗须是本中心在岗的工作人员")
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(post).values(name=name, a_staff=a_staff, b_staff=b_staff))
        except IntegrityError:
            raise FrontDeskError("已有同名岗位") from None

    def posts(self) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(post).order_by(post.c.name))]

    def backup_of(self, staff_id: str) -> str:
        """The B of the post where `staff_id` is A ("" when none is set)."""
        with self.store.engine.connect() as conn:
            return conn.execute(select(post.c.b_staff).where(post.c.a_staff == staff_id)).scalar() or ""

    def _absences(self, conn: Connection) -> list[tuple[Any, Absence]]:
        rows = conn.execute(select(absence).order_by(absence.c.absence_id)).all()
        return [(r, Absence(r.staff_id, r.covered_by, dt.date.fromisoformat(r.from_date), dt.date.fromisoformat(r.to_date),
                            r.reason, self.handling.calendar.local_date(from_unix_ms(int(r.returned_at_ms)))
                            if r.returned_at_ms else None)) for r in rows]

    def register_absence(self, staff_id: str, *, from_date: dt.date, to_date: dt.date, reason: str,
                         covered_by: str = "", actor: Actor) -> AbsenceView:
        """A's absence: every open matter, appointment and register entry A holds moves to B at once
        (顶岗), the handover list is recorded; back on return."""
        staff_id = staff_id.strip().lower()
        covered_by = (covered_by.strip().lower() or self.backup_of(staff_id))
        if not covered_by:
            raise FrontDeskError("未设置该工作人员的 B 岗，请选择顶岗人")
        if actor.role is not Role.DIRECTOR and actor.staff_id != staff_id:
            raise FrontDeskError("离岗须由本人或中心主任登记")
        self._staff_text(离岗原因=reason.strip())
        planned = Absence(staff_id, covered_by, from_date, to_date, reason.strip())
        active = [covered_by] if self._active(covered_by) else []
        with self.store.engine.connect() as conn:
            others = [a for _r, a in self._absences(conn)]
        problem = absence_problem(planned, others, active=active, today=self.today())
        if problem:
            raise FrontDeskError(problem)
        now = self._now()
        with self.store.engine.begin() as conn:
            absence_id = int(conn.execute(insert(absence).values(
                staff_id=staff_id, covered_by=covered_by, from_date=from_date.isoformat(), to_date=to_date.isoformat(),
                reason=reason.strip(), registered_by=actor.staff_id, registered_at_ms=to_unix_ms(now),
                handover_json=_NOT_YET).returning(absence.c.absence_id)).scalar_one())
            self._event(conn, f"absence:{absence_id}", actor.staff_id, "absence",
                        f"登记离岗 {from_date}～{to_date}，{self._name(covered_by)} 顶岗", now)
        if from_date <= self.today():
            self._hand_over_for(absence_id, actor)
        return self.absence(absence_id)

    def start_due_absences(self) -> int:
        """Absences registered ahead whose first day has come: A's holdings move to B now (the
        background loop calls this; the pages too). Returns how many absences started."""
        today = self.today().isoformat()
        with self.store.engine.connect() as conn:
            due = conn.execute(select(absence.c.absence_id, absence.c.staff_id).where(
                absence.c.handover_json == _NOT_YET, absence.c.from_date <= today,
                absence.c.returned_at_ms.is_(None))).all()
        for r in due:
            self._hand_over_for(int(r.absence_id), Actor(r.staff_id, Role.OPERATOR))
        return len(due)

    def _hand_over_for(self, absence_id: int, actor: Actor) -> None:
        with self.store.engine.begin() as conn:
            # Claimed first, so two processes never move the same absence twice.
            claimed = conn.execute(update(absence).where(absence.c.absence_id == absence_id,
                                                         absence.c.handover_json == _NOT_YET)
                                   .values(handover_json="[]")).rowcount
        if not claimed:
            return
        view = self.absence(absence_id)
        a = view.absence
        reason = f"顶岗：{self._name(a.staff_id)} 离岗（{a.reason}），由 {self._name(a.covered_by)} 顶岗"
        moved = self._move_holdings(a.staff_id, a.covered_by, reason, actor)
        with self.store.engine.begin() as conn:
            conn.execute(update(absence).where(absence.c.absence_id == absence_id)
                         .values(handover_json=json.dumps(moved, ensure_ascii=False)))
            self._event(conn, f"absence:{absence_id}", actor.staff_id, "handover", f"顶岗开始，移交 {len(moved)} 项", self._now())

    def _move_holdings(self, from_staff: str, to_staff: str, reason: str, actor: Actor,
                       only: Sequence[dict[str, str]] | None = None) -> list[dict[str, str]]:
        """Move what `from_staff` holds to `to_staff` (or only the listed items): matters through the
        handling service's AB handover (each in its own transaction, signed), appointments and register
        entries by their handler. Returns what moved."""
        wanted = None if only is None else {(x["what"], x["id"]) for x in only}
        moved: list[dict[str, str]] = []
        # The handover is A's (or on return B's, 003 主岗协岗制度 第四条) whoever registers it; the director acts as themself.
        mover = actor if actor.role is Role.DIRECTOR else Actor(from_staff, Role.OPERATOR)
        for summary in self.handling.inbox(owner=from_staff, stages=list(_OPEN_MATTER_STAGES), limit=5000):
            if wanted is not None and ("matter", summary.matter_id) not in wanted:
                continue
            try:
                self.handling.hand_over(summary.matter_id, to_staff, reason, actor=mover)
            except (HandlingError, ConcurrentEditError) as exc:   # moved meanwhile, or finished: it stays where it is
                log.info("matter %s not handed over: %s", summary.matter_id, exc)
                continue
            moved.append({"what": "matter", "id": summary.matter_id, "title": f"办件：{summary.catalog_name}"})
        now = self._now()
        with self.store.engine.begin() as conn:
            for r in conn.execute(select(appointment).where(appointment.c.handler == from_staff, appointment.c.state.in_(
                    [AppointmentState.CONFIRMED.value, AppointmentState.ARRIVED.value]))).all():
                if wanted is not None and ("appointment", r.appointment_id) not in wanted:
                    continue
                conn.execute(update(appointment).where(appointment.c.appointment_id == r.appointment_id)
                             .values(handler=to_staff, version=int(r.version) + 1))
                self._event(conn, r.appointment_id, actor.staff_id, "handover", reason, now)
                moved.append({"what": "appointment", "id": r.appointment_id,
                              "title": f"预约：{r.applicant_name} {_bj(from_unix_ms(int(r.scheduled_at_ms)))}"})
            for r in conn.execute(select(desk_case).where(desk_case.c.handler == from_staff,
                                                          desk_case.c.stage != CaseStage.CLOSED.value)).all():
                if wanted is not None and ("case", r.case_id) not in wanted:
                    continue
                conn.execute(update(desk_case).where(desk_case.c.case_id == r.case_id)
                             .values(handler=to_staff, version=int(r.version) + 1))
                kind = CaseKind(r.kind)
                clock = self.deadlines.load_clock(r.register_no, hop_name(kind), conn=conn) if kind is not CaseKind.CONSULTATION else None
                if clock is not None:
                    self.deadlines.save_clock(r.register_no, hop_name(kind), clock, now=now, responsible=to_staff, conn=conn)
                self._event(conn, r.case_id, actor.staff_id, "handover", reason, now)
                moved.append({"what": "case", "id": r.case_id, "title": r.register_no})
        return moved

    def returned(self, absence_id: int, *, actor: Actor) -> AbsenceView:
        """A is back: what B still holds of the handover list goes back to A."""
        view = self.absence(absence_id)
        if view.returned_at is not None:
            raise FrontDeskError("已登记返岗")
        a = view.absence
        if actor.role is not Role.DIRECTOR and actor.staff_id not in (a.staff_id, a.covered_by):
            raise FrontDeskError("返岗须由本人、顶岗人或中心主任登记")
        note = f"返岗：{self._name(a.staff_id)} 返岗，{self._name(a.covered_by)} 交回顶岗期间的工作"
        back = self._move_holdings(a.covered_by, a.staff_id, note, actor, only=view.handover)
        now = self._now()
        with self.store.engine.begin() as conn:
            conn.execute(update(absence).where(absence.c.absence_id == absence_id).values(returned_at_ms=to_unix_ms(now)))
            self._event(conn, f"absence:{absence_id}", actor.staff_id, "returned", f"返岗，交回 {len(back)} 项", now)
        return self.absence(absence_id)

    def absence(self, absence_id: int) -> AbsenceView:
        with self.store.engine.connect() as conn:
            for r, a in self._absences(conn):
                if int(r.absence_id) == absence_id:
                    return AbsenceView(absence_id, a, r.registered_by, json.loads(r.handover_json or "[]"),
                                       from_unix_ms(int(r.returned_at_ms)) if r.returned_at_ms else None)
        raise UnknownEntry("找不到该离岗登记")

    def absences(self) -> list[AbsenceView]:
        with self.store.engine.connect() as conn:
            pairs = self._absences(conn)
        return [AbsenceView(int(r.absence_id), a, r.registered_by, json.loads(r.handover_json or "[]"),
                            from_unix_ms(int(r.returned_at_ms)) if r.returned_at_ms else None) for r, a in reversed(pairs)]

    def covering_today(self) -> list[Absence]:
        with self.store.engine.connect() as conn:
            return covering([a for _r, a in self._absences(conn)], self.today())


def _bj(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


def build_front_desk(handling: HandlingService, intake: Any, clock: Clock, *, township_code: str = "") -> FrontDesk:
    """The front desk over a township's handling and intake. The window's key is enrolled at the first
    walk-in (a township that never registers one has no such key among its devices)."""
    return FrontDesk(handling, WindowIntake(handling.store, handling, intake, clock, township_code=township_code), clock)


def supervision_audience(matter_audience: Any) -> Any:
    """Who hears a 督办: a register entry's stays in the township's own chain (never a village's);
    a matter's goes to its filing device as before."""
    from town_center.handling import INTERNAL_AUDIENCE

    def audience(subject_id: str) -> Sequence[str]:
        return [INTERNAL_AUDIENCE] if is_register_no(subject_id) else matter_audience(subject_id)

    return audience


class RegisterNames:
    """The deadline notices' names (`shared.deadline_watch.notify.MatterNames`): a register entry by its
    number (投诉〔2026〕7号: staff find it on the register by that), anything else by `matters`."""

    def __init__(self, matters: Any) -> None:
        self.matters = matters

    def matter_name(self, matter_id: str) -> Any:
        if is_register_no(matter_id):
            from shared.deadline_watch.notify import MatterName
            return MatterName(matter_id, "窗口前台登记簿")
        return self.matters.matter_name(matter_id)
