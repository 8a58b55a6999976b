"""Firing: finding the clocks with a level due, and firing each warning, overdue and 督办 exactly once.

A batch is one transaction: the `deadline_event` rows (UNIQUE per matter, hop and level, inserted
with ON CONFLICT DO NOTHING, which is the exactly-once guarantee across restarts and processes),
their notifications in the outbox, and the clocks' new `fired_level` / `next_fire_at_ms`."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, text, update

from shared.deadline_watch.access import TableAccess
from shared.deadline_watch.instants import _LEVEL_BY_RANK, _at_ms, _from_ms, _level_instants, _next_fire, _now_ms
from shared.deadline_watch.notify import Notification, deadline_notifications
from shared.deadline_watch.outbox import NotificationOutbox
from shared.deadline_watch.tables import deadline_event, hop_deadline
from shared.domain.deadlines import ClockState

__all__ = ["FiredEvent", "DueClock", "Firing"]



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
class DueClock:
    """A row the scan found due (read-only view, used by `find_due`)."""

    id: int
    matter_id: str
    hop: str
    next_fire_at: dt.datetime


class Firing:
    """Finds and fires due levels; the notifications they cause go to `outbox` in the same batch."""

    def __init__(self, db: TableAccess, outbox: NotificationOutbox) -> None:
        self._db = db
        self._outbox = outbox

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
            return [DueClock(r.id, r.matter_id, r.hop, _at_ms(r.next_fire_at_ms)) for r in rows]

        return self._db.run(None, work)

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
        return self._db.run(None, lambda c: _from_ms(c.execute(query).scalar()))

    def fire_due(
        self, now: dt.datetime, *, fired_by: str, batch_size: int = 500, max_batches: int = 100
    ) -> list[FiredEvent]:
        """Fire every level that is due at `now` and not yet fired; return what this call fired.

        Each batch is one transaction: the events, their notifications in the outbox, and the
        rows' new `fired_level` / `next_fire_at_ms` commit together or not at all."""
        fired: list[FiredEvent] = []
        for _ in range(max_batches):
            seen, events = self._db.run(None, lambda c: self._fire_batch(c, now, fired_by, batch_size))
            fired.extend(events)
            if seen < batch_size:
                break
        return fired

    def _fire_batch(
        self, c: Connection, now: dt.datetime, fired_by: str, batch_size: int
    ) -> tuple[int, list[FiredEvent]]:
        t = hop_deadline
        now_ms = _now_ms(now)
        rows = c.execute(
            self._db.locking(
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
            due_at = _at_ms(p["due_at_ms"])
            fired.append(
                FiredEvent(p["matter_id"], p["hop"], level, _at_ms(p["instant_at_ms"]), due_at,
                           now.astimezone(dt.UTC), p["notified"])
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
                        supervise_working_days=self._db.rules.thresholds.supervise_working_days,
                    )
                )
        if outbox:
            self._outbox.enqueue(c, outbox, now_ms)
        self._update_fired(c, updates)
        return len(rows), fired

    # Batched writes. SQLite takes SQLAlchemy's multi-row VALUES; on PostgreSQL one statement over
    # unnest(arrays) is several times faster than a 500-row VALUES list, whose text the driver
    # would parse on every call.

    def _insert_events(self, c: Connection, params: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        e = deadline_event
        if self._db.dialect == "postgresql":
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
                self._db.insert(e)
                .on_conflict_do_nothing(index_elements=[e.c.matter_id, e.c.hop, e.c.level])
                .returning(e.c.matter_id, e.c.hop, e.c.level),
                params,
            )
        return {(m, h, lv) for m, h, lv in result.all()}

    def _update_fired(self, c: Connection, updates: list[dict[str, Any]]) -> None:
        t = hop_deadline
        if not updates:
            return
        if self._db.dialect == "postgresql":
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
                        _at_ms(r.instant_at_ms),
                        _at_ms(r.due_at_ms),
                        _at_ms(r.fired_at_ms),
                        bool(r.notified),
                    ),
                )
                for r in c.execute(q).all()
            ]

        return self._db.run(None, work)

