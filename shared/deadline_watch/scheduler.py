"""The wake-up: an APScheduler 3.x `BackgroundScheduler` that runs the scan.

The scheduler holds no deadlines (docs/ARCHITECTURE.md, invariant 9). Its jobs live in memory and only wake
`DeadlineWatch.run_once`, which reads the tables:

* an interval job every `scan_every_after` (default 30 s), first run at start — so anything that
  became due while the process was down fires on start;
* a one-shot wake job, re-aimed after each scan at the next firing instant in the table when that
  comes before the next interval tick, so a deadline fires within about a second of its instant;
* `wake()` for callers that just saved a clock or queued a notification.

Each scan also keeps the open-clock counts that `/metrics` reads up to date (states whose time has
ended are moved on, recorded changes folded in), so a scrape never scans every clock.

Jobs coalesce (a backlog of missed ticks runs once), allow any lateness (``misfire_grace_time=None``:
a late scan is still worth running) and run one at a time (one executor thread, `max_instances=1`,
and a lock around the scan). Exactly-once firing does not depend on any of this: it comes from the
UNIQUE constraint in `store.deadline_event`, so two processes can run this watch on one database.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from shared.clock import Clock
from shared.deadline_watch.errors import WatchStateError
from shared.deadline_watch.notify import DrainReport, OutboxRelay
from shared.deadline_watch.store import DeadlineStore, FiredEvent

__all__ = ["DeadlineWatch", "ScanReport", "process_tag"]

log = logging.getLogger(__name__)
UTC = dt.UTC


def process_tag() -> str:
    """Who fired an event: host, pid and a per-instance nonce (diagnostics only)."""
    return f"{socket.gethostname()[:48]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class ScanReport:
    fired: list[FiredEvent] = field(default_factory=list)
    recomputed: int = 0
    phases_moved: int = 0     # open clocks whose counted state time had ended (see store.advance_phases)
    counts_folded: int = 0    # count changes folded into the kept counts (see store.fold_counts)
    drained: DrainReport = field(default_factory=DrainReport)


class DeadlineWatch:
    """Runs the deadline scan and the notification relay on a background scheduler."""

    SCAN_JOB_ID = "deadline-watch-scan"
    WAKE_JOB_ID = "deadline-watch-wake"

    def __init__(
        self,
        store: DeadlineStore,
        clock: Clock,
        *,
        relay: OutboxRelay | None = None,
        scan_every_after: dt.timedelta = dt.timedelta(seconds=30),
        min_wake_after: dt.timedelta = dt.timedelta(seconds=1),
        batch_size: int = 500,
        fired_by: str | None = None,
        on_fired: Callable[[list[FiredEvent]], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._relay = relay
        self._scan_every = scan_every_after
        self._min_wake = min_wake_after
        self._batch_size = batch_size
        self._fired_by = fired_by or process_tag()
        self._on_fired = on_fired
        self._lock = threading.Lock()
        self._recomputed = False
        self._scheduler: BackgroundScheduler | None = None
        self._stopped = False
        self.last_error: str | None = None  # class name of the last failure, for health checks
        self.scans = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background scheduler; the first scan runs at once."""
        if self._scheduler is not None or self._stopped:
            raise WatchStateError("期限监视已经启动过")
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_job(
            self._tick,
            trigger="interval",
            seconds=max(self._scan_every.total_seconds(), 0.05),
            id=self.SCAN_JOB_ID,
            next_run_time=dt.datetime.now(UTC),  # scan on start: catches what fell due while down
            replace_existing=True,
        )
        scheduler.start()
        self._scheduler = scheduler

    def shutdown(self, wait: bool = True) -> None:
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=wait)
            self._scheduler = None

    def wake(self) -> None:
        """Scan as soon as possible (after saving a clock or queueing a notification)."""
        self._aim_wake(dt.timedelta(0))

    # -- the work ----------------------------------------------------------------------------

    def run_once(self) -> ScanReport:
        """One scan: (first time only) recompute stale rows, fire what is due, drain the outbox.
        Usable without the scheduler (tests, CLI)."""
        with self._lock:
            report = ScanReport()
            if not self._recomputed:
                report.recomputed = self._store.recompute_stale(self._clock.now())
                self._recomputed = True
            now = self._clock.now()
            report.fired = self._store.fire_due(now, fired_by=self._fired_by, batch_size=self._batch_size)
            if report.fired and self._on_fired is not None:
                self._on_fired(report.fired)
            if self._relay is not None:
                report.drained = self._relay.drain(self._clock.now())
            # The kept counts `/metrics` reads: states time has moved on, and the changes since the
            # last scan folded in, so a scrape adds only a short tail (store.clock_counts).
            report.phases_moved = self._store.advance_phases(self._clock.now())
            report.counts_folded = self._store.fold_counts()
            self.scans += 1
            return report

    def _tick(self) -> None:
        try:
            self.run_once()
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - keep the schedule alive; the next tick retries from the tables
            self.last_error = exc.__class__.__name__
            # Only our own message: driver errors can carry parameters (personal data).
            log.error("期限扫描失败（下次定时扫描会重试）：%s：%s", exc.__class__.__name__, _safe_message(exc))
        self._aim_next()

    def _aim_next(self) -> None:
        try:
            candidates = [self._store.next_fire_at()]
            if self._relay is not None:
                candidates.append(self._store.next_notification_at())
        except Exception as exc:  # noqa: BLE001 - the regular scan interval stays in charge
            log.error("无法读取下一次触发时刻：%s", exc.__class__.__name__)
            return
        soonest = min((c for c in candidates if c is not None), default=None)
        if soonest is None:
            return
        delay = soonest - self._clock.now()
        if delay < self._scan_every:
            self._aim_wake(max(delay, self._min_wake))

    def _aim_wake(self, delay: dt.timedelta) -> None:
        scheduler = self._scheduler
        if scheduler is None or self._stopped:
            return
        try:
            scheduler.add_job(
                self._tick,
                trigger="date",
                run_date=dt.datetime.now(UTC) + max(delay, dt.timedelta(0)),
                id=self.WAKE_JOB_ID,
                replace_existing=True,
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the scheduler is shutting down
            log.debug("wake not scheduled: %s", exc.__class__.__name__)


def _safe_message(exc: BaseException) -> str:
    from shared.errors import SharedError

    return str(exc) if isinstance(exc, SharedError) else "（详情不记录，可能含个人信息）"
