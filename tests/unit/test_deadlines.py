"""Deadline arithmetic and the hop clock: worked cases over 2026's breaks and into 2027, state
boundaries, suspensions, extensions, and properties."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.calendar import SHANGHAI, WorkingCalendar, parse_override_toml
from shared.domain.deadlines import (
    ClockState,
    ClockStatus,
    HopClock,
    StopReason,
    SuspensionReason,
    Thresholds,
    deadlines_for,
    due_after,
    format_instant_zh,
    remaining_at,
)
from shared.domain.limits import Limit
from shared.errors import DeadlineError

WD, ND, MIN = Limit.working_days, Limit.natural_days, Limit.minutes
TESTING = SuspensionReason.TESTING

OVERRIDE_2027 = """
format = 1
[year_2027]
confirmed = true
holidays = [ { name = "元旦", from = 2027-01-01, to = 2027-01-03 } ]
workdays = [ { name = "调休", date = 2027-01-09 } ]
"""


def sh(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar()


# -- worked cases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "limit", "due"),
    [
        # National Day + Mid-Autumn 2026: 9-25..27 and 10-01..07 off; Sunday 9-20 and Saturday 10-10 work.
        (sh(2026, 9, 18), WD(5), sh(2026, 9, 24, 17, 30)),  # 9-20 (Sun, 调休) is day 1
        (sh(2026, 9, 24, 16, 0), WD(2), sh(2026, 9, 29, 17, 30)),  # over the Mid-Autumn weekend
        (sh(2026, 9, 30), WD(1), sh(2026, 10, 8, 17, 30)),  # day 1 is after the whole break
        (sh(2026, 9, 30), WD(3), sh(2026, 10, 10, 17, 30)),  # ends on the make-up Saturday
        (sh(2026, 10, 3), WD(1), sh(2026, 10, 9, 17, 30)),  # received on a holiday: counts as 10-08
        (sh(2026, 10, 10, 18, 0), WD(1), sh(2026, 10, 13, 17, 30)),  # after close on the make-up Saturday
        # Spring Festival 2026: 2-15..23 off; Saturdays 2-14 and 2-28 work.
        (sh(2026, 2, 13), WD(3), sh(2026, 2, 25, 17, 30)),
        (sh(2026, 2, 14, 9, 0), WD(1), sh(2026, 2, 24, 17, 30)),  # received on the make-up Saturday
        (sh(2026, 2, 20), WD(5), sh(2026, 3, 2, 17, 30)),  # received mid-holiday; 2-28 counts
        # Natural days end on a working day (民法典 第二百零三条).
        (sh(2026, 9, 21), ND(10), sh(2026, 10, 8, 17, 30)),  # day 10 is 10-01
        (sh(2026, 9, 21), ND(5), sh(2026, 9, 28, 17, 30)),  # day 5 is 9-26 (中秋)
        (sh(2026, 9, 20), ND(10), sh(2026, 9, 30, 17, 30)),
        # 即办: office minutes.
        (sh(2026, 11, 23, 11, 50), MIN(30), sh(2026, 11, 23, 14, 20)),
        (sh(2026, 11, 23, 12, 30), MIN(30), sh(2026, 11, 23, 14, 30)),
        (sh(2026, 11, 27, 17, 20), MIN(30), sh(2026, 11, 30, 8, 50)),
        (sh(2026, 11, 28, 10, 0), MIN(30), sh(2026, 11, 30, 9, 0)),
        (sh(2026, 9, 30, 17, 10), MIN(30), sh(2026, 10, 8, 8, 40)),
    ],
)
def test_worked_cases_over_2026_breaks_and_make_up_days(
    cal: WorkingCalendar, received: dt.datetime, limit: Limit, due: dt.datetime
) -> None:
    assert due_after(received, limit, cal) == due


def test_a_deadline_running_into_2027_without_an_override_counts_new_years_day_and_warns(cal: WorkingCalendar) -> None:
    due = due_after(sh(2026, 12, 28), WD(10), cal)
    # 12-29, 12-30, 12-31, 01-01 (Friday: unknown holiday, counted), 01-04 … 01-08, 01-11
    assert due == sh(2027, 1, 11, 17, 30)
    warning = cal.warning_zh(dt.date(2026, 12, 28), due.astimezone(SHANGHAI).date())
    assert warning is not None and "2027" in warning


def test_a_deadline_running_into_2027_with_an_override_skips_its_holidays_and_counts_its_make_up_day() -> None:
    cal = WorkingCalendar(parse_override_toml(OVERRIDE_2027))
    # 12-29, 12-30, 12-31, 01-04 … 01-08 (8), 01-09 (Saturday 调休, 9), 01-11 (10)
    due = due_after(sh(2026, 12, 28), WD(10), cal)
    assert due == sh(2027, 1, 11, 17, 30)
    assert due_after(sh(2026, 12, 28), WD(8), cal) == sh(2027, 1, 8, 17, 30)
    assert due_after(sh(2026, 12, 28), WD(4), cal) == sh(2027, 1, 4, 17, 30)  # 01-01 is now off
    assert due_after(sh(2026, 12, 28), WD(9), cal) == sh(2027, 1, 9, 17, 30)  # ends on the make-up Saturday
    assert due_after(sh(2026, 12, 28), WD(9), WorkingCalendar()) == sh(2027, 1, 8, 17, 30)
    assert cal.warning_zh(dt.date(2026, 12, 28), dt.date(2027, 1, 11)) is None


def test_due_times_are_utc_instants_whatever_zone_the_receipt_was_given_in(cal: WorkingCalendar) -> None:
    received_utc = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # 10:00 Shanghai
    due = due_after(received_utc, WD(5), cal)
    assert due.tzinfo == dt.UTC
    assert due == sh(2026, 11, 30, 17, 30)
    assert format_instant_zh(due) == "2026年11月30日 17:30"


def test_a_naive_receipt_time_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(DeadlineError):
        due_after(dt.datetime(2026, 11, 23, 10, 0), WD(5), cal)


# -- states and remaining time ----------------------------------------------------------------


@pytest.fixture
def five_day_clock() -> HopClock:
    # Received Monday 11-23 10:00: due Monday 11-30 17:30, warn Friday 11-27 17:30, 督办 Thursday 12-03 17:30.
    return HopClock.received(sh(2026, 11, 23), WD(5), WD(20))


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (sh(2026, 11, 27, 17, 29), ClockState.ON_TIME),
        (sh(2026, 11, 27, 17, 30), ClockState.WARNING),
        (sh(2026, 11, 30, 17, 30), ClockState.WARNING),  # the due instant itself is still on time
        (sh(2026, 11, 30, 17, 31), ClockState.OVERDUE),
        (sh(2026, 12, 3, 17, 29), ClockState.OVERDUE),
        (sh(2026, 12, 3, 17, 30), ClockState.SUPERVISE),  # 3 working days late
    ],
)
def test_the_clock_passes_warning_overdue_and_supervision_at_the_configured_thresholds(
    cal: WorkingCalendar, five_day_clock: HopClock, now: dt.datetime, state: ClockState
) -> None:
    assert five_day_clock.state_at(now, cal) is state


def test_thresholds_are_configurable(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    early = Thresholds(warn_working_days=2, supervise_working_days=1)
    marks = five_day_clock.deadlines(cal, early)
    assert marks is not None
    assert marks.warn_at == sh(2026, 11, 26, 17, 30)
    assert marks.escalate_at == sh(2026, 12, 1, 17, 30)


def test_a_limit_shorter_than_the_warning_lead_warns_from_the_start(cal: WorkingCalendar) -> None:
    start = sh(2026, 11, 23, 9, 0)
    marks = deadlines_for(start, due_after(start, MIN(5), cal), MIN(5), cal, Thresholds(warn_office_minutes=10))
    assert marks.warn_at == start
    clock = HopClock.received(start, MIN(30), MIN(30))
    marks = clock.deadlines(cal)
    assert marks is not None and marks.warn_at == sh(2026, 11, 23, 9, 20)  # 10 office minutes before 09:30


def test_remaining_time_is_told_in_working_days_or_office_minutes(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    remaining = five_day_clock.remaining_at(sh(2026, 11, 27, 9, 0), cal)
    assert remaining is not None and remaining.describe_zh() == "剩余2个工作日"
    late = five_day_clock.remaining_at(sh(2026, 12, 2, 18, 0), cal)
    assert late is not None and late.overdue and late.describe_zh() == "已超期2个工作日"
    due = sh(2026, 11, 23, 14, 20)
    assert remaining_at(due, sh(2026, 11, 23, 11, 50), cal).describe_zh() == "剩余30分钟"


# -- suspensions -----------------------------------------------------------------------------


def test_a_suspension_over_two_closes_of_office_moves_the_deadline_two_working_days(
    cal: WorkingCalendar, five_day_clock: HopClock
) -> None:
    clock = five_day_clock.suspend(sh(2026, 11, 24, 10), TESTING).resume(sh(2026, 11, 26, 15))
    assert clock.due_at(cal) == sh(2026, 12, 2, 17, 30)


def test_a_suspension_within_one_office_day_costs_no_day(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    clock = five_day_clock.suspend(sh(2026, 11, 24, 10), TESTING).resume(sh(2026, 11, 24, 15))
    assert clock.due_at(cal) == sh(2026, 11, 30, 17, 30)


def test_an_overnight_suspension_takes_out_the_day_whose_close_it_covers(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    clock = five_day_clock.suspend(sh(2026, 11, 24, 16), SuspensionReason.EXPERT_REVIEW).resume(sh(2026, 11, 25, 9))
    assert clock.due_at(cal) == sh(2026, 12, 1, 17, 30)


def test_a_suspension_across_the_national_day_break_only_costs_the_working_days_it_covers(cal: WorkingCalendar) -> None:
    clock = HopClock.received(sh(2026, 9, 28), WD(5), WD(20))  # 9-29, 9-30, 10-08, 10-09, 10-10
    assert clock.due_at(cal) == sh(2026, 10, 10, 17, 30)
    suspended = clock.suspend(sh(2026, 9, 30, 9), SuspensionReason.EXPERT_REVIEW).resume(sh(2026, 10, 9, 9))
    # 9-30 and 10-08 are taken out: 9-29, 10-09, 10-10, 10-12, 10-13
    assert suspended.due_at(cal) == sh(2026, 10, 13, 17, 30)


def test_minute_limits_take_out_exactly_the_suspended_office_minutes(cal: WorkingCalendar) -> None:
    clock = HopClock.received(sh(2026, 11, 23, 9, 0), MIN(30), MIN(30))
    clock = clock.suspend(sh(2026, 11, 23, 9, 10), SuspensionReason.AWAITING_MATERIALS).resume(sh(2026, 11, 23, 9, 20))
    assert clock.due_at(cal) == sh(2026, 11, 23, 9, 40)


def test_while_suspended_the_due_time_is_unknown_and_the_state_is_frozen(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    clock = five_day_clock.suspend(sh(2026, 11, 27, 9), SuspensionReason.HEARING)
    assert clock.status is ClockStatus.SUSPENDED
    assert clock.due_at(cal) is None
    assert clock.deadlines(cal) is None
    assert clock.state_at(sh(2027, 1, 1), cal) is ClockState.ON_TIME
    assert clock.remaining_at(sh(2027, 1, 1), cal).describe_zh() == "剩余2个工作日"


def test_suspending_an_overdue_clock_keeps_it_overdue(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    clock = five_day_clock.suspend(sh(2026, 12, 1, 9), SuspensionReason.AWAITING_MATERIALS)
    assert clock.due_at(cal) == sh(2026, 11, 30, 17, 30)
    assert clock.state_at(sh(2026, 12, 20), cal) is ClockState.OVERDUE


def test_a_supplement_case_starts_counting_when_the_materials_are_complete(cal: WorkingCalendar) -> None:
    clock = HopClock.received(sh(2026, 11, 2), WD(5), WD(20), materials_complete=False)
    assert clock.status is ClockStatus.WAITING and clock.due_at(cal) is None
    assert clock.state_at(sh(2026, 12, 31), cal) is ClockState.ON_TIME
    started = clock.start(sh(2026, 11, 23))
    assert started.due_at(cal) == sh(2026, 11, 30, 17, 30)


# -- extensions ------------------------------------------------------------------------------


def test_an_approved_extension_replaces_the_limit_from_the_same_start(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    clock = five_day_clock.extend(sh(2026, 11, 25), WD(10), approver="chief-01", reason="需补充现场核查", calendar=cal)
    assert clock.due_at(cal) == sh(2026, 12, 7, 17, 30)
    assert len(clock.unnotified_extensions) == 1
    notified = clock.note_applicant_notified(sh(2026, 11, 25, 11))
    assert notified.unnotified_extensions == ()


@pytest.mark.parametrize(
    ("at", "new_limit", "approver", "fragment"),
    [
        (sh(2026, 11, 25), WD(21), "chief-01", "法定时限"),
        (sh(2026, 11, 25), WD(3), "chief-01", "应长于"),
        (sh(2026, 11, 25), WD(5), "chief-01", "应长于"),
        (sh(2026, 11, 25), WD(10), " ", "批准人"),
        (sh(2026, 12, 1), WD(10), "chief-01", "届满"),
    ],
)
def test_an_extension_that_breaks_the_rules_is_refused(
    cal: WorkingCalendar, five_day_clock: HopClock, at: dt.datetime, new_limit: Limit, approver: str, fragment: str
) -> None:
    with pytest.raises(DeadlineError, match=fragment):
        five_day_clock.extend(at, new_limit, approver=approver, reason="理由", calendar=cal)


def test_an_extension_in_other_units_is_measured_against_the_statutory_deadline(cal: WorkingCalendar) -> None:
    # Statutory 20 natural days from 11-23: day 20 is Sunday 12-13, so it ends Monday 12-14 17:30.
    clock = HopClock.received(sh(2026, 11, 23), WD(5), ND(20))
    extended = clock.extend(sh(2026, 11, 24), WD(15), approver="chief-01", reason="理由", calendar=cal)
    assert extended.due_at(cal) == sh(2026, 12, 14, 17, 30)
    with pytest.raises(DeadlineError, match="法定时限"):
        clock.extend(sh(2026, 11, 24), WD(16), approver="chief-01", reason="理由", calendar=cal)


def test_a_promise_longer_than_the_statutory_limit_is_refused() -> None:
    with pytest.raises(DeadlineError):
        HopClock.received(sh(2026, 11, 23), WD(21), WD(20))


# -- transitions -----------------------------------------------------------------------------


def test_transitions_that_make_no_sense_are_refused(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    with pytest.raises(DeadlineError):
        five_day_clock.resume(sh(2026, 11, 24))
    with pytest.raises(DeadlineError):
        five_day_clock.start(sh(2026, 11, 24))
    suspended = five_day_clock.suspend(sh(2026, 11, 24), TESTING)
    with pytest.raises(DeadlineError):
        suspended.suspend(sh(2026, 11, 25), TESTING)
    with pytest.raises(DeadlineError, match="倒退"):
        suspended.resume(sh(2026, 11, 23, 12))
    stopped = five_day_clock.stop(sh(2026, 11, 26), StopReason.DONE)
    with pytest.raises(DeadlineError):
        stopped.stop(sh(2026, 11, 27), StopReason.DONE)
    with pytest.raises(DeadlineError):
        stopped.extend(sh(2026, 11, 27), WD(10), approver="a", reason="r", calendar=cal)


def test_a_stopped_clock_keeps_the_state_it_stopped_in(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    on_time = five_day_clock.stop(sh(2026, 11, 30, 17, 30), StopReason.PASSED_ON)
    assert on_time.state_at(sh(2027, 1, 1), cal) is ClockState.WARNING
    late = five_day_clock.stop(sh(2026, 12, 1, 9), StopReason.DONE)
    assert late.state_at(sh(2027, 1, 1), cal) is ClockState.OVERDUE
    assert late.deadlines(cal) is None


def test_stopping_a_suspended_clock_closes_the_suspension(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    stopped = five_day_clock.suspend(sh(2026, 11, 24), TESTING).stop(sh(2026, 11, 26), StopReason.RETURNED)
    assert stopped.suspensions[-1].end_at == sh(2026, 11, 26)
    assert stopped.status is ClockStatus.STOPPED


def test_a_clock_survives_a_round_trip_through_its_stored_form(cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    clock = (
        five_day_clock.suspend(sh(2026, 11, 24, 10, 0) + dt.timedelta(microseconds=7), TESTING, note="水质检测")
        .resume(sh(2026, 11, 26, 15))
        .extend(sh(2026, 11, 27), WD(10), approver="chief-01", reason="理由", calendar=cal)
        .stop(sh(2026, 12, 1), StopReason.DONE)
    )
    assert HopClock.from_json_dict(clock.to_json_dict()) == clock
    with pytest.raises(DeadlineError):
        HopClock.from_json_dict({"v": 99})


# -- properties ------------------------------------------------------------------------------

CALENDARS = [WorkingCalendar(), WorkingCalendar(parse_override_toml(OVERRIDE_2027))]
BASE = dt.datetime(2025, 1, 1, tzinfo=SHANGHAI)


@st.composite
def instants(draw: st.DrawFn, max_days: int = 3 * 365) -> dt.datetime:
    return BASE + dt.timedelta(days=draw(st.integers(0, max_days)), minutes=draw(st.integers(0, 24 * 60 - 1)))


limits = st.one_of(
    st.integers(1, 40).map(WD),
    st.integers(1, 90).map(ND),
    st.integers(1, 2000).map(MIN),
)
gaps = st.integers(0, 20 * 24 * 60).map(lambda m: dt.timedelta(minutes=m))
cals = st.sampled_from(CALENDARS)
PROPS = settings(max_examples=250, deadline=dt.timedelta(seconds=2))


def _statutory_for(limit: Limit) -> Limit:
    return Limit(limit.amount * 3, limit.unit)


@PROPS
@given(start=instants(), limit=limits, cal=cals, pauses=st.lists(st.tuples(gaps, gaps), min_size=1, max_size=3))
def test_a_suspension_never_makes_a_deadline_earlier(
    start: dt.datetime, limit: Limit, cal: WorkingCalendar, pauses: list[tuple[dt.timedelta, dt.timedelta]]
) -> None:
    clock = HopClock.received(start, limit, _statutory_for(limit))
    before = clock.due_at(cal)
    at = start
    for run_after, pause_after in pauses:
        at = at + run_after
        clock = clock.suspend(at, TESTING)
        at = at + pause_after
        clock = clock.resume(at)
        after = clock.due_at(cal)
        assert before is not None and after is not None
        assert after >= before
        before = after


@PROPS
@given(
    start=instants(),
    amount=st.integers(1, 30),
    statutory_extra=st.integers(0, 30),
    new_amount=st.integers(1, 80),
    unit=st.sampled_from(["wd", "nd"]),
    statutory_unit=st.sampled_from(["wd", "nd"]),
    decide_after=gaps,
    later_pause=st.tuples(gaps, gaps),
    cal=cals,
)
def test_an_extension_never_passes_the_statutory_limit(
    start: dt.datetime,
    amount: int,
    statutory_extra: int,
    new_amount: int,
    unit: str,
    statutory_unit: str,
    decide_after: dt.timedelta,
    later_pause: tuple[dt.timedelta, dt.timedelta],
    cal: WorkingCalendar,
) -> None:
    make = {"wd": WD, "nd": ND}
    limit = make[unit](amount)
    statutory = make[statutory_unit](amount + statutory_extra)
    assume(limit.fits_within(statutory))
    clock = HopClock.received(start, limit, statutory)
    try:
        extended = clock.extend(start + decide_after, make[unit](new_amount), approver="chief", reason="r", calendar=cal)
    except DeadlineError:
        return
    as_statutory = HopClock.received(start, statutory, statutory)
    due, statutory_due = extended.due_at(cal), as_statutory.due_at(cal)
    assert due is not None and statutory_due is not None and due <= statutory_due
    if unit == statutory_unit:
        # Same units: still within the statutory deadline after any later suspension.
        at = start + decide_after + later_pause[0]
        extended = extended.suspend(at, TESTING).resume(at + later_pause[1])
        as_statutory = as_statutory.suspend(at, TESTING).resume(at + later_pause[1])
        assert extended.due_at(cal) <= as_statutory.due_at(cal)


@PROPS
@given(start=instants(), limit=limits, cal=cals, pause=st.one_of(st.none(), st.tuples(gaps, gaps)))
def test_due_dates_never_fall_on_a_day_off_or_outside_office_hours(
    start: dt.datetime, limit: Limit, cal: WorkingCalendar, pause: tuple[dt.timedelta, dt.timedelta] | None
) -> None:
    clock = HopClock.received(start, limit, _statutory_for(limit))
    if pause is not None:
        clock = clock.suspend(start + pause[0], TESTING).resume(start + pause[0] + pause[1])
    due = clock.due_at(cal)
    assert due is not None
    local = due.astimezone(SHANGHAI)
    assert cal.is_working_day(local.date())
    hours = cal.office_hours
    assert any(s < local.time() <= e for s, e in hours.sessions), local
    assert due > start


@PROPS
@given(start=instants(), amount=st.integers(1, 39), cal=cals, unit=st.sampled_from([WD, ND, MIN]))
def test_a_longer_limit_is_never_due_earlier(start: dt.datetime, amount: int, cal: WorkingCalendar, unit: type) -> None:
    assert due_after(start, unit(amount), cal) <= due_after(start, unit(amount + 1), cal)


def test_a_hop_passed_on_that_the_next_tier_did_not_take_in_runs_on_from_its_old_start(
        cal: WorkingCalendar, five_day_clock: HopClock) -> None:
    passed = five_day_clock.stop(sh(2026, 11, 24), StopReason.PASSED_ON)
    reopened = passed.reopen(sh(2026, 11, 25))
    assert reopened.status is ClockStatus.RUNNING and reopened.stop_at is None
    assert reopened.due_at(cal) == five_day_clock.due_at(cal)     # the county's days count against this hop


@pytest.mark.parametrize("reason", [StopReason.DONE, StopReason.RETURNED])
def test_a_hop_that_was_done_or_returned_cannot_be_reopened(five_day_clock: HopClock, reason: StopReason) -> None:
    stopped = five_day_clock.stop(sh(2026, 11, 24), reason)
    with pytest.raises(DeadlineError, match="只有已移交上级"):
        stopped.reopen(sh(2026, 11, 25))


def test_a_running_hop_cannot_be_reopened_nor_reopened_before_it_stopped(five_day_clock: HopClock) -> None:
    with pytest.raises(DeadlineError):
        five_day_clock.reopen(sh(2026, 11, 25))
    passed = five_day_clock.stop(sh(2026, 11, 24), StopReason.PASSED_ON)
    with pytest.raises(DeadlineError, match="时钟不能倒退"):
        passed.reopen(sh(2026, 11, 23, 12))


def test_a_site_inspection_runs_inside_the_limit_and_never_pauses_the_clock(five_day_clock: HopClock) -> None:
    with pytest.raises(DeadlineError, match="现场勘查在承诺时限内进行"):
        five_day_clock.suspend(sh(2026, 11, 24, 10), SuspensionReason.SITE_INSPECTION)
    assert SuspensionReason.SITE_INSPECTION not in SuspensionReason.not_counted_steps()
    assert {r.label_zh for r in SuspensionReason.not_counted_steps()} == {
        "听证", "招标、拍卖", "检验、检测、检疫", "鉴定", "专家评审"}
