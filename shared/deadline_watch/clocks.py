"""Hop clocks in `hop_deadline`: saving one (or a batch of new ones) with its precomputed instants,
reading them back, and bringing instants over to new rules (calendar, thresholds)."""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, literal, select, update

from shared.bulk import insert_rows
from shared.deadline_watch.access import TableAccess
from shared.deadline_watch.counts import ClockCounts
from shared.deadline_watch.errors import DeadlineStoreError
from shared.deadline_watch.instants import _count_changes, _from_ms, _instants, _next_fire, _now_ms, _phase
from shared.deadline_watch.tables import hop_deadline
from shared.domain.deadlines import ClockState, ClockStatus, Deadlines, HopClock

__all__ = ["HopDeadlineRow", "ClockTable"]

# Keeps the logger name the store had before it was split, so log filters stay as they were.
log = logging.getLogger(__name__)

_CLOCK_COLUMNS = ("matter_id", "hop", "responsible", "status", "limit_text", "statutory_text", "clock_json",
                  "warn_at_ms", "due_at_ms", "escalate_at_ms", "fired_level", "next_fire_at_ms", "rules_fp", "version",
                  "updated_at_ms", "phase", "phase_until_ms")


# What a clock row reads as (the counting columns are the store's own business).
_ROW_COLUMNS = [c for c in hop_deadline.c if c.name not in ("phase", "phase_until_ms")]


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



class ClockTable:
    """Reads and writes hop clocks; every change to an open clock's counted state goes to `counts`
    in the same transaction."""

    def __init__(self, db: TableAccess, counts: ClockCounts) -> None:
        self._db = db
        self._counts = counts

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
        rules = self._db.rules
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
        if self._db.kept_counts:
            values["phase"], values["phase_until_ms"] = _phase(
                values["status"], instants["warn_at_ms"], instants["due_at_ms"], instants["escalate_at_ms"], now_ms)

        def work(c: Connection) -> None:
            inserted = c.execute(
                self._db.insert(t)
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
                self._counts.record_changes(c, changes)
                return
            row = c.execute(
                self._db.locking(
                    select(t.c.id, t.c.fired_level, t.c.phase if self._db.kept_counts else literal(None).label("phase"))
                    .where(t.c.matter_id == matter_id, t.c.hop == hop),
                    skip_locked=False,
                )
            ).one()
            _count_changes(changes, hop, row.phase, values.get("phase"))
            new_values = dict(values)
            new_values["next_fire_at_ms"] = _next_fire(
                values["status"], instants["warn_at_ms"], instants["due_at_ms"], instants["escalate_at_ms"],
                row.fired_level,
            )
            if responsible is not None:
                new_values["responsible"] = responsible
            c.execute(update(t).where(t.c.id == row.id).values(version=t.c.version + 1, **new_values))
            self._counts.record_changes(c, changes)

        self._db.run(conn, work)
        return marks

    def insert_clocks(self, clocks: Sequence[tuple[str, str, HopClock, dt.datetime]], *,
                      conn: Connection) -> dict[tuple[str, str], int | None]:
        """New clocks of new matters, (matter_id, hop, clock, now) each, in one statement inside the
        caller's transaction (the intake's bulk path); returns each clock's due instant (ms). A
        clock already held for a (matter, hop) is an error (IntegrityError): the caller retries
        those one by one with `save_clock`."""
        if not clocks:
            return {}
        rules = self._db.rules
        if not self._db.kept_counts:
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
        self._counts.record_changes(conn, changes)
        return dues


    def load(self, matter_id: str, hop: str, *, conn: Connection | None = None) -> HopDeadlineRow | None:
        t = hop_deadline

        def work(c: Connection) -> HopDeadlineRow | None:
            r = c.execute(select(*_ROW_COLUMNS).where(t.c.matter_id == matter_id, t.c.hop == hop)).first()
            return None if r is None else self._row(r)

        return self._db.run(conn, work)

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

        return self._db.run(None, work)

    def recompute_stale(self, now: dt.datetime, *, batch_size: int = 1000) -> int:
        """Recompute the instants of running clocks saved under other rules (a new calendar override
        file, other office hours or thresholds). Walks the table by id; returns how many changed."""
        t = hop_deadline
        kept = self._db.kept_counts
        last_id = 0
        changed = 0
        now_ms = _now_ms(now)
        rules = self._db.rules
        while True:

            # `after_id` is bound now: each batch reads on from where the previous one ended.
            def work(c: Connection, after_id: int = last_id) -> tuple[int, int, int]:
                rows = c.execute(
                    self._db.locking(
                        select(t.c.id, t.c.hop, t.c.clock_json, t.c.fired_level, t.c.version,
                               t.c.phase if kept else literal(None).label("phase"))
                        .where(
                            t.c.id > after_id,
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
                    self._counts.record_changes(c, counted)
                return len(rows), (rows[-1].id if rows else after_id), len(params)

            seen, last_id, n = self._db.run(None, work)
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
        return int(self._db.run(None, lambda c: c.execute(query).rowcount) or 0)
