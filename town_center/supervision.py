"""督办 and 督查 at the township.

`SignedSupervisionRecorder` implements `shared.deadline_watch.notify.SupervisionPort`: the deadline
watch fires a SUPERVISE level exactly once per (matter, hop) and hands the notice here; it becomes a
`SupervisionNotice` in the township's own signed log. Whose leg is late decides who hears it: a
village leg (报送, 送达) goes down to the agent's laptop; the township's own legs (受理, 办理) stay in
the township's chain and reach people — the matter's owner and every 督查 — through `staff_notice`
(000 项目审批督促检查制度: the supervision office and the window, not the village). The notification's
idempotency key is the publish dedup key and the staff notice's key, so a retry records once.

`Oversight` is the supervisor's daily list (000 第二至四条): every overdue matter with how many working
days it is late, the cause the window recorded (applicant-caused or agency-caused) and its solution,
and from 3 working days the supervisor's contact with the applicant and its outcome.
"""
from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.clock import from_unix_ms, to_unix_ms
from shared.deadline_watch.notify import Notification
from shared.domain.evaluation import EvaluationError
from shared.domain.handling import Actor, Role
from shared.domain.personal_data import personal_data_problem
from shared.wire.v1 import records_pb2
from town_center.services import TownServices
from town_center.store.evaluation_tables import overdue_record, staff_notice
from town_center.store.matter_tables import town_matter

__all__ = ["SignedSupervisionRecorder", "Oversight", "OverdueItem", "Cause", "TOWNSHIP_LEGS", "CONTACT_AFTER_WORKING_DAYS"]

# The township's own legs: their 督办 goes to the township's people, not down to a laptop.
TOWNSHIP_LEGS = frozenset({"township", "acceptance"})
INTERNAL_AUDIENCE = "-township-"   # as town_center.handling: in the township chain, sent to no device
CONTACT_AFTER_WORKING_DAYS = 3     # 000 第四条: 连续延期三个工作日 → the supervisor contacts the applicant

_TIERS = {"village": records_pb2.TIER_VILLAGE, "township": records_pb2.TIER_TOWNSHIP, "county": records_pb2.TIER_COUNTY}

def is_register_entry(subject_id: str) -> bool:
    """A front-desk register number (投诉〔2026〕7号) rather than a matter id (as
    `town_center.front_desk.service.is_register_no`, without importing the front desk here)."""
    return "〔" in subject_id


# Which devices must hear about a matter (its filing agent, and anyone the township adds).
AudienceFor = Callable[[str], Sequence[str]]


class SignedSupervisionRecorder:
    def __init__(self, services: TownServices, audience_for: AudienceFor, *, supervise_working_days: int = 3) -> None:
        self.services = services
        self.audience_for = audience_for
        self.supervise_working_days = supervise_working_days

    def record_supervision(self, notification: Notification) -> None:
        matter_id = notification.data.get("matter_id", "")
        hop = notification.data.get("hop", "")
        if hop in TOWNSHIP_LEGS or is_register_entry(matter_id):
            # A front-desk register entry (投诉、信访 answer clocks) is the township's own leg too: its
            # 督办 reaches the handler and every 督查 (docs/front-desk.md).
            self._to_staff(notification, matter_id, hop)
            audience = [INTERNAL_AUDIENCE]
        else:
            audience = list(self.audience_for(matter_id)) or ["*"]
        record = records_pb2.Record()
        body = record.supervision_notice
        body.notice_id = hashlib.sha256(notification.idempotency_key.encode()).hexdigest()[:32]
        body.matter_id = matter_id
        body.hop_tier = _TIERS.get(notification.data.get("hop", ""), records_pb2.TIER_TOWNSHIP)
        body.level = records_pb2.SUPERVISION_LEVEL_SUPERVISE
        body.overdue_working_days = self.supervise_working_days
        body.message = notification.text_zh
        body.issued_at_ms = to_unix_ms(self.services.clock.now())
        body.issued_by = self.services.signer.key_id
        self.services.publish(record, audience, dedup_key=f"supervision:{notification.idempotency_key}")



    def _to_staff(self, notification: Notification, matter_id: str, hop: str) -> None:
        owner = notification.recipient if notification.recipient not in ("", "office") else ""
        notice_id = hashlib.sha256(notification.idempotency_key.encode()).hexdigest()[:32]
        try:
            with self.services.store.engine.begin() as conn:
                if conn.execute(select(staff_notice.c.notice_id).where(staff_notice.c.notice_id == notice_id)).first():
                    return
                conn.execute(insert(staff_notice).values(
                    notice_id=notice_id, matter_id=matter_id, hop=hop, owner_id=owner[:64], message=notification.text_zh,
                    issued_at_ms=to_unix_ms(self.services.clock.now())))
        except IntegrityError:
            return   # the same notice recorded by a racing retry


class Cause(str, enum.Enum):
    """Why a matter is late (000 第四条): the applicant's side (materials missing) or the agency's."""

    APPLICANT = "applicant"
    AGENCY = "agency"

    @property
    def label_zh(self) -> str:
        return {"applicant": "申请人原因（如材料不齐）", "agency": "经办单位原因"}[self.value]


@dataclass(frozen=True)
class OverdueItem:
    matter_id: str
    catalog_name: str
    village_code: str
    owner_id: str
    hop: str                     # "township" or "county"
    due_at: dt.datetime
    overdue_working_days: int
    cause: Cause | None
    solution: str
    cause_by: str
    contacts: list[dict[str, Any]]

    @property
    def needs_contact(self) -> bool:
        return self.overdue_working_days >= CONTACT_AFTER_WORKING_DAYS and not self.contacts

    @property
    def needs_cause(self) -> bool:
        return self.cause is None


class Oversight:
    """The supervisor's daily overdue list and what is recorded against it."""

    def __init__(self, handling: Any) -> None:
        self.handling = handling
        self.store = handling.store
        self.clock = handling.clock

    def daily(self) -> list[OverdueItem]:
        """Every overdue matter today (the township's own hop and the county's, as the township sees it),
        most late first."""
        now = self.clock.now()
        today = self.handling.calendar.local_date(now)
        items = [(m, "township") for m in self.handling.supervision_list()] + \
                [(m, "county") for m in self.handling.county_overdue()]
        ids = [m.matter_id for m, _ in items]
        with self.store.engine.connect() as conn:
            records = conn.execute(select(overdue_record).where(overdue_record.c.matter_id.in_(ids))
                                   .order_by(overdue_record.c.record_id)).all() if ids else []
        out = []
        for m, hop in items:
            if m.due_at is None:
                continue
            mine = [r for r in records if r.matter_id == m.matter_id and r.hop == hop]
            causes = [r for r in mine if r.what == "cause"]
            last = causes[-1] if causes else None
            days = max(0, self.handling.calendar.working_days_between(self.handling.calendar.local_date(m.due_at), today))
            out.append(OverdueItem(
                matter_id=m.matter_id, catalog_name=m.catalog_name, village_code=m.village_code, owner_id=m.owner, hop=hop,
                due_at=m.due_at, overdue_working_days=days, cause=Cause(last.cause) if last else None,
                solution=last.text if last else "", cause_by=last.recorded_by if last else "",
                contacts=[{"at": from_unix_ms(int(r.recorded_at_ms)), "by": r.recorded_by, "reached": bool(r.reached),
                           "outcome": r.text} for r in mine if r.what == "contact"]))
        return sorted(out, key=lambda i: (-i.overdue_working_days, i.due_at))

    def _item(self, matter_id: str, hop: str) -> OverdueItem:
        for item in self.daily():
            if item.matter_id == matter_id and item.hop == hop:
                return item
        raise EvaluationError("该办件今天不在超期清单上")

    def record_cause(self, matter_id: str, cause: str, solution: str, *, actor: Actor, hop: str = "township") -> None:
        """The window (or the supervisor) states why the matter is late and how it will be solved."""
        if actor.role not in (Role.OPERATOR, Role.DIRECTOR, Role.SUPERVISOR):
            raise EvaluationError("超期原因由窗口工作人员、中心主任或督查人员登记")
        try:
            why = Cause(cause)
        except ValueError:
            raise EvaluationError("请选择超期原因：申请人原因或经办单位原因") from None
        text = solution.strip()
        if len(text) < 4:
            raise EvaluationError("请写明解决方案（至少 4 个字），如：已通知申请人补齐材料")
        self._check_text(text, "解决方案")
        item = self._item(matter_id, hop)
        self._insert(matter_id, hop, "cause", why.value, text, None, item.overdue_working_days, actor)

    def record_contact(self, matter_id: str, *, reached: bool, outcome: str, actor: Actor, hop: str = "township") -> None:
        """At 3 working days late the supervisor contacts the applicant and records the outcome (their view)."""
        if actor.role is not Role.SUPERVISOR and actor.role is not Role.DIRECTOR:
            raise EvaluationError("联系申请人由督查人员登记")
        item = self._item(matter_id, hop)
        if item.overdue_working_days < CONTACT_AFTER_WORKING_DAYS:
            raise EvaluationError(f"超期满 {CONTACT_AFTER_WORKING_DAYS} 个工作日才需要联系申请人"
                                  f"（现超期 {item.overdue_working_days} 个工作日）")
        text = outcome.strip()
        if reached and len(text) < 2:
            raise EvaluationError("请记录申请人的意见")
        self._check_text(text, "申请人意见")
        self._insert(matter_id, hop, "contact", "", text, reached, item.overdue_working_days, actor)

    @staticmethod
    def _check_text(text: str, field_zh: str) -> None:
        problem = personal_data_problem(text, field_zh)
        if problem:
            raise EvaluationError(problem)

    def _insert(self, matter_id: str, hop: str, what: str, cause: str, text: str, reached: bool | None, days: int,
                actor: Actor) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(insert(overdue_record).values(
                matter_id=matter_id, hop=hop, what=what, cause=cause, text=text[:1000], reached=reached,
                overdue_working_days=days, recorded_by=actor.staff_id[:64], recorded_at_ms=to_unix_ms(self.clock.now())))

    # ------------------------------------------------------------------ the township's own 督办 to people

    def notices_for(self, actor: Actor, *, unread_only: bool = True) -> list[dict[str, Any]]:
        """督办 addressed to people: a supervisor sees every one, anybody else those on his matters."""
        q = select(staff_notice).order_by(staff_notice.c.issued_at_ms.desc())
        if actor.role is Role.SUPERVISOR:
            if unread_only:
                q = q.where(staff_notice.c.read_by_supervisor_at_ms.is_(None))
        else:
            q = q.where(staff_notice.c.owner_id == actor.staff_id)
            if unread_only:
                q = q.where(staff_notice.c.read_by_owner_at_ms.is_(None))
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.limit(500)).all()
        catalog = self.handling.catalog
        with self.store.engine.connect() as conn:
            codes = dict(conn.execute(select(town_matter.c.matter_id, town_matter.c.catalog_code).where(
                town_matter.c.matter_id.in_({r.matter_id for r in rows}))).all()) if rows else {}
        def name(matter_id: str) -> str:
            if is_register_entry(matter_id):
                return f"{matter_id}（窗口前台登记簿）"   # staff find a complaint or petition by its number
            return catalog.item(codes[matter_id]).name if codes.get(matter_id) in catalog else "办件"

        return [{"notice_id": r.notice_id, "matter_id": r.matter_id, "message": r.message, "owner_id": r.owner_id,
                 "issued_at": from_unix_ms(int(r.issued_at_ms)), "catalog_name": name(r.matter_id)}
                for r in rows]

    def mark_read(self, notice_id: str, *, actor: Actor) -> None:
        column = "read_by_supervisor_at_ms" if actor.role is Role.SUPERVISOR else "read_by_owner_at_ms"
        cond = [staff_notice.c.notice_id == notice_id]
        if actor.role is not Role.SUPERVISOR:
            cond.append(staff_notice.c.owner_id == actor.staff_id)
        with self.store.engine.begin() as conn:
            moved = conn.execute(update(staff_notice).where(*cond).values(**{column: to_unix_ms(self.clock.now())})).rowcount
        if moved != 1:
            raise EvaluationError("找不到该督办通知")
