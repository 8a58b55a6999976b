"""The background forfeit check of `village-agent serve`, on a real SQLite file with a fake clock."""
from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.clock import FakeClock, to_unix_ms
from shared.wire.v1 import records_pb2
from tests.village_fixtures import PASSPHRASE, make_agent
from village_agent.bootstrap import open_agent
from village_agent.domain import AppointmentStatus
from village_agent.forfeit_watch import ForfeitWatch
from village_agent.services import AgentService
from village_agent.store import AgentStore

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)  # Monday 10:00 in Shanghai
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    make_agent(tmp_path / "agent")
    return tmp_path / "agent"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture()
def service(root: Path, clock: FakeClock) -> Iterator[AgentService]:
    service = open_agent(root, PASSPHRASE, clock)
    yield service
    service.store.close()


def forfeitures(service: AgentService) -> list[records_pb2.AppointmentForfeited]:
    records = (records_pb2.Record.FromString(row.envelope.payload) for row in service.store.ledger_rows())
    return [r.appointment_forfeited for r in records if r.WhichOneof("body") == "appointment_forfeited"]


def status_of(service: AgentService, appointment_id: str) -> str:
    return str(service.store.appointment_row(appointment_id).status)


def wait_until(condition, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_the_check_forfeits_an_appointment_thirty_minutes_after_its_time_and_never_twice(service, clock) -> None:  # type: ignore[no-untyped-def]
    at = NOW + dt.timedelta(hours=1)
    appointment_id, _ = service.make_appointment(scheduled_at=at, place="service_room", purpose="补交材料")
    watch = ForfeitWatch(service, interval_s=60)
    clock.advance(dt.timedelta(hours=1, minutes=29, seconds=59))
    assert watch.check_once() == []
    assert status_of(service, appointment_id) == AppointmentStatus.SCHEDULED.value
    clock.advance(dt.timedelta(seconds=1))   # exactly 30 minutes after the agreed time
    assert watch.check_once() == [appointment_id]
    for _ in range(3):
        clock.advance(10 * MINUTE)
        assert watch.check_once() == []
    [forfeited] = forfeitures(service)
    assert forfeited.appointment_id == appointment_id and forfeited.rebook_contact_needed
    assert forfeited.forfeited_at_ms == to_unix_ms(at + 30 * MINUTE)
    assert status_of(service, appointment_id) == AppointmentStatus.FORFEITED.value
    assert watch.last_checked_ms == to_unix_ms(clock.now()) and watch.last_error == ""


def test_a_kept_appointment_is_never_forfeited_by_the_check(service, clock) -> None:  # type: ignore[no-untyped-def]
    kept_id, _ = service.make_appointment(scheduled_at=NOW + dt.timedelta(hours=1), place="applicant_home", purpose="上门核对")
    missed_id, _ = service.make_appointment(scheduled_at=NOW + dt.timedelta(hours=1), place="service_room", purpose="补交材料")
    clock.advance(dt.timedelta(hours=1, minutes=10))
    service.record_visit(appointment_id=kept_id, outcome="已上门")
    clock.advance(dt.timedelta(hours=5))
    assert ForfeitWatch(service).check_once() == [missed_id]
    assert status_of(service, kept_id) == AppointmentStatus.KEPT.value
    assert [f.appointment_id for f in forfeitures(service)] == [missed_id]


def test_the_running_watch_forfeits_a_missed_appointment_without_anyone_pressing_a_button(service, clock) -> None:  # type: ignore[no-untyped-def]
    appointment_id, _ = service.make_appointment(scheduled_at=NOW + 10 * MINUTE, place="service_room", purpose="补交材料")
    watch = ForfeitWatch(service, interval_s=0.01)
    watch.start()
    try:
        assert watch.running
        time.sleep(0.1)   # several checks while the appointment is not yet due
        assert status_of(service, appointment_id) == AppointmentStatus.SCHEDULED.value
        clock.advance(40 * MINUTE)
        assert wait_until(lambda: status_of(service, appointment_id) == AppointmentStatus.FORFEITED.value)
        clock.advance(MINUTE)
        assert wait_until(lambda: watch.last_checked_ms == to_unix_ms(clock.now()))
        time.sleep(0.1)   # and several more checks after it
    finally:
        watch.stop()
    assert not watch.running
    assert len(forfeitures(service)) == 1
    # the forfeiture is queued for the township like every other record
    assert service.store.outbox_size() == 3   # enrollment, appointment, forfeiture


def test_appointments_missed_while_the_laptop_was_off_are_forfeited_as_soon_as_it_serves_again(root, clock) -> None:  # type: ignore[no-untyped-def]
    service = open_agent(root, PASSPHRASE, clock)
    appointment_id, _ = service.make_appointment(scheduled_at=NOW + dt.timedelta(hours=1), place="service_room", purpose="补交材料")
    service.store.close()
    clock.advance(dt.timedelta(days=2))   # switched off over the weekend
    service = open_agent(root, PASSPHRASE, clock)
    watch = ForfeitWatch(service, interval_s=3600)   # the next periodic check is an hour away
    watch.start()
    try:
        assert wait_until(lambda: status_of(service, appointment_id) == AppointmentStatus.FORFEITED.value)
    finally:
        watch.stop()
        service.store.close()


def test_two_agents_on_one_data_folder_checking_at_once_forfeit_each_appointment_once(root, clock) -> None:  # type: ignore[no-untyped-def]
    # Two services on one SQLite file stand in for `serve` and a `village-agent forfeit` run beside it.
    first, second = open_agent(root, PASSPHRASE, clock), open_agent(root, PASSPHRASE, clock)
    try:
        ids = [first.make_appointment(scheduled_at=NOW + i * MINUTE, place="service_room", purpose=f"补交材料{i}")[0]
               for i in range(1, 21)]
        clock.advance(dt.timedelta(hours=2))
        results: list[list[str]] = []
        go = threading.Barrier(2)

        def check(service: AgentService) -> None:
            go.wait()
            results.append(ForfeitWatch(service).check_once())

        threads = [threading.Thread(target=check, args=(s,)) for s in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results[0] + results[1]) == sorted(ids)
        assert sorted(f.appointment_id for f in forfeitures(first)) == sorted(ids)
    finally:
        first.store.close()
        second.store.close()


class MeanwhileStore(AgentStore):
    """A real store on the same file that lets something else happen right after the check has
    read the due appointments: the window between reading and writing, made deterministic."""

    def __init__(self, path: Path, meanwhile: Callable[[], None]) -> None:
        super().__init__(path)
        self.meanwhile = meanwhile

    def appointments(self, **kwargs):  # type: ignore[no-untyped-def, override]
        rows = super().appointments(**kwargs)
        if kwargs.get("status") is AppointmentStatus.SCHEDULED:
            self.meanwhile()
        return rows


def test_a_visit_recorded_after_the_check_read_the_table_wins_and_the_appointment_is_not_forfeited(root, clock) -> None:  # type: ignore[no-untyped-def]
    recorder, checker = open_agent(root, PASSPHRASE, clock), open_agent(root, PASSPHRASE, clock)
    try:
        kept_id, _ = recorder.make_appointment(scheduled_at=NOW + MINUTE, place="applicant_home", purpose="上门核对")
        missed_id, _ = recorder.make_appointment(scheduled_at=NOW + MINUTE, place="service_room", purpose="补交材料")
        clock.advance(dt.timedelta(minutes=45))   # late, but the agent did go to the first one
        checker.store.close()
        checker.store = MeanwhileStore(recorder.store.path,
                                       lambda: recorder.record_visit(appointment_id=kept_id, outcome="已上门"))
        assert ForfeitWatch(checker).check_once() == [missed_id]
        assert status_of(checker, kept_id) == AppointmentStatus.KEPT.value
        assert [f.appointment_id for f in forfeitures(checker)] == [missed_id]
    finally:
        recorder.store.close()
        checker.store.close()


def test_an_appointment_forfeited_elsewhere_after_the_check_read_the_table_is_not_forfeited_twice(root, clock) -> None:  # type: ignore[no-untyped-def]
    button, watch_side = open_agent(root, PASSPHRASE, clock), open_agent(root, PASSPHRASE, clock)
    try:
        appointment_id, _ = button.make_appointment(scheduled_at=NOW + MINUTE, place="service_room", purpose="补交材料")
        clock.advance(dt.timedelta(hours=1))
        watch_side.store.close()
        # the agent presses 检查失约 (or runs `village-agent forfeit`) just as the background check runs
        watch_side.store = MeanwhileStore(button.store.path, lambda: button.forfeit_due_appointments())
        assert ForfeitWatch(watch_side).check_once() == []
        assert [f.appointment_id for f in forfeitures(button)] == [appointment_id]
    finally:
        button.store.close()
        watch_side.store.close()


class DiskFullOnce:
    """The part of `AgentService` the watch uses; the first check fails as on a full disk."""

    def __init__(self, service: AgentService) -> None:
        self.service = service
        self.clock = service.clock
        self.calls = 0

    def forfeit_due_appointments(self) -> list[str]:
        from village_agent.errors import StoreError

        self.calls += 1
        if self.calls == 1:
            raise StoreError("磁盘空间已满，记录没有保存")
        return self.service.forfeit_due_appointments()


def test_a_failing_check_is_reported_in_chinese_and_the_next_one_forfeits(service, clock) -> None:  # type: ignore[no-untyped-def]
    appointment_id, _ = service.make_appointment(scheduled_at=NOW + MINUTE, place="service_room", purpose="补交材料")
    clock.advance(dt.timedelta(hours=1))
    watch = ForfeitWatch(DiskFullOnce(service), interval_s=0.01)  # type: ignore[arg-type]
    assert watch.check_once() == []
    assert watch.last_error.startswith("自动检查失约失败") and "磁盘空间已满" in watch.last_error
    assert status_of(service, appointment_id) == AppointmentStatus.SCHEDULED.value
    watch.start()
    try:
        assert wait_until(lambda: status_of(service, appointment_id) == AppointmentStatus.FORFEITED.value)
        assert wait_until(lambda: watch.last_error == "")
    finally:
        watch.stop()
    assert len(forfeitures(service)) == 1
