"""Township pages at scale: the inbox (first page, a deep page, by village, by stage) and the public
lookup, at 1k, 10k and 100k matters of one growing township (bench.seed_township: real stores).

    .venv/bin/python -m bench.bench_pages [--sizes 1000,10000,100000] [--repeats 20]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
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
