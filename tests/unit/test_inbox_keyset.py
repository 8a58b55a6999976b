"""The township inbox pages by keyset: following each page's `next_after` visits every matter exactly
once, in (receipt time, matter id) order, even when many arrive in the same millisecond."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from shared.clock import FakeClock
from shared.domain.handling import Stage
from tests.town_fixtures import VillageDevice, township


def test_keyset_pages_return_every_matter_exactly_once_across_pages_and_filters(tmp_path: Path) -> None:
    town = township(f"sqlite:///{tmp_path / 'town.db'}")
    try:
        east, west = VillageDevice(town, village_code="V001"), VillageDevice(town, village_code="V002")
        filed: dict[str, str] = {}
        for i in range(23):
            if i % 5 == 0:
                clock = town.clock
                assert isinstance(clock, FakeClock)
                clock.advance(dt.timedelta(seconds=1))      # runs of matters share one receipt millisecond
            device = east if i % 3 else west
            filed[device.file("MZ-003")] = device.village_code
        seen: list[str] = []
        after, pages = "", 0
        while True:
            box = town.handling.inbox_page(page_size=4, after=after)
            seen.extend(m.matter_id for m in box.items)
            pages += 1
            if not box.next_after:
                break
            after = box.next_after
        assert sorted(seen) == sorted(filed) and len(seen) == len(set(seen)) == 23
        assert pages == 6
        by_offset = [m.matter_id for p in range(1, 7) for m in town.handling.inbox_page(page=p, page_size=4).items]
        assert by_offset == seen                      # the same order as counting pages from the top
        east_only: list[str] = []
        after = ""
        while True:
            box = town.handling.inbox_page(village_code="V001", stages=[Stage.RECEIVED], page_size=5, after=after)
            east_only.extend(m.matter_id for m in box.items)
            if not box.next_after:
                break
            after = box.next_after
        assert sorted(east_only) == sorted(m for m, v in filed.items() if v == "V001")
        assert town.handling.inbox_page(page_size=4, after="not-a-cursor").items == town.handling.inbox_page(
            page_size=4).items                        # a hand-edited cursor is the first page, not an error
    finally:
        town.close()
