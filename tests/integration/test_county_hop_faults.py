"""Faults and bad input on the township → county hop, in one process with a real county gRPC server:
forged and replayed escalations, a decision for a matter the township does not hold, a village key
the township never vouched for, and a county unreachable for days while the clocks keep counting."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.errors import UnknownMatter
from hub.handling import Outcome
from hub.store.tables import county_matter
from shared.clock import FakeClock, to_unix_ms
from shared.domain.catalog import MatterKind
from shared.domain.handling import Stage
from shared.relay.errors import PeerUnavailable
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.county_fixtures import COUNTY_STAFF, County, LinkedTownship, advance, county, linked_township
from tests.town_fixtures import OPERATOR, VillageDevice
from town_center.handling import COUNTY_HOP


def _reported(town: LinkedTownship, village: VillageDevice) -> str:
    matter_id = village.file("MZ-001")
    town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    return matter_id


def _county_matters(hub: County) -> list[str]:
    with hub.app.store.engine.connect() as conn:
        return [r.matter_id for r in conn.execute(county_matter.select())]


def _console_page(town: LinkedTownship, path: str) -> str:
    """A console page as a signed-in operator sees it (FastAPI's TestClient, the real console app)."""
    import re

    from fastapi.testclient import TestClient

    from shared.console import ConsoleAuth, ScryptParams, create_console_tables
    from shared.domain.handling import Role
    from town_center.console import create_console_app

    create_console_tables(town.app.store.engine)
    auth = ConsoleAuth(town.app.store.engine, town.app.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, "青石镇窗口2026春季值班")
    client = TestClient(create_console_app(town.app, auth), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"staff_id": "wang", "password": "青石镇窗口2026春季值班", "next": "/",
                                "csrf_token": token.group(1)})
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def _sign_up(town: LinkedTownship, record: records_pb2.Record) -> None:
    assert town.app.county_link is not None
    with town.app.store.engine.begin() as conn:
        town.app.county_link.append_in(conn, record, now_ms=to_unix_ms(town.app.clock.now()))


def test_an_escalation_whose_village_signature_was_tampered_with_is_not_taken_in_and_the_township_is_told(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    honest = _reported(town, village)
    town.app.handling.escalate(honest, "初审通过", actor=OPERATOR)    # announces the village key to the county
    forged_id = _reported(town, village)
    record = records_pb2.Record()
    body = record.escalation
    body.matter_id, body.catalog_code, body.township_code = forged_id, "MZ-001", "T01"
    filing = town.app.handling._village_envelopes
    with town.app.store.engine.connect() as conn:
        [env] = filing(conn, village.signer.key_id, forged_id)
    tampered = bytearray(env.payload)
    tampered[-3] ^= 0x01
    body.village_envelopes.append(envelope_pb2.Envelope(payload=bytes(tampered), signature=env.signature, key_id=env.key_id))
    _sign_up(town, record)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    assert _county_matters(hub) == [honest]
    [(_, matter_id, _, text)] = hub.app.handling.refused_escalations()
    assert matter_id == forged_id and "村级签名无效" in text
    events = [e.text_zh for e in town.app.handling.page(forged_id).events]
    assert any("县级未受理上报" in t for t in events)


def test_an_escalation_replayed_under_a_new_seq_makes_no_second_county_matter(town: LinkedTownship, hub: County) -> None:
    village = VillageDevice(town.app)
    matter_id = _reported(town, village)
    town.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
    town.sync()
    assert town.app.county_link is not None
    with town.app.store.engine.connect() as conn:
        payload = conn.execute(town.app.county_link.outbox.t.ledger.select()
                               .where(town.app.county_link.outbox.t.ledger.c.body_kind == "escalation")).one().payload
    again = records_pb2.Record.FromString(bytes(payload))
    again.ClearField("header")
    _sign_up(town, again)
    town.sync()
    hub.app.handling.run_once()
    assert _county_matters(hub) == [matter_id]
    actions = [a for _, _, a, _ in hub.app.handling.history(matter_id).events]
    assert actions.count("received") == 1 and "duplicate" in actions
    # The township's own matter is unmoved by the county's "duplicate": still escalated, one receipt folded.
    town.sync()
    page = town.app.handling.page(matter_id)
    assert page.matter.stage is Stage.ESCALATED and [e.action for e in page.events].count("escalated") == 1


def test_a_decision_for_a_matter_the_township_does_not_hold_is_noted_and_later_records_still_apply(
        town: LinkedTownship, hub: County) -> None:
    village = VillageDevice(town.app)
    matter_id = _reported(town, village)
    town.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    stray = records_pb2.Record()
    stray.decision.matter_id, stray.decision.outcome = "00000000-0000-4000-8000-00000000dead", records_pb2.DECISION_OUTCOME_APPROVED
    assert town.app.county_link is not None
    link_key = town.app.county_link.signer.key_id
    hub.app.store.publish(hub.app.signer, stray, [link_key], now_ms=to_unix_ms(hub.app.clock.now()))
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=COUNTY_STAFF, reason="准予")
    town.sync()
    assert town.app.handling.page(matter_id).matter.stage is Stage.RESULT_READY
    assert town.app.county_link.outbox.unapplied_inbox() == []
    with pytest.raises(UnknownMatter, match="找不到县级办件"):
        hub.app.handling.decide("no-such-matter", Outcome.APPROVE, actor=COUNTY_STAFF)


def test_an_escalation_carrying_a_village_key_the_township_never_vouched_for_is_refused(
        town: LinkedTownship, hub: County, tmp_path: Path, clock: FakeClock) -> None:
    other = linked_township(tmp_path / "other.db", clock, hub, code="T02", name="白水乡")
    try:
        stranger = VillageDevice(other.app, village_code="V900")
        matter_id = _reported(other, stranger)
        other.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)   # T02 vouches for its own village key
        assert other.app.county_link is not None
        with other.app.store.engine.connect() as conn:
            envelopes = other.app.handling._village_envelopes(conn, stranger.signer.key_id, matter_id)
        record = records_pb2.Record()
        body = record.escalation
        body.matter_id, body.catalog_code, body.township_code = matter_id, "MZ-001", "T01"
        body.village_envelopes.extend(envelopes)
        _sign_up(town, record)      # T01 passes on a village it never vouched for
        town.sync()
        hub.app.handling.run_once()
        assert _county_matters(hub) == []
        assert "未经本乡镇登记" in hub.app.handling.refused_escalations()[0][3]
    finally:
        other.app.close()


def test_with_the_county_unreachable_for_days_nothing_is_lost_and_the_township_sees_the_county_hop_go_overdue(
        town: LinkedTownship, hub: County, clock: FakeClock, tmp_path: Path) -> None:
    village = VillageDevice(town.app)
    matter_id = _reported(town, village)
    town.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    receipt_at = town.app.deadlines.load_clock(matter_id, COUNTY_HOP).start_at
    hub.server.stop(grace=None)          # the county goes away
    later = _reported(town, village)
    town.app.handling.escalate(later, "初审通过", actor=OPERATOR)
    with pytest.raises(PeerUnavailable, match="无法连接县级服务器"):
        town.client.sync_once()
    assert town.app.county_link is not None and town.app.county_link.outbox.pending_count() >= 2
    # Weeks pass with no county: the township's own copy of the county hop keeps counting.
    advance(clock, days=30)
    fired = town.app.deadlines.fire_due(clock.now(), fired_by="test")
    county_levels = {(e.matter_id, e.hop, e.level.value) for e in fired if e.hop == COUNTY_HOP}
    assert (matter_id, COUNTY_HOP, "overdue") in county_levels or (matter_id, COUNTY_HOP, "supervise") in county_levels
    assert town.app.handling.page(later).matter.stage is Stage.ESCALATING   # not receipted: the township hop runs on
    # The operators see it: the 督办 page lists the 上报件 whose county hop is overdue, by the county's clock.
    [late] = town.app.handling.county_overdue()
    assert late.matter_id == matter_id and late.stage is Stage.ESCALATED and late.state is not None
    assert late.due_at == town.app.deadlines.load_clock(matter_id, COUNTY_HOP).due_at(town.app.deadlines.calendar)
    page = _console_page(town, "/supervision")
    assert 'id="county-overdue"' in page and f"/matters/{matter_id}" in page.split('id="county-overdue"')[1]
    # The county comes back on the same port: everything queued is delivered and folded once.
    back = county(f"sqlite:///{tmp_path / 'county.db'}", clock, signer=hub.app.signer, port=hub.port)
    try:
        town.sync()
        back.app.handling.run_once()
        town.sync()                      # folding the receipts queued the township's new status: it goes too
        town.sync()
        assert town.app.county_link.outbox.pending_count() == 0
        assert sorted(_county_matters(back)) == sorted([matter_id, later])
        assert town.app.deadlines.load_clock(matter_id, COUNTY_HOP).start_at == receipt_at
        assert town.app.handling.page(later).matter.stage is Stage.ESCALATED
    finally:
        back.close()
        hub.server = back.server   # closed above; the fixture's close is then a no-op on the old app


def test_an_honest_escalation_the_county_cannot_take_in_comes_back_to_the_township_and_can_be_escalated_again(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    from dataclasses import replace

    from shared.domain.deadlines import ClockStatus

    village = VillageDevice(town.app)
    matter_id = _reported(town, village)
    # The county still runs an older catalogue without this item (a catalogue the township published first).
    full = hub.app.handling.catalog
    hub.app.handling.catalog = replace(full, items=tuple(i for i in full.items if i.code != "MZ-001"))
    town.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
    advance(clock, hours=1)
    town.sync()                 # receipted: the township hop stops, the county replica starts
    assert town.app.handling.page(matter_id).matter.stage is Stage.ESCALATED
    hub.app.handling.run_once()
    advance(clock, hours=1)
    town.sync()                 # the county's "not taken in" comes down
    page = town.app.handling.page(matter_id)
    assert page.matter.stage is Stage.ESCALATING and page.matter.clock is not None
    assert page.matter.clock.status is ClockStatus.RUNNING and page.matter.clock.stop_at is None
    assert town.app.deadlines.load_clock(matter_id, COUNTY_HOP).status is ClockStatus.STOPPED
    assert any("县级未受理上报" in e.text_zh and "重新上报" in e.text_zh for e in page.events)
    assert _county_matters(hub) == []

    hub.app.handling.catalog = full     # the county takes up the new catalogue; the operator escalates again
    advance(clock, hours=1)
    town.app.handling.escalate(matter_id, "县级已更新目录，重新上报", actor=OPERATOR)
    for _ in range(3):
        town.sync()
        hub.app.handling.run_once()
    assert _county_matters(hub) == [matter_id]
    again = town.app.handling.page(matter_id).matter
    assert again.stage is Stage.ESCALATED and again.clock is not None and again.clock.stop_at is not None
    assert town.app.deadlines.load_clock(matter_id, COUNTY_HOP).status is ClockStatus.RUNNING
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=COUNTY_STAFF, reason="准予")
    town.sync()
    assert town.app.handling.page(matter_id).matter.stage is Stage.RESULT_READY


def _without(hub: County, code: str):
    """The county's catalogue without one item (an older catalogue than the township's)."""
    from dataclasses import replace

    full = hub.app.handling.catalog
    return full, replace(full, items=tuple(i for i in full.items if i.code != code))


def test_a_county_refusal_is_folded_even_when_the_townships_clock_is_behind_the_countys(
        tmp_path: Path, hub: County, clock: FakeClock) -> None:
    from shared.domain.deadlines import ClockStatus

    behind = FakeClock(clock.now() - dt.timedelta(seconds=30))    # the township's server clock lags
    slow = linked_township(tmp_path / "slow.db", behind, hub, code="T03", name="慢钟镇")
    try:
        village = VillageDevice(slow.app, village_code="V300")
        matter_id = _reported(slow, village)
        full, older = _without(hub, "MZ-001")
        hub.app.handling.catalog = older
        slow.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
        slow.sync()                         # township hop stops at the county's receipt: 30 s ahead of here
        hub.app.handling.run_once()
        slow.sync()
        page = slow.app.handling.page(matter_id)
        assert page.matter.stage is Stage.ESCALATING and page.matter.clock is not None
        assert page.matter.clock.status is ClockStatus.RUNNING
        assert slow.app.deadlines.load_clock(matter_id, COUNTY_HOP).status is ClockStatus.STOPPED
        assert not any(e.action == "county_not_applied" for e in page.events)
        hub.app.handling.catalog = full
    finally:
        slow.client.stop()
        slow.app.close()


def test_a_refusal_pulled_before_its_receipt_is_folded_waits_for_the_receipt(
        town: LinkedTownship, hub: County) -> None:
    village = VillageDevice(town.app)
    matter_id = _reported(town, village)
    full, older = _without(hub, "MZ-001")
    hub.app.handling.catalog = older
    town.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
    town.client.sync_once()                 # pushed and receipted; nothing folded yet
    hub.app.handling.run_once()             # not taken in: the refusal goes down
    town.client.sync_once()                 # pulled; the receipt is still unfolded
    assert town.app.county_link is not None
    town.app.county_link._fold_inbox()
    assert len(town.app.county_link.outbox.unapplied_inbox()) >= 1      # waits, not consumed
    town.app.county_link.fold()             # the receipt, then the refusal
    page = town.app.handling.page(matter_id)
    assert page.matter.stage is Stage.ESCALATING and page.matter.escalation_sent_at is None
    hub.app.handling.catalog = full


def test_a_calendar_file_the_township_cannot_use_is_shown_and_the_calendar_in_use_is_kept(
        town: LinkedTownship, hub: County) -> None:
    assert town.app.county_link is not None
    before = town.app.deadlines.calendar.fingerprint
    bad = records_pb2.Record()
    bad.calendar_update.override_toml, bad.calendar_update.set_by = b"format = 9\n", "chen"
    link_key = town.app.county_link.signer.key_id
    hub.app.store.publish(hub.app.signer, bad, [link_key], now_ms=to_unix_ms(hub.app.clock.now()))
    town.sync()
    assert town.app.deadlines.calendar.fingerprint == before
    assert "无法使用" in town.app.county_link.status().calendar_problem
    assert town.app.county_link.outbox.unapplied_inbox() == []
    good = records_pb2.Record()
    good.calendar_update.override_toml = b'format = 1\n[year_2028]\nconfirmed = false\nholidays = [2028-01-03]\n'
    hub.app.store.publish(hub.app.signer, good, [link_key], now_ms=to_unix_ms(hub.app.clock.now()))
    town.sync()
    assert town.app.deadlines.calendar.fingerprint != before
    assert town.app.county_link.status().calendar_problem == ""


def test_a_sign_off_forwarded_under_another_matter_does_not_close_it(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    first, second = _reported(town, village), _reported(town, village)
    for matter_id in (first, second):
        town.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
    for _ in range(2):
        town.sync()
        hub.app.handling.run_once()
    hub.app.handling.decide(second, Outcome.APPROVE, actor=COUNTY_STAFF, reason="准予")   # a sign-off could close it
    village.village_record("signed_off", first, rating=records_pb2.RATING_SATISFIED)
    with town.app.store.engine.connect() as conn:
        rows = conn.execute(town.app.store.t.ingest_log.select().where(
            town.app.store.t.ingest_log.c.body_kind == "signed_off")).all()
    [row] = rows
    forwarded = records_pb2.Record()
    forwarded.village_records_forwarded.matter_id = second      # the villager signed off `first`
    forwarded.village_records_forwarded.village_envelopes.append(
        envelope_pb2.Envelope(payload=bytes(row.payload), signature=bytes(row.signature), key_id=row.author_key_id))
    _sign_up(town, forwarded)
    town.sync()
    hub.app.handling.run_once()
    assert hub.app.handling.history(second).matter.stage is not Stage.SIGNED_OFF
