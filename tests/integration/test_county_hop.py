"""The township → county hop in one process: real stores, a real county gRPC server on port 0, the
shared relay client, and a village device pushing into the township."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from hub.handling import COUNTY_HOP, Outcome
from shared.clock import FakeClock, to_unix_ms
from shared.domain.catalog import MatterKind
from shared.domain.handling import Stage
from shared.relay.ports import KeyState
from shared.wire.v1 import records_pb2
from tests.county_fixtures import COUNTY_STAFF, County, LinkedTownship, advance, linked_township
from tests.town_fixtures import OPERATOR, VillageDevice
from town_center.handling import COUNTY_HOP as TOWN_COUNTY_HOP


def _escalate(town: LinkedTownship, hub: County, village: VillageDevice, clock: FakeClock) -> str:
    matter_id = village.file("MZ-001")
    town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    advance(clock, hours=2)
    town.app.handling.escalate(matter_id, "低保申请，乡镇初审通过", actor=OPERATOR)
    advance(clock, minutes=5)
    town.sync()                     # pushed, receipted, folded: township hop stops at the county's receipt
    hub.app.handling.run_once()     # the county verifies both signatures and starts its clock
    town.sync()                     # the county's clock record comes down
    return matter_id


def test_the_link_key_waits_for_county_approval_before_anything_is_receipted(tmp_path: Path, clock: FakeClock,
                                                                              hub: County) -> None:
    pending = linked_township(tmp_path / "t2.db", clock, hub, code="T02", approve=False)
    try:
        [key] = [k for k in hub.app.store.keys() if k.info.township_code == "T02"]
        assert key.state is KeyState.PENDING and key.info.holder_name == "青山镇"
        assert pending.app.county_link is not None and pending.app.county_link.outbox.pending_count() == 1
        hub.app.store.approve(key.key_id, by="chen", now_ms=0)
        pending.sync()
        assert pending.app.county_link.outbox.pending_count() == 0
    finally:
        pending.app.close()


def test_a_reported_matter_goes_up_is_decided_and_its_sign_off_closes_it_at_both_tiers(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock)
    receipt_at = clock.now()   # the county receipted it when the township synced
    page = town.app.handling.page(matter_id)
    assert page.matter.stage is Stage.ESCALATED and page.matter.clock is not None
    assert page.matter.clock.stop_at == receipt_at
    town_county_clock = town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP)
    county_view = hub.app.handling.history(matter_id)
    assert county_view.view.received_at == receipt_at == town_county_clock.start_at
    assert county_view.matter.clock is not None
    assert county_view.matter.clock.due_at(hub.app.deadlines.calendar) == town_county_clock.due_at(town.app.deadlines.calendar)

    advance(clock, hours=4)
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=COUNTY_STAFF, reason="准予纳入最低生活保障")
    town.sync()
    m = town.app.handling.page(matter_id).matter
    assert m.stage is Stage.RESULT_READY and m.approved is True
    assert "result_ready" in [r.WhichOneof("body") for r in village.down_records()]
    county_clock = town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP)
    assert county_clock.stop_at == clock.now()

    village.village_record("result_handed_over", matter_id, handed_over_at_ms=to_unix_ms(clock.now()))
    village.village_record("signed_off", matter_id, rating=records_pb2.RATING_VERY_SATISFIED)
    town.sync()
    hub.app.handling.run_once()
    assert town.app.handling.page(matter_id).matter.stage is Stage.SIGNED_OFF
    county_after = hub.app.handling.history(matter_id)
    assert county_after.matter.stage is Stage.SIGNED_OFF
    # The villager's rating stays confidential at the township: neither the county's row nor its history has it.
    assert county_after.view.rating == 0
    assert not [e for e in county_after.events if "满意" in e[3] or "评价" in e[3]]


def test_after_the_laptop_key_rotates_the_sign_off_it_signs_still_closes_the_matter_at_the_county(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock)
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=COUNTY_STAFF, reason="准予")
    town.sync()
    laptop = village.rotated()
    laptop.village_record("result_handed_over", matter_id, handed_over_at_ms=to_unix_ms(clock.now()))
    laptop.village_record("signed_off", matter_id, rating=records_pb2.RATING_SATISFIED)
    for _ in range(2):
        town.sync()
        hub.app.handling.run_once()
    assert town.app.handling.page(matter_id).matter.stage is Stage.SIGNED_OFF
    assert hub.app.handling.history(matter_id).matter.stage is Stage.SIGNED_OFF


def test_needs_materials_suspends_the_county_clock_at_both_tiers_until_the_township_passes_them_on(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock)
    due_before = hub.app.deadlines.load_clock(matter_id, COUNTY_HOP).due_at(hub.app.deadlines.calendar)
    advance(clock, hours=1)
    hub.app.handling.decide(matter_id, Outcome.NEEDS_MATERIALS, actor=COUNTY_STAFF, missing=["户口簿复印件"], reason="缺户口簿")
    assert hub.app.deadlines.load_clock(matter_id, COUNTY_HOP).status.value == "suspended"   # the county's own clock waits
    town.sync()
    m = town.app.handling.page(matter_id).matter
    assert m.stage is Stage.WAITING_MATERIALS and m.upper_tier_waiting and m.missing_materials == ("户口簿复印件",)
    assert town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP).status.value == "suspended"
    advance(clock, days=2)
    village.village_record("materials_added", matter_id, material_ids=["户口簿复印件"])
    town.app.handling.materials_completed(matter_id, actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    assert hub.app.handling.history(matter_id).matter.stage is Stage.IN_PROGRESS
    assert town.app.handling.page(matter_id).matter.stage is Stage.ESCALATED
    town_copy = town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP)
    county_own = hub.app.deadlines.load_clock(matter_id, COUNTY_HOP)
    assert town_copy.status.value == county_own.status.value == "running"
    assert town_copy.due_at(town.app.deadlines.calendar) == county_own.due_at(hub.app.deadlines.calendar)
    # The two days spent waiting for the applicant's materials were not counted against the county.
    assert county_own.due_at(hub.app.deadlines.calendar) > due_before


def test_every_township_status_change_is_tracked_at_the_county(town: LinkedTownship, hub: County) -> None:
    village = VillageDevice(town.app)
    matter_id = village.file("MZ-003")
    town.app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    [tracked] = hub.app.handling.tracked()
    assert tracked.matter_id == matter_id and tracked.kind is MatterKind.PROMISED and tracked.township_due_at is not None
    by_township, by_kind = hub.app.handling.overdue_counts()
    assert by_township == {"T01": (1, 0)} and by_kind == {"承诺件": (1, 0)}


def test_a_supervision_notice_is_signed_received_and_acknowledged(town: LinkedTownship, hub: County) -> None:
    village = VillageDevice(town.app)
    matter_id = village.file("MZ-003")
    town.app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    notice_id = hub.app.handling.issue_supervision(matter_id, "请说明逾期原因", actor=COUNTY_STAFF)
    town.sync()   # pulled: received
    town.sync()   # the next pull asks after it: the county marks it received
    assert town.app.county_link is not None
    [notice] = town.app.county_link.open_notices()
    assert notice["notice_id"] == notice_id and notice["acknowledged_at_ms"] is None
    town.app.county_link.acknowledge(notice_id, "已联系申请人补充说明", by="wang")
    town.sync()
    hub.app.handling.run_once()
    [held] = hub.app.handling.notices()
    assert held["received_at_ms"] is not None and held["explanation"] == "已联系申请人补充说明"


# 2027 is past the holiday table the program ships: the county's file is what counts.
CALENDAR_2027 = """format = 1
issued_by = "县政务服务中心"

[year_2027]
confirmed = true
holidays = [
  { name = "元旦", from = 2027-01-01, to = 2027-01-03 },
  { name = "抗洪停止对外办公", from = 2027-03-02, to = 2027-03-04 },
]
workdays = []
"""


def test_the_countys_calendar_file_reaches_the_township_and_both_tiers_count_the_county_hop_alike(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    clock.set(dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC))   # Monday 1 March 2027, 09:00 in Beijing
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock)
    county_before = hub.app.deadlines.load(matter_id, COUNTY_HOP)
    town_before = town.app.deadlines.load(matter_id, TOWN_COUNTY_HOP)
    assert county_before.due_at == town_before.due_at

    hub.app.set_calendar_override(CALENDAR_2027, by="chen")
    county_after = hub.app.deadlines.load(matter_id, COUNTY_HOP)
    assert county_after.due_at > county_before.due_at          # three working days lost to the closure
    from hub.store.tables import county_matter

    with hub.app.store.engine.connect() as conn:                # the board's own copy of the due date follows
        row_due = conn.execute(county_matter.select().where(county_matter.c.matter_id == matter_id)).one().due_at_ms
    assert row_due == to_unix_ms(county_after.due_at)
    town.sync()                                                 # the signed calendar_update comes down
    assert town.app.store.get_meta("county_calendar_toml") == CALENDAR_2027
    assert town.app.deadlines.load(matter_id, TOWN_COUNTY_HOP).due_at == county_after.due_at

    # A township process started later (or a second one on the same database) counts on it too.
    from town_center.bootstrap import build_app

    second = build_app(town.app.store.engine.url.render_as_string(hide_password=False), town.app.signer, clock=clock)
    try:
        assert second.deadlines.calendar.is_working_day(dt.date(2027, 3, 3)) is False
    finally:
        second.close()


def test_a_calendar_file_saved_by_another_county_process_is_taken_up_by_the_running_one(
        tmp_path: Path, hub: County, clock: FakeClock) -> None:
    from hub.bootstrap import build_app

    cli = build_app(hub.app.store.engine.url.render_as_string(hide_password=False), hub.app.signer, clock=clock)
    try:
        cli.set_calendar_override(CALENDAR_2027, by="chen")    # what `county-hub calendar set` does
    finally:
        cli.close()
    assert hub.app.deadlines.calendar.is_working_day(dt.date(2027, 3, 3)) is True
    assert hub.app.calendar_follower.refresh() is True
    assert hub.app.deadlines.calendar.is_working_day(dt.date(2027, 3, 3)) is False
    assert hub.app.calendar_follower.refresh() is False


def test_a_township_link_key_revoked_with_county_hub_townships_revoke_gets_nothing_more_in_and_keeps_what_was_in(
        tmp_path: Path, town: LinkedTownship, hub: County, clock: FakeClock, capsys) -> None:
    from hub.cli import main as county_hub

    village = VillageDevice(town.app)
    before = _escalate(town, hub, village, clock)
    assert town.app.county_link is not None
    link_key = town.app.county_link.signer.key_id
    db = hub.app.store.engine.url.render_as_string(hide_password=False)
    assert county_hub(["townships", "revoke", link_key[:10], "--home", str(tmp_path), "--db", db,
                       "--by", "陈主任", "--reason", "服务器被盗"]) == 0
    assert "已吊销乡镇接入密钥" in capsys.readouterr().out
    after = village.file("MZ-001")
    town.app.handling.classify(after, MatterKind.REPORTED, actor=OPERATOR)
    town.app.handling.escalate(after, "初审通过", actor=OPERATOR)
    from shared.wire.v1 import relay_pb2

    result = town.client.sync_once()
    hub.app.handling.run_once()
    assert not result.drained and result.key_status == relay_pb2.KEY_STATUS_REVOKED
    assert town.app.county_link.outbox.pending_count() >= 1           # kept, not lost, while refused
    town.client.start()             # the loop `serve` runs: the console's status says why nothing goes up
    try:
        import time

        end = time.monotonic() + 10
        while "吊销" not in town.app.county_link.status().key_status and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        town.client.stop()
    status = town.app.county_link.status()
    assert "吊销" in status.key_status and "县级拒收" in status.last_error, status
    county_matters = {m.matter_id for m in hub.app.handling.escalated()}
    assert before in county_matters and after not in county_matters


def test_the_countys_status_messages_and_its_reason_for_pausing_reach_the_township_history(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    from shared.domain.deadlines import SuspensionReason
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock)
    texts = [e.text_zh for e in town.app.handling.page(matter_id).events]
    assert "县级：县级已受理上报，开始计时" in texts
    advance(clock, hours=1)
    hub.app.handling.suspend(matter_id, SuspensionReason.HEARING, "组织听证，约需五个工作日", actor=COUNTY_STAFF)
    town.sync()
    copy = town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP)
    assert copy.status.value == "suspended" and copy.suspensions[-1].reason is SuspensionReason.HEARING
    texts = [e.text_zh for e in town.app.handling.page(matter_id).events]
    assert any(t.startswith("县级暂停计时：听证") for t in texts) and not any("等待补正材料" in t for t in texts)


def test_the_villagers_authorization_is_resealed_to_the_county_and_shown_only_as_the_village_signed_it(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    from hub.dossier import _authorization
    from tests.unit.test_village_signature import signature_png
    village = VillageDevice(town.app)
    drawn = signature_png()
    matter_id = village.file("MZ-001", signature_png=drawn)
    town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    advance(clock, hours=1)
    town.app.handling.escalate(matter_id, "低保申请，乡镇初审通过", actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    auth = hub.app.handling.history(matter_id).dossier.authorization
    assert auth is not None and auth.image == drawn and not auth.unavailable_zh
    # A township that passed on anything but what the villager's record signed is not believed.
    from tests.unit.test_village_signature import blank_png
    filed = records_pb2.RequestFiled()
    filed.matter_id = matter_id
    filed.authorization.method = records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE
    filed.authorization.sealed_evidence = b"sealed-to-township"
    import hashlib
    filed.authorization.evidence_sha256 = hashlib.sha256(drawn).digest()
    swapped = _authorization(filed, hub.app.handling.signer, blank_png())
    assert not swapped.image and "摘要不符" in swapped.unavailable_zh
