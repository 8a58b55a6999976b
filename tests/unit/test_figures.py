from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.deadlines import ClockState
from shared.domain.figures import (
    MatterFacts,
    bar_chart_svg,
    draw_follow_up_sample,
    figures_by,
    to_csv,
)

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def facts(i: int, **kw: object) -> MatterFacts:
    base: dict[str, object] = dict(matter_id=f"m{i:03d}", village_code="V1", agent_key_id="a1", operator_id="op1", received_at=T0)
    base.update(kw)
    return MatterFacts(**base)


def test_figures_count_received_completed_on_time_overdue_and_bad_reviews_per_village() -> None:
    rows = figures_by([
        facts(1, completed_at=T0 + 2 * H, due_at=T0 + 5 * H, rating=1),
        facts(2, completed_at=T0 + 9 * H, due_at=T0 + 5 * H, state=ClockState.OVERDUE, rating=5, followed_up=True),
        facts(3, rating=4),
        facts(4, village_code="V2", returned=True),
    ], key=lambda m: m.village_code)
    v1, v2 = rows
    assert (v1.received, v1.completed, v1.completed_on_time, v1.overdue) == (3, 2, 1, 1)
    assert (v1.bad_reviews, v1.bad_reviews_followed_up, v1.rated) == (2, 1, 3)
    assert v1.average_hours == 5.5 and v1.on_time_rate == 0.5
    assert v1.satisfaction == (100 + 0 + 30) / 3
    assert (v2.received, v2.returned, v2.completed, v2.on_time_rate) == (1, 1, 0, None)


def test_the_csv_export_has_chinese_headers_and_opens_in_excel() -> None:
    text = to_csv(figures_by([facts(1, completed_at=T0 + H)], key=lambda m: m.village_code), label=lambda k: "东山村")
    assert text.startswith("\ufeff对象,受理件数")
    assert "东山村,1,1,1,0,0,1.0,100.0%" in text


def test_the_chart_is_self_contained_svg_with_escaped_labels() -> None:
    svg = bar_chart_svg([("东山村<1>", 3), ("西河村", 0)], title="超期件数", unit="件")
    assert svg.startswith("<svg") and "东山村&lt;1&gt;" in svg and "script" not in svg


def test_every_bad_review_is_in_the_follow_up_sample_and_the_draw_is_stable_for_the_week() -> None:
    done = [facts(i, completed_at=T0 + H, rating=(5 if i % 10 == 0 else 2)) for i in range(60)]
    week = dt.date(2026, 11, 23)
    first = draw_follow_up_sample(done, week_start=week, secret=b"s")
    again = draw_follow_up_sample(done, week_start=week, secret=b"s")
    assert first == again
    assert {m.matter_id for m in done if m.rating == 5} <= {m.matter_id for m in first}
    assert len(first) == 6 + round(54 * 0.1)
    other_week = draw_follow_up_sample(done, week_start=week + dt.timedelta(days=7), secret=b"s")
    assert [m.matter_id for m in other_week] != [m.matter_id for m in first]


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 80), fraction=st.floats(0.01, 1.0), minimum=st.integers(0, 10))
def test_the_sample_never_repeats_a_matter_nor_calls_one_already_followed_up(n: int, fraction: float, minimum: int) -> None:
    done = [facts(i, completed_at=T0 + H, rating=(i % 5) + 1, followed_up=(i % 7 == 0)) for i in range(n)]
    sample = draw_follow_up_sample(done, week_start=dt.date(2026, 11, 23), secret=b"k", fraction=fraction, minimum=minimum)
    ids = [m.matter_id for m in sample]
    assert len(ids) == len(set(ids)) and not any(m.followed_up for m in sample)


def test_the_average_time_is_in_working_hours_when_the_caller_gives_them() -> None:
    friday_5pm = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    monday_10am = friday_5pm + dt.timedelta(days=2, hours=17)
    facts = MatterFacts(matter_id="m", village_code="V1", agent_key_id="k", operator_id="op",
                        received_at=friday_5pm, completed_at=monday_10am, working_hours=1.5)
    figures = figures_by([facts], lambda m: m.village_code)
    assert [f.average_hours for f in figures] == [1.5]
