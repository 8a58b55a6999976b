"""The county's overdue figures and 督办 list read only what they show: the counts are taken in SQL
and agree with the matter-by-matter rule, the overdue list comes most overdue first and is capped,
and the notice list names each notice's matter without reading the whole board. The county is
seeded through the real hub code (bench.seed_county) into a real SQLite file."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.seed_county import open_county, seed
from hub.bootstrap import HubApp
from hub.handling import _KIND_FROM_WIRE, _township_overdue
from hub.store.tables import tracked_matter
from shared.clock import to_unix_ms
from shared.domain.deadlines import ClockState


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> HubApp:
    app = open_county(f"sqlite:///{Path(tmp_path_factory.mktemp('county')) / 'county.db'}")
    seed(app, 60, townships=3, supervised=4)
    yield app
    app.close()


def test_overdue_counts_taken_in_sql_agree_with_the_rule_applied_matter_by_matter(county: HubApp) -> None:
    handling = county.handling
    now_ms = to_unix_ms(handling.clock.now())
    by_township: dict[str, list[int]] = {}
    by_kind: dict[str, list[int]] = {}
    with county.store.engine.connect() as conn:
        for r in conn.execute(tracked_matter.select()):
            if not r.township_due_at_ms or r.township_stopped_at_ms:
                continue
            kind = _KIND_FROM_WIRE.get(int(r.kind))
            for bucket, key in ((by_township, r.township_code), (by_kind, kind.label_zh if kind else "未分类")):
                counts = bucket.setdefault(key, [0, 0])
                counts[0] += 1
                counts[1] += _township_overdue(r, now_ms)
    open_views = handling.escalated(open_only=True)
    by_kind["上报件（县级环节）"] = [len(open_views),
                               sum(v.state in (ClockState.OVERDUE, ClockState.SUPERVISE) for v in open_views)]
    counted_township, counted_kind = handling.overdue_counts()
    assert counted_township == {k: tuple(v) for k, v in sorted(by_township.items())}
    assert counted_kind == {k: tuple(v) for k, v in sorted(by_kind.items())}
    assert sum(n for n, _ in counted_township.values()) == 12       # every fifth seeded matter is still open
    assert sum(late for _, late in counted_township.values()) == 12  # and past its three days


def test_the_overdue_list_is_selected_in_sql_most_overdue_first_and_capped(county: HubApp) -> None:
    handling = county.handling
    everything = handling.tracked()
    now_ms = to_unix_ms(handling.clock.now())
    late = sorted((t for t in everything if t.overdue), key=lambda t: (t.township_due_at, t.matter_id))
    assert [t.matter_id for t in handling.tracked(overdue_only=True)] == [t.matter_id for t in late]
    assert all(t.overdue and to_unix_ms(t.township_due_at) < now_ms for t in late)
    capped = handling.tracked(overdue_only=True, limit=5)
    assert [t.matter_id for t in capped] == [t.matter_id for t in late[:5]]
    days = [handling.overdue_working_days(t) for t in capped]
    assert days == sorted(days, reverse=True)
    assert handling.tracked(overdue_only=True, matter_id=late[-1].matter_id)[0].matter_id == late[-1].matter_id
    on_time = next(t for t in everything if not t.overdue)
    assert handling.tracked(overdue_only=True, matter_id=on_time.matter_id) == []


def test_each_notice_names_its_escalated_matter_by_title_and_reference(county: HubApp) -> None:
    rows = county.handling.notice_rows()
    assert len(rows) == 4 and len({r["notice_id"] for r in rows}) == 4
    for r in rows:
        assert r["view"] is not None and r["view"].matter_id == r["matter_id"]
        assert r["catalog_code"] in county.handling.catalog
        assert "收件" in r["view"].reference_zh and r["view"].township_name.startswith("第")
