"""The deadline watch on real databases: exactly-once firing across restarts and between two OS
processes, recomputation, the scheduler's wake-ups, and the notification outbox.

Every test runs on SQLite (a file) and on a throwaway PostgreSQL 15 cluster (`tests.pg`).

The multi-process tests start this module as a worker (`python -m
tests.integration.test_deadline_watch worker …`): each worker runs a real `DeadlineWatch` with its
APScheduler on the shared database and writes every delivered notification's idempotency key to
its own file.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from shared.calendar import SHANGHAI, WorkingCalendar, parse_override_toml
from shared.clock import FakeClock
from shared.deadline_watch.errors import DeadlineStoreError
from shared.deadline_watch.notify import Notification, OutboxRelay, result_ready_sms
from shared.deadline_watch.scheduler import DeadlineWatch
from shared.deadline_watch.sealed_recipient import KeySeal
from shared.deadline_watch.store import (
    DeadlineStore,
    deadline_event,
    make_engine,
    notification_outbox,
)
from shared.domain.deadlines import ClockState, HopClock, StopReason, SuspensionReason
from shared.domain.limits import Limit
from shared.signing import Signer

REPO = Path(__file__).resolve().parents[2]
UTC = dt.UTC
WD = Limit.working_days


def sh(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


# Received Monday 2026-11-23 10:00 with 5 working days: warn Fri 11-27 17:30, due Mon 11-30 17:30,
# 督办 Thu 12-03 17:30.
RECEIVED = sh(2026, 11, 23)
BEFORE_WARN = sh(2026, 11, 27, 17, 0)
AFTER_WARN = sh(2026, 11, 27, 17, 31)
AFTER_DUE = sh(2026, 11, 30, 17, 31)
AFTER_ESCALATE = sh(2026, 12, 3, 17, 31)


def five_day_clock() -> HopClock:
    return HopClock.received(RECEIVED, WD(5), WD(20))


class RecordingReceiver:
    """A fake notifier and supervision port that remembers what it was given."""

    def __init__(self, delay_after: float = 0.0) -> None:
        self.sent: list[Notification] = []
        self.supervision: list[Notification] = []
        self._delay = delay_after
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        if self._delay:
            time.sleep(self._delay)
        with self._lock:
            self.sent.append(notification)

    def record_supervision(self, notification: Notification) -> None:
        with self._lock:
            self.supervision.append(notification)

    def kinds(self) -> list[str]:
        return [n.kind.value for n in self.sent]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'deadlines.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()


@pytest.fixture
def open_store(db_url: str) -> Iterator[Callable[..., DeadlineStore]]:
    """Opens a store on the test database; each call is a fresh engine, like a fresh process (of one
    tier: they share its key, which seals applicants' numbers in the SMS queue)."""
    engines: list[Engine] = []
    seal = KeySeal.of(Signer.generate())

    def opener(calendar: WorkingCalendar | None = None) -> DeadlineStore:
        engine = make_engine(db_url)
        engines.append(engine)
        store = DeadlineStore(engine, calendar or WorkingCalendar(), recipient_seal=seal)
        store.create_schema()
        return store

    yield opener
    for engine in engines:
        engine.dispose()


def _watch(store: DeadlineStore, clock: FakeClock, receiver: RecordingReceiver, owner: str = "p1") -> DeadlineWatch:
    relay = OutboxRelay(store, receiver, receiver, owner=owner)
    return DeadlineWatch(store, clock, relay=relay, fired_by=owner)


def _levels(report_fired: list) -> list[ClockState]:
    return [e.level for e in report_fired]


# -- exactly once, in one process and across restarts -----------------------------------------


def test_each_level_fires_exactly_once_as_time_passes(open_store: Callable[..., DeadlineStore]) -> None:
    store = open_store()
    clock = FakeClock(RECEIVED)
    receiver = RecordingReceiver()
    watch = _watch(store, clock, receiver)
    store.save_clock("M-1", "township", five_day_clock(), now=clock.now(), responsible="op-07")

    fired_per_scan = []
    for at in (BEFORE_WARN, AFTER_WARN, AFTER_WARN + dt.timedelta(hours=1), AFTER_DUE, AFTER_DUE, AFTER_ESCALATE, AFTER_ESCALATE):
        clock.set(at)
        fired_per_scan.append(_levels(watch.run_once().fired))

    assert fired_per_scan == [
        [], [ClockState.WARNING], [], [ClockState.OVERDUE], [], [ClockState.SUPERVISE], [],
    ]
    assert receiver.kinds() == ["deadline_warning", "deadline_overdue", "deadline_supervise"]
    assert {n.recipient for n in receiver.sent} == {"op-07"}
    assert len(receiver.supervision) == 1 and "督办" in receiver.supervision[0].text_zh
    assert store.load("M-1", "township").fired_level is ClockState.SUPERVISE


def test_a_process_that_was_down_fires_every_missed_level_on_start_and_announces_only_the_highest(
    open_store: Callable[..., DeadlineStore],
) -> None:
    store = open_store()
    store.save_clock("M-1", "township", five_day_clock(), now=RECEIVED, responsible="op-07")
    receiver = RecordingReceiver()
    report = _watch(store, FakeClock(AFTER_ESCALATE), receiver).run_once()
    assert _levels(report.fired) == [ClockState.WARNING, ClockState.OVERDUE, ClockState.SUPERVISE]
    assert [e.notified for e in report.fired] == [False, False, True]
    assert receiver.kinds() == ["deadline_supervise"] and len(receiver.supervision) == 1


def test_a_restart_reads_everything_back_from_the_tables_and_never_fires_twice(
    open_store: Callable[..., DeadlineStore],
) -> None:
    first = open_store()
    first.save_clock("M-1", "township", five_day_clock(), now=RECEIVED)
    first.save_clock("M-2", "township", five_day_clock(), now=RECEIVED)
    receiver = RecordingReceiver()
    assert len(_watch(first, FakeClock(AFTER_WARN), receiver).run_once().fired) == 2
    first.engine.dispose()  # the process goes away

    second = open_store()
    watch = _watch(second, FakeClock(AFTER_WARN + dt.timedelta(minutes=5)), receiver, owner="p2")
    assert watch.run_once().fired == []
    clock = FakeClock(AFTER_DUE)
    watch = _watch(second, clock, receiver, owner="p2")
    assert _levels(watch.run_once().fired) == [ClockState.OVERDUE, ClockState.OVERDUE]
    assert receiver.kinds().count("deadline_warning") == 2 and receiver.kinds().count("deadline_overdue") == 2


def test_even_a_clock_row_that_forgot_what_fired_cannot_fire_a_level_twice(open_store: Callable[..., DeadlineStore]) -> None:
    from sqlalchemy import update

    from shared.deadline_watch.store import hop_deadline

    store = open_store()
    store.save_clock("M-1", "township", five_day_clock(), now=RECEIVED)
    assert len(store.fire_due(AFTER_WARN, fired_by="p1")) == 1
    with store.engine.begin() as conn:  # as if another process had a stale view of the row
        conn.execute(update(hop_deadline).values(fired_level=0, next_fire_at_ms=hop_deadline.c.warn_at_ms))
    assert store.fire_due(AFTER_WARN + dt.timedelta(minutes=1), fired_by="p2") == []
    assert store.outbox_counts() == {"pending": 1}
    assert store.load("M-1", "township").fired_level is ClockState.WARNING


def test_a_suspended_clock_fires_nothing_until_it_is_resumed(open_store: Callable[..., DeadlineStore]) -> None:
    store = open_store()
    clock = FakeClock(RECEIVED)
    receiver = RecordingReceiver()
    watch = _watch(store, clock, receiver)
    suspended = five_day_clock().suspend(sh(2026, 11, 24, 9), SuspensionReason.EXPERT_REVIEW)
    store.save_clock("M-1", "township", suspended, now=sh(2026, 11, 24, 9))
    clock.set(sh(2026, 12, 20))
    assert watch.run_once().fired == []
    # 11-23 is the receipt day (not counted) and 11-24 closed while suspended: resumed Monday
    # 12-21 09:00, all five days are still to come: 12-21 … 12-25.
    resumed = suspended.resume(sh(2026, 12, 21, 9))
    marks = store.save_clock("M-1", "township", resumed, now=sh(2026, 12, 21, 9))
    assert marks is not None and marks.due_at == sh(2026, 12, 25, 17, 30)
    clock.set(sh(2026, 12, 24, 17, 31))
    assert _levels(watch.run_once().fired) == [ClockState.WARNING]


def test_an_extension_moves_the_deadline_but_a_warning_already_given_is_not_repeated(
    open_store: Callable[..., DeadlineStore],
) -> None:
    store = open_store()
    clock = FakeClock(AFTER_WARN)
    receiver = RecordingReceiver()
    watch = _watch(store, clock, receiver)
    store.save_clock("M-1", "township", five_day_clock(), now=RECEIVED)
    assert _levels(watch.run_once().fired) == [ClockState.WARNING]
    calendar = store.calendar
    extended = five_day_clock().extend(sh(2026, 11, 28), WD(10), approver="chief-01", reason="需专家论证", calendar=calendar)
    store.save_clock("M-1", "township", extended, now=sh(2026, 11, 28))  # due now Mon 12-07 17:30
    clock.set(sh(2026, 12, 4, 17, 31))  # the new warning instant has passed
    assert watch.run_once().fired == []
    clock.set(sh(2026, 12, 7, 17, 31))
    assert _levels(watch.run_once().fired) == [ClockState.OVERDUE]


def test_a_stopped_clock_never_fires(open_store: Callable[..., DeadlineStore]) -> None:
    store = open_store()
    store.save_clock("M-1", "township", five_day_clock().stop(sh(2026, 11, 25), StopReason.PASSED_ON), now=RECEIVED)
    assert _watch(store, FakeClock(sh(2027, 3, 1)), RecordingReceiver()).run_once().fired == []
    row = store.load("M-1", "township")
    assert row is not None and row.due_at == sh(2026, 11, 30, 17, 30)


def test_deadlines_saved_under_another_calendar_are_recomputed_on_start(open_store: Callable[..., DeadlineStore]) -> None:
    old = open_store()
    clock_2027 = HopClock.received(sh(2026, 12, 28), WD(4), WD(20))
    old.save_clock("M-1", "township", clock_2027, now=sh(2026, 12, 28))
    assert old.load("M-1", "township").due_at == sh(2027, 1, 1, 17, 30)

    override = parse_override_toml(
        "format = 1\n[year_2027]\nconfirmed = true\nholidays = [{ from = 2027-01-01, to = 2027-01-03 }]\n"
    )
    new = open_store(WorkingCalendar(override))
    report = _watch(new, FakeClock(sh(2026, 12, 29)), RecordingReceiver()).run_once()
    assert report.recomputed == 1
    assert new.load("M-1", "township").due_at == sh(2027, 1, 4, 17, 30)
    assert new.recompute_stale(sh(2026, 12, 29)) == 0


# -- the scheduler ---------------------------------------------------------------------------


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_scheduler_scans_on_start_so_a_wake_up_missed_while_down_fires(open_store: Callable[..., DeadlineStore]) -> None:
    store = open_store()
    store.save_clock("M-1", "township", five_day_clock(), now=RECEIVED)
    receiver = RecordingReceiver()
    watch = DeadlineWatch(
        store, FakeClock(AFTER_DUE), relay=OutboxRelay(store, receiver, receiver, owner="p1"),
        scan_every_after=dt.timedelta(hours=1),
    )
    watch.start()
    try:
        assert _wait_for(lambda: len(receiver.sent) == 1)
    finally:
        watch.shutdown()
    assert [e.level for _id, e in store.events()] == [ClockState.WARNING, ClockState.OVERDUE]
    assert receiver.kinds() == ["deadline_overdue"]


class _FlowingClock:
    """A clock that runs at real speed from a chosen instant."""

    def __init__(self, start_at: dt.datetime) -> None:
        self._start_at = start_at
        self._t0 = time.monotonic()

    def now(self) -> dt.datetime:
        return self._start_at + dt.timedelta(seconds=time.monotonic() - self._t0)


def test_the_scheduler_wakes_for_the_next_deadline_between_interval_scans(open_store: Callable[..., DeadlineStore]) -> None:
    store = open_store()
    clock = _FlowingClock(sh(2026, 11, 23, 10, 0))
    # 即办, 30 office minutes, received 19m58s ago: the 10-minute warning is 2 seconds away.
    received = clock.now() - dt.timedelta(minutes=19, seconds=58)
    marks = store.save_clock("M-1", "window", HopClock.received(received, Limit.minutes(30), Limit.minutes(30)), now=clock.now())
    assert marks is not None and dt.timedelta(0) < marks.warn_at - clock.now() < dt.timedelta(seconds=3)
    receiver = RecordingReceiver()
    watch = DeadlineWatch(
        store, clock, relay=OutboxRelay(store, receiver, receiver, owner="p1"),
        scan_every_after=dt.timedelta(minutes=10), min_wake_after=dt.timedelta(milliseconds=100),
    )
    watch.start()
    try:
        assert _wait_for(lambda: receiver.kinds() == ["deadline_warning"], timeout_s=15)
    finally:
        watch.shutdown()
    (event,) = [e for _id, e in store.events()]
    assert event.fired_at >= marks.warn_at


def test_a_watch_cannot_be_started_twice(open_store: Callable[..., DeadlineStore]) -> None:
    from shared.deadline_watch.errors import WatchStateError

    watch = DeadlineWatch(open_store(), FakeClock(RECEIVED), scan_every_after=dt.timedelta(hours=1))
    watch.start()
    try:
        with pytest.raises(WatchStateError):
            watch.start()
    finally:
        watch.shutdown()


# -- the outbox ------------------------------------------------------------------------------


def test_a_crash_between_firing_and_sending_still_sends_after_restart(open_store: Callable[..., DeadlineStore]) -> None:
    first = open_store()
    first.save_clock("M-1", "township", five_day_clock(), now=RECEIVED)
    fired = first.fire_due(AFTER_WARN, fired_by="p1")  # event and outbox row committed …
    assert len(fired) == 1
    first.engine.dispose()  # … and the process dies before its relay runs

    second = open_store()
    receiver = RecordingReceiver()
    report = _watch(second, FakeClock(AFTER_WARN + dt.timedelta(minutes=1)), receiver, owner="p2").run_once()
    assert report.fired == [] and report.drained.sent == 1
    assert receiver.kinds() == ["deadline_warning"]


def test_two_relays_sharing_the_outbox_never_send_the_same_notification_twice(
    open_store: Callable[..., DeadlineStore],
) -> None:
    stores = [open_store(), open_store()]
    now = sh(2026, 11, 23, 12)
    for i in range(60):
        stores[0].enqueue_notification(
            result_ready_sms(matter_id=f"M-{i}", phone="13800000000", pickup_place_zh="2号窗口"), now=now
        )
    receivers = [RecordingReceiver(delay_after=0.002), RecordingReceiver(delay_after=0.002)]
    relays = [OutboxRelay(s, r, r, owner=f"relay-{i}", batch_size=4) for i, (s, r) in enumerate(zip(stores, receivers, strict=True))]
    threads = [threading.Thread(target=relay.drain, args=(now,)) for relay in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    keys = [n.idempotency_key for r in receivers for n in r.sent]
    assert len(keys) == 60 and len(set(keys)) == 60
    assert stores[0].outbox_counts() == {"sent": 60}


def test_a_notification_queued_in_a_rolled_back_transaction_is_never_sent(open_store: Callable[..., DeadlineStore]) -> None:
    store = open_store()
    now = sh(2026, 11, 23, 12)
    with pytest.raises(RuntimeError):
        with store.engine.begin() as conn:
            store.save_clock("M-1", "township", five_day_clock(), now=now, conn=conn)
            store.enqueue_notification(result_ready_sms(matter_id="M-1", phone="13800000000", pickup_place_zh="窗口"), now=now, conn=conn)
            raise RuntimeError("the business change failed")
    assert store.outbox_counts() == {} and store.load("M-1", "township") is None
    with store.engine.begin() as conn:
        store.enqueue_notification(result_ready_sms(matter_id="M-1", phone="13800000000", pickup_place_zh="窗口"), now=now, conn=conn)
    assert store.outbox_counts() == {"pending": 1}


def test_only_sqlite_and_postgresql_are_supported() -> None:
    with pytest.raises(DeadlineStoreError):
        make_engine("mysql://user@127.0.0.1/db")


# -- two real OS processes -------------------------------------------------------------------

NOW_FOR_WORKERS = sh(2026, 12, 15, 10, 0)


def _seed(store: DeadlineStore, n: int) -> tuple[set[tuple[str, str, str]], set[str]]:
    """n clocks received on a spread of days before NOW_FOR_WORKERS: some not yet due, some in
    warning, overdue or 督办. Returns the expected events and notification keys."""
    events: set[tuple[str, str, str]] = set()
    keys: set[str] = set()
    with store.engine.begin() as conn:
        for i in range(n):
            received = sh(2026, 11, 16, 9 + i % 7, (i * 7) % 60) + dt.timedelta(days=i % 28)
            clock = HopClock.received(received, WD(5), WD(20))
            marks = store.save_clock(f"M-{i:05d}", "township", clock, now=received, responsible=f"op-{i % 5}", conn=conn)
            assert marks is not None
            levels = (ClockState.WARNING, ClockState.OVERDUE, ClockState.SUPERVISE)
            reached = [lv for lv in levels if marks.instant_of(lv) <= NOW_FOR_WORKERS]
            events |= {(f"M-{i:05d}", "township", lv.value) for lv in reached}
            if reached:
                base = f"deadline:M-{i:05d}:township:{reached[-1].value}"
                keys |= {base + ":staff", base + ":record"} if reached[-1] is ClockState.SUPERVISE else {base}
    return events, keys


def _start_worker(url: str, tag: str, out: Path, go: Path, *, events: int, notices: int, send_delay: float = 0.0,
                  lease_s: float = 30.0, anchor: float) -> subprocess.Popen[str]:
    argv = [
        sys.executable, "-m", "tests.integration.test_deadline_watch", "worker",
        "--url", url, "--tag", tag, "--out", str(out), "--go", str(go),
        "--events", str(events), "--notices", str(notices), "--send-delay", str(send_delay),
        "--lease", str(lease_s), "--anchor", repr(anchor), "--timeout", "90",
    ]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str], timeout_s: float = 120) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"worker timed out:\n{out}") from exc
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{out}"
    return out


def _db_state(store: DeadlineStore) -> tuple[collections.Counter[tuple[str, str, str]], dict[str, int], set[str]]:
    with store.engine.connect() as conn:
        ev = collections.Counter(
            (m, h, lv) for m, h, lv in conn.execute(select(deadline_event.c.matter_id, deadline_event.c.hop, deadline_event.c.level))
        )
        outbox_keys = set(conn.execute(select(notification_outbox.c.idempotency_key)).scalars())
        per_key = conn.execute(
            select(func.count()).select_from(notification_outbox)
        ).scalar_one()
        assert per_key == len(outbox_keys)
    return ev, store.outbox_counts(), outbox_keys


def _delivered(*files: Path) -> collections.Counter[str]:
    counter: collections.Counter[str] = collections.Counter()
    for f in files:
        if f.exists():
            counter.update(line.strip() for line in f.read_text().splitlines() if line.strip())
    return counter


def _run_processes(url: str, store: DeadlineStore, tmp_path: Path, n_clocks: int, n_processes: int
                   ) -> tuple[set[str], dict[str, int]]:
    """Seed `n_clocks`, run the workers to the end, check the database; (keys expected, deliveries by key)."""
    expected_events, expected_keys = _seed(store, n_clocks)
    assert expected_events and expected_keys
    go = tmp_path / "go"
    anchor = time.time()
    outs = [tmp_path / f"delivered-{i}.txt" for i in range(n_processes)]
    procs = [
        _start_worker(url, f"proc-{i}", outs[i], go, events=len(expected_events), notices=len(expected_keys), anchor=anchor)
        for i in range(n_processes)
    ]
    go.touch()  # both start scanning at the same moment
    logs = [_finish(p) for p in procs]
    events, counts, outbox_keys = _db_state(store)
    assert set(events) == expected_events and set(events.values()) == {1}
    assert counts == {"sent": len(expected_keys)} and outbox_keys == expected_keys
    delivered = _delivered(*outs)
    assert set(delivered) == expected_keys
    assert set(delivered.values()) == {1}, "a notification was delivered twice"
    assert all("done" in log for log in logs)
    return expected_keys, delivered


def test_two_processes_on_one_database_fire_and_send_everything_exactly_once(
    db_url: str, open_store: Callable[..., DeadlineStore], tmp_path: Path
) -> None:
    expected_keys, delivered = _run_processes(db_url, open_store(), tmp_path, n_clocks=240, n_processes=2)
    assert set(delivered) == expected_keys and set(delivered.values()) == {1}


def test_a_process_killed_mid_run_is_finished_by_its_restart_with_each_event_fired_once(
    db_url: str, open_store: Callable[..., DeadlineStore], tmp_path: Path
) -> None:
    store = open_store()
    expected_events, expected_keys = _seed(store, 240)
    go = tmp_path / "go"
    go.touch()
    anchor = time.time()
    out_a, out_b = tmp_path / "a.txt", tmp_path / "b.txt"
    a = _start_worker(db_url, "proc-a", out_a, go, events=len(expected_events), notices=len(expected_keys),
                      send_delay=0.01, lease_s=1.0, anchor=anchor)
    try:
        assert _wait_for(lambda: sum(_delivered(out_a).values()) >= 15, timeout_s=60), "worker A never got going"
    finally:
        a.send_signal(signal.SIGKILL)  # no clean shutdown: transactions in flight are lost
        a.communicate(timeout=30)
    delivered_by_a = _delivered(out_a)
    assert sum(delivered_by_a.values()) < len(expected_keys), "A finished before it could be killed"

    b = _start_worker(db_url, "proc-b", out_b, go, events=len(expected_events), notices=len(expected_keys),
                      lease_s=1.0, anchor=anchor)
    _finish(b)
    events, counts, outbox_keys = _db_state(store)
    assert set(events) == expected_events and set(events.values()) == {1}
    assert counts == {"sent": len(expected_keys)}
    delivered = _delivered(out_a, out_b)
    assert set(delivered) == expected_keys
    # At most the one notification A was sending when killed is delivered again (same key: the
    # receiver drops it).
    assert sum(delivered.values()) - len(delivered) <= 1


@pytest.mark.slow
def test_soak_three_processes_share_thousands_of_clocks(
    db_url: str, open_store: Callable[..., DeadlineStore], tmp_path: Path
) -> None:
    expected_keys, delivered = _run_processes(db_url, open_store(), tmp_path, n_clocks=3000, n_processes=3)
    assert set(delivered) == expected_keys and set(delivered.values()) == {1}


# -- the worker ------------------------------------------------------------------------------


class _AnchoredClock:
    """NOW_FOR_WORKERS plus the real time elapsed since a wall-clock anchor shared by all workers."""

    def __init__(self, anchor: float) -> None:
        self._anchor = anchor

    def now(self) -> dt.datetime:
        return NOW_FOR_WORKERS + dt.timedelta(seconds=max(0.0, time.time() - self._anchor))


class _FileReceiver:
    def __init__(self, path: Path, delay_after: float) -> None:
        self._path = path
        self._delay = delay_after

    def send(self, notification: Notification) -> None:
        if self._delay:
            time.sleep(self._delay)
        with self._path.open("a") as f:
            f.write(notification.idempotency_key + "\n")
            f.flush()

    def record_supervision(self, notification: Notification) -> None:
        self.send(notification)


def _worker(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    for name in ("--url", "--tag", "--out", "--go"):
        p.add_argument(name, required=True)
    for name in ("--events", "--notices"):
        p.add_argument(name, type=int, required=True)
    for name in ("--send-delay", "--lease", "--anchor", "--timeout"):
        p.add_argument(name, type=float, required=True)
    args = p.parse_args(argv)
    engine = make_engine(args.url)
    store = DeadlineStore(engine, WorkingCalendar())
    receiver = _FileReceiver(Path(args.out), args.send_delay)
    relay = OutboxRelay(store, receiver, receiver, owner=args.tag, batch_size=5, lease_after=dt.timedelta(seconds=args.lease))
    watch = DeadlineWatch(
        store, _AnchoredClock(args.anchor), relay=relay, scan_every_after=dt.timedelta(milliseconds=100),
        min_wake_after=dt.timedelta(milliseconds=50), batch_size=20, fired_by=args.tag,
    )
    go = Path(args.go)
    give_up = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > give_up:
            print("no go signal", flush=True)
            return 2
        time.sleep(0.01)
    watch.start()
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                n_events = conn.execute(select(func.count()).select_from(deadline_event)).scalar_one()
            counts = store.outbox_counts()
            if n_events >= args.events and counts.get("sent", 0) >= args.notices:
                print(f"done scans={watch.scans} last_error={watch.last_error}", flush=True)
                return 0
            time.sleep(0.05)
        print(f"timeout events={n_events} outbox={counts} last_error={watch.last_error}", flush=True)
        return 3
    finally:
        watch.shutdown(wait=True)
        engine.dispose()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(_worker(sys.argv[2:]))
