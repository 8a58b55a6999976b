"""The deadline tables. Deadlines live here, not in the scheduler (DESIGN invariant 9).

Tables (SQLAlchemy Core on their own `MetaData`, so creating them touches nothing else):

* ``hop_deadline`` — one row per (matter, hop): the clock's full history as JSON (so everything can
  be recomputed), its status, and the precomputed instants ``warn_at_ms`` / ``due_at_ms`` /
  ``escalate_at_ms``; ``fired_level`` (0 none, 1 warning, 2 overdue, 3 督办) and
  ``next_fire_at_ms``, the next unfired level's instant, under a partial index. Finding what is
  newly due is one index range scan (``next_fire_at_ms <= now``): clocks are never loaded into
  Python to be checked. ``rules_fp`` is the fingerprint of the calendar and thresholds the instants
  were computed under; rows computed under other rules are recomputed on start.
* ``deadline_event`` — one row per fired level, UNIQUE (matter_id, hop, level). Inserting with
  ON CONFLICT DO NOTHING is what makes each warning, overdue and 督办 fire exactly once, across
  restarts and between processes sharing a database.
* ``notification_outbox`` — the notifications caused by events (and others, e.g. result-ready SMS),
  written in the same transaction as their cause; UNIQUE idempotency key.

Instants are stored as integer milliseconds since the Unix epoch (UTC): unambiguous on SQLite and
PostgreSQL whatever the server's timezone, and cheap to index. Firing instants are rounded up to
the millisecond so nothing ever fires early.

Concurrency: on PostgreSQL the scan locks its batch with ``FOR UPDATE SKIP LOCKED`` so two processes
share the work; on SQLite every transaction starts with ``BEGIN IMMEDIATE`` (see `make_engine`) so
writers queue instead of failing on a stale snapshot. Either way the UNIQUE constraint is the
guarantee; the locking only avoids wasted work.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.sqlite import configure_sqlite
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    create_engine,
    func,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from shared.bulk import insert_rows
from shared.calendar import WorkingCalendar
from shared.deadline_watch.errors import DeadlineStoreError
from shared.deadline_watch.notify import Notification, OutboxItem, deadline_notifications, mask_phone
from shared.deadlines import ClockState, ClockStatus, Deadlines, HopClock, Thresholds

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

log = logging.getLogger("shared.deadline_watch.store")

metadata = MetaData()

_ID = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

hop_deadline = Table(
    "hop_deadline",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("matter_id", String(64), nullable=False),
    Column("hop", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("responsible", String(64)),
    Column("limit_text", String(16), nullable=False),
    Column("statutory_text", String(16), nullable=False),
    Column("clock_json", Text, nullable=False),
    Column("warn_at_ms", BigInteger),
    Column("due_at_ms", BigInteger),
    Column("escalate_at_ms", BigInteger),
    Column("fired_level", SmallInteger, nullable=False, default=0),
    Column("next_fire_at_ms", BigInteger),
    Column("rules_fp", String(64), nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Column("updated_at_ms", BigInteger, nullable=False),
    # The state this open clock is counted under in `hop_clock_count` (NULL: stopped, not counted),
    # and the instant that state ends (NULL: it never ends while the row stays as it is).
    Column("phase", String(16)),
    Column("phase_until_ms", BigInteger),
    UniqueConstraint("matter_id", "hop", name="uq_hop_deadline_matter_hop"),
    Index(
        "ix_hop_deadline_next_fire",
        "next_fire_at_ms",
        postgresql_where=text("next_fire_at_ms IS NOT NULL"),
        sqlite_where=text("next_fire_at_ms IS NOT NULL"),
    ),
    Index(
        "ix_hop_deadline_phase_until",
        "phase_until_ms",
        postgresql_where=text("phase_until_ms IS NOT NULL"),
        sqlite_where=text("phase_until_ms IS NOT NULL"),
    ),
)

# Open clocks by (hop, phase), kept as clocks change so `/metrics` never scans `hop_deadline`.
# Writers only append to `hop_clock_count_change` (no hot row that every clock save would lock);
# `fold_counts` moves those changes into `hop_clock_count`, and a reader adds the two.
hop_clock_count = Table(
    "hop_clock_count",
    metadata,
    Column("hop", String(64), primary_key=True),
    Column("phase", String(16), primary_key=True),
    Column("n", BigInteger, nullable=False),
)

hop_clock_count_change = Table(
    "hop_clock_count_change",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("hop", String(64), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("delta", Integer, nullable=False),
)

deadline_event = Table(
    "deadline_event",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("matter_id", String(64), nullable=False),
    Column("hop", String(64), nullable=False),
    Column("level", String(16), nullable=False),
    Column("instant_at_ms", BigInteger, nullable=False),  # when the level was reached
    Column("due_at_ms", BigInteger, nullable=False),
    Column("fired_at_ms", BigInteger, nullable=False),  # when a scan noticed it
    Column("fired_by", String(96), nullable=False),
    Column("notified", Boolean, nullable=False),  # False: a higher level fired in the same scan
    UniqueConstraint("matter_id", "hop", "level", name="uq_deadline_event_once"),
)

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(160), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("payload_json", Text, nullable=False),  # holds the recipient: may be personal data
    Column("status", String(16), nullable=False),  # pending / sent / rejected
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("next_attempt_at_ms", BigInteger),  # also the lease: a claim pushes it forward
    Column("lease_owner", String(96)),
    Column("sent_at_ms", BigInteger),
    Column("last_error", String(200)),
    UniqueConstraint("idempotency_key", name="uq_notification_outbox_key"),
    Index(
        "ix_notification_outbox_pending",
        "next_attempt_at_ms",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

_LEVEL_BY_RANK = {1: ClockState.WARNING, 2: ClockState.OVERDUE, 3: ClockState.SUPERVISE}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _ceil_ms(at: dt.datetime) -> int:
    us = (at - _EPOCH) // dt.timedelta(microseconds=1)
    return -(-us // 1000)


def _from_ms(ms: int | None) -> dt.datetime | None:
    return None if ms is None else _EPOCH + dt.timedelta(milliseconds=ms)


def _now_ms(now: dt.datetime) -> int:
    if now.tzinfo is None:
        raise DeadlineStoreError("now 必须是带时区的时刻")
    return (now - _EPOCH) // dt.timedelta(milliseconds=1)


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine set up the way the deadline tables need it.

    SQLite: WAL, a 30 s busy timeout, and ``BEGIN IMMEDIATE`` for every transaction (the
    SQLAlchemy-documented recipe), so a scan that reads then writes never fails on a snapshot
    another process has moved past. PostgreSQL (``postgresql+psycopg://``): pre-ping, small pool.
    Engines made elsewhere work too if they follow the same rules."""
    if url.startswith("sqlite"):
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("timeout", 30)
        connect_args.setdefault("check_same_thread", False)
        kwargs.setdefault("hide_parameters", True)  # errors must not carry personal data into logs
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        configure_sqlite(engine, synchronous="NORMAL", busy_timeout_ms=30_000)
        return engine
    if url.startswith("postgresql"):
        kwargs.setdefault("hide_parameters", True)
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 5)
        return create_engine(url, **kwargs)
    raise DeadlineStoreError("期限表只支持 SQLite 和 PostgreSQL")


def create_schema(engine: Engine) -> None:
    """Create the three tables if missing. Run once from one process (bootstrap / migration), not
    from two processes at the same moment."""
    try:
        metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise DeadlineStoreError(f"无法创建期限表：{exc.__class__.__name__}") from exc


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FiredEvent:
    matter_id: str
    hop: str
    level: ClockState
    instant_at: dt.datetime
    due_at: dt.datetime
    fired_at: dt.datetime
    notified: bool


@dataclass(frozen=True)
class HopDeadlineRow:
    """What consoles read about one hop's clock."""

    matter_id: str
    hop: str
    status: ClockStatus
    responsible: str | None
    clock: HopClock
    warn_at: dt.datetime | None
    due_at: dt.datetime | None
    escalate_at: dt.datetime | None
    fired_level: ClockState

    def state_at(self, now: dt.datetime) -> ClockState | None:
        if self.warn_at is None or self.due_at is None or self.escalate_at is None:
            return None
        return Deadlines(self.warn_at, self.due_at, self.escalate_at).state_at(now)


@dataclass(frozen=True)
class DueClock:
    """A row the scan found due (read-only view, used by `find_due`)."""

    id: int
    matter_id: str
    hop: str
    next_fire_at: dt.datetime


def _instants(clock: HopClock, calendar: WorkingCalendar, thresholds: Thresholds) -> dict[str, int | None]:
    marks = clock.deadlines(calendar, thresholds)
    if marks is not None:
        return {
            "warn_at_ms": _ceil_ms(marks.warn_at),
            "due_at_ms": _ceil_ms(marks.due_at),
            "escalate_at_ms": _ceil_ms(marks.escalate_at),
        }
    due = clock.due_at(calendar) if clock.status is ClockStatus.STOPPED else None
    return {"warn_at_ms": None, "due_at_ms": None if due is None else _ceil_ms(due), "escalate_at_ms": None}


def _level_instants(warn_ms: int | None, due_ms: int | None, esc_ms: int | None) -> dict[int, int | None]:
    # Overdue is reached just after the due instant: the due instant itself is still on time.
    return {1: warn_ms, 2: None if due_ms is None else due_ms + 1, 3: esc_ms}


def _next_fire(status: str, warn_ms: int | None, due_ms: int | None, esc_ms: int | None, fired: int) -> int | None:
    if status != ClockStatus.RUNNING.value:
        return None
    for rank, instant in sorted(_level_instants(warn_ms, due_ms, esc_ms).items()):
        if rank > fired and instant is not None:
            return instant
    return None


def _phase(status: str, warn_ms: int | None, due_ms: int | None, esc_ms: int | None,
           now_ms: int) -> tuple[str | None, int | None]:
    """The state an open clock is counted under at `now_ms` and the instant that state ends; the
    same rules as `clock_counts_scanned` (a stopped clock: not counted)."""
    if status == ClockStatus.STOPPED.value:
        return None, None
    if status != ClockStatus.RUNNING.value:
        return status, None
    if warn_ms is None:
        return ClockState.ON_TIME.value, None
    overdue_from = None if due_ms is None else due_ms + 1   # the due instant itself is still on time
    if esc_ms is not None and esc_ms <= now_ms:
        return ClockState.SUPERVISE.value, None
    if overdue_from is not None and overdue_from <= now_ms:
        return ClockState.OVERDUE.value, esc_ms
    ends = [m for m in (overdue_from, esc_ms) if m is not None]
    if warn_ms <= now_ms:
        return ClockState.WARNING.value, min(ends) if ends else None
    return ClockState.ON_TIME.value, min([warn_ms, *ends])


def _state_at(now_ms: int) -> Any:
    """A clock row's state at `now_ms` in SQL (NULL for a stopped clock); `_phase` in Python."""
    h = hop_deadline
    return case(
        (h.c.status == ClockStatus.STOPPED.value, literal(None, String)),
        (h.c.status != ClockStatus.RUNNING.value, h.c.status),
        (h.c.warn_at_ms.is_(None), literal(ClockState.ON_TIME.value)),
        (h.c.escalate_at_ms <= now_ms, literal(ClockState.SUPERVISE.value)),
        (h.c.due_at_ms < now_ms, literal(ClockState.OVERDUE.value)),
        (h.c.warn_at_ms <= now_ms, literal(ClockState.WARNING.value)),
        else_=literal(ClockState.ON_TIME.value),
    )


_CLOCK_COLUMNS = ("matter_id", "hop", "responsible", "status", "limit_text", "statutory_text", "clock_json",
                  "warn_at_ms", "due_at_ms", "escalate_at_ms", "fired_level", "next_fire_at_ms", "rules_fp", "version",
                  "updated_at_ms", "phase", "phase_until_ms")


# What a clock row reads as (the counting columns are the store's own business).
_ROW_COLUMNS = [c for c in hop_deadline.c if c.name not in ("phase", "phase_until_ms")]


def _has_kept_counts(engine: Engine) -> bool:
    from sqlalchemy import inspect

    inspector = inspect(engine)
    if not inspector.has_table("hop_deadline"):
        return True   # `create_schema` will make the tables as they are now
    return "phase" in {c["name"] for c in inspector.get_columns("hop_deadline")}


def _count_changes(changes: dict[tuple[str, str], int], hop: str, old: str | None, new: str | None) -> None:
    if old == new:
        return
    if old is not None:
        changes[(hop, old)] = changes.get((hop, old), 0) - 1
    if new is not None:
        changes[(hop, new)] = changes.get((hop, new), 0) + 1


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    """The calendar and thresholds instants are computed under, and their fingerprint (kept per row)."""

    calendar: WorkingCalendar
    thresholds: Thresholds
    fp: str

    @classmethod
    def of(cls, calendar: WorkingCalendar, thresholds: Thresholds) -> "_Rules":
        return cls(calendar, thresholds, f"{calendar.fingerprint[:40]}|{thresholds.to_text()}"[:64])


class DeadlineStore:
    """Reads and writes the deadline tables for one calendar and set of thresholds.

    Methods that change data accept an optional `conn` so a caller can write the clock (or a
    notification) in the same transaction as its own business change; without one they open and
    commit their own transaction."""

    def __init__(self, engine: Engine, calendar: WorkingCalendar, thresholds: Thresholds = Thresholds()) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise DeadlineStoreError("期限表只支持 SQLite 和 PostgreSQL")
        self._rules = _Rules.of(calendar, thresholds)
        # A database still at a revision before the kept counts (only ever opened so by the tests of
        # upgrades, which run this code on an old schema): clocks are saved without them and
        # `clock_counts` scans instead.
        self._kept_counts = _has_kept_counts(engine)

    @property
    def rules_fp(self) -> str:
        return self._rules.fp

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def calendar(self) -> WorkingCalendar:
        return self._rules.calendar

    def use_calendar(self, calendar: WorkingCalendar) -> None:
        """Count on a new calendar from now on (a county override file uploaded while running). Saved
        instants under the old rules are then stale; `recompute_stale` brings them over. The calendar
        and its fingerprint change in one assignment, so a clock saved meanwhile by another thread is
        computed and labelled under one set of rules, never a mix."""
        self._rules = _Rules.of(calendar, self._rules.thresholds)

    @property
    def thresholds(self) -> Thresholds:
        return self._rules.thresholds

    def create_schema(self) -> None:
        create_schema(self._engine)

    # -- helpers -----------------------------------------------------------------------------

    def _insert(self, table: Table) -> Any:
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def _run(self, conn: Connection | None, fn: Any) -> Any:
        try:
            if conn is not None:
                return fn(conn)
            with self._engine.begin() as own:
                return fn(own)
        except SQLAlchemyError as exc:
            raise DeadlineStoreError(f"期限表读写失败：{exc.__class__.__name__}") from exc

    def _locking(self, query: Any, *, skip_locked: bool) -> Any:
        # SQLite has no row locks; BEGIN IMMEDIATE already serializes writers.
        if self._dialect == "postgresql":
            return query.with_for_update(skip_locked=skip_locked)
        return query

    # -- clocks ------------------------------------------------------------------------------

    def save_clock(
        self,
        matter_id: str,
        hop: str,
        clock: HopClock,
        *,
        now: dt.datetime,
        responsible: str | None = None,
        conn: Connection | None = None,
    ) -> Deadlines | None:
        """Insert or update one hop's clock and its precomputed instants. Levels that already fired
        stay fired (each fires once per (matter, hop, level), even if an extension later moves the
        deadline). Returns the running clock's deadlines, or None."""
        for name, value in (("matter_id", matter_id), ("hop", hop), ("responsible", responsible or "x")):
            if not value or len(value) > 64:
                raise DeadlineStoreError(f"{name} 应为1到64个字符")
        rules = self._rules
        instants = _instants(clock, rules.calendar, rules.thresholds)
        marks = clock.deadlines(rules.calendar, rules.thresholds)
        values: dict[str, Any] = {
            "status": clock.status.value,
            "limit_text": clock.limit.to_text(),
            "statutory_text": clock.statutory.to_text(),
            "clock_json": json.dumps(clock.to_json_dict(), ensure_ascii=False, separators=(",", ":")),
            "rules_fp": rules.fp,
            "updated_at_ms": _now_ms(now),
            **instants,
        }
        t = hop_deadline
        now_ms = _now_ms(now)
        if self._kept_counts:
            values["phase"], values["phase_until_ms"] = _phase(
                values["status"], instants["warn_at_ms"], instants["due_at_ms"], instants["escalate_at_ms"], now_ms)

        def work(c: Connection) -> None:
            inserted = c.execute(
                self._insert(t)
                .values(
                    matter_id=matter_id,
                    hop=hop,
                    responsible=responsible,
                    fired_level=0,
                    version=1,
                    next_fire_at_ms=_next_fire(
                        values["status"], instants["warn_at_ms"], instants["due_at_ms"], instants["escalate_at_ms"], 0
                    ),
                    **values,
                )
                .on_conflict_do_nothing(index_elements=[t.c.matter_id, t.c.hop])
                .returning(t.c.id)
            ).first()
            changes: dict[tuple[str, str], int] = {}
            if inserted is not None:
                _count_changes(changes, hop, None, values.get("phase"))
                self._record_count_changes(c, changes)
                return
            row = c.execute(
                self._locking(
                    select(t.c.id, t.c.fired_level, t.c.phase if self._kept_counts else literal(None).label("phase"))
                    .where(t.c.matter_id == matter_id, t.c.hop == hop),
                    skip_locked=False,
                )
            ).one()
            _count_changes(changes, hop, row.phase, values.get("phase"))
            new_values = dict(values)
            new_values["next_fire_at_ms"] = _next_fire(
                values["status"], instants["warn_at_ms"], instants["due_at_ms"], instants["escalate_at_ms"], row.fired_level
            )
            if responsible is not None:
                new_values["responsible"] = responsible
            c.execute(update(t).where(t.c.id == row.id).values(version=t.c.version + 1, **new_values))
            self._record_count_changes(c, changes)

        self._run(conn, work)
        return marks

    def insert_clocks(self, clocks: Sequence[tuple[str, str, HopClock, dt.datetime]], *,
                      conn: Connection) -> dict[tuple[str, str], int | None]:
        """New clocks of new matters, (matter_id, hop, clock, now) each, in one statement inside the
        caller's transaction (the intake's bulk path); returns each clock's due instant (ms). A
        clock already held for a (matter, hop) is an error (IntegrityError): the caller retries
        those one by one with `save_clock`."""
        if not clocks:
            return {}
        rules = self._rules
        if not self._kept_counts:
            for matter_id, hop, clock, now in clocks:
                self.save_clock(matter_id, hop, clock, now=now, conn=conn)
            return {(m, h): _instants(c, rules.calendar, rules.thresholds)["due_at_ms"] for m, h, c, _ in clocks}
        rows: list[tuple[Any, ...]] = []
        changes: dict[tuple[str, str], int] = {}
        dues: dict[tuple[str, str], int | None] = {}
        # Clocks of one batch often start at the same receipt instant: equal clocks (same JSON)
        # have equal instants, computed once.
        computed: dict[str, dict[str, int | None]] = {}
        for matter_id, hop, clock, now in clocks:
            if not matter_id or len(matter_id) > 64 or not hop or len(hop) > 64:
                raise DeadlineStoreError("matter_id 和 hop 应为1到64个字符")
            clock_json = json.dumps(clock.to_json_dict(), ensure_ascii=False, separators=(",", ":"))
            inst = computed.get(clock_json)
            if inst is None:
                inst = computed[clock_json] = _instants(clock, rules.calendar, rules.thresholds)
            status = clock.status.value
            now_ms = _now_ms(now)
            phase, until = _phase(status, inst["warn_at_ms"], inst["due_at_ms"], inst["escalate_at_ms"], now_ms)
            _count_changes(changes, hop, None, phase)
            dues[(matter_id, hop)] = inst["due_at_ms"]
            rows.append((matter_id, hop, None, status, clock.limit.to_text(), clock.statutory.to_text(), clock_json,
                         inst["warn_at_ms"], inst["due_at_ms"], inst["escalate_at_ms"], 0,
                         _next_fire(status, inst["warn_at_ms"], inst["due_at_ms"], inst["escalate_at_ms"], 0),
                         rules.fp, 1, now_ms, phase, until))
        insert_rows(conn, hop_deadline, _CLOCK_COLUMNS, rows)
        self._record_count_changes(conn, changes)
        return dues

    # -- open clocks by state (what `/metrics` reports) ------------------------------------------

    def _record_count_changes(self, c: Connection, changes: dict[tuple[str, str], int]) -> None:
        if not self._kept_counts:
            return
        rows = [{"hop": hop, "phase": phase, "delta": d} for (hop, phase), d in sorted(changes.items()) if d]
        if rows:
            c.execute(hop_clock_count_change.insert(), rows)

    def fold_counts(self, *, conn: Connection | None = None) -> int:
        """Move the recorded count changes into `hop_clock_count` (run by the deadline watch on each
        scan, so readers add only a short tail). Returns how many change rows were folded."""
        k, ch = hop_clock_count, hop_clock_count_change
        if not self._kept_counts:
            return 0

        def work(c: Connection) -> int:
            if self._dialect == "postgresql":
                # One folder at a time: the lock makes a second one wait and then find the rows gone.
                c.execute(text("LOCK TABLE hop_clock_count IN SHARE ROW EXCLUSIVE MODE"))
            taken = c.execute(ch.delete().returning(ch.c.hop, ch.c.phase, ch.c.delta)).all()
            if not taken:
                return 0
            sums: dict[tuple[str, str], int] = {}
            for hop, phase, delta in taken:
                sums[(hop, phase)] = sums.get((hop, phase), 0) + int(delta)
            held = {(hop, phase): int(n) for hop, phase, n in c.execute(select(k.c.hop, k.c.phase, k.c.n))}
            for (hop, phase), delta in sorted(sums.items()):
                if not delta:
                    continue
                if (hop, phase) in held:
                    c.execute(update(k).where(k.c.hop == hop, k.c.phase == phase).values(n=k.c.n + delta))
                else:
                    c.execute(k.insert().values(hop=hop, phase=phase, n=delta))
            return len(taken)

        return int(self._run(conn, work))

    def advance_phases(self, now: dt.datetime, *, batch_size: int = 2000, conn: Connection | None = None) -> int:
        """Move clocks whose counted state has ended by `now` (time passed a warning, due or 督办
        instant) to the state they are in now, a batch at a time. Returns how many moved."""
        t = hop_deadline
        now_ms = _now_ms(now)
        if not self._kept_counts:
            return 0

        def work(c: Connection) -> int:
            rows = c.execute(
                self._locking(
                    select(t.c.id, t.c.hop, t.c.status, t.c.warn_at_ms, t.c.due_at_ms, t.c.escalate_at_ms, t.c.phase)
                    .where(t.c.phase_until_ms <= now_ms)
                    .order_by(t.c.phase_until_ms)
                    .limit(batch_size),
                    skip_locked=True,
                )
            ).all()
            changes: dict[tuple[str, str], int] = {}
            params = []
            for r in rows:
                phase, until = _phase(r.status, r.warn_at_ms, r.due_at_ms, r.escalate_at_ms, now_ms)
                _count_changes(changes, r.hop, r.phase, phase)
                params.append({"b_id": r.id, "b_phase": phase, "b_until": until})
            if params:
                c.execute(update(t).where(t.c.id == bindparam("b_id"))
                          .values(phase=bindparam("b_phase"), phase_until_ms=bindparam("b_until")), params)
                self._record_count_changes(c, changes)
            return len(rows)

        moved = 0
        while True:
            n = int(self._run(conn, work))
            moved += n
            if n < batch_size:
                return moved

    def load(self, matter_id: str, hop: str, *, conn: Connection | None = None) -> HopDeadlineRow | None:
        t = hop_deadline

        def work(c: Connection) -> HopDeadlineRow | None:
            r = c.execute(select(*_ROW_COLUMNS).where(t.c.matter_id == matter_id, t.c.hop == hop)).first()
            return None if r is None else self._row(r)

        return self._run(conn, work)

    def load_clock(self, matter_id: str, hop: str, *, conn: Connection | None = None) -> HopClock | None:
        row = self.load(matter_id, hop, conn=conn)
        return None if row is None else row.clock

    def _row(self, r: Any) -> HopDeadlineRow:
        return HopDeadlineRow(
            matter_id=r.matter_id,
            hop=r.hop,
            status=ClockStatus(r.status),
            responsible=r.responsible,
            clock=HopClock.from_json_dict(json.loads(r.clock_json)),
            warn_at=_from_ms(r.warn_at_ms),
            due_at=_from_ms(r.due_at_ms),
            escalate_at=_from_ms(r.escalate_at_ms),
            fired_level=ClockState.from_rank(r.fired_level),
        )

    def list_open(self, *, after_id: int = 0, limit: int = 100) -> list[tuple[int, HopDeadlineRow]]:
        """Open clocks in id order, a page at a time (consoles; `after_id` is the last id seen)."""
        t = hop_deadline

        def work(c: Connection) -> list[tuple[int, HopDeadlineRow]]:
            rows = c.execute(
                select(*_ROW_COLUMNS)
                .where(t.c.id > after_id, t.c.status != ClockStatus.STOPPED.value)
                .order_by(t.c.id)
                .limit(min(limit, 1000))
            ).all()
            return [(r.id, self._row(r)) for r in rows]

        return self._run(None, work)

    def recompute_stale(self, now: dt.datetime, *, batch_size: int = 1000) -> int:
        """Recompute the instants of running clocks saved under other rules (a new calendar override
        file, other office hours or thresholds). Walks the table by id; returns how many changed."""
        t = hop_deadline
        kept = self._kept_counts
        last_id = 0
        changed = 0
        now_ms = _now_ms(now)
        rules = self._rules
        while True:

            def work(c: Connection) -> tuple[int, int, int]:
                rows = c.execute(
                    self._locking(
                        select(t.c.id, t.c.hop, t.c.clock_json, t.c.fired_level, t.c.version,
                               t.c.phase if kept else literal(None).label("phase"))
                        .where(
                            t.c.id > last_id,
                            t.c.status == ClockStatus.RUNNING.value,
                            t.c.rules_fp != rules.fp,
                        )
                        .order_by(t.c.id)
                        .limit(batch_size),
                        skip_locked=True,
                    )
                ).all()
                params = []
                counted: dict[tuple[str, str], int] = {}
                for r in rows:
                    clock = HopClock.from_json_dict(json.loads(r.clock_json))
                    inst = _instants(clock, rules.calendar, rules.thresholds)
                    phase, until = _phase(clock.status.value, inst["warn_at_ms"], inst["due_at_ms"],
                                          inst["escalate_at_ms"], now_ms)
                    _count_changes(counted, r.hop, r.phase, phase)
                    params.append(
                        {
                            "b_phase": phase,
                            "b_until": until,
                            "b_id": r.id,
                            "b_version": r.version,
                            "b_warn": inst["warn_at_ms"],
                            "b_due": inst["due_at_ms"],
                            "b_esc": inst["escalate_at_ms"],
                            "b_next": _next_fire(
                                clock.status.value,
                                inst["warn_at_ms"],
                                inst["due_at_ms"],
                                inst["escalate_at_ms"],
                                r.fired_level,
                            ),
                        }
                    )
                if params:
                    c.execute(
                        update(t)
                        .where(t.c.id == bindparam("b_id"), t.c.version == bindparam("b_version"))
                        .values(
                            warn_at_ms=bindparam("b_warn"),
                            due_at_ms=bindparam("b_due"),
                            escalate_at_ms=bindparam("b_esc"),
                            next_fire_at_ms=bindparam("b_next"),
                            **({"phase": bindparam("b_phase"), "phase_until_ms": bindparam("b_until")} if kept else {}),
                            rules_fp=rules.fp,
                            updated_at_ms=now_ms,
                            version=t.c.version + 1,
                        ),
                        params,
                    )
                    self._record_count_changes(c, counted)
                return len(rows), (rows[-1].id if rows else last_id), len(params)

            seen, last_id, n = self._run(None, work)
            changed += n
            if seen < batch_size:
                break
        if changed:
            log.info("按新的工作日历/阈值重算了 %d 个环节的期限", changed)
        return changed

    def copy_due_dates(self, table: Table, hop: str) -> int:
        """Copy each running clock's due instant of `hop` onto a tier's own matter rows (`table` has
        `matter_id` and `due_at_ms`: the inbox, board and 督办 list filter on that copy). Run after
        `recompute_stale` moved instants; returns how many rows changed."""
        h = hop_deadline
        running = (h.c.matter_id == table.c.matter_id) & (h.c.hop == hop) & (h.c.status == ClockStatus.RUNNING.value)
        due = select(h.c.due_at_ms).where(running).scalar_subquery()
        query = (update(table).where(select(h.c.id).where(running).exists(), table.c.due_at_ms.is_distinct_from(due))
                 .values(due_at_ms=due))
        return int(self._run(None, lambda c: c.execute(query).rowcount) or 0)

    # -- firing ------------------------------------------------------------------------------

    def find_due(self, now: dt.datetime, *, limit: int = 500) -> list[DueClock]:
        """The clocks with a level due at `now` (read-only; the scan's query, for benches/consoles)."""
        t = hop_deadline
        now_ms = _now_ms(now)

        def work(c: Connection) -> list[DueClock]:
            rows = c.execute(
                select(t.c.id, t.c.matter_id, t.c.hop, t.c.next_fire_at_ms)
                .where(t.c.next_fire_at_ms <= now_ms)
                .order_by(t.c.next_fire_at_ms)
                .limit(limit)
            ).all()
            return [DueClock(r.id, r.matter_id, r.hop, _from_ms(r.next_fire_at_ms)) for r in rows]  # type: ignore[arg-type]

        return self._run(None, work)

    def next_fire_at(self) -> dt.datetime | None:
        t = hop_deadline
        # ORDER BY … LIMIT 1 with IS NOT NULL so both databases walk the partial index from its
        # start (a bare MIN() does not imply the index's condition and can scan the table).
        query = (
            select(t.c.next_fire_at_ms)
            .where(t.c.next_fire_at_ms.is_not(None))
            .order_by(t.c.next_fire_at_ms)
            .limit(1)
        )
        return self._run(None, lambda c: _from_ms(c.execute(query).scalar()))

    def fire_due(
        self, now: dt.datetime, *, fired_by: str, batch_size: int = 500, max_batches: int = 100
    ) -> list[FiredEvent]:
        """Fire every level that is due at `now` and not yet fired; return what this call fired.

        Each batch is one transaction: the events, their notifications in the outbox, and the
        rows' new `fired_level` / `next_fire_at_ms` commit together or not at all."""
        fired: list[FiredEvent] = []
        for _ in range(max_batches):
            seen, events = self._run(None, lambda c: self._fire_batch(c, now, fired_by, batch_size))
            fired.extend(events)
            if seen < batch_size:
                break
        return fired

    def _fire_batch(
        self, c: Connection, now: dt.datetime, fired_by: str, batch_size: int
    ) -> tuple[int, list[FiredEvent]]:
        t, e = hop_deadline, deadline_event
        now_ms = _now_ms(now)
        rows = c.execute(
            self._locking(
                select(
                    t.c.id,
                    t.c.matter_id,
                    t.c.hop,
                    t.c.status,
                    t.c.responsible,
                    t.c.warn_at_ms,
                    t.c.due_at_ms,
                    t.c.escalate_at_ms,
                    t.c.fired_level,
                    t.c.version,
                )
                .where(t.c.next_fire_at_ms <= now_ms)
                .order_by(t.c.next_fire_at_ms)
                .limit(batch_size),
                skip_locked=True,
            )
        ).all()
        if not rows:
            return 0, []
        event_params: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        row_by_key: dict[tuple[str, str], Any] = {}
        for r in rows:
            instants = _level_instants(r.warn_at_ms, r.due_at_ms, r.escalate_at_ms)
            due = [
                (rank, inst)
                for rank, inst in sorted(instants.items())
                if rank > r.fired_level and inst is not None and inst <= now_ms
            ]
            top = due[-1][0] if due else r.fired_level
            for rank, inst in due:
                event_params.append(
                    {
                        "matter_id": r.matter_id,
                        "hop": r.hop,
                        "level": _LEVEL_BY_RANK[rank].value,
                        "instant_at_ms": inst,
                        "due_at_ms": r.due_at_ms,
                        "fired_at_ms": now_ms,
                        "fired_by": fired_by[:96],
                        # Only the highest level reached in one scan is announced: a clock found
                        # already 督办 after downtime gets one notice, not three.
                        "notified": rank == top,
                    }
                )
            row_by_key[(r.matter_id, r.hop)] = r
            updates.append(
                {
                    "b_id": r.id,
                    "b_version": r.version,
                    "b_fired": top,
                    "b_next": _next_fire(r.status, r.warn_at_ms, r.due_at_ms, r.escalate_at_ms, top),
                }
            )
        inserted = self._insert_events(c, event_params) if event_params else set()
        fired: list[FiredEvent] = []
        outbox: list[Notification] = []
        for p in event_params:
            key = (p["matter_id"], p["hop"], p["level"])
            if key not in inserted:
                continue  # another process fired it first
            level = ClockState(p["level"])
            due_at = _from_ms(p["due_at_ms"])
            assert due_at is not None
            fired.append(
                FiredEvent(p["matter_id"], p["hop"], level, _from_ms(p["instant_at_ms"]), due_at, now.astimezone(dt.timezone.utc), p["notified"])  # type: ignore[arg-type]
            )
            if p["notified"]:
                r = row_by_key[(p["matter_id"], p["hop"])]
                outbox.extend(
                    deadline_notifications(
                        matter_id=p["matter_id"],
                        hop=p["hop"],
                        level=level,
                        due_at=due_at,
                        responsible=r.responsible,
                        supervise_working_days=self._rules.thresholds.supervise_working_days,
                    )
                )
        if outbox:
            self._enqueue(c, outbox, now_ms)
        self._update_fired(c, updates)
        return len(rows), fired

    # Batched writes. SQLite takes SQLAlchemy's multi-row VALUES; on PostgreSQL one statement over
    # unnest(arrays) is several times faster than a 500-row VALUES list, whose text the driver
    # would parse on every call.

    def _insert_events(self, c: Connection, params: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        e = deadline_event
        if self._dialect == "postgresql":
            result = c.execute(
                text(
                    "INSERT INTO deadline_event (matter_id, hop, level, instant_at_ms, due_at_ms, fired_at_ms,"
                    " fired_by, notified) "
                    "SELECT * FROM unnest(CAST(:m AS varchar[]), CAST(:h AS varchar[]), CAST(:l AS varchar[]),"
                    " CAST(:i AS bigint[]), CAST(:d AS bigint[]), CAST(:f AS bigint[]), CAST(:b AS varchar[]),"
                    " CAST(:n AS boolean[])) "
                    "ON CONFLICT (matter_id, hop, level) DO NOTHING RETURNING matter_id, hop, level"
                ),
                {
                    "m": [p["matter_id"] for p in params],
                    "h": [p["hop"] for p in params],
                    "l": [p["level"] for p in params],
                    "i": [p["instant_at_ms"] for p in params],
                    "d": [p["due_at_ms"] for p in params],
                    "f": [p["fired_at_ms"] for p in params],
                    "b": [p["fired_by"] for p in params],
                    "n": [p["notified"] for p in params],
                },
            )
        else:
            result = c.execute(
                self._insert(e)
                .on_conflict_do_nothing(index_elements=[e.c.matter_id, e.c.hop, e.c.level])
                .returning(e.c.matter_id, e.c.hop, e.c.level),
                params,
            )
        return {(m, h, lv) for m, h, lv in result.all()}

    def _update_fired(self, c: Connection, updates: list[dict[str, Any]]) -> None:
        t = hop_deadline
        if not updates:
            return
        if self._dialect == "postgresql":
            c.execute(
                text(
                    "UPDATE hop_deadline AS h SET fired_level = v.fired, next_fire_at_ms = v.next "
                    "FROM unnest(CAST(:ids AS bigint[]), CAST(:versions AS integer[]), CAST(:fired AS smallint[]),"
                    " CAST(:next AS bigint[])) AS v(id, version, fired, next) "
                    "WHERE h.id = v.id AND h.version = v.version"
                ),
                {
                    "ids": [u["b_id"] for u in updates],
                    "versions": [u["b_version"] for u in updates],
                    "fired": [u["b_fired"] for u in updates],
                    "next": [u["b_next"] for u in updates],
                },
            )
            return
        c.execute(
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.version == bindparam("b_version"))
            .values(fired_level=bindparam("b_fired"), next_fire_at_ms=bindparam("b_next")),
            updates,
        )

    def events(
        self,
        *,
        after_id: int = 0,
        level: ClockState | None = None,
        matter_id: str | None = None,
        limit: int = 500,
    ) -> list[tuple[int, FiredEvent]]:
        """Fired events in id order from `after_id` (a reader's cursor, e.g. the code that turns 督办
        events into signed records catches up from its last id)."""
        e = deadline_event

        def work(c: Connection) -> list[tuple[int, FiredEvent]]:
            q = select(e).where(e.c.id > after_id).order_by(e.c.id).limit(min(limit, 5000))
            if level is not None:
                q = q.where(e.c.level == level.value)
            if matter_id is not None:
                q = q.where(e.c.matter_id == matter_id)
            return [
                (
                    r.id,
                    FiredEvent(
                        r.matter_id,
                        r.hop,
                        ClockState(r.level),
                        _from_ms(r.instant_at_ms),  # type: ignore[arg-type]
                        _from_ms(r.due_at_ms),  # type: ignore[arg-type]
                        _from_ms(r.fired_at_ms),  # type: ignore[arg-type]
                        bool(r.notified),
                    ),
                )
                for r in c.execute(q).all()
            ]

        return self._run(None, work)

    # -- outbox (implements notify.OutboxPort) -----------------------------------------------

    def _enqueue(self, c: Connection, notifications: Sequence[Notification], now_ms: int) -> int:
        o = notification_outbox
        params = [
            {
                "idempotency_key": n.idempotency_key,
                "kind": n.kind.value,
                "audience": n.audience.value,
                "payload_json": json.dumps(n.to_json_dict(), ensure_ascii=False, separators=(",", ":")),
                "status": "pending",
                "attempts": 0,
                "created_at_ms": now_ms,
                "next_attempt_at_ms": now_ms,
            }
            for n in notifications
        ]
        if self._dialect == "postgresql" and len(params) > 1:
            # JSON payloads are costly to escape into a text[] literal; a pipelined executemany of
            # one short statement is faster. Batches only come from the scan, which needs no count.
            c.exec_driver_sql(
                "INSERT INTO notification_outbox (idempotency_key, kind, audience, payload_json, status, attempts,"
                " created_at_ms, next_attempt_at_ms) VALUES (%s, %s, %s, %s, 'pending', 0, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                [(p["idempotency_key"], p["kind"], p["audience"], p["payload_json"], now_ms, now_ms) for p in params],
            )
            return len(params)
        result = c.execute(
            self._insert(o).on_conflict_do_nothing(index_elements=[o.c.idempotency_key]).returning(o.c.id), params
        )
        return len(result.all())

    def enqueue_notification(
        self, notification: Notification, *, now: dt.datetime, conn: Connection | None = None
    ) -> bool:
        """Put a notification in the outbox (pass `conn` to share the caller's transaction).
        Returns False when one with the same idempotency key is already there."""
        return bool(self._run(conn, lambda c: self._enqueue(c, [notification], _now_ms(now))))

    def claim_notifications(
        self, now: dt.datetime, *, limit: int, lease_after: dt.timedelta, owner: str
    ) -> list[OutboxItem]:
        o = notification_outbox
        now_ms = _now_ms(now)
        lease_ms = now_ms + int(lease_after.total_seconds() * 1000)

        def work(c: Connection) -> list[OutboxItem]:
            rows = c.execute(
                self._locking(
                    select(o.c.id, o.c.payload_json, o.c.attempts)
                    .where(o.c.status == "pending", o.c.next_attempt_at_ms <= now_ms)
                    .order_by(o.c.next_attempt_at_ms)
                    .limit(limit),
                    skip_locked=True,
                )
            ).all()
            if not rows:
                return []
            c.execute(
                update(o)
                .where(o.c.id.in_([r.id for r in rows]))
                .values(lease_owner=owner[:96], next_attempt_at_ms=lease_ms, attempts=o.c.attempts + 1)
            )
            return [
                OutboxItem(r.id, Notification.from_json_dict(json.loads(r.payload_json)), r.attempts + 1) for r in rows
            ]

        return self._run(None, work)

    def mark_sent(self, item_id: int, *, owner: str, now: dt.datetime) -> None:
        o = notification_outbox
        self._run(
            None,
            lambda c: c.execute(
                update(o)
                .where(o.c.id == item_id, o.c.status == "pending")
                .values(status="sent", sent_at_ms=_now_ms(now), next_attempt_at_ms=None, lease_owner=owner[:96])
            ),
        )

    def mark_retry(self, item_id: int, *, owner: str, now: dt.datetime, retry_at: dt.datetime, reason: str) -> None:
        o = notification_outbox
        self._run(
            None,
            lambda c: c.execute(
                update(o)
                .where(o.c.id == item_id, o.c.status == "pending", o.c.lease_owner == owner[:96])
                .values(next_attempt_at_ms=_now_ms(retry_at), lease_owner=None, last_error=reason[:200])
            ),
        )

    def mark_rejected(self, item_id: int, *, owner: str, now: dt.datetime, reason: str) -> None:
        o = notification_outbox
        self._run(
            None,
            lambda c: c.execute(
                update(o)
                .where(o.c.id == item_id, o.c.status == "pending")
                .values(status="rejected", next_attempt_at_ms=None, lease_owner=owner[:96], last_error=reason[:200])
            ),
        )

    def forget_recipient(self, item_id: int) -> None:
        """An applicant's mobile number leaves a row once the gateway took (or finally refused) it: the
        row keeps the masked number for the record. SQLite zeroes the freed bytes (secure_delete) so
        the old row cannot be read back from the file."""
        o = notification_outbox

        def work(c: Connection) -> None:
            if c.dialect.name == "sqlite":
                c.exec_driver_sql("PRAGMA secure_delete=ON")
            row = c.execute(select(o.c.payload_json).where(o.c.id == item_id, o.c.status.in_(("sent", "rejected")))).first()
            if row is None:
                return
            payload = json.loads(row.payload_json)
            if payload.get("audience") != "applicant":
                return
            payload["recipient"] = mask_phone(str(payload.get("recipient", "")))
            c.execute(update(o).where(o.c.id == item_id).values(
                payload_json=json.dumps(payload, ensure_ascii=False, separators=(",", ":"))))

        self._run(None, work)
        self._truncate_wal()

    def _truncate_wal(self) -> None:
        """The row as queued (with the number) lives on in the SQLite write-ahead log until that is
        checkpointed and cut back: done here on a connection of its own, waiting at most a few seconds
        for readers. Best effort: when busy, the next forgotten number tries again."""
        if self._engine.dialect.name != "sqlite" or not self._engine.url.database:
            return
        try:
            with sqlite3.connect(self._engine.url.database, timeout=3) as raw:
                busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            raw.close()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint after forgetting a number failed: %s", exc.__class__.__name__)
            return
        if busy:
            log.info("WAL checkpoint after forgetting a number was busy; retried with the next one")

    def next_notification_at(self) -> dt.datetime | None:
        o = notification_outbox
        return self._run(
            None,
            lambda c: _from_ms(
                c.execute(
                    select(o.c.next_attempt_at_ms)
                    .where(o.c.status == "pending", o.c.next_attempt_at_ms.is_not(None))
                    .order_by(o.c.next_attempt_at_ms)
                    .limit(1)
                ).scalar()
            ),
        )

    def clock_counts(self, now: dt.datetime, *, conn: Connection | None = None) -> dict[tuple[str, str], int]:
        """Open hop clocks by (hop, state) at `now`: running ones as on_time / warning / overdue /
        supervise (mutually exclusive), the others by status (waiting, suspended).

        Read from the kept counts (`hop_clock_count` plus the changes not yet folded), corrected
        for the clocks whose counted state time has ended since (`phase_until_ms <= now`, an index
        range, small when the deadline watch runs): no scan of `hop_deadline`."""
        k, ch, t = hop_clock_count, hop_clock_count_change, hop_deadline
        if not self._kept_counts:
            return self.clock_counts_scanned(now, conn=conn)
        now_ms = _now_ms(now)
        ended = t.c.phase_until_ms <= now_ms
        # One statement, so PostgreSQL reads all parts in one snapshot (a fold or an advance
        # committing in between can neither be counted twice nor missed).
        query = union_all(
            select(k.c.hop, k.c.phase, k.c.n),
            select(ch.c.hop, ch.c.phase, func.sum(ch.c.delta)).group_by(ch.c.hop, ch.c.phase),
            select(t.c.hop, t.c.phase, literal(-1)).where(ended),
            select(t.c.hop, _state_at(now_ms), literal(1)).where(ended),
        )

        def work(c: Connection) -> dict[tuple[str, str], int]:
            counts: dict[tuple[str, str], int] = {}
            for hop, phase, n in c.execute(query):
                if phase is not None:
                    counts[(hop, phase)] = counts.get((hop, phase), 0) + int(n or 0)
            return {key: n for key, n in counts.items() if n}

        return self._run(conn, work)

    def clock_counts_scanned(self, now: dt.datetime, *, conn: Connection | None = None) -> dict[tuple[str, str], int]:
        """`clock_counts` by one grouped scan of every open clock: the reference the kept counts
        are tested and benchmarked against."""
        h = hop_deadline
        state = _state_at(_now_ms(now)).label("state")
        query = (select(h.c.hop, state, func.count()).where(h.c.status != ClockStatus.STOPPED.value)
                 .group_by(h.c.hop, state))
        return self._run(conn, lambda c: {(hop, st): int(n) for hop, st, n in c.execute(query).all()})

    def outbox_counts(self, *, conn: Connection | None = None) -> dict[str, int]:
        o = notification_outbox
        return self._run(
            conn,
            lambda c: {s: n for s, n in c.execute(select(o.c.status, func.count()).group_by(o.c.status)).all()},
        )

