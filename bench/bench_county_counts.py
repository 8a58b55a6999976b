"""The county's kept counts at scale: the board's first page and the township comparison's figures read
from counts kept as matters change, beside the scans they replace, measured in the same run.

    .venv/bin/python -m bench.bench_county_counts [--sizes 10000,100000] [--repeats 20]

A county grows through `--sizes` escalated matters (bench.seed_county: the hub's real intake, which
keeps the counts as it takes each matter in). At each size, the p95 of:
- the board's first page (`escalated_page`: its totals from `county_board_count`), and the two counts
  over every matter the page made before (total, elderly) as the reference;
- the comparison's timeliness figures from `township_hop_figures` for this month, this quarter, this
  year and the last 30 days, and `hub.evaluation.township_comparison` (one pass over every tracked
  matter, what the comparison page runs) for this month as the reference;
and the seeding rate (the intake, counts included). The board is timed right after the seeding (every
clock change since it began still unfolded: nothing ran the deadline watch) and after one pass of the
watch's folding, as a running county has it. Goal (issue 20): well under 200 ms and flat with size.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from bench.seed_county import open_county
from bench.seed_county import seed as seed_county
from hub.bootstrap import HubApp
from hub.console.board import BOARD_PAGE_SIZE
from hub.evaluation import township_comparison
from hub.store import township_figures
from hub.store.tables import county_dossier, county_matter
from shared.domain.evaluation import parse_period


def p95(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[min(len(times) - 1, int(len(times) * 0.95))]


def _measures(app: HubApp) -> dict[str, Callable[[], object]]:
    h = app.handling
    now = h.clock.now()
    today = h.calendar.local_date(now)
    names = h.township_names()

    def scanned_totals() -> object:
        m, d = county_matter.c, county_dossier.c
        with app.store.engine.connect() as conn:
            return (conn.execute(select(func.count()).select_from(county_matter)).scalar_one(),
                    conn.execute(select(func.count()).select_from(county_matter.join(
                        county_dossier, d.matter_id == m.matter_id)).where(d.elderly_or_disabled.is_(True))).scalar_one())

    def kept(text: str) -> Callable[[], object]:
        period = parse_period(text, today)

        def read() -> object:
            with app.store.engine.connect() as conn:
                return township_figures.figures(conn, period, now)
        return read

    folded = False

    def fold_then_board() -> object:
        # What the county's deadline watch does each pass (shared.deadline_watch.scheduler): the board's
        # clock counts then add a short tail of changes, not every change since the seeding began.
        nonlocal folded
        if not folded:
            app.deadlines.advance_phases(now)
            app.deadlines.fold_counts()
            folded = True
        return h.escalated_page(page_size=BOARD_PAGE_SIZE)

    quarter = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    return {
        "board, first page (kept totals)": lambda: h.escalated_page(page_size=BOARD_PAGE_SIZE),
        "  reference: totals by scan": scanned_totals,
        "board, first page, clock changes folded": fold_then_board,
        "comparison, this month (kept)": kept(""),
        "comparison, this quarter (kept)": kept(quarter),
        "comparison, this year (kept)": kept(f"{today.year}"),
        "comparison, last 30 days (kept)": kept(f"{today - dt.timedelta(days=29)}~{today}"),
        "  reference: comparison by scan": lambda: township_comparison(h, parse_period("", today), names, now=now),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as d:
        app = open_county(f"sqlite:///{Path(d) / 'county.db'}")
        have = 0
        first: dict[str, float] = {}
        try:
            for size in sizes:
                took = seed_county(app, size - have, townships=max(1, min(20, (size - have) // 500)))
                rate = (size - have) / took
                have = size
                measures = _measures(app)
                print(f"{size:,} escalated matters (this step seeded at {rate:,.0f} matters/s, counts kept)")
                figures: dict[str, float] = {}
                for name, fn in measures.items():
                    fn()    # untimed: the folding pass runs here, and every figure is of a repeated visit
                    figure = figures[name] = p95(fn, args.repeats)
                    first.setdefault(name, figure)
                    print(f"  {name:40s} p95 {figure * 1000:8.1f} ms   {figure / first[name]:6.1f} x at {sizes[0]:,}")
                board, board_ref = figures["board, first page (kept totals)"], figures["  reference: totals by scan"]
                comparison, comparison_ref = figures["comparison, this month (kept)"], figures["  reference: comparison by scan"]
                print(f"  board's totals by scan take {board_ref / board:.1f}x the whole kept first page;"
                      f" the comparison by scan takes {comparison_ref / comparison:.0f}x its kept figures")
        finally:
            app.close()


if __name__ == "__main__":
    main()
