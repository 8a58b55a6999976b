"""The township comparison's timeliness figures, kept per (day and month, township, hop) as the
townships' status updates arrive, in the transaction that stores the update: the comparison then sums
a few rows per township instead of reading every tracked matter (docs/performance.md, county pages).

A tracked matter's hops (as the township signed them) contribute:
- `received` on the day a hop started;
- `completed`, `on_time` or `late`, and its office time, on the day it stopped;
- `late_open`: +1 from the first midnight after it was both started and past its deadline, -1 from
  the first midnight after it stopped. Summed up to a period's end, that is how many hops were open
  past their deadline at that instant;
- a `tracked_open_hop` row while it may still be open past its deadline at the county's "now" (the
  current period's figures end now, not at a midnight).

A new status update takes the old one's contribution off and adds its own (`replace_matter`), so the
kept figures always equal a fresh pass over every tracked matter (`rebuild`, which fills them after
the upgrade that added them; office time needs the county's working calendar, which a migration does
not have).
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, insert, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from hub.store.tables import hub_meta, township_hop_figures, tracked_matter, tracked_open_hop
from shared.calendar import WorkingCalendar
from shared.clock import from_unix_ms, to_unix_ms
from shared.domain.evaluation import BEIJING, Period
from shared.wire.v1 import records_pb2

__all__ = ["HOP_OF_TIER", "FIGURES", "HopFigures", "replace_matter", "rebuild", "is_built", "figures", "kept_rows",
           "BUILT_META", "months_of"]

HOP_OF_TIER: dict[int, str] = {records_pb2.TIER_TOWNSHIP: "township", records_pb2.TIER_COUNTY: "county"}
FIGURES = ("received", "completed", "on_time", "late", "office_ms", "late_open")
# In hub_meta: the fingerprint of the working calendar `rebuild` last filled the figures with (office
# time depends on it: a new calendar file means a new pass).
BUILT_META = "township_figures_built"

_Key = tuple[str, str, str, str]         # (grain, bucket, township code, hop)
_Deltas = dict[_Key, dict[str, int]]


@dataclass
class HopFigures:
    """One township's hop over a period: what the comparison shows, before the 好差评 figures."""

    received: int = 0
    completed: int = 0
    on_time: int = 0
    overdue: int = 0              # late when done in the period, or open past its deadline at its end
    office_ms: int = 0            # office time of the hops completed in the period, summed


def _day(ms: int) -> dt.date:
    return from_unix_ms(ms).astimezone(BEIJING).date()


def _add(deltas: _Deltas, day: dt.date, code: str, hop: str, sign: int, **figures: int) -> None:
    for key in (("day", day.isoformat(), code, hop), ("month", f"{day:%Y-%m}", code, hop)):
        row = deltas.setdefault(key, {})
        for name, n in figures.items():
            row[name] = row.get(name, 0) + sign * n


def _contribute(deltas: _Deltas, opened: list[dict[str, object]], code: str, hops: Sequence[dict[str, int]],
                calendar: WorkingCalendar, received_ms: int, sign: int) -> None:
    """What one tracked matter's hops add (`sign` 1) or take off (-1), as `township_comparison` counts."""
    for position, h in enumerate(hops):
        hop = HOP_OF_TIER.get(int(h.get("tier", 0)))
        started = int(h.get("started_at_ms") or 0)
        if hop is None or not started:
            continue
        due, stopped = int(h.get("due_at_ms") or 0), int(h.get("stopped_at_ms") or 0)
        _add(deltas, _day(started), code, hop, sign, received=1)
        if stopped:
            late = bool(due) and stopped > due
            office = calendar.office_time_between(from_unix_ms(started), from_unix_ms(stopped))
            _add(deltas, _day(stopped), code, hop, sign, completed=1, on_time=int(not late), late=int(late),
                 office_ms=office // dt.timedelta(milliseconds=1))
        if not due:
            continue
        late_from = max(started, due)
        late_day = _day(late_from) + dt.timedelta(days=1)
        stop_day = _day(stopped) + dt.timedelta(days=1) if stopped else None
        if stop_day is None or stop_day > late_day:
            _add(deltas, late_day, code, hop, sign, late_open=1)
            if stop_day is not None:
                _add(deltas, stop_day, code, hop, sign, late_open=-1)
        if sign > 0 and (not stopped or stopped >= received_ms):
            opened.append({"position": position, "township_code": code, "hop": hop, "late_from_ms": late_from,
                           "stopped_at_ms": stopped})


def _apply(conn: Connection, deltas: _Deltas) -> None:
    """Add the deltas to the kept rows in one statement, in key order (two transactions never wait on
    each other crosswise)."""
    t = township_hop_figures
    rows = [{"grain": grain, "bucket": bucket, "township_code": code, "hop": hop, **{f: row.get(f, 0) for f in FIGURES}}
            for (grain, bucket, code, hop), row in sorted(deltas.items()) if any(row.values())]
    if not rows:
        return
    stmt = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(t)
    conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.grain, t.c.bucket, t.c.township_code, t.c.hop],
                                            set_={f: t.c[f] + stmt.excluded[f] for f in FIGURES}), rows)


def replace_matter(conn: Connection, matter_id: str, calendar: WorkingCalendar, *,
                   old: tuple[str, Sequence[dict[str, int]]] | None, new: tuple[str, Sequence[dict[str, int]]],
                   received_ms: int) -> None:
    """A tracked matter's (township code, hops) went from `old` (None: first seen) to `new`, in the
    transaction that stores it."""
    deltas: _Deltas = {}
    opened: list[dict[str, object]] = []
    if old is not None:
        _contribute(deltas, [], old[0], old[1], calendar, received_ms, -1)
        conn.execute(delete(tracked_open_hop).where(tracked_open_hop.c.matter_id == matter_id))
    _contribute(deltas, opened, new[0], new[1], calendar, received_ms, 1)
    _apply(conn, deltas)
    if opened:
        conn.execute(insert(tracked_open_hop), [{"matter_id": matter_id, **row} for row in opened])


def rebuild(conn: Connection, calendar: WorkingCalendar) -> int:
    """Fill the kept figures from every tracked matter (one pass; after the upgrade that added them, or
    to check them). Returns how many tracked matters were read."""
    conn.execute(delete(township_hop_figures))
    conn.execute(delete(tracked_open_hop))
    deltas: _Deltas = {}
    n = 0
    t = tracked_matter.c
    rows = conn.execute(select(t.matter_id, t.township_code, t.hops_json, t.updated_at_ms)).all()
    opened_rows: list[dict[str, object]] = []
    for matter_id, code, hops_json, updated_ms in rows:
        opened: list[dict[str, object]] = []
        _contribute(deltas, opened, code, json.loads(hops_json), calendar, int(updated_ms), 1)
        opened_rows.extend({"matter_id": matter_id, **row} for row in opened)
        n += 1
    kept = [{"grain": g, "bucket": b, "township_code": c, "hop": h, **{f: row.get(f, 0) for f in FIGURES}}
            for (g, b, c, h), row in sorted(deltas.items()) if any(row.values())]
    for i in range(0, len(kept), 1000):
        conn.execute(insert(township_hop_figures), kept[i:i + 1000])
    for i in range(0, len(opened_rows), 1000):
        conn.execute(insert(tracked_open_hop), opened_rows[i:i + 1000])
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = ins(hub_meta).values(key=BUILT_META, value=calendar.fingerprint)
    conn.execute(stmt.on_conflict_do_update(index_elements=[hub_meta.c.key], set_={"value": calendar.fingerprint}))
    return n


def is_built(conn: Connection, calendar: WorkingCalendar | None = None) -> bool:
    """Whether `rebuild` has filled the figures (with `calendar`, when given)."""
    built = conn.execute(select(hub_meta.c.value).where(hub_meta.c.key == BUILT_META)).scalar()
    return bool(built) and (calendar is None or built == calendar.fingerprint)


def months_of(period: Period) -> list[str] | None:
    """The months a period covers, or None when it starts or ends inside a month (figures come by month)."""
    if period.start.day != 1 or period.end.day != 1:
        return None
    months, d = [], period.start
    while d < period.end:
        months.append(f"{d:%Y-%m}")
        d = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return months


def figures(conn: Connection, period: Period, now: dt.datetime) -> dict[tuple[str, str], HopFigures]:
    """Per (township code, hop): the period's figures from the kept rows, one row per township and hop
    that ever had a hop started (as a pass over every tracked matter gives them)."""
    t = township_hop_figures.c
    start_ms, end_ms = to_unix_ms(period.start_at), to_unix_ms(period.end_at)
    now_ms = to_unix_ms(now)
    out: dict[tuple[str, str], HopFigures] = {}
    for code, hop in conn.execute(select(t.township_code, t.hop).where(t.grain == "month")
                                  .group_by(t.township_code, t.hop).having(func.sum(t.received) > 0)):
        out[(code, hop)] = HopFigures()
    months = months_of(period)
    in_period = (and_(t.grain == "month", t.bucket.in_(months)) if months is not None else
                 and_(t.grain == "day", t.bucket >= period.start.isoformat(), t.bucket < period.end.isoformat()))
    sums = [func.sum(t[f]) for f in ("received", "completed", "on_time", "late", "office_ms")]
    for code, hop, received, completed, on_time, late, office_ms in conn.execute(
            select(t.township_code, t.hop, *sums).where(in_period).group_by(t.township_code, t.hop)):
        row = out.get((code, hop))
        if row is not None:
            row.received, row.completed, row.on_time = int(received or 0), int(completed or 0), int(on_time or 0)
            row.overdue, row.office_ms = int(late or 0), int(office_ms or 0)
    for (code, hop), n in _open_late_at(conn, period, start_ms, end_ms, now_ms).items():
        if (code, hop) in out:
            out[(code, hop)].overdue += n
    return out


def _open_late_at(conn: Connection, period: Period, start_ms: int, end_ms: int, now_ms: int) -> dict[tuple[str, str], int]:
    """Hops open past their deadline at the period's end (or now, if it has not ended), not completed in it."""
    if now_ms >= end_ms:
        # A midnight: the `late_open` changes summed up to it, by whole months and then the days of its month.
        t = township_hop_figures.c
        month = f"{period.end:%Y-%m}"
        query = select(t.township_code, t.hop, func.sum(t.late_open)).where(or_(
            and_(t.grain == "month", t.bucket < month),
            and_(t.grain == "day", t.bucket >= f"{month}-01", t.bucket <= period.end.isoformat()),
        )).group_by(t.township_code, t.hop)
    else:
        o = tracked_open_hop.c
        completed_in_period = and_(o.stopped_at_ms >= start_ms, o.stopped_at_ms < end_ms)
        query = (select(o.township_code, o.hop, func.count())
                 .where(o.late_from_ms < now_ms,
                        or_(o.stopped_at_ms == 0, and_(o.stopped_at_ms >= now_ms, not_(completed_in_period))))
                 .group_by(o.township_code, o.hop))
    return {(code, hop): int(n or 0) for code, hop, n in conn.execute(query) if n}


def kept_rows(conn: Connection) -> set[tuple[object, ...]]:
    """Every kept row that is not all zero, and every open-hop row: compared with `rebuild`'s in tests."""
    t = township_hop_figures.c
    rows = {("figures", g, b, c, h, *vals) for g, b, c, h, *vals in conn.execute(
        select(t.grain, t.bucket, t.township_code, t.hop, *(t[f] for f in FIGURES))) if any(vals)}
    o = tracked_open_hop.c
    return rows | {("open", *r) for r in conn.execute(
        select(o.matter_id, o.position, o.township_code, o.hop, o.late_from_ms, o.stopped_at_ms))}
