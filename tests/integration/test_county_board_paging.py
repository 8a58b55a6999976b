"""The county board pages by keyset on (county receipt time, matter id): following `next_after`
visits every escalated matter exactly once, and the totals count every page, not just the one shown."""
from __future__ import annotations

from shared.clock import FakeClock
from shared.domain.catalog import MatterKind
from tests.county_fixtures import County, LinkedTownship, advance
from tests.town_fixtures import OPERATOR, VillageDevice


def test_board_pages_return_every_escalated_matter_exactly_once_with_totals_over_all_pages(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    escalated = []
    for i in range(7):
        matter_id = village.file("MZ-001")
        town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
        town.app.handling.escalate(matter_id, "低保申请，乡镇初审通过", actor=OPERATOR)
        escalated.append(matter_id)
        if i % 3 == 2:
            advance(clock, minutes=5)    # several reach the county in one sync: same receipt millisecond
            town.sync()
    advance(clock, minutes=5)
    town.sync()
    hub.app.handling.run_once()
    handling = hub.app.handling
    seen: list[str] = []
    after, pages = "", []
    while True:
        page = handling.escalated_page(page_size=3, after=after)
        pages.append(page)
        seen.extend(v.matter_id for v in page.views)
        if not page.next_after:
            break
        after = page.next_after
    assert sorted(seen) == sorted(escalated) and len(seen) == len(set(seen))
    assert [len(p.views) for p in pages] == [3, 3, 1]
    assert all(p.totals["all"] == 7 and p.totals["running"] == 7 for p in pages)
    assert [v.matter_id for v in handling.escalated()] == seen      # the unpaged list, in the same order
    by_township = handling.escalated_page(township_code="T01", page_size=10)
    assert by_township.totals["all"] == 7 and by_township.totals["running"] == 7 and not by_township.next_after
    assert handling.escalated_page(township_code="T99").totals["all"] == 0
