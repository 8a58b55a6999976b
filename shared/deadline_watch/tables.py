"""The deadline tables. Deadlines live here, not in the scheduler (docs/ARCHITECTURE.md, invariant 9).

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

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from shared.db import is_sqlite
from shared.db import make_engine as _make_engine
from shared.deadline_watch.errors import DeadlineStoreError
from shared.errors import SettingError

__all__ = [
    "metadata",
    "hop_deadline",
    "deadline_event",
    "notification_outbox",
    "hop_clock_count",
    "hop_clock_count_change",
    "make_engine",
    "create_schema",
]

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
    # An applicant's number is never here in clear: the JSON holds it masked, `sealed_recipient` sealed
    # to the tier's key until the gateway is done with it (`sealed_recipient` module).
    Column("payload_json", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending / sent / rejected
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("next_attempt_at_ms", BigInteger),  # also the lease: a claim pushes it forward
    Column("lease_owner", String(96)),
    Column("sent_at_ms", BigInteger),
    Column("last_error", String(200)),
    Column("sealed_recipient", LargeBinary, nullable=True),
    UniqueConstraint("idempotency_key", name="uq_notification_outbox_key"),
    Index(
        "ix_notification_outbox_pending",
        "next_attempt_at_ms",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)


def make_engine(url: str) -> Engine:
    """An engine set up the way the deadline tables need it.

    SQLite: WAL, a 30 s busy timeout, and ``BEGIN IMMEDIATE`` for every writer's transaction, so a
    scan that reads then writes never fails on a snapshot another process has moved past;
    synchronous NORMAL. PostgreSQL: pre-ping, a small pool. Both hide bound parameters: errors
    must not carry personal data into logs. Engines made elsewhere work too if they follow the
    same rules."""
    try:
        return _make_engine(url, synchronous="NORMAL", busy_timeout_ms=30_000, hide_parameters=True,
                            pool_size=None if is_sqlite(url) else 5)
    except SettingError as exc:
        raise DeadlineStoreError("期限表只支持 SQLite 和 PostgreSQL") from exc


def create_schema(engine: Engine) -> None:
    """Create the three tables if missing. Run once from one process (bootstrap / migration), not
    from two processes at the same moment."""
    try:
        metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise DeadlineStoreError(f"无法创建期限表：{exc.__class__.__name__}") from exc
