"""`due_after` calls per second (and the full hop-clock path the store uses on every save).

    .venv/bin/python bench/bench_due_after.py
    .venv/bin/python bench/bench_due_after.py --calls 50000

Receipt instants are random minutes over 2026 and 2027 (2027 is weekends-only plus, in the second
calendar, a county override), so the per-year tables and both code paths are exercised. The
calendars are built once and warmed, as in a running service.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.calendar import SHANGHAI, WorkingCalendar, load_override_file
from shared.domain.deadlines import HopClock, SuspensionReason, Thresholds, due_after
from shared.domain.limits import Limit

REPO = Path(__file__).resolve().parents[1]


def _starts(n: int, rng: random.Random) -> list[dt.datetime]:
    base = dt.datetime(2026, 1, 1, tzinfo=SHANGHAI)
    return [base + dt.timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60)) for _ in range(n)]


def _rate(label: str, fn, items: list) -> None:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    took = time.perf_counter() - t0
    print(f"{label:<52} {len(items) / took:>10,.0f} calls/s   ({took * 1e6 / len(items):6.1f} µs per call)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=20261123)
    args = p.parse_args()
    rng = random.Random(args.seed)
    starts = _starts(args.calls, rng)
    calendars = {
        "library + weekends-only 2027": WorkingCalendar(),
        "library + county override 2027": WorkingCalendar(load_override_file(REPO / "ops/examples/calendar_override_2027.toml")),
    }
    for cal in calendars.values():  # warm the per-year tables, as a running service would be
        for start in starts[:200]:
            due_after(start, Limit.working_days(60), cal)

    print(f"due_after over {args.calls:,} random receipt minutes in 2026–2027\n")
    for name, cal in calendars.items():
        print(f"[{name}]")
        for limit in (Limit.working_days(5), Limit.working_days(20), Limit.natural_days(60), Limit.minutes(30)):
            _rate(f"  due_after(…, {limit.describe_zh()})", lambda s, lim=limit, c=cal: due_after(s, lim, c), starts)

    cal = calendars["library + weekends-only 2027"]
    thresholds = Thresholds()
    clocks = [HopClock.received(s, Limit.working_days(10), Limit.working_days(20)) for s in starts]
    paused = [
        c.suspend(s + dt.timedelta(hours=30), SuspensionReason.TESTING).resume(s + dt.timedelta(days=6))
        for c, s in zip(clocks, starts, strict=True)
    ]
    print("[store path: HopClock.deadlines = due + warning + 督办 instants]")
    _rate("  10个工作日, no suspension", lambda c: c.deadlines(cal, thresholds), clocks)
    _rate("  10个工作日, one 6-day suspension", lambda c: c.deadlines(cal, thresholds), paused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
