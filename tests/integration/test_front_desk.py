"""The township's front desk on real SQLite and PostgreSQL stores with a fake clock and the real deadline engine:
walk-ins made into matters by the window's signed filing (and on to the county and a sign-off at the
window), complaints, petitions and consultations with their answer clocks, appointments, absences
with 顶岗, and the queue of the day."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.handling import Outcome
from shared.clock import FakeClock
from shared.deadline_watch.tables import notification_outbox
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import ClockState, ClockStatus
from shared.domain.front_desk import AppointmentState, CaseKind, CaseStage, Channel, Complexity, Feedback, hop_name
from shared.domain.handling import Actor, Role, Stage
from tests.county_fixtures import County, LinkedTownship, advance
from tests.front_desk_fixtures import pad_signature, photo_of_form, walk_in_form
from tests.town_fixtures import BACKUP, DIRECTOR, OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.front_desk.errors import FrontDeskError
from town_center.front_desk.service import FrontDesk, RegisterNames, supervision_audience
from town_center.handling import INTERNAL_AUDIENCE
from town_center.store.matter_tables import town_matter
from town_center.store.tables import ingest_log

BJ = dt.timezone(dt.timedelta(hours=8))
COUNTY_DIRECTOR = Actor("chen", Role.DIRECTOR)


class Colleagues:
    """The console's accounts, as the handling service's staff directory sees them."""

    names = {"wang": "王芳", "li": "李强", "zhao": "赵主任"}

    def active_name(self, staff_id: str) -> str | None:
        return self.names.get(staff_id)


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TownApp]:
    """The front desk's registers, clocks and handovers on both stores the township runs on."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_cluster").create_database()
    else:
        url = f"sqlite:///{tmp_path / 'town.db'}"
    town_app = township(url)
    town_app.handling.staff = Colleagues()
    yield town_app
    town_app.close()


@pytest.fixture
def desk(app: TownApp) -> FrontDesk:
    assert app.front_desk is not None
    return app.front_desk


def _fire(app: TownApp) -> list[tuple[str, str, ClockState]]:
    return [(e.matter_id, e.hop, e.level) for e in app.deadlines.fire_due(app.clock.now(), fired_by="test")]


def _advance(app: TownApp, **kw: float) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    clock.advance(dt.timedelta(**kw))


# ---------------------------------------------------------------- window intake

def test_a_walk_in_becomes_a_matter_signed_by_the_window_with_the_operator_as_first_asked(app: TownApp, desk: FrontDesk) -> None:
    receipt = desk.window.register(walk_in_form(app.handling.catalog), operator=OPERATOR, operator_name="王芳")
    page = app.handling.page(receipt.matter_id)
    assert page.summary.stage is Stage.RECEIVED and page.summary.village_code == "乡镇窗口"
    assert page.matter.acceptance_clock is not None and page.summary.state is ClockState.ON_TIME
    assert page.authorization["method_zh"] == "申请人手写签名" and not page.authorization.get("problem")
    assert "窗口现场登记" in page.events[0].text_zh
    first = desk.window.first_asked(receipt.matter_id)
    assert first is not None and (first.staff_id, first.name) == ("wang", "王芳")
    # The filing is the window key's own signed record, stored as received: the county can verify it.
    with app.store.engine.connect() as conn:
        kinds = conn.execute(select(ingest_log.c.body_kind).where(ingest_log.c.author_key_id == desk.window.key_id)).scalars().all()
    assert kinds == ["request_filed"]
    assert len(receipt.lookup_code) == 11 and "一次性告知书" in receipt.notice
    # 首问 and 承办 are two people: whoever classifies becomes the 承办人.
    after = app.handling.classify(receipt.matter_id, MatterKind.REPORTED, actor=BACKUP)
    assert after.owner == "li" and desk.window.first_asked(receipt.matter_id).staff_id == "wang"


def test_bad_walk_in_input_is_refused_in_chinese_and_nothing_is_saved(app: TownApp, desk: FrontDesk) -> None:
    catalog = app.handling.catalog
    cases = [
        (walk_in_form(catalog, signature_png=b""), "签名"),
        (walk_in_form(catalog, signature_png=pad_signature(40, 20)), "签名"),
        (walk_in_form(catalog, id_number="110101199003070012"), "身份证"),
        (walk_in_form(catalog, on_behalf=True, representative_name="张强", representative_relation="儿子"), "委托书"),
        (walk_in_form(catalog, catalog_code="NOPE-1"), "目录"),
        (walk_in_form(catalog, note="电话13800001111"), "备注"),
    ]
    for form, word in cases:
        with pytest.raises(FrontDeskError, match=word):
            desk.window.register(form, operator=OPERATOR, operator_name="王芳")
    with app.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(town_matter)).scalar_one() == 0
    assert app.store.author(desk.window.key_id) is None   # the window signed nothing (its key not even enrolled)


def test_someone_applying_on_anothers_behalf_brings_the_signed_authorization_which_travels_as_the_photo(
        app: TownApp, desk: FrontDesk) -> None:
    form = walk_in_form(app.handling.catalog, on_behalf=True, representative_name="张强", representative_relation="儿子",
                        authorization_photo=photo_of_form())
    receipt = desk.window.register(form, operator=OPERATOR, operator_name="王芳")
    page = app.handling.page(receipt.matter_id)
    assert page.authorization["method_zh"] == "已签字委托书照片" and not page.authorization.get("problem")
    assert desk.window.representative(receipt.matter_id) == {"name": "张强", "relation": "儿子"}
    assert desk.window.first_asked(receipt.matter_id).on_behalf


def test_a_walk_in_missing_an_auxiliary_material_is_taken_on_tolerance_with_the_promised_date(app: TownApp, desk: FrontDesk) -> None:
    catalog = app.handling.catalog
    item = catalog.item("MZ-001")
    tolerated = next(m for m in item.auxiliary_materials if not m.condition)
    form = walk_in_form(catalog, materials_brought=[m.id for m in item.materials if not m.condition and m.id != tolerated.id])
    with pytest.raises(FrontDeskError, match="承诺补交日期"):
        desk.window.register(form, operator=OPERATOR, operator_name="王芳")
    form.commitments = {tolerated.id: "2026-12-10"}
    receipt = desk.window.register(form, operator=OPERATOR, operator_name="王芳")
    page = app.handling.page(receipt.matter_id)
    assert page.tolerated_missing == (tolerated.id,) and "容缺受理" in page.events[0].text_zh


def test_a_walk_in_escalated_reaches_the_county_verified_and_is_signed_off_at_the_window(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    app = town.app
    desk = app.front_desk
    assert desk is not None
    receipt = desk.window.register(walk_in_form(app.handling.catalog), operator=OPERATOR, operator_name="王芳")
    matter_id = receipt.matter_id
    app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    advance(clock, hours=1)
    app.handling.escalate(matter_id, "乡镇初审：窗口收件，材料齐全", actor=OPERATOR)
    advance(clock, minutes=5)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    assert hub.app.handling.history(matter_id).view.stage is Stage.IN_PROGRESS   # taken in: both signatures verified
    assert app.handling.page(matter_id).matter.stage is Stage.ESCALATED
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=COUNTY_DIRECTOR, reason="准予低保")
    town.sync()
    assert app.handling.page(matter_id).matter.stage is Stage.RESULT_READY
    with pytest.raises(FrontDeskError, match="签名"):
        desk.window.sign_off(matter_id, signature_png=b"", comment="", actor=OPERATOR)
    desk.window.sign_off(matter_id, signature_png=pad_signature(), comment="结果已当面领取", actor=OPERATOR)
    page = app.handling.page(matter_id)
    assert page.matter.stage is Stage.SIGNED_OFF and page.rating == 0   # the applicant rates on their own
    # The villager's own sign-off goes on to the county as the village's does.
    town.sync()
    hub.app.handling.run_once()
    assert hub.app.handling.history(matter_id).view.stage is Stage.SIGNED_OFF


def test_a_walk_in_for_a_township_matter_is_promised_decided_and_signed_off_at_the_window(app: TownApp, desk: FrontDesk) -> None:
    receipt = desk.window.register(walk_in_form(app.handling.catalog, "MZ-003"), operator=OPERATOR, operator_name="王芳")
    matter_id = receipt.matter_id
    with pytest.raises(FrontDeskError, match="结果办出后"):
        desk.window.sign_off(matter_id, signature_png=pad_signature(), comment="", actor=OPERATOR)
    promised = app.handling.classify(matter_id, MatterKind.PROMISED, actor=BACKUP)
    assert promised.clock is not None and promised.written_promise
    _advance(app, hours=2)
    ready = app.handling.record_result(matter_id, approved=True, summary="准予临时救助 800 元", actor=BACKUP)
    assert ready.stage is Stage.RESULT_READY and ready.delivery_clock is not None
    _advance(app, hours=1)
    desk.window.sign_off(matter_id, signature_png=pad_signature(), comment="", actor=BACKUP)
    page = app.handling.page(matter_id)
    assert page.matter.stage is Stage.SIGNED_OFF
    assert [e.text_zh for e in page.events][-2:] == ["窗口已将结果当面交付申请人", "申请人在窗口签收确认"]
    assert page.matter.delivery_clock is not None and page.matter.delivery_clock.stop_at is not None


def test_a_matter_filed_by_a_village_cannot_be_signed_off_at_the_window(app: TownApp, desk: FrontDesk) -> None:
    matter_id = VillageDevice(app).file("MZ-001")
    with pytest.raises(FrontDeskError, match="村代办员"):
        desk.window.sign_off(matter_id, signature_png=pad_signature(), comment="", actor=OPERATOR)
    assert desk.window.first_asked(matter_id) is None


# ---------------------------------------------------------------- complaints 投诉

def test_a_simple_complaint_warns_goes_overdue_and_reaches_supervision_then_is_answered_and_closed(
        app: TownApp, desk: FrontDesk) -> None:
    case = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.VISIT, subject="窗口工作人员态度生硬",
                              content="办低保时被训斥", person_name="李四", person_contact="一组", handler="li",
                              linked_staff_id="wang")
    assert case.register_no == "投诉〔2026〕1号" and case.stage is CaseStage.OPEN
    assert case.due_at is not None and case.due_at.astimezone(BJ).date() == dt.date(2026, 11, 24)
    hop = hop_name(CaseKind.COMPLAINT)
    assert _fire(app) == []
    _advance(app, days=1)              # Tuesday 09:00: inside the last working day
    assert (case.register_no, hop, ClockState.WARNING) in _fire(app)
    _advance(app, days=1)              # Wednesday: overdue
    assert (case.register_no, hop, ClockState.OVERDUE) in _fire(app)
    _advance(app, days=3)              # Saturday: three working days late → 督办
    assert (case.register_no, hop, ClockState.SUPERVISE) in _fire(app)
    assert desk.case(case.case_id, viewer=DIRECTOR).state is ClockState.SUPERVISE
    with pytest.raises(FrontDeskError, match="承办人"):
        desk.answer_case(case.case_id, "已批评教育", actor=OPERATOR)   # wang is complained about, not the handler
    answered = desk.answer_case(case.case_id, "经核实属实，已对当事人批评教育并当面致歉", actor=BACKUP)
    assert answered.stage is CaseStage.ANSWERED and "超期答复" in answered.events[-1].text_zh
    assert app.deadlines.load_clock(case.register_no, hop).status is ClockStatus.STOPPED
    closed = desk.record_feedback(case.case_id, Feedback.SATISFIED, "投诉人表示满意", actor=BACKUP)
    assert closed.stage is CaseStage.CLOSED and closed.feedback is Feedback.SATISFIED


def test_the_complainants_identity_is_seen_only_by_the_director_and_anonymous_reports_are_taken(
        app: TownApp, desk: FrontDesk) -> None:
    named = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.PHONE, subject="收费问题",
                               content="办证被多收钱", person_name="王五", person_contact="二组")
    assert named.person is None and named.identity_hidden
    assert desk.case(named.case_id, viewer=DIRECTOR).person == {"name": "王五", "contact": "二组"}
    assert desk.case(named.case_id, viewer=BACKUP).person is None
    report = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.BOX, subject="窗口吃拿卡要",
                                content="意见箱匿名信", anonymous=True, complexity=Complexity.COMPLEX)
    seen = desk.case(report.case_id, viewer=DIRECTOR)
    assert seen.anonymous and seen.person is None and not seen.identity_hidden
    assert seen.due_at is not None and seen.due_at.astimezone(BJ).date() == dt.date(2026, 11, 30)   # a week, on a working day
    with pytest.raises(FrontDeskError, match="姓名"):
        desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.VISIT, subject="x", content="y")
    with pytest.raises(FrontDeskError, match="手机"):
        desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.VISIT, subject="电话13800001111",
                           content="y", anonymous=True)


def test_a_complaint_linked_to_a_matter_names_it_and_an_unknown_matter_is_refused(app: TownApp, desk: FrontDesk) -> None:
    matter_id = VillageDevice(app).file("MZ-001")
    case = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.VISIT, subject="低保迟迟不办",
                              content="已过承诺时限", person_name="赵六", linked_matter_id=matter_id)
    assert case.linked_matter_id == matter_id
    with pytest.raises(FrontDeskError, match="关联的办件"):
        desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.VISIT, subject="x", content="y",
                           person_name="赵六", linked_matter_id="no-such-matter")


def test_a_register_entrys_supervision_stays_in_the_township_and_notices_name_it_by_number(app: TownApp) -> None:
    audience = supervision_audience(app.handling.audience_for)
    assert audience("投诉〔2026〕3号") == [INTERNAL_AUDIENCE]
    matter_id = VillageDevice(app).file("MZ-001")
    assert audience(matter_id) == app.handling.audience_for(matter_id)

    class NoMatters:
        def matter_name(self, matter_id: str) -> None:
            return None

    name = RegisterNames(NoMatters()).matter_name("信访〔2026〕2号")
    assert name is not None and "信访〔2026〕2号" in name.text_zh()


def test_a_register_entrys_supervision_reaches_the_handler_and_every_supervisor_as_a_staff_notice(app: TownApp, desk: FrontDesk) -> None:
    from shared.deadline_watch.notify import LogNotifier, OutboxRelay
    from town_center.matter_names import TownMatterNames
    from town_center.supervision import Oversight, SignedSupervisionRecorder

    case = desk.register_case(CaseKind.PETITION, actor=OPERATOR, channel=Channel.VISIT, subject="村道硬化补偿",
                              content="补偿款未到位", person_name="孙七", handler="li")
    relay = OutboxRelay(app.deadlines, LogNotifier(),
                        SignedSupervisionRecorder(app.services, supervision_audience(app.handling.audience_for)), owner="test",
                        names=RegisterNames(TownMatterNames(app.store.engine, lambda: app.handling.catalog)))
    _advance(app, days=10)             # three working days to answer, then three more late: 督办
    assert (case.register_no, hop_name(CaseKind.PETITION), ClockState.SUPERVISE) in _fire(app)
    relay.drain(app.clock.now())
    relay.drain(app.clock.now())       # a second drain records nothing twice
    oversight = Oversight(app.handling)
    [seen] = oversight.notices_for(Actor("sun", Role.SUPERVISOR))
    assert seen["matter_id"] == case.register_no and seen["owner_id"] == "li"
    assert seen["catalog_name"] == f"{case.register_no}（窗口前台登记簿）" and "督办" in seen["message"]
    assert case.register_no in seen["message"] and "〔" not in seen["message"].replace(case.register_no, "")
    assert [n["notice_id"] for n in oversight.notices_for(BACKUP)] == [seen["notice_id"]]   # li, the handler
    assert oversight.notices_for(OPERATOR) == []                                              # wang only registered it


# ---------------------------------------------------------------- petitions 信访 and consultations 咨询

def test_a_petition_is_answered_within_three_working_days_a_leader_reception_within_a_week(app: TownApp, desk: FrontDesk) -> None:
    petition = desk.register_case(CaseKind.PETITION, actor=OPERATOR, channel=Channel.VISIT, subject="宅基地纠纷",
                                  content="邻居占地", person_name="孙七", handler="li")
    assert petition.due_at is not None and petition.due_at.astimezone(BJ).date() == dt.date(2026, 11, 26)
    leader = desk.register_case(CaseKind.PETITION, actor=OPERATOR, channel=Channel.VISIT, subject="征地补偿",
                                content="要求领导接待", person_name="周八", complexity=Complexity.LEADER)
    assert leader.due_at is not None and leader.due_at.astimezone(BJ).date() == dt.date(2026, 11, 30)
    _advance(app, days=4)
    assert (petition.register_no, hop_name(CaseKind.PETITION), ClockState.OVERDUE) in _fire(app)
    with pytest.raises(FrontDeskError, match="匿名"):
        desk.register_case(CaseKind.PETITION, actor=OPERATOR, channel=Channel.VISIT, subject="x", content="y", anonymous=True)


def test_a_consultation_is_answered_on_the_spot_prints_the_one_time_notification_and_is_counted(
        app: TownApp, desk: FrontDesk) -> None:
    with pytest.raises(FrontDeskError, match="答复"):
        desk.register_case(CaseKind.CONSULTATION, actor=OPERATOR, channel=Channel.VISIT, subject="低保怎么办",
                           content="", person_name="吴九", catalog_code="MZ-001")
    case = desk.register_case(CaseKind.CONSULTATION, actor=OPERATOR, channel=Channel.VISIT, subject="低保怎么办",
                              content="", person_name="吴九", catalog_code="MZ-001", answer="已一次性告知所需材料和流程")
    assert case.stage is CaseStage.CLOSED and case.due_at is None
    _view, lines = desk.consultation_notice(case.case_id, viewer=OPERATOR)
    item = app.handling.catalog.item("MZ-001")
    assert all(any(m.name in line for line in lines) for m in item.materials)
    assert any("收费标准" in line for line in lines) and any("办理依据" in line for line in lines)
    assert desk.counts()["consultation"] == 1


# ---------------------------------------------------------------- appointments 预约

def test_an_appointment_is_forfeited_only_when_late_and_unreachable_and_a_late_visit_is_still_recorded(
        app: TownApp, desk: FrontDesk) -> None:
    at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=BJ)
    booking = desk.book(actor=OPERATOR, applicant_name="郑大爷", phone="13900002222", catalog_code="MZ-001",
                        scheduled_at=at, elderly_or_disabled=True)
    assert booking.state is AppointmentState.CONFIRMED and desk.appointment_phone(booking.appointment_id) == "13900002222"
    _advance(app, hours=1, minutes=35)          # 10:35
    with pytest.raises(FrontDeskError, match="联系"):
        desk.forfeit(booking.appointment_id, actor=OPERATOR)
    desk.contact_attempt(booking.appointment_id, reached=False, note="电话无人接听", actor=OPERATOR)
    forfeited = desk.forfeit(booking.appointment_id, actor=OPERATOR)
    assert forfeited.state is AppointmentState.FORFEITED
    _advance(app, hours=1)
    with pytest.raises(FrontDeskError, match="原因"):
        desk.arrived(booking.appointment_id, actor=OPERATOR)
    came = desk.arrived(booking.appointment_id, late_reason="班车晚点", actor=OPERATOR)
    assert came.state is AppointmentState.ARRIVED and "班车晚点" in came.events[-1].text_zh
    assert [t.applicant_name for t in desk.queue()] == ["郑大爷"]


def test_changing_or_cancelling_an_appointment_needs_approval_and_the_applicant_told(app: TownApp, desk: FrontDesk) -> None:
    at = dt.datetime(2026, 11, 24, 9, 30, tzinfo=BJ)
    booking = desk.book(actor=OPERATOR, applicant_name="钱阿姨", phone="13900003333", catalog_code="MZ-001", scheduled_at=at)
    with pytest.raises(FrontDeskError, match="批准"):
        desk.change_appointment(booking.appointment_id, new_at=None, reason="窗口停电", approved_by="",
                                applicant_told=True, actor=OPERATOR)
    with pytest.raises(FrontDeskError, match="告知"):
        desk.change_appointment(booking.appointment_id, new_at=None, reason="窗口停电", approved_by="zhao",
                                applicant_told=False, actor=OPERATOR)
    moved = desk.change_appointment(booking.appointment_id, new_at=at + dt.timedelta(days=1), reason="窗口停电",
                                    approved_by="zhao", applicant_told=True, actor=OPERATOR)
    assert moved.scheduled_at == at + dt.timedelta(days=1) and moved.state is AppointmentState.CONFIRMED
    with pytest.raises(FrontDeskError, match="工作日"):
        desk.book(actor=OPERATOR, applicant_name="钱阿姨", phone="13900003333", catalog_code="MZ-001",
                  scheduled_at=dt.datetime(2026, 11, 28, 9, 30, tzinfo=BJ))


def _applicant_sms(app: TownApp) -> list[dict[str, object]]:
    """The applicant SMS queued, each with the number its sealed box opens to (the row keeps it masked)."""
    from shared.deadline_watch.sealed_recipient import KeySeal

    with app.store.engine.connect() as conn:
        rows = conn.execute(select(notification_outbox.c.payload_json, notification_outbox.c.sealed_recipient).where(
            notification_outbox.c.audience == "applicant").order_by(notification_outbox.c.id)).all()
    seal = KeySeal.of(app.handling.signer)
    return [{**json.loads(r.payload_json), "to": seal.open(bytes(r.sealed_recipient))} for r in rows]


def test_an_appointment_changed_or_cancelled_sends_the_applicant_an_sms_to_their_own_number(app: TownApp, desk: FrontDesk) -> None:
    at = dt.datetime(2026, 11, 24, 9, 30, tzinfo=BJ)
    booking = desk.book(actor=OPERATOR, applicant_name="钱阿姨", phone="13900003333", catalog_code="MZ-001", scheduled_at=at)
    with pytest.raises(FrontDeskError, match="告知"):
        desk.change_appointment(booking.appointment_id, new_at=None, reason="窗口停电", approved_by="zhao",
                                applicant_told=False, actor=OPERATOR)
    assert _applicant_sms(app) == []   # a refused change says nothing
    desk.change_appointment(booking.appointment_id, new_at=at + dt.timedelta(days=1), reason="窗口停电",
                            approved_by="zhao", applicant_told=True, actor=OPERATOR)
    desk.change_appointment(booking.appointment_id, new_at=None, reason="系统升级停办一天", approved_by="zhao",
                            applicant_told=True, actor=OPERATOR)
    changed, cancelled = _applicant_sms(app)
    item = app.handling.catalog.item("MZ-001").name
    assert changed["to"] == cancelled["to"] == "13900003333" and changed["kind"] == "appointment_notice"
    assert changed["recipient"] == "139****3333"   # in clear only inside the sealed box
    assert "2026-11-24 09:30" in changed["text"] and "2026-11-25 09:30" in changed["text"] and item in changed["text"]
    assert "已取消" in cancelled["text"] and "系统升级停办一天" in cancelled["text"]
    for sms in (changed, cancelled):
        assert "钱阿姨" not in sms["text"] and booking.appointment_id not in sms["text"]
    assert "并发短信" in desk.appointment(booking.appointment_id).events[-1].text_zh


# ---------------------------------------------------------------- AB posts and 顶岗

def test_an_absence_moves_everything_a_holds_to_b_at_once_and_back_on_return(app: TownApp, desk: FrontDesk) -> None:
    desk.add_post("社会救助窗口", "wang", "li", actor=DIRECTOR)
    matter_id = VillageDevice(app).file("MZ-001")
    app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    booking = desk.book(actor=OPERATOR, applicant_name="冯大姐", phone="13900004444", catalog_code="MZ-001",
                        scheduled_at=dt.datetime(2026, 11, 24, 10, 0, tzinfo=BJ))
    complaint = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.VISIT, subject="等候太久",
                                   content="排队一上午", person_name="陈十")
    today = dt.date(2026, 11, 23)
    absence = desk.register_absence("wang", from_date=today, to_date=today + dt.timedelta(days=2), reason="年休假",
                                    actor=OPERATOR)
    assert absence.absence.covered_by == "li" and len(absence.handover) == 3
    assert app.handling.page(matter_id).matter.owner == "li"
    assert desk.appointment(booking.appointment_id).handler == "li"
    assert desk.case(complaint.case_id, viewer=DIRECTOR).handler == "li"
    assert [(a.staff_id, a.covered_by) for a in desk.covering_today()] == [("wang", "li")]
    with pytest.raises(FrontDeskError, match="已登记离岗"):
        desk.register_absence("wang", from_date=today, to_date=today, reason="病假", actor=OPERATOR)
    _advance(app, days=1)
    desk.returned(absence.absence_id, actor=OPERATOR)
    assert app.handling.page(matter_id).matter.owner == "wang"
    assert desk.appointment(booking.appointment_id).handler == "wang"
    assert desk.case(complaint.case_id, viewer=DIRECTOR).handler == "wang"
    assert desk.covering_today() == []


def test_an_absence_registered_ahead_moves_nothing_until_its_first_day(app: TownApp, desk: FrontDesk) -> None:
    matter_id = VillageDevice(app).file("MZ-001")
    app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    tomorrow = dt.date(2026, 11, 24)
    ahead = desk.register_absence("wang", from_date=tomorrow, to_date=tomorrow, reason="外出学习", covered_by="li",
                                  actor=DIRECTOR)
    assert ahead.handover == [] and app.handling.page(matter_id).matter.owner == "wang"
    assert desk.start_due_absences() == 0 and desk.covering_today() == []
    _advance(app, days=1)
    assert desk.start_due_absences() == 1 and desk.start_due_absences() == 0
    assert app.handling.page(matter_id).matter.owner == "li"
    assert [h["what"] for h in desk.absence(ahead.absence_id).handover] == ["matter"]


# ---------------------------------------------------------------- the queue of the day

def test_the_windows_queue_serves_the_elderly_first_then_by_appointment_time_and_arrival(app: TownApp, desk: FrontDesk) -> None:
    booking = desk.book(actor=OPERATOR, applicant_name="预约的", phone="13900005555", catalog_code="MZ-001",
                        scheduled_at=dt.datetime(2026, 11, 23, 9, 20, tzinfo=BJ))
    desk.take_ticket(applicant_name="先来的")
    _advance(app, minutes=5)
    desk.arrived(booking.appointment_id, actor=OPERATOR)           # 09:05, booked for 09:20
    _advance(app, minutes=5)
    desk.take_ticket(applicant_name="后来的")                        # 09:10
    _advance(app, minutes=5)
    desk.take_ticket(applicant_name="拄拐的老人", elderly_or_disabled=True)
    assert [t.applicant_name for t in desk.queue()] == ["拄拐的老人", "先来的", "后来的", "预约的"]
    called = desk.call_next(actor=OPERATOR)
    assert called is not None and called.applicant_name == "拄拐的老人"
    assert [t.applicant_name for t in desk.queue()] == ["先来的", "后来的", "预约的"]
