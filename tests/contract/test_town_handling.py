"""Every kind's lifecycle through the township services, on a real SQLite file and a real
PostgreSQL, with each hop
clock checked against the deadline engine (`due_after`) and the records sent down checked as the
village will read them."""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.clock import FakeClock, from_unix_ms
from shared.domain.catalog import MatterKind, Tier
from shared.domain.deadlines import ClockState, SuspensionReason, due_after
from shared.domain.handling import Stage
from shared.domain.limits import Limit
from shared.errors import HandlingError
from shared.wire.v1 import records_pb2
from tests.town_fixtures import BACKUP, DIRECTOR, OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.errors import ConcurrentEditError
from town_center.handling import TOWNSHIP_HOP


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'town.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return str(cluster.create_database(f"town_{uuid.uuid4().hex[:10]}"))


@pytest.fixture
def app(db_url: str) -> Iterator[TownApp]:
    app = township(db_url)
    yield app
    app.close()


@pytest.fixture
def village(app: TownApp) -> VillageDevice:
    return VillageDevice(app)


def clock_of(app: TownApp) -> FakeClock:
    assert isinstance(app.clock, FakeClock)
    return app.clock


def kinds_down(village: VillageDevice) -> list[str]:
    return [str(r.WhichOneof("body")) for r in village.down_records()]


def test_a_filed_request_appears_in_the_inbox_received_at_the_townships_receipt_time(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    [line] = app.handling.inbox()
    assert line.matter_id == matter_id and line.stage is Stage.RECEIVED and line.village_code == "V001"
    assert line.received_at == app.clock.now()
    assert line.id_masked == "1101**********0011"


@pytest.mark.parametrize("years", [10, -10])
def test_a_laptop_clock_ten_years_off_changes_nothing_in_the_townships_deadlines(app: TownApp, years: int) -> None:
    village = VillageDevice(app, clock_off_by=dt.timedelta(days=365 * years))
    matter_id = village.file("MZ-003")
    m = app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    assert m.received_at == app.clock.now() and m.clock is not None
    assert m.clock.due_at(app.deadlines.calendar) == due_after(
        app.clock.now(), app.handling.catalog.item("MZ-003").hop(Tier.TOWNSHIP).promised, app.deadlines.calendar)
    assert app.store.time_flags(village.signer.key_id)      # the claim is kept and flagged, not trusted


def test_the_intake_applies_each_record_once_however_often_it_runs(app: TownApp, village: VillageDevice) -> None:
    village.file("MZ-003")
    assert app.intake.run_once() == 0
    assert len(app.handling.inbox()) == 1
    assert len(app.handling.page(app.handling.inbox()[0].matter_id).events) == 1


def test_a_promised_matter_runs_its_clock_from_receipt_to_result_and_sign_off(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    received = app.clock.now()
    m = app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    item = app.handling.catalog.item("MZ-003")
    assert m.owner == "wang" and m.stage is Stage.IN_PROGRESS
    expected_due = due_after(received, item.hop(Tier.TOWNSHIP).promised, app.deadlines.calendar)
    assert m.clock is not None and m.clock.due_at(app.deadlines.calendar) == expected_due
    row = app.deadlines.load(matter_id, TOWNSHIP_HOP)
    assert row is not None and row.clock == m.clock   # the deadline watch sees the same clock
    classified = [r for r in village.down_records() if r.WhichOneof("body") == "matter_classified"][0]
    assert from_unix_ms(classified.matter_classified.due_at_ms) == expected_due

    clock_of(app).advance(dt.timedelta(hours=2))
    m = app.handling.record_result(matter_id, approved=True, summary="已核发", actor=OPERATOR)
    assert m.stage is Stage.RESULT_READY and m.clock is not None and m.clock.stop_at == app.clock.now()
    assert "result_ready" in kinds_down(village)
    village.village_record("result_handed_over", matter_id, result_summary="已交付")
    village.village_record("signed_off", matter_id, rating=records_pb2.RATING_VERY_SATISFIED, comment="办得快")
    page = app.handling.page(matter_id)
    assert page.matter.stage is Stage.SIGNED_OFF and page.rating == 1
    assert [e.action for e in page.events] == ["filed", "classify", "result", "handed_over", "signed_off"]


def test_an_immediate_matter_counts_thirty_office_minutes(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("RS-001")
    m = app.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    assert m.clock is not None
    assert m.clock.due_at(app.deadlines.calendar) == app.clock.now() + dt.timedelta(minutes=30)


def test_a_supplement_matter_waits_uncounted_until_the_materials_are_complete(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    m = app.handling.classify(matter_id, MatterKind.SUPPLEMENT, actor=OPERATOR, missing_materials=("户口簿复印件",))
    assert m.stage is Stage.WAITING_MATERIALS and m.clock is not None and m.clock.due_at(app.deadlines.calendar) is None
    with pytest.raises(HandlingError, match="不能登记办理结果"):
        app.handling.record_result(matter_id, approved=True, summary="x", actor=OPERATOR)
    clock_of(app).advance(dt.timedelta(days=2))      # Wednesday: the applicant comes back
    village.village_record("materials_added", matter_id, material_ids=["hukou"])
    assert "补交材料" in app.handling.page(matter_id).events[-1].text_zh
    m = app.handling.materials_completed(matter_id, actor=OPERATOR)
    item = app.handling.catalog.item("MZ-003")
    assert m.clock is not None and m.clock.due_at(app.deadlines.calendar) == due_after(
        app.clock.now(), item.hop(Tier.TOWNSHIP).promised, app.deadlines.calendar)


def test_a_returned_matter_is_registered_for_audit_with_its_written_reason(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    with pytest.raises(HandlingError, match="退回理由"):
        app.handling.classify(matter_id, MatterKind.RETURNED, actor=OPERATOR)
    m = app.handling.classify(matter_id, MatterKind.RETURNED, actor=OPERATOR, return_reason="不符合申请条件")
    assert m.stage is Stage.RETURNED
    [refusal] = app.handling.refusals()
    assert refusal["matter_id"] == matter_id and refusal["reason"] == "不符合申请条件" and refusal["operator_id"] == "wang"


def test_a_joint_matter_needs_a_lead_window_and_two_departments(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("NY-001")
    with pytest.raises(HandlingError, match="参与部门"):
        app.handling.classify(matter_id, MatterKind.JOINT, actor=OPERATOR, lead_window="农业窗口", departments=("农业站",))
    m = app.handling.classify(matter_id, MatterKind.JOINT, actor=OPERATOR, lead_window="农业窗口",
                              departments=("农业站", "财政所"))
    assert m.stage is Stage.IN_PROGRESS and m.departments == ("农业站", "财政所")


def test_a_reported_matter_stops_the_township_clock_at_the_county_receipt_and_takes_the_county_decision(
        app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-001")
    app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    clock_of(app).advance(dt.timedelta(hours=3))
    m = app.handling.record_escalated(matter_id, county_receipt_at=app.clock.now())
    assert m.stage is Stage.ESCALATED and m.clock is not None and m.clock.stop_at == app.clock.now()
    m = app.handling.record_county_decision(matter_id, approved=True, summary="县民政局批准")
    assert m.stage is Stage.RESULT_READY and m.approved is True
    assert kinds_down(village).count("result_ready") == 1


def test_an_extension_needs_the_directors_approval_and_stays_within_the_statutory_limit(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    m = app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    assert m.clock is not None
    with pytest.raises(HandlingError, match="超过法定时限"):
        app.handling.request_extension(matter_id, Limit.working_days(m.clock.statutory.amount + 1), "需现场核实", actor=OPERATOR)
    app.handling.request_extension(matter_id, m.clock.statutory, "需现场核实", actor=OPERATOR)
    with pytest.raises(HandlingError, match="中心主任批准"):
        app.handling.decide_extension(matter_id, approve=True, actor=OPERATOR)
    m = app.handling.decide_extension(matter_id, approve=True, actor=DIRECTOR)
    assert m.clock is not None and m.clock.limit == m.clock.statutory and m.clock.extensions[0].approver == "zhao"
    changed = [r.hop_clock_changed for r in village.down_records() if r.WhichOneof("body") == "hop_clock_changed"]
    assert changed[-1].change == records_pb2.CLOCK_CHANGE_EXTENDED and changed[-1].approver_id == "zhao"
    outbox = app.deadlines.outbox_counts()
    assert sum(outbox.values()) >= 1     # the applicant's SMS is queued with the decision


def test_a_suspension_is_not_counted_and_moves_the_deadline_later(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    m = app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    assert m.clock is not None
    due_before = m.clock.due_at(app.deadlines.calendar)
    clock_of(app).advance(dt.timedelta(days=1))      # Tuesday, day 1 of the count
    app.handling.suspend(matter_id, SuspensionReason.EXPERT_REVIEW, "专家评审", actor=OPERATOR)
    clock_of(app).advance(dt.timedelta(days=1))
    m = app.handling.resume(matter_id, actor=OPERATOR)
    assert m.clock is not None and due_before is not None
    assert m.clock.due_at(app.deadlines.calendar) > due_before


def test_an_ab_post_handover_moves_ownership_and_the_first_owner_keeps_watching(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    with pytest.raises(HandlingError, match="首问责任人"):
        app.handling.record_result(matter_id, approved=True, summary="x", actor=BACKUP)
    m = app.handling.hand_over(matter_id, "li", "请假", actor=OPERATOR)
    assert m.owner == "li" and "wang" in m.watchers
    assert app.handling.record_result(matter_id, approved=True, summary="办结", actor=BACKUP).stage is Stage.RESULT_READY


def test_two_operators_acting_on_one_page_version_keep_the_first_and_tell_the_second(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    version = app.handling.page(matter_id).summary.version
    app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR, expected_version=version)
    with pytest.raises(ConcurrentEditError, match="刷新"):
        app.handling.classify(matter_id, MatterKind.RETURNED, actor=BACKUP, expected_version=version, return_reason="x")
    assert app.handling.page(matter_id).matter.kind is MatterKind.PROMISED


def test_an_overdue_matter_appears_on_the_supervision_list(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("RS-001")
    app.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    assert app.handling.supervision_list() == []
    clock_of(app).advance(dt.timedelta(days=7))
    [line] = app.handling.supervision_list()
    assert line.matter_id == matter_id and line.state is ClockState.SUPERVISE


def test_every_township_record_is_signed_into_one_chain(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    app.handling.hand_over(matter_id, "li", "外出", actor=OPERATOR)   # internal: not sent to the village
    seqs = [r.header.seq for r in village.down_records()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert "ownership_transferred" not in kinds_down(village)


def test_two_township_processes_on_one_database_let_exactly_one_of_two_racing_edits_win(
        app: TownApp, village: VillageDevice, db_url: str) -> None:
    matter_id = village.file("MZ-003")
    other = township(db_url, signer=app.signer)
    try:
        version = app.handling.page(matter_id).summary.version
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def act(service, kind: MatterKind, **kw: object) -> None:
            barrier.wait()
            try:
                service.classify(matter_id, kind, actor=OPERATOR, expected_version=version, **kw)
                outcomes.append(kind.value)
            except ConcurrentEditError:
                outcomes.append("refused")

        threads = [threading.Thread(target=act, args=(app.handling, MatterKind.PROMISED), kwargs={}),
                   threading.Thread(target=act, args=(other.handling, MatterKind.RETURNED), kwargs={"return_reason": "不符"})]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(outcomes) == 2 and outcomes.count("refused") == 1
        winner = app.handling.page(matter_id).matter.kind
        assert winner is not None and winner.value in outcomes
        assert len([e for e in app.handling.page(matter_id).events if e.action == "classify"]) == 1
    finally:
        other.close()


def test_two_intakes_racing_over_one_database_apply_each_village_record_once(app: TownApp, db_url: str) -> None:
    village = VillageDevice(app)
    other = township(db_url, signer=app.signer)
    try:
        for _ in range(20):
            record = records_pb2.Record()
            body = record.request_filed
            body.matter_id, body.catalog_code, body.village_code = str(uuid.uuid4()), "MZ-003", "V001"
            village.send(record)
        threads = [threading.Thread(target=x.intake.run_once) for x in (app, other, app, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(app.handling.inbox()) == 20
        assert all(len(app.handling.page(m.matter_id).events) == 1 for m in app.handling.inbox())
    finally:
        other.close()


def test_a_record_that_cannot_apply_is_noted_and_the_devices_later_records_still_apply(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    record = records_pb2.Record()
    record.request_filed.matter_id, record.request_filed.catalog_code = "x" * 200, "MZ-003"   # over-long id
    village.send(record)
    village.village_record("signed_off", matter_id, rating=records_pb2.RATING_SATISFIED)      # not yet handed over
    village.village_record("withdrawn", matter_id, reason="不办了")
    page = app.handling.page(matter_id)
    assert page.matter.stage is Stage.WITHDRAWN
    assert any(e.action == "not_applied" for e in page.events)
    assert len(app.handling.inbox()) == 1


def test_an_operator_acting_while_the_intake_folds_the_same_matter_never_deadlocks(
        app: TownApp, village: VillageDevice, db_url: str) -> None:
    matter_id = village.file("MZ-003")
    other = township(db_url, signer=app.signer)
    try:
        for i in range(30):
            village.send(_materials(matter_id, i))
        errors: list[BaseException] = []

        def operator() -> None:
            try:
                other.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        t = threading.Thread(target=operator)
        t.start()
        app.intake.run_once()
        t.join(timeout=60)
        assert not t.is_alive() and errors == []
        assert app.handling.page(matter_id).matter.kind is MatterKind.PROMISED
    finally:
        other.close()


def _materials(matter_id: str, i: int) -> records_pb2.Record:
    record = records_pb2.Record()
    record.materials_added.matter_id = matter_id
    record.materials_added.material_ids.append(f"m{i}")
    return record
