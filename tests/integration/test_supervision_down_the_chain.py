"""A village leg (送达: the agent hands the result over) overdue 3 working days fires 督办 once; it
travels down as a record signed by the township, the village verifies and applies it, and a retry
publishes nothing twice. (The township's own legs go to its staff instead: tests/integration/test_oversight.py.)"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from shared.calendar import WorkingCalendar
from shared.clock import FakeClock
from shared.deadline_watch.notify import LogNotifier, OutboxRelay
from shared.deadline_watch.store import DeadlineStore, create_schema, make_engine
from shared.domain.deadlines import ClockState, HopClock
from shared.domain.limits import Limit
from shared.envelope import open_record
from shared.signing import Signer
from tests.unit.test_village_services import form
from tests.village_fixtures import PASSPHRASE, make_agent
from town_center.services import TownServices
from town_center.store import open_town_store
from town_center.supervision import SignedSupervisionRecorder
from village_agent.bootstrap import open_agent
from village_agent.sync import village_outbox

RECEIVED = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 Shanghai


def test_a_supervision_notice_on_the_village_leg_reaches_the_village_signed_by_the_township_exactly_once(tmp_path: Path) -> None:
    township = Signer.generate()
    make_agent(tmp_path / "agent", township)
    clock = FakeClock(RECEIVED)
    agent = open_agent(tmp_path / "agent", PASSPHRASE, clock)
    matter_id = agent.file_request(form()).matter_id

    town_store = open_town_store(str(tmp_path / "town.db"))
    services = TownServices(town_store, township, clock)
    calendar = WorkingCalendar()
    engine = make_engine(f"sqlite:///{tmp_path / 'deadlines.db'}")
    create_schema(engine)
    deadlines = DeadlineStore(engine, calendar)
    deadlines.save_clock(matter_id, "delivery", HopClock.received(RECEIVED, Limit.working_days(2), Limit.working_days(5)),
                         now=RECEIVED, responsible=f"village:{agent.signer.key_id[:20]}")
    recorder = SignedSupervisionRecorder(services, lambda m: [agent.signer.key_id] if m == matter_id else [])
    relay = OutboxRelay(deadlines, LogNotifier(), recorder, owner="test")

    clock.set(RECEIVED + dt.timedelta(days=10))  # well past 2 working days + 3 more
    fired = deadlines.fire_due(clock.now(), fired_by="test")
    assert ClockState.SUPERVISE in {e.level for e in fired}
    relay.drain(clock.now())
    assert deadlines.fire_due(clock.now(), fired_by="test") == []  # once per (matter, hop, level)
    down, _ = town_store.read(agent.signer.key_id, 0, 100)
    notices = [e for e in down if open_record(e).WhichOneof("body") == "supervision_notice"]
    assert len(notices) == 1 and notices[0].key_id == township.key_id
    notice = open_record(notices[0]).supervision_notice
    assert notice.matter_id == matter_id and "督办" in notice.message

    outbox = village_outbox(agent)
    assert outbox.apply_down(down, next_cursor=len(down)) == len(down)
    assert agent.store.matter_state(matter_id).supervised
    agent.store.close()
    town_store.close()


def test_the_recorder_publishes_a_repeated_notice_only_once(tmp_path: Path) -> None:
    from shared.deadline_watch.notify import deadline_notifications

    township = Signer.generate()
    town_store = open_town_store(str(tmp_path / "town.db"))
    services = TownServices(town_store, township, FakeClock(RECEIVED))
    recorder = SignedSupervisionRecorder(services, lambda m: ["k" * 32])
    notice = [n for n in deadline_notifications(matter_id="m-1", hop="delivery", level=ClockState.SUPERVISE,
                                                due_at=RECEIVED, responsible="op-a") if n.audience.value == "supervision"][0]
    recorder.record_supervision(notice)
    recorder.record_supervision(notice)
    down, _ = town_store.read("k" * 32, 0, 100)
    assert len(down) == 1
    town_store.close()
