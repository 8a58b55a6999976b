"""What every part of the deadline store shares: the engine and its dialect, the rules instants are
computed under, whether the database has the kept counts, and the one way a part runs its work
(in the caller's transaction, or in one of its own, with driver errors wrapped)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from shared.calendar import WorkingCalendar
from shared.deadline_watch.errors import DeadlineStoreError
from shared.deadline_watch.instants import _Rules
from shared.domain.deadlines import Thresholds

__all__ = ["TableAccess"]

T = TypeVar("T")


def _has_kept_counts(engine: Engine) -> bool:
    inspector = inspect(engine)
    if not inspector.has_table("hop_deadline"):
        return True   # `create_schema` will make the tables as they are now
    return "phase" in {c["name"] for c in inspector.get_columns("hop_deadline")}


class TableAccess:
    """The engine and rules one `DeadlineStore` works under, shared by its clocks, counts, firing and
    outbox parts. `rules` is replaced whole by `use_calendar`, so a part that reads it once per call
    computes under one set of rules, never a mix."""

    def __init__(self, engine: Engine, calendar: WorkingCalendar, thresholds: Thresholds) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise DeadlineStoreError("期限表只支持 SQLite 和 PostgreSQL")
        self.rules = _Rules.of(calendar, thresholds)
        # A database still at a revision before the kept counts (only ever opened so by the tests of
        # upgrades, which run this code on an old schema): clocks are saved without them and
        # `clock_counts` scans instead.
        self.kept_counts = _has_kept_counts(engine)

    def insert(self, table: Table) -> Any:
        # Both dialects' INSERT offer ON CONFLICT DO NOTHING and RETURNING, which the store relies on.
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def run(self, conn: Connection | None, fn: Callable[[Connection], T]) -> T:
        try:
            if conn is not None:
                return fn(conn)
            with self.engine.begin() as own:
                return fn(own)
        except SQLAlchemyError as exc:
            raise DeadlineStoreError(f"期限表读写失败：{exc.__class__.__name__}") from exc

    def locking(self, query: Any, *, skip_locked: bool) -> Any:
        # SQLite has no row locks; BEGIN IMMEDIATE already serializes writers.
        if self.dialect == "postgresql":
            return query.with_for_update(skip_locked=skip_locked)
        return query
