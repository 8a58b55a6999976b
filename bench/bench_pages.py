"""Township pages at scale: the inbox (first page, a deep page, by village, by stage) and the public
lookup, at 1k, 10k and 100k matters of one growing township (bench.seed_township: real stores).

    .venv/bin/python -m bench.bench_pages [--sizes 1000,10000,100000] [--repeats 20]
    .venv/bin/python -m bench.bench_pages --county [--sizes 1000,10000,100000] [--repeats 20]

`--county`: the county console's pages over a growing county (bench.seed_county: real hub code):
the board's first, middle and last page, one township's board, a matter page, the 督办 list, the
overdue figures, the township comparison and the public document verify, each as its route asks
the county's services; and the county process's RSS (this process holds the county app).

Each figure is the p95 of `--repeats` calls of what the page's route asks the handling service
(`inbox_page` with the route's page size and `villages()`, by page number and by keyset cursor;
the lookup's indexed read), beside the
same at the smallest size, so growth is visible. Goal (issue 20): p95 < 300 ms per page.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from bench.seed_township import open_township, seed
from shared.domain.handling import Stage
from town_center.store.matter_tables import town_matter

PAGE_SIZE = 100   # the console's INBOX_PAGE_SIZE


def p95(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[min(len(times) - 1, int(len(times) * 0.95))]


def rss_mib() -> tuple[float, float]:
    """(now, peak) resident set size of this process in MiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def county(sizes: list[int], repeats: int) -> None:
    from bench.seed_county import open_county
    from bench.seed_county import seed as seed_county
    from hub.console.board import BOARD_PAGE_SIZE
    from hub.console.oversight import OVERDUE_LIST_LIMIT
    from hub.evaluation import county_settings, parse_period, township_comparison
    from hub.store.tables import county_matter
    from shared.documents.adapters.sql import issued_document

    with tempfile.TemporaryDirectory() as d:
        app = open_county(f"sqlite:///{Path(d) / 'county.db'}")
        h = app.handling
        have = 0
        first: dict[str, float] = {}
        try:
            for size in sizes:
                took = seed_county(app, size - have, townships=max(1, min(20, (size - have) // 500)))
                have = size

                def cursor_at(offset: int, township: str | None = None) -> str:
                    q = select(county_matter.c.received_at_ms, county_matter.c.matter_id).order_by(
                        county_matter.c.received_at_ms.desc(), county_matter.c.matter_id.desc()).offset(offset).limit(1)
                    if township:
                        q = q.where(county_matter.c.township_code == township)
                    with app.store.engine.connect() as conn:
                        at, mid = conn.execute(q).one()
                    return f"{int(at)}:{mid}"

                with app.store.engine.connect() as conn:
                    code, matter_id = conn.execute(select(county_matter.c.township_code, county_matter.c.matter_id)
                                                   .limit(1)).one()
                    number = conn.execute(select(issued_document.c.number).limit(1)).scalar()
                middle = cursor_at(size // 2 - 1)
                last = cursor_at(max(0, size - BOARD_PAGE_SIZE - 1))
                names = lambda: {k.info.township_code: k.info.holder_name for k in app.store.keys()}  # noqa: E731 - one line, timed with the page

                def board(**kw: object) -> object:
                    return names(), h.escalated_page(page_size=BOARD_PAGE_SIZE, **kw)

                def matter() -> object:
                    return names(), h.history(matter_id), h.applicant(matter_id)

                def notices() -> object:
                    return names(), h.notice_rows()

                def overdue() -> object:
                    return names(), h.overdue_counts(), h.tracked(overdue_only=True, limit=OVERDUE_LIST_LIMIT), h.notices()

                def comparison() -> object:
                    today = h.calendar.local_date(h.clock.now())
                    return township_comparison(h, parse_period("", today), names(), now=h.clock.now(),
                                               engine=app.store.engine, weights=county_settings(app.store).weights)

                assert h.documents is not None
                pages = {
                    "board, first page": lambda: board(),
                    "board, page halfway down": lambda: board(after=middle),
                    "board, last page": lambda: board(after=last),
                    "board, one township": lambda: board(township_code=code),
                    "matter page": matter,
                    "督办 notices": notices,
                    "overdue figures": overdue,
                    "township comparison": comparison,
                    "public verify": lambda: h.documents.verify(number),
                }
                print(f"{size:,} escalated matters (this step seeded in {took:.1f} s)")
                for name, fn in pages.items():
                    figure = p95(fn, repeats)
                    first.setdefault(name, figure)
                    print(f"  {name:32s} p95 {figure * 1000:8.1f} ms   {figure / first[name]:6.1f} x at {sizes[0]:,}"
                          f"   {'ok' if figure < 0.3 else 'OVER 300 ms'}")
                now, peak = rss_mib()
                print(f"  county process RSS {now:.0f} MiB (peak {peak:.0f} MiB, seeding included)"
                      f"   {'ok' if now <= 300 else 'OVER 300 MB'}")
        finally:
            app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--county", action="store_true", help="the county console's pages instead of the township's")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.county:
        county(sizes, args.repeats)
        return
    with tempfile.TemporaryDirectory() as d:
        app = open_township(f"sqlite:///{Path(d) / 'town.db'}")
        h = app.handling
        have = 0
        first: dict[str, float] = {}
        try:
            for size in sizes:
                took = seed(app, size - have, villages=max(1, (size - have) // 2000))
                have = size
                with app.store.engine.connect() as conn:
                    code = conn.execute(select(town_matter.c.village_code).limit(1)).scalar()
                    one_hash = conn.execute(select(town_matter.c.lookup_code_hash)
                                            .where(town_matter.c.lookup_code_hash.is_not(None)).limit(1)).scalar()
                last_page = max(1, -(-size // PAGE_SIZE))
                # A cursor halfway down the inbox, as following "next page" links would reach it.
                middle = h.inbox_page(page=max(1, last_page // 2), page_size=PAGE_SIZE).next_after

                def lookup() -> object:
                    with app.store.engine.connect() as conn:
                        return conn.execute(select(town_matter.c.matter_id, town_matter.c.stage)
                                            .where(town_matter.c.lookup_code_hash == one_hash)).first()

                pages = {
                    "inbox, first page": lambda: (h.inbox_page(page=1, page_size=PAGE_SIZE), h.villages()),
                    "inbox, last page": lambda: (h.inbox_page(page=last_page, page_size=PAGE_SIZE), h.villages()),
                    "inbox, keyset page halfway down": lambda: (h.inbox_page(after=middle, page_size=PAGE_SIZE),
                                                                h.villages()),
                    "inbox, one village": lambda: (h.inbox_page(village_code=code, page=1, page_size=PAGE_SIZE), h.villages()),
                    "inbox, waiting to be accepted": lambda: (h.inbox_page(stages=[Stage.RECEIVED], page=1,
                                                                           page_size=PAGE_SIZE), h.villages()),
                    "public lookup": lookup,
                }
                print(f"{size:,} matters (this step seeded in {took:.1f} s)")
                for name, fn in pages.items():
                    figure = p95(fn, args.repeats)
                    first.setdefault(name, figure)
                    print(f"  {name:32s} p95 {figure * 1000:8.1f} ms   {figure / first[name]:6.1f} x at {sizes[0]:,}"
                          f"   {'ok' if figure < 0.3 else 'OVER 300 ms'}")
        finally:
            app.close()


if __name__ == "__main__":
    main()
