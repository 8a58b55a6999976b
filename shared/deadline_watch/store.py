"""The deadline store: one object over the deadline tables, for one calendar and set of thresholds.

Deadlines live in these tables, not in the scheduler (docs/ARCHITECTURE.md, "Clocks"). The work is
split into modules with one job each, and `DeadlineStore` hands every call to one of them:

* `tables` — the tables, `make_engine` and `create_schema`;
* `instants` — the pure arithmetic: millisecond instants, the next level to fire, counted states;
* `clocks` — saving and reading hop clocks, recomputing them under new rules;
* `counts` — open clocks by state for `/metrics`, kept as clocks change;
* `firing` — finding due levels and firing each exactly once;
* `outbox` — the notification outbox the relay drains (`notify.OutboxPort`).

The names callers imported from this module before the split are still importable from here.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, Table

from shared.calendar import WorkingCalendar
from shared.deadline_watch.access import TableAccess
from shared.deadline_watch.clocks import ClockTable, HopDeadlineRow
from shared.deadline_watch.counts import ClockCounts
from shared.deadline_watch.firing import DueClock, FiredEvent, Firing
from shared.deadline_watch.instants import _Rules
from shared.deadline_watch.notify import Notification, OutboxItem
from shared.deadline_watch.outbox import NotificationOutbox
from shared.deadline_watch.sealed_recipient import RecipientSeal
from shared.deadline_watch.tables import (
    create_schema,
    deadline_event,
    hop_clock_count,
    hop_clock_count_change,
    hop_deadline,
    make_engine,
    metadata,
    notification_outbox,
)
from shared.domain.deadlines import ClockState, Deadlines, HopClock, Thresholds

__all__ = [
    "metadata",
    "hop_deadline",
    "deadline_event",
    "notification_outbox",
    "hop_clock_count",
    "hop_clock_count_change",
    "make_engine",
    "create_schema",
    "FiredEvent",
    "HopDeadlineRow",
    "DueClock",
    "DeadlineStore",
]


class DeadlineStore:
    """Reads and writes the deadline tables for one calendar and set of thresholds.

    Methods that change data accept an optional `conn` so a caller can write the clock (or a
    notification) in the same transaction as its own business change; without one they open and
    commit their own transaction. The parts are reachable as `clocks`, `counts`, `firing` and
    `outbox` for code that needs only one of them."""

    def __init__(self, engine: Engine, calendar: WorkingCalendar, thresholds: Thresholds = Thresholds(), *,
                 recipient_seal: RecipientSeal | None = None) -> None:
        """`recipient_seal` seals applicants' mobile numbers in the SMS queue (`sealed_recipient`); a
        tier that sends applicants no SMS (the county) needs none."""
        self._db = TableAccess(engine, calendar, thresholds)
        self.counts = ClockCounts(self._db)
        self.clocks = ClockTable(self._db, self.counts)
        self.outbox = NotificationOutbox(self._db, recipient_seal)
        self.firing = Firing(self._db, self.outbox)

    @property
    def rules_fp(self) -> str:
        return self._db.rules.fp

    @property
    def engine(self) -> Engine:
        return self._db.engine

    @property
    def calendar(self) -> WorkingCalendar:
        return self._db.rules.calendar

    @property
    def thresholds(self) -> Thresholds:
        return self._db.rules.thresholds

    def use_calendar(self, calendar: WorkingCalendar) -> None:
        """Count on a new calendar from now on (a county override file uploaded while running). Saved
        instants under the old rules are then stale; `recompute_stale` brings them over. The calendar
        and its fingerprint change in one assignment, so a clock saved meanwhile by another thread is
        computed and labelled under one set of rules, never a mix."""
        self._db.rules = _Rules.of(calendar, self._db.rules.thresholds)

    def create_schema(self) -> None:
        create_schema(self._db.engine)

    # -- clocks (`clocks.ClockTable`) ---------------------------------------------------------

    def save_clock(self, matter_id: str, hop: str, clock: HopClock, *, now: dt.datetime,
                   responsible: str | None = None, conn: Connection | None = None) -> Deadlines | None:
        return self.clocks.save_clock(matter_id, hop, clock, now=now, responsible=responsible, conn=conn)

    def insert_clocks(self, clocks: Sequence[tuple[str, str, HopClock, dt.datetime]], *,
                      conn: Connection) -> dict[tuple[str, str], int | None]:
        return self.clocks.insert_clocks(clocks, conn=conn)

    def load(self, matter_id: str, hop: str, *, conn: Connection | None = None) -> HopDeadlineRow | None:
        return self.clocks.load(matter_id, hop, conn=conn)

    def load_clock(self, matter_id: str, hop: str, *, conn: Connection | None = None) -> HopClock | None:
        return self.clocks.load_clock(matter_id, hop, conn=conn)

    def list_open(self, *, after_id: int = 0, limit: int = 100) -> list[tuple[int, HopDeadlineRow]]:
        return self.clocks.list_open(after_id=after_id, limit=limit)

    def recompute_stale(self, now: dt.datetime, *, batch_size: int = 1000) -> int:
        return self.clocks.recompute_stale(now, batch_size=batch_size)

    def copy_due_dates(self, table: Table, hop: str) -> int:
        return self.clocks.copy_due_dates(table, hop)

    # -- open clocks by state (`counts.ClockCounts`) ------------------------------------------

    def fold_counts(self, *, conn: Connection | None = None) -> int:
        return self.counts.fold_counts(conn=conn)

    def advance_phases(self, now: dt.datetime, *, batch_size: int = 2000, conn: Connection | None = None) -> int:
        return self.counts.advance_phases(now, batch_size=batch_size, conn=conn)

    def clock_counts(self, now: dt.datetime, *, conn: Connection | None = None) -> dict[tuple[str, str], int]:
        return self.counts.clock_counts(now, conn=conn)

    def clock_counts_scanned(self, now: dt.datetime, *, conn: Connection | None = None) -> dict[tuple[str, str], int]:
        return self.counts.clock_counts_scanned(now, conn=conn)

    # -- firing (`firing.Firing`) ------------------------------------------------------------

    def find_due(self, now: dt.datetime, *, limit: int = 500) -> list[DueClock]:
        return self.firing.find_due(now, limit=limit)

    def next_fire_at(self) -> dt.datetime | None:
        return self.firing.next_fire_at()

    def fire_due(self, now: dt.datetime, *, fired_by: str, batch_size: int = 500,
                 max_batches: int = 100) -> list[FiredEvent]:
        return self.firing.fire_due(now, fired_by=fired_by, batch_size=batch_size, max_batches=max_batches)

    def events(self, *, after_id: int = 0, level: ClockState | None = None, matter_id: str | None = None,
               limit: int = 500) -> list[tuple[int, FiredEvent]]:
        return self.firing.events(after_id=after_id, level=level, matter_id=matter_id, limit=limit)

    # -- outbox (`outbox.NotificationOutbox`, implements `notify.OutboxPort`) ------------------

    def enqueue_notification(self, notification: Notification, *, now: dt.datetime,
                             conn: Connection | None = None) -> bool:
        return self.outbox.enqueue_notification(notification, now=now, conn=conn)

    def claim_notifications(self, now: dt.datetime, *, limit: int, lease_after: dt.timedelta,
                            owner: str) -> list[OutboxItem]:
        return self.outbox.claim_notifications(now, limit=limit, lease_after=lease_after, owner=owner)

    def mark_sent(self, item_id: int, *, owner: str, now: dt.datetime) -> None:
        self.outbox.mark_sent(item_id, owner=owner, now=now)

    def mark_retry(self, item_id: int, *, owner: str, now: dt.datetime, retry_at: dt.datetime, reason: str) -> None:
        self.outbox.mark_retry(item_id, owner=owner, now=now, retry_at=retry_at, reason=reason)

    def mark_rejected(self, item_id: int, *, owner: str, now: dt.datetime, reason: str) -> None:
        self.outbox.mark_rejected(item_id, owner=owner, now=now, reason=reason)

    def forget_recipient(self, item_id: int) -> None:
        self.outbox.forget_recipient(item_id)

    def seal_queued_numbers(self) -> int:
        return self.outbox.seal_queued_numbers()

    def next_notification_at(self) -> dt.datetime | None:
        return self.outbox.next_notification_at()

    def outbox_counts(self, *, conn: Connection | None = None) -> dict[str, int]:
        return self.outbox.outbox_counts(conn=conn)
