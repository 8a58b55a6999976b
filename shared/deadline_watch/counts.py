"""Open hop clocks by state, the figures `/metrics` reports, kept as clocks change.

Writers only append to `hop_clock_count_change` (no hot row that every clock save would lock);
`fold_counts` moves those changes into `hop_clock_count`, `advance_phases` moves clocks whose counted
state time has ended, and a reader adds the parts in one statement. `clock_counts_scanned` is the
reference the kept counts are tested and benchmarked against."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, String, bindparam, case, func, literal, select, text, union_all, update

from shared.deadline_watch.access import TableAccess
from shared.deadline_watch.instants import _count_changes, _now_ms, _phase
from shared.deadline_watch.tables import hop_clock_count, hop_clock_count_change, hop_deadline
from shared.domain.deadlines import ClockState, ClockStatus

__all__ = ["ClockCounts"]


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


class ClockCounts:
    """The kept counts of open clocks by (hop, state)."""

    def __init__(self, db: TableAccess) -> None:
        self._db = db

    def record_changes(self, c: Connection, changes: dict[tuple[str, str], int]) -> None:
        if not self._db.kept_counts:
            return
        rows = [{"hop": hop, "phase": phase, "delta": d} for (hop, phase), d in sorted(changes.items()) if d]
        if rows:
            c.execute(hop_clock_count_change.insert(), rows)

    def fold_counts(self, *, conn: Connection | None = None) -> int:
        """Move the recorded count changes into `hop_clock_count` (run by the deadline watch on each
        scan, so readers add only a short tail). Returns how many change rows were folded."""
        k, ch = hop_clock_count, hop_clock_count_change
        if not self._db.kept_counts:
            return 0

        def work(c: Connection) -> int:
            if self._db.dialect == "postgresql":
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

        return int(self._db.run(conn, work))

    def advance_phases(self, now: dt.datetime, *, batch_size: int = 2000, conn: Connection | None = None) -> int:
        """Move clocks whose counted state has ended by `now` (time passed a warning, due or 督办
        instant) to the state they are in now, a batch at a time. Returns how many moved."""
        t = hop_deadline
        now_ms = _now_ms(now)
        if not self._db.kept_counts:
            return 0

        def work(c: Connection) -> int:
            rows = c.execute(
                self._db.locking(
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
                self.record_changes(c, changes)
            return len(rows)

        moved = 0
        while True:
            n = int(self._db.run(conn, work))
            moved += n
            if n < batch_size:
                return moved

    def clock_counts(self, now: dt.datetime, *, conn: Connection | None = None) -> dict[tuple[str, str], int]:
        """Open hop clocks by (hop, state) at `now`: running ones as on_time / warning / overdue /
        supervise (mutually exclusive), the others by status (waiting, suspended).

        Read from the kept counts (`hop_clock_count` plus the changes not yet folded), corrected
        for the clocks whose counted state time has ended since (`phase_until_ms <= now`, an index
        range, small when the deadline watch runs): no scan of `hop_deadline`."""
        k, ch, t = hop_clock_count, hop_clock_count_change, hop_deadline
        if not self._db.kept_counts:
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

        return self._db.run(conn, work)

    def clock_counts_scanned(self, now: dt.datetime, *, conn: Connection | None = None) -> dict[tuple[str, str], int]:
        """`clock_counts` by one grouped scan of every open clock: the reference the kept counts
        are tested and benchmarked against."""
        h = hop_deadline
        state = _state_at(_now_ms(now)).label("state")
        query = (select(h.c.hop, state, func.count()).where(h.c.status != ClockStatus.STOPPED.value)
                 .group_by(h.c.hop, state))
        return self._db.run(conn, lambda c: {(hop, st): int(n) for hop, st, n in c.execute(query).all()})
