"""How long the deadline scan takes to find what is newly due among many open hop clocks.

    .venv/bin/python bench/bench_deadline_scan.py                      # SQLite and PostgreSQL, 1,000,000 clocks
    .venv/bin/python bench/bench_deadline_scan.py --backend sqlite --clocks 200000
    .venv/bin/python bench/bench_deadline_scan.py --backend postgres --pg-url postgresql+psycopg://…

PostgreSQL: without --pg-url a throwaway cluster is started with `tests.pg` (fsync off — the scan
is reads plus small writes, so this mostly affects loading and the firing figure).

The table is filled with `--clocks` running clocks (5–20 working days, received over the last week,
so nothing is due yet) plus `--newly-due` clocks whose warning instant has passed. Every row's
instants are computed exactly by `shared.domain.deadlines` from a set of templates, then copied in SQL.
Measured:

* steady scan — the scan's query when nothing is due (what runs every 30 s nearly always);
* find — the scan's query (`find_due`, one batch of 500) when `--newly-due` rows are due;
* fire — `fire_due`: events, outbox rows and row updates for all newly due clocks, in batches;
* next wake — `next_fire_at` (MIN over the index), read after each scan to aim the next wake-up.

Goal: the find query under 100 ms, i.e. never loading every clock into Python.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from shared.calendar import SHANGHAI, WorkingCalendar
from shared.deadline_watch.store import DeadlineStore, make_engine
from shared.domain.deadlines import HopClock
from shared.domain.limits import Limit

NOW = dt.datetime(2026, 12, 14, 10, 0, tzinfo=SHANGHAI)  # a Monday morning
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ms(at: dt.datetime) -> int:
    return -(-((at - EPOCH) // dt.timedelta(microseconds=1)) // 1000)


def _us(at: dt.datetime) -> int:
    return (at - EPOCH) // dt.timedelta(microseconds=1)


def _templates(store: DeadlineStore, *, due: bool) -> list[dict[str, object]]:
    """Receipt instants and limits whose exact deadlines are all in the future (due=False) or whose
    warning has passed at NOW (due=True)."""
    cal = store.calendar
    out = []
    if due:
        receipts = [dt.datetime(2026, 12, d, h, m, tzinfo=SHANGHAI) for d in (3, 4, 7) for h in (9, 10, 15, 16) for m in (0, 17, 41)]
        limits = [Limit.working_days(4), Limit.working_days(5)]
    else:
        receipts = [
            dt.datetime(2026, 12, d, h, m, tzinfo=SHANGHAI)
            for d in (9, 10, 11, 14)
            for h in (8, 9, 10, 11, 14, 15, 16, 17)
            for m in (0, 13, 29, 47)
            if dt.datetime(2026, 12, d, h, m, tzinfo=SHANGHAI) < NOW
        ]
        limits = [Limit.working_days(n) for n in (5, 8, 10, 15, 20)]
    for received in receipts:
        for limit in limits:
            clock = HopClock.received(received, limit, Limit.working_days(20))
            marks = clock.deadlines(cal, store.thresholds)
            assert marks is not None
            assert (marks.warn_at <= NOW) == due, (received, limit)
            out.append(
                {
                    "json": json.dumps(clock.to_json_dict(), separators=(",", ":")),
                    "limit": limit.to_text(),
                    "warn": _ms(marks.warn_at),
                    "due": _ms(marks.due_at),
                    "esc": _ms(marks.escalate_at),
                }
            )
    return out


def _fill(engine: Engine, store: DeadlineStore, *, first: int, count: int, templates: list[dict[str, object]], prefix: str) -> float:
    """Copy `count` rows from the templates in SQL. Returns seconds taken."""
    t0 = time.perf_counter()
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_template"))
        conn.execute(
            text(
                "CREATE TEMPORARY TABLE bench_template (k INTEGER PRIMARY KEY, clock_json TEXT, limit_text TEXT,"
                " warn BIGINT, due BIGINT, esc BIGINT)"
            )
        )
        conn.execute(
            text("INSERT INTO bench_template VALUES (:k, :json, :limit, :warn, :due, :esc)"),
            [{"k": i, **t} for i, t in enumerate(templates)],
        )
        if dialect == "sqlite":
            series = (
                f"WITH RECURSIVE seq(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM seq WHERE i < {first + count - 1}) "
            )
            source = "seq"
            matter = f"'{prefix}' || printf('%08d', i)"
        else:
            series = ""
            source = f"generate_series({first}, {first + count - 1}) AS seq(i)"
            matter = f"'{prefix}' || lpad(i::text, 8, '0')"
        conn.execute(
            text(
                f"{series}INSERT INTO hop_deadline (matter_id, hop, status, responsible, limit_text, statutory_text,"
                " clock_json, warn_at_ms, due_at_ms, escalate_at_ms, fired_level, next_fire_at_ms, rules_fp, version,"
                " updated_at_ms) "
                f"SELECT {matter}, 'township', 'running', 'op-' || (i % 50), t.limit_text, '20wd', t.clock_json,"
                f" t.warn, t.due, t.esc, 0, t.warn, :fp, 1, {_ms(NOW)} "
                f"FROM {source} JOIN bench_template t ON t.k = i % {len(templates)}"
            ),
            {"fp": store.rules_fp},
        )
        conn.execute(text("DROP TABLE bench_template"))
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - t0


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered):7.2f} ms   p95 {p95:7.2f} ms   max {ordered[-1]:7.2f} ms   (n={len(ordered)})"


def _plan(engine: Engine) -> str:
    query = "SELECT id FROM hop_deadline WHERE next_fire_at_ms <= :now ORDER BY next_fire_at_ms LIMIT 500"
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + query), {"now": _ms(NOW)}).all()
            return " | ".join(str(r[-1]) for r in rows)
        rows = conn.execute(text("EXPLAIN " + query), {"now": _ms(NOW)}).all()
        return " | ".join(r[0].strip() for r in rows)


def run(label: str, url: str, clocks: int, newly_due: int, repeat: int) -> None:
    engine = make_engine(url)
    store = DeadlineStore(engine, WorkingCalendar())
    store.create_schema()
    print(f"\n== {label}: {clocks:,} open clocks + {newly_due:,} newly due ==")
    future = _templates(store, due=False)
    took = _fill(engine, store, first=0, count=clocks, templates=future, prefix="B")
    print(f"load                {took:7.1f} s  ({clocks / took:,.0f} rows/s, {len(future)} exact templates)")
    print(f"plan                {_plan(engine)}")

    store.find_due(NOW)  # warm the cache
    print(f"steady scan (none)  {_summary(_timed(lambda: store.find_due(NOW, limit=500), repeat))}")
    print(f"next wake (MIN)     {_summary(_timed(store.next_fire_at, repeat))}")

    due_templates = _templates(store, due=True)
    _fill(engine, store, first=clocks, count=newly_due, templates=due_templates, prefix="D")
    found = store.find_due(NOW, limit=500)
    assert len(found) == min(500, newly_due), len(found)
    print(f"find (500 of {newly_due:,}) {_summary(_timed(lambda: store.find_due(NOW, limit=500), repeat))}")

    t0 = time.perf_counter()
    fired = store.fire_due(NOW, fired_by="bench", batch_size=500, max_batches=10_000)
    fire_s = time.perf_counter() - t0
    batches = -(-newly_due // 500)
    assert len({e.matter_id for e in fired}) == newly_due, (len(fired), newly_due)
    print(
        f"fire {newly_due:,} clocks    {fire_s * 1000:7.1f} ms total, {fire_s * 1000 / batches:6.1f} ms per batch of 500"
        f" ({len(fired):,} events, {newly_due / fire_s:,.0f} clocks/s incl. outbox rows)"
    )
    print(f"scan after firing   {_summary(_timed(lambda: store.find_due(NOW, limit=500), repeat))}")
    engine.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--clocks", type=int, default=1_000_000)
    p.add_argument("--newly-due", type=int, default=1_000)
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--pg-url", help="an empty PostgreSQL database (default: start a throwaway cluster)")
    args = p.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-scan-") as d:
            run("SQLite (file, WAL)", f"sqlite:///{d}/bench.db", args.clocks, args.newly_due, args.repeat)
    if args.backend in ("postgres", "both"):
        if args.pg_url:
            run("PostgreSQL", args.pg_url, args.clocks, args.newly_due, args.repeat)
        else:
            from tests.pg import start_postgres

            with start_postgres(settings={"shared_buffers": "256MB"}) as cluster:
                run("PostgreSQL 15 (throwaway cluster, fsync off)", cluster.create_database("bench"), args.clocks,
                    args.newly_due, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
