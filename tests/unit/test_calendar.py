"""The working-day calendar: library years, 调休, office hours, receipt days, override files."""
from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calendar import (
    SHANGHAI,
    OfficeHours,
    WorkingCalendar,
    YearOverride,
    YearSource,
    calendar_warning_zh,
    load_override_dir,
    load_override_file,
    parse_override_toml,
)
from shared.errors import CalendarError, CalendarOverrideError

D = dt.date
REPO = Path(__file__).resolve().parents[2]


def sh(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


CONFIRMED_2027 = """
format = 1
issued_by = "测试县政务服务中心"
[year_2027]
confirmed = true
holidays = [ { name = "元旦", from = 2027-01-01, to = 2027-01-03 }, "2027-02-08" ]
workdays = [ { name = "调休", date = 2027-01-09 } ]
"""


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar()


# -- library years ---------------------------------------------------------------------------


def test_national_day_2026_is_off_and_its_make_up_weekend_days_are_working(cal: WorkingCalendar) -> None:
    for day in range(1, 8):
        assert not cal.is_working_day(D(2026, 10, day))
    assert cal.is_working_day(D(2026, 9, 20))  # Sunday, 调休
    assert cal.is_working_day(D(2026, 10, 10))  # Saturday, 调休
    assert not cal.is_working_day(D(2026, 9, 25))  # Friday, 中秋节
    assert cal.is_working_day(D(2026, 10, 8))


def test_spring_festival_2026_is_off_and_both_make_up_saturdays_are_working(cal: WorkingCalendar) -> None:
    assert cal.is_working_day(D(2026, 2, 14))
    assert cal.is_working_day(D(2026, 2, 28))
    assert all(not cal.is_working_day(D(2026, 2, d)) for d in range(15, 24))
    assert cal.is_working_day(D(2026, 2, 24))


def test_adding_working_days_skips_the_national_day_break_and_counts_the_make_up_saturday(cal: WorkingCalendar) -> None:
    assert cal.add_working_days(D(2026, 9, 30), 1) == D(2026, 10, 8)
    assert cal.add_working_days(D(2026, 9, 30), 3) == D(2026, 10, 10)
    assert cal.add_working_days(D(2026, 10, 10), -3) == D(2026, 9, 30)
    assert cal.add_working_days(D(2026, 10, 3), 0) == D(2026, 10, 3)


def test_working_days_between_counts_the_far_end_but_not_the_near_one(cal: WorkingCalendar) -> None:
    assert cal.working_days_between(D(2026, 9, 30), D(2026, 10, 10)) == 3
    assert cal.working_days_between(D(2026, 10, 10), D(2026, 9, 30)) == -3
    # 12-31, 2027-01-01 (a Friday: weekends-only while 2027 is unknown), 01-04, 01-05
    assert cal.working_days_between(D(2026, 12, 30), D(2027, 1, 5)) == 4


# -- receipt days and office hours -----------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "counted_as"),
    [
        (sh(2026, 11, 23, 10, 0), D(2026, 11, 23)),  # in a session
        (sh(2026, 11, 23, 7, 0), D(2026, 11, 23)),  # before opening
        (sh(2026, 11, 23, 12, 30), D(2026, 11, 23)),  # over lunch
        (sh(2026, 11, 23, 17, 30), D(2026, 11, 24)),  # at close: after hours
        (sh(2026, 11, 27, 20, 0), D(2026, 11, 30)),  # Friday evening → Monday
        (sh(2026, 11, 28, 10, 0), D(2026, 11, 30)),  # Saturday → Monday
        (sh(2026, 10, 3, 10, 0), D(2026, 10, 8)),  # National Day holiday
        (sh(2026, 9, 20, 10, 0), D(2026, 9, 20)),  # a make-up Sunday is a working day
    ],
)
def test_a_matter_counts_as_received_on_the_working_day_it_arrives_before_close_else_the_next(
    cal: WorkingCalendar, received: dt.datetime, counted_as: dt.date
) -> None:
    assert cal.receipt_day(received) == counted_as


def test_office_time_skips_lunch_nights_and_days_off(cal: WorkingCalendar) -> None:
    assert cal.add_office_time(sh(2026, 11, 23, 11, 50), dt.timedelta(minutes=30)) == sh(2026, 11, 23, 14, 20)
    assert cal.add_office_time(sh(2026, 11, 27, 17, 20), dt.timedelta(minutes=30)) == sh(2026, 11, 30, 8, 50)
    assert cal.add_office_time(sh(2026, 9, 30, 17, 10), dt.timedelta(minutes=30)) == sh(2026, 10, 8, 8, 40)
    assert cal.office_time_between(sh(2026, 11, 23, 11, 0), sh(2026, 11, 23, 15, 0)) == dt.timedelta(hours=2)
    assert cal.subtract_office_time(sh(2026, 11, 30, 8, 40), dt.timedelta(minutes=20)) == sh(2026, 11, 27, 17, 20)


def test_office_hours_are_configurable_and_move_the_close_of_the_day() -> None:
    summer = WorkingCalendar(office_hours=OfficeHours.parse("08:00-12:00,14:30-18:00"))
    assert summer.close_at(D(2026, 7, 1)) == sh(2026, 7, 1, 18, 0)
    assert summer.receipt_day(sh(2026, 7, 1, 17, 45)) == D(2026, 7, 1)
    assert summer.fingerprint != WorkingCalendar().fingerprint


@pytest.mark.parametrize("text", ["08:30-12:00,11:00-17:30", "12:00-08:30", "8.30-12", ""])
def test_office_hours_that_overlap_run_backwards_or_do_not_parse_are_refused(text: str) -> None:
    with pytest.raises(CalendarError):
        OfficeHours.parse(text)


def test_a_naive_instant_is_refused_rather_than_guessed(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError):
        cal.receipt_day(dt.datetime(2026, 11, 23, 10, 0))


def test_the_servers_own_timezone_changes_nothing(cal: WorkingCalendar) -> None:
    before = (cal.receipt_day(sh(2026, 11, 27, 18, 0)), cal.close_at(D(2026, 11, 30)))
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        fresh = WorkingCalendar()
        after = (fresh.receipt_day(sh(2026, 11, 27, 18, 0)), fresh.close_at(D(2026, 11, 30)))
        utc_evening = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai
        assert fresh.receipt_day(utc_evening) == D(2026, 11, 30)
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert before == after
    assert after[1] == dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)


# -- years beyond the library ----------------------------------------------------------------


def test_2027_without_an_override_falls_back_to_weekends_only_and_is_unconfirmed(cal: WorkingCalendar) -> None:
    assert cal.year_source(2027) is YearSource.WEEKENDS_ONLY
    assert cal.is_working_day(D(2027, 1, 1))  # a Friday; New Year's Day is not known yet
    assert not cal.is_working_day(D(2027, 1, 2))
    assert cal.unconfirmed_years(D(2026, 11, 1), D(2027, 3, 1)) == (2027,)
    warning = calendar_warning_zh(cal, D(2026, 11, 1), D(2027, 3, 1))
    assert warning is not None and "2027年" in warning and "周末双休" in warning


def test_no_warning_is_shown_while_every_year_in_range_is_confirmed(cal: WorkingCalendar) -> None:
    assert calendar_warning_zh(cal, D(2026, 1, 1), D(2026, 12, 31)) is None
    assert cal.year_source(2026) is YearSource.LIBRARY


def test_a_confirmed_county_override_adds_holidays_and_make_up_days_and_silences_the_warning() -> None:
    cal = WorkingCalendar(parse_override_toml(CONFIRMED_2027, "county.toml"))
    assert cal.year_source(2027) is YearSource.OVERRIDE_CONFIRMED
    assert not cal.is_working_day(D(2027, 1, 1))
    assert not cal.is_working_day(D(2027, 2, 8))  # a Monday given as a bare string date
    assert cal.is_working_day(D(2027, 1, 9))  # a Saturday 调休
    assert cal.warning_zh(D(2026, 12, 1), D(2027, 6, 1)) is None
    assert cal.year_source(2028) is YearSource.WEEKENDS_ONLY


def test_a_draft_override_is_used_for_counting_but_still_warns() -> None:
    cal = WorkingCalendar(parse_override_toml(CONFIRMED_2027.replace("confirmed = true", "confirmed = false")))
    assert not cal.is_working_day(D(2027, 1, 1))
    warning = cal.warning_zh(D(2026, 12, 1), D(2027, 1, 31))
    assert warning is not None and "草案" in warning


def test_an_override_cannot_rewrite_a_year_the_library_already_publishes() -> None:
    text = "format = 1\n[year_2026]\nconfirmed = true\nholidays = [2026-11-23]\n"
    cal = WorkingCalendar(parse_override_toml(text))
    assert cal.is_working_day(D(2026, 11, 23))
    assert cal.ignored_override_years == (2026,)


def test_the_shipped_example_override_parses_and_is_not_confirmed() -> None:
    years = load_override_file(REPO / "ops" / "examples" / "calendar_override_2027.toml")
    assert set(years) == {2027}
    assert years[2027].confirmed is False
    assert not WorkingCalendar(years).is_confirmed(2027)


def test_the_package_ships_no_confirmed_calendar_for_a_year_beyond_the_library() -> None:
    data_dir = REPO / "shared" / "data" / "calendar_overrides"
    for year, override in load_override_dir(data_dir).items():
        assert not override.confirmed, f"package data must not claim {year} is confirmed"


def test_loading_a_directory_refuses_a_year_defined_in_two_files(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(CONFIRMED_2027, encoding="utf-8")
    (tmp_path / "b.toml").write_text(CONFIRMED_2027, encoding="utf-8")
    with pytest.raises(CalendarOverrideError, match="2027"):
        load_override_dir(tmp_path)


def test_a_missing_override_directory_means_no_overrides(tmp_path: Path) -> None:
    assert load_override_dir(tmp_path / "absent") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[year_2027]\nconfirmed = true\n", "format"),
        ("format = 1\n[year_2027]\nholidays = []\n", "confirmed"),
        ("format = 1\n[year_2027]\nconfirmed = true\nholiday = [2027-01-01]\n", "holiday"),
        ("format = 1\n[year_2027]\nconfirmed = true\nholidays = [2028-01-01]\n", "2028-01-01"),
        ("format = 1\n[year_2027]\nconfirmed = true\nholidays = [2027-01-02]\nworkdays = [2027-01-02]\n", "同时"),
        ("format = 1\n[year_2027]\nconfirmed = true\nholidays = [{from = 2027-01-03, to = 2027-01-01}]\n", "早于"),
        ("format = 1\n[year_2027]\nconfirmed = true\nholidays = [2027-01-01T08:00:00]\n", "钟点"),
        ("format = 1\n[year_2027]\nconfirmed = true\nholidays = [\"2027-13-01\"]\n", "无法识别"),
        ("format = 1\n[year_2027]\nconfirmed = true\nworkdays = [{from = 2027-01-01, to = 2027-01-02}]\n", "未知的键"),
        ("format = 1\n[calendar]\nconfirmed = true\n", "year_2027"),
        ("format = 1\n", "没有任何年份段"),
        ("format = 1\n[year_2027\n", "TOML"),
    ],
)
def test_an_invalid_override_file_is_refused_with_the_reason(text: str, fragment: str) -> None:
    with pytest.raises(CalendarOverrideError) as info:
        parse_override_toml(text, "county.toml")
    assert fragment in str(info.value)
    assert "county.toml" in str(info.value) or fragment == "TOML"


def test_a_year_override_built_in_code_is_validated_too() -> None:
    with pytest.raises(CalendarOverrideError):
        YearOverride(2027, True, holidays=frozenset({D(2026, 12, 31)}))


def test_the_fingerprint_changes_when_an_override_changes() -> None:
    a = WorkingCalendar(parse_override_toml(CONFIRMED_2027))
    b = WorkingCalendar(parse_override_toml(CONFIRMED_2027.replace('"2027-02-08"', '"2027-02-09"')))
    assert a.fingerprint != b.fingerprint != WorkingCalendar().fingerprint
    assert a.fingerprint == WorkingCalendar(parse_override_toml(CONFIRMED_2027)).fingerprint


# -- properties ------------------------------------------------------------------------------

days = st.dates(min_value=D(2024, 1, 1), max_value=D(2028, 12, 31))
calendars = st.sampled_from([WorkingCalendar(), WorkingCalendar(parse_override_toml(CONFIRMED_2027))])


@settings(max_examples=300, deadline=dt.timedelta(seconds=2))
@given(day=days, n=st.integers(min_value=0, max_value=120), cal=calendars)
def test_n_working_days_forward_then_back_is_n(day: dt.date, n: int, cal: WorkingCalendar) -> None:
    forward = cal.add_working_days(day, n)
    assert cal.working_days_between(day, forward) == n
    back = cal.add_working_days(forward, -n)
    if cal.is_working_day(day) or n == 0:
        assert back == day
    else:
        # From a day off, going back lands on the last working day before it.
        assert back == cal.add_working_days(day, -1)
    if n > 0:
        assert cal.is_working_day(forward)
