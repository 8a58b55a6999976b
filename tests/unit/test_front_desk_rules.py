"""The front desk's pure rules: answer limits of complaints and petitions, appointments, absences
with 顶岗, and the order of the window's queue."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.calendar import WorkingCalendar
from shared.domain.front_desk import (
    Absence,
    AppointmentState,
    CaseKind,
    Complexity,
    QueueEntry,
    absence_problem,
    answer_clock,
    answer_limit,
    arrival_problem,
    change_problem,
    covering,
    forfeit_problem,
    queue_order,
)
from shared.domain.limits import Limit
from shared.errors import HandlingError

BJ = dt.timezone(dt.timedelta(hours=8))
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=BJ)


def test_a_simple_complaint_is_due_at_close_of_office_the_next_working_day() -> None:
    clock = answer_clock(CaseKind.COMPLAINT, Complexity.SIMPLE, MONDAY_10)
    assert clock is not None
    due = clock.due_at(WorkingCalendar()).astimezone(BJ)
    assert due.date() == dt.date(2026, 11, 24) and due.hour >= 17


def test_a_simple_complaint_on_friday_evening_is_due_on_monday_not_on_the_weekend() -> None:
    friday_evening = dt.datetime(2026, 11, 27, 19, 0, tzinfo=BJ)
    clock = answer_clock(CaseKind.COMPLAINT, Complexity.SIMPLE, friday_evening)
    assert clock is not None
    # Received after close on Friday: counts as received on Monday, answered by Tuesday's close.
    assert clock.due_at(WorkingCalendar()).astimezone(BJ).date() == dt.date(2026, 12, 1)


def test_complex_complaints_and_leader_receptions_have_a_week_petitions_three_working_days() -> None:
    assert answer_limit(CaseKind.COMPLAINT, Complexity.COMPLEX) == Limit.natural_days(7)
    assert answer_limit(CaseKind.PETITION, Complexity.SIMPLE) == Limit.working_days(3)
    assert answer_limit(CaseKind.PETITION, Complexity.LEADER) == Limit.natural_days(7)
    assert answer_limit(CaseKind.CONSULTATION, Complexity.SIMPLE) is None


def test_a_complaint_cannot_be_a_leader_reception_nor_a_petition_complex() -> None:
    with pytest.raises(HandlingError):
        answer_limit(CaseKind.COMPLAINT, Complexity.LEADER)
    with pytest.raises(HandlingError):
        answer_limit(CaseKind.PETITION, Complexity.COMPLEX)


def test_an_appointment_is_forfeited_only_after_thirty_minutes_and_a_failed_contact() -> None:
    at = MONDAY_10
    confirmed = AppointmentState.CONFIRMED
    assert "30 分钟" in (forfeit_problem(confirmed, at, at + dt.timedelta(minutes=29), None) or "")
    assert "联系" in (forfeit_problem(confirmed, at, at + dt.timedelta(minutes=31), None) or "")
    # A contact attempt before the appointment time is not the attempt the rule asks for.
    assert forfeit_problem(confirmed, at, at + dt.timedelta(minutes=31), at - dt.timedelta(hours=1)) is not None
    assert forfeit_problem(confirmed, at, at + dt.timedelta(minutes=31), at + dt.timedelta(minutes=30)) is None
    assert forfeit_problem(AppointmentState.ARRIVED, at, at + dt.timedelta(hours=1), at) is not None


def test_a_change_needs_the_halls_approval_the_applicant_told_and_a_reason() -> None:
    open_ = AppointmentState.CONFIRMED
    assert "批准" in (change_problem(open_, "", True, "窗口设备维修") or "")
    assert "告知" in (change_problem(open_, "zhao", False, "窗口设备维修") or "")
    assert "原因" in (change_problem(open_, "zhao", True, " ") or "")
    assert change_problem(open_, "zhao", True, "窗口设备维修") is None
    assert change_problem(AppointmentState.FORFEITED, "zhao", True, "x") is not None


def test_a_late_arrival_is_recorded_with_a_reason_even_after_the_forfeit() -> None:
    at = MONDAY_10
    assert arrival_problem(AppointmentState.CONFIRMED, at, at + dt.timedelta(minutes=10), "") is None
    assert "原因" in (arrival_problem(AppointmentState.CONFIRMED, at, at + dt.timedelta(minutes=45), "") or "")
    assert arrival_problem(AppointmentState.CONFIRMED, at, at + dt.timedelta(minutes=45), "班车晚点") is None
    assert arrival_problem(AppointmentState.FORFEITED, at, at + dt.timedelta(hours=2), "路上车坏了") is None
    assert arrival_problem(AppointmentState.CANCELLED, at, at, "x") is not None


def test_an_absence_needs_a_reason_a_real_backup_and_no_overlap() -> None:
    today = dt.date(2026, 11, 23)
    leave = Absence("wang", "li", today, today + dt.timedelta(days=2), "年休假")
    assert absence_problem(leave, [], active=["li"], today=today) is None
    assert "原因" in (absence_problem(Absence("wang", "li", today, today, " "), [], active=["li"], today=today) or "")
    assert "本人" in (absence_problem(Absence("wang", "wang", today, today, "病假"), [], active=["wang"], today=today) or "")
    assert "在岗" in (absence_problem(leave, [], active=[], today=today) or "")
    backup_away = Absence("li", "zhao", today, today, "外出学习")
    assert "顶岗人" in (absence_problem(leave, [backup_away], active=["li"], today=today) or "")
    assert "已登记离岗" in (absence_problem(leave, [leave], active=["li"], today=today) or "")


def test_who_covers_whom_today_ends_with_the_return() -> None:
    today = dt.date(2026, 11, 23)
    leave = Absence("wang", "li", today, today + dt.timedelta(days=4), "年休假")
    assert covering([leave], today) == [leave]
    back = Absence("wang", "li", today, today + dt.timedelta(days=4), "年休假", returned_on=today + dt.timedelta(days=1))
    assert covering([back], today + dt.timedelta(days=1)) == []


def test_the_queue_puts_the_elderly_first_then_appointment_times_and_arrivals_on_one_line() -> None:
    t = MONDAY_10
    walk_in_early = QueueEntry("1", t)
    booked_for_1030_came_early = QueueEntry("2", t + dt.timedelta(minutes=1), appointment_at=t + dt.timedelta(minutes=30))
    walk_in_1010 = QueueEntry("3", t + dt.timedelta(minutes=10))
    elderly_last_to_come = QueueEntry("4", t + dt.timedelta(minutes=20), elderly_or_disabled=True)
    booked_for_0930_came_late = QueueEntry("5", t + dt.timedelta(minutes=5), appointment_at=t - dt.timedelta(minutes=30))
    order = [e.ticket for e in queue_order([walk_in_early, booked_for_1030_came_early, walk_in_1010,
                                            elderly_last_to_come, booked_for_0930_came_late])]
    assert order == ["4", "1", "5", "3", "2"]
