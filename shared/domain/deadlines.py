"""Deadline arithmetic for one hop (环节) of a matter: when it is due, how much time is left, and the
hop clock's history (start, suspensions, extensions, stop) as an immutable value.

Pure: no clock, no I/O. Every function takes the instants and the `WorkingCalendar` it needs.

How a deadline is counted (the rules, and the choices where the rules leave room):

* **Receipt.** The clock starts at the receiving tier's receipt time (or, for a 补办件, when the
  materials are complete). `WorkingCalendar.receipt_day` gives the working day it counts as received
  on: a working day before close of office → that day; after close or on a day off → the next
  working day.
* **Working days.** The receipt day is not counted (民法典 第二百零一条): day 1 is the next working
  day, and a limit of N working days ends at close of office on the N-th counted day.
* **Natural days.** Day 1 is the calendar day after the receipt day; the period ends at close of
  office on the N-th day, or — when that is a day off — on the next working day
  (民法典 第二百零三条).
* **Office minutes (即办).** Counted inside office sessions from the receipt instant (or the next
  session's opening).
* **Suspensions (中止计时: 补正材料, 听证, 招标拍卖, 检验检测检疫, 鉴定, 专家评审)** are not
  counted (003 第八条) — and only these: a 现场勘查 runs inside the limit. For day limits a day
  is counted when the clock is running at that day's close of office; a suspension covering a
  close takes that day out, so deadlines stay at a close of office and a suspension of a few hours
  inside one day costs nothing. For minute limits the suspended office minutes are taken out
  exactly. Either way a suspension never makes a deadline earlier. While a clock is suspended its
  due time is unknown (unless it had already passed) and its state is frozen at the suspension's
  start.
* **Extensions (延期)** replace the limit in force, counted from the same start; they need an approver
  and a reason, must be longer than the limit they replace, must stay within the statutory limit
  (003 第七条), and cannot revive a deadline that has already passed. The applicant must be told in
  writing; `HopClock.unnotified_extensions` lists the extensions still waiting for that notice.
* **States.** WARNING from `warn_at` (default: 1 working day before the due time; 10 office minutes
  for minute limits), OVERDUE after `due_at`, SUPERVISE (督办) once overdue by 3 working days
  (000: 连续延期三个工作日).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from shared.calendar import SHANGHAI, WorkingCalendar
from shared.domain.limits import Limit, LimitUnit
from shared.errors import CalendarError, DeadlineError

__all__ = [
    "ClockState",
    "ClockStatus",
    "SuspensionReason",
    "StopReason",
    "Thresholds",
    "Deadlines",
    "Remaining",
    "Suspension",
    "Extension",
    "HopClock",
    "due_after",
    "deadlines_for",
    "remaining_at",
    "format_instant_zh",
]

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_ONE_DAY = dt.timedelta(days=1)
_ONE_US = dt.timedelta(microseconds=1)


class ClockState(str, Enum):
    ON_TIME = "on_time"
    WARNING = "warning"
    OVERDUE = "overdue"
    SUPERVISE = "supervise"  # 督办

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def label_zh(self) -> str:
        return _STATE_LABELS[self]

    @classmethod
    def from_rank(cls, rank: int) -> ClockState:
        return _BY_RANK[rank]


_RANK = {ClockState.ON_TIME: 0, ClockState.WARNING: 1, ClockState.OVERDUE: 2, ClockState.SUPERVISE: 3}
_BY_RANK = {v: k for k, v in _RANK.items()}
_STATE_LABELS = {
    ClockState.ON_TIME: "正常",
    ClockState.WARNING: "临期预警",
    ClockState.OVERDUE: "已超期",
    ClockState.SUPERVISE: "超期督办",
}
# The levels that fire an event, in order.
FIRING_LEVELS = (ClockState.WARNING, ClockState.OVERDUE, ClockState.SUPERVISE)


class ClockStatus(str, Enum):
    WAITING = "waiting"  # 补办件: received, materials not yet complete, not counting
    RUNNING = "running"
    SUSPENDED = "suspended"
    STOPPED = "stopped"

    @property
    def label_zh(self) -> str:
        return {
            ClockStatus.WAITING: "待补齐材料（未计时）",
            ClockStatus.RUNNING: "计时中",
            ClockStatus.SUSPENDED: "中止计时",
            ClockStatus.STOPPED: "已停止",
        }[self]


class SuspensionReason(str, Enum):
    """Why a clock is not counting: the applicant's 补正, or one of the steps 003 第八条 names.

    `SITE_INSPECTION` stays only so clocks saved by earlier releases still load: a 现场勘查 runs
    inside the promised limit (004 五制; 000), so no new suspension may give it as the reason.
    """

    AWAITING_MATERIALS = "awaiting_materials"
    SITE_INSPECTION = "site_inspection"
    HEARING = "hearing"
    TENDERING = "tendering"
    TESTING = "testing"
    APPRAISAL = "appraisal"
    EXPERT_REVIEW = "expert_review"

    @property
    def label_zh(self) -> str:
        return {
            SuspensionReason.AWAITING_MATERIALS: "等待补正材料",
            SuspensionReason.SITE_INSPECTION: "现场勘查（旧记录）",
            SuspensionReason.HEARING: "听证",
            SuspensionReason.TENDERING: "招标、拍卖",
            SuspensionReason.TESTING: "检验、检测、检疫",
            SuspensionReason.APPRAISAL: "鉴定",
            SuspensionReason.EXPERT_REVIEW: "专家评审",
        }[self]


    @property
    def may_suspend(self) -> bool:
        """Whether a new suspension may give this reason (003 第八条's list and 补正 only)."""
        return self is not SuspensionReason.SITE_INSPECTION

    @classmethod
    def not_counted_steps(cls) -> tuple[SuspensionReason, ...]:
        """The steps an operator may pause a clock for, besides waiting for the applicant's 补正."""
        return tuple(r for r in cls if r.may_suspend and r is not cls.AWAITING_MATERIALS)


class StopReason(str, Enum):
    PASSED_ON = "passed_on"  # 移交下一环节 / 上报
    DONE = "done"  # 办结
    RETURNED = "returned"  # 退件

    @property
    def label_zh(self) -> str:
        return {StopReason.PASSED_ON: "已移交", StopReason.DONE: "已办结", StopReason.RETURNED: "已退件"}[self]


@dataclass(frozen=True)
class Thresholds:
    """When the warning and 督办 levels fire; configurable per deployment."""

    warn_working_days: int = 1
    warn_office_minutes: int = 10  # for minute limits (即办件), where a working day makes no sense
    supervise_working_days: int = 3

    def __post_init__(self) -> None:
        if self.warn_working_days < 0 or self.warn_office_minutes < 0:
            raise DeadlineError("预警提前量不能为负数")
        if self.supervise_working_days < 1:
            raise DeadlineError("督办门槛至少为超期1个工作日")

    def to_text(self) -> str:
        return f"warn={self.warn_working_days}wd/{self.warn_office_minutes}m;supervise={self.supervise_working_days}wd"


@dataclass(frozen=True)
class Deadlines:
    """The instants a running clock passes through: warning, due, 督办."""

    warn_at: dt.datetime
    due_at: dt.datetime
    escalate_at: dt.datetime

    def state_at(self, now: dt.datetime) -> ClockState:
        if now >= self.escalate_at:
            return ClockState.SUPERVISE
        if now > self.due_at:  # the due instant itself still counts as on time
            return ClockState.OVERDUE
        if now >= self.warn_at:
            return ClockState.WARNING
        return ClockState.ON_TIME

    def instant_of(self, level: ClockState) -> dt.datetime:
        """The first instant at which `level` holds (for firing events)."""
        if level is ClockState.WARNING:
            return self.warn_at
        if level is ClockState.OVERDUE:
            return self.due_at + _ONE_US
        if level is ClockState.SUPERVISE:
            return self.escalate_at
        raise DeadlineError(f"{level.value} 不是会触发的级别")


@dataclass(frozen=True)
class Remaining:
    """Time left until a due instant (or how late it is)."""

    overdue: bool
    working_days: int  # whole working days left (or, when overdue, whole working days late)
    office_time: dt.timedelta  # office time left (or late), never negative

    @property
    def office_minutes(self) -> int:
        return -(-int(self.office_time.total_seconds()) // 60)  # rounded up: 30 seconds is "1 minute"

    def describe_zh(self) -> str:
        if self.overdue:
            if self.working_days > 0:
                return f"已超期{self.working_days}个工作日"
            return f"已超期{self.office_minutes}分钟" if self.office_minutes else "已超期"
        if self.working_days > 0:
            return f"剩余{self.working_days}个工作日"
        return f"剩余{self.office_minutes}分钟"


def _aware(at: dt.datetime, what: str) -> dt.datetime:
    if not isinstance(at, dt.datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise DeadlineError(f"{what}必须是带时区的时刻")
    return at


def format_instant_zh(at: dt.datetime) -> str:
    """'2026年10月16日 17:30' in Shanghai time, for notices and consoles."""
    local = _aware(at, "时刻").astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


# --------------------------------------------------------------------------------------------
# The counting core
# --------------------------------------------------------------------------------------------

Interval = tuple[dt.datetime, dt.datetime]


def _covering(intervals: tuple[Interval, ...], at: dt.datetime) -> Interval | None:
    for start, end in intervals:
        if start <= at < end:
            return start, end
    return None


def _minus(a: dt.datetime, b: dt.datetime, intervals: tuple[Interval, ...]) -> list[Interval]:
    """[a, b) minus the (sorted, disjoint) intervals."""
    pieces = []
    cursor = a
    for start, end in intervals:
        if end <= cursor or start >= b:
            continue
        if start > cursor:
            pieces.append((cursor, start))
        cursor = max(cursor, end)
        if cursor >= b:
            break
    if cursor < b:
        pieces.append((cursor, b))
    return pieces


def _day_due(
    start_at: dt.datetime,
    limit: Limit,
    calendar: WorkingCalendar,
    closed: tuple[Interval, ...],
    open_from: dt.datetime | None,
) -> dt.datetime | None:
    receipt = calendar.receipt_day(start_at)
    n = limit.amount
    working = limit.unit is LimitUnit.WORKING_DAYS
    if not closed and open_from is None:
        if working:
            return calendar.close_at(calendar.add_working_days(receipt, n))
        last = receipt + dt.timedelta(days=n)
        if not calendar.is_working_day(last):
            last = calendar.next_working_day(last)
        return calendar.close_at(last)
    counted = 0
    day = receipt
    while counted < n:
        day = calendar.next_working_day(day) if working else day + _ONE_DAY
        check_at = calendar.close_at(day)
        if open_from is not None and check_at >= open_from:
            return None  # the N-th day lies after the suspension began: unknown until resumed
        hit = _covering(closed, check_at)
        if hit is not None:
            # Skip straight to the day the suspension ended; it is checked on the next turn.
            day = max(day, calendar.local_date(hit[1]) - _ONE_DAY)
            continue
        counted += 1
    if not working and not calendar.is_working_day(day):
        day = calendar.next_working_day(day)
    return calendar.close_at(day)


def _minute_due(
    start_at: dt.datetime,
    limit: Limit,
    calendar: WorkingCalendar,
    closed: tuple[Interval, ...],
    open_from: dt.datetime | None,
) -> dt.datetime | None:
    remaining = dt.timedelta(minutes=limit.amount)
    for a, b in calendar.iter_office_sessions(start_at):
        if open_from is not None and a >= open_from:
            return None
        for p, q in _minus(a, b, closed):
            if open_from is not None and q > open_from:
                if p >= open_from:
                    return None
                return p + remaining if open_from - p >= remaining else None
            if q - p >= remaining:
                return p + remaining
            remaining -= q - p
    raise AssertionError("unreachable")  # pragma: no cover - the session iterator is infinite


def _due(
    start_at: dt.datetime,
    limit: Limit,
    calendar: WorkingCalendar,
    closed: tuple[Interval, ...] = (),
    open_from: dt.datetime | None = None,
) -> dt.datetime | None:
    try:
        if limit.unit is LimitUnit.OFFICE_MINUTES:
            return _minute_due(start_at, limit, calendar, closed, open_from)
        return _day_due(start_at, limit, calendar, closed, open_from)
    except CalendarError as exc:
        raise DeadlineError(f"无法计算办理期限：{exc}") from exc


def due_after(start_at: dt.datetime, limit: Limit, calendar: WorkingCalendar) -> dt.datetime:
    """When a clock started at `start_at` with `limit` (and never suspended) is due. UTC."""
    _aware(start_at, "起算时刻")
    due = _due(start_at, limit, calendar)
    assert due is not None
    return due


def deadlines_for(
    start_at: dt.datetime,
    due_at: dt.datetime,
    limit: Limit,
    calendar: WorkingCalendar,
    thresholds: Thresholds = Thresholds(),
) -> Deadlines:
    """Warning and 督办 instants around a due instant."""
    if limit.unit is LimitUnit.OFFICE_MINUTES:
        warn_at = calendar.subtract_office_time(due_at, dt.timedelta(minutes=thresholds.warn_office_minutes))
    else:
        warn_at = calendar.shift_working_days(due_at, -thresholds.warn_working_days)
    # A limit shorter than the warning lead warns as soon as the clock starts.
    warn_at = min(max(warn_at, start_at), due_at)
    escalate_at = calendar.shift_working_days(due_at, thresholds.supervise_working_days)
    return Deadlines(warn_at=warn_at, due_at=due_at, escalate_at=escalate_at)


def remaining_at(due_at: dt.datetime, now: dt.datetime, calendar: WorkingCalendar) -> Remaining:
    """How much is left at `now` until `due_at`, or how late it is: whole working days (closes of
    office in between) and office time."""
    _aware(due_at, "期限")
    _aware(now, "当前时刻")
    if now <= due_at:
        return Remaining(False, calendar.closes_between(now, due_at), calendar.office_time_between(now, due_at))
    return Remaining(True, calendar.closes_between(due_at, now), calendar.office_time_between(due_at, now))


# --------------------------------------------------------------------------------------------
# The hop clock
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suspension:
    reason: SuspensionReason
    start_at: dt.datetime
    end_at: dt.datetime | None = None
    note: str = ""  # what is awaited; never personal data


@dataclass(frozen=True)
class Extension:
    decided_at: dt.datetime
    approver: str  # staff id of the approver
    reason: str
    previous_limit: Limit
    new_limit: Limit
    applicant_notified_at: dt.datetime | None = None  # 书面告知 sent


@dataclass(frozen=True)
class HopClock:
    """One hop's deadline clock. Transitions return new values; invalid ones raise DeadlineError."""

    limit: Limit  # in force: the promised limit, or the latest extension
    statutory: Limit
    received_at: dt.datetime  # receipt at this tier
    start_at: dt.datetime | None  # counting start; None while a 补办件 waits for materials
    suspensions: tuple[Suspension, ...] = ()
    extensions: tuple[Extension, ...] = ()
    stop_at: dt.datetime | None = None
    stop_reason: StopReason | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def received(
        cls,
        received_at: dt.datetime,
        limit: Limit,
        statutory: Limit,
        *,
        materials_complete: bool = True,
    ) -> HopClock:
        """A hop received at `received_at`. A 补办件 (materials_complete=False) waits, not counting,
        until `start` is called when the materials are complete."""
        _aware(received_at, "收件时刻")
        if not limit.fits_within(statutory):
            raise DeadlineError(
                f"承诺时限（{limit.describe_zh()}）不能超过法定时限（{statutory.describe_zh()}）"
            )
        return cls(
            limit=limit,
            statutory=statutory,
            received_at=received_at,
            start_at=received_at if materials_complete else None,
        )

    # -- derived -----------------------------------------------------------------------------

    @property
    def status(self) -> ClockStatus:
        if self.stop_at is not None:
            return ClockStatus.STOPPED
        if self.start_at is None:
            return ClockStatus.WAITING
        if self.suspensions and self.suspensions[-1].end_at is None:
            return ClockStatus.SUSPENDED
        return ClockStatus.RUNNING

    @property
    def is_open(self) -> bool:
        return self.stop_at is None

    @property
    def last_event_at(self) -> dt.datetime:
        instants = [self.received_at]
        if self.start_at is not None:
            instants.append(self.start_at)
        for s in self.suspensions:
            instants.append(s.start_at)
            if s.end_at is not None:
                instants.append(s.end_at)
        instants.extend(e.decided_at for e in self.extensions)
        if self.stop_at is not None:
            instants.append(self.stop_at)
        return max(instants)

    @property
    def unnotified_extensions(self) -> tuple[Extension, ...]:
        return tuple(e for e in self.extensions if e.applicant_notified_at is None)

    def _closed(self) -> tuple[Interval, ...]:
        return tuple((s.start_at, s.end_at) for s in self.suspensions if s.end_at is not None)

    def _open_from(self) -> dt.datetime | None:
        if self.suspensions and self.suspensions[-1].end_at is None:
            return self.suspensions[-1].start_at
        return None

    def _projected_due(self, limit: Limit, calendar: WorkingCalendar) -> dt.datetime:
        """The due time with the finished suspensions only, as if an open one had not begun."""
        assert self.start_at is not None
        due = _due(self.start_at, limit, calendar, self._closed())
        assert due is not None
        return due

    def due_at(self, calendar: WorkingCalendar) -> dt.datetime | None:
        """The due instant: known while running or stopped, or when it passed before an open
        suspension began; None while waiting or while an open suspension hides it."""
        if self.start_at is None:
            return None
        return _due(self.start_at, self.limit, calendar, self._closed(), self._open_from())

    def deadlines(self, calendar: WorkingCalendar, thresholds: Thresholds = Thresholds()) -> Deadlines | None:
        """Warning/due/督办 instants while the clock runs (what the watcher stores); else None."""
        if self.status is not ClockStatus.RUNNING:
            return None
        assert self.start_at is not None
        due = self._projected_due(self.limit, calendar)
        return deadlines_for(self.start_at, due, self.limit, calendar, thresholds)

    def _frozen_at(self) -> dt.datetime | None:
        if self.status is ClockStatus.SUSPENDED:
            return self._open_from()
        if self.status is ClockStatus.STOPPED:
            return self.stop_at
        return None

    def state_at(
        self, now: dt.datetime, calendar: WorkingCalendar, thresholds: Thresholds = Thresholds()
    ) -> ClockState:
        """The clock's state at `now`; frozen at the suspension's start while suspended and at the
        stop while stopped. A 补办件 waiting for materials is on time."""
        _aware(now, "当前时刻")
        if self.start_at is None:
            return ClockState.ON_TIME
        due = self._projected_due(self.limit, calendar)
        marks = deadlines_for(self.start_at, due, self.limit, calendar, thresholds)
        frozen = self._frozen_at()
        return marks.state_at(now if frozen is None else min(now, frozen))

    def remaining_at(self, now: dt.datetime, calendar: WorkingCalendar) -> Remaining | None:
        _aware(now, "当前时刻")
        if self.start_at is None:
            return None
        due = self._projected_due(self.limit, calendar)
        frozen = self._frozen_at()
        return remaining_at(due, now if frozen is None else min(now, frozen), calendar)

    # -- transitions -------------------------------------------------------------------------

    def _check_at(self, at: dt.datetime, what: str) -> None:
        _aware(at, f"{what}时刻")
        if at < self.last_event_at:
            raise DeadlineError(f"{what}时刻早于该环节上一次记录的时刻，时钟不能倒退")

    def start(self, at: dt.datetime) -> HopClock:
        """Materials complete (补办件): the clock starts counting from `at`."""
        self._check_at(at, "材料补齐")
        if self.status is not ClockStatus.WAITING:
            raise DeadlineError("只有待补齐材料的环节才能开始计时")
        return replace(self, start_at=at)

    def suspend(self, at: dt.datetime, reason: SuspensionReason, note: str = "") -> HopClock:
        self._check_at(at, "中止计时")
        if self.status is not ClockStatus.RUNNING:
            raise DeadlineError(f"环节当前为“{self.status.label_zh}”，不能中止计时")
        if not isinstance(reason, SuspensionReason):
            raise DeadlineError("中止计时须注明法定事由")
        if not reason.may_suspend:
            raise DeadlineError("现场勘查在承诺时限内进行，不能中止计时；只有听证、招标、拍卖、检验、检测、检疫、"
                                "鉴定、专家评审和等待补正材料不计入时限")
        return replace(self, suspensions=self.suspensions + (Suspension(reason, at, None, note),))

    def resume(self, at: dt.datetime) -> HopClock:
        self._check_at(at, "恢复计时")
        if self.status is not ClockStatus.SUSPENDED:
            raise DeadlineError("环节未处于中止计时状态，不能恢复计时")
        last = replace(self.suspensions[-1], end_at=at)
        return replace(self, suspensions=self.suspensions[:-1] + (last,))

    def extend(
        self,
        at: dt.datetime,
        new_limit: Limit,
        *,
        approver: str,
        reason: str,
        calendar: WorkingCalendar,
    ) -> HopClock:
        """An approved extension (延期). The applicant must then be told in writing."""
        self._check_at(at, "延期")
        if self.status not in (ClockStatus.RUNNING, ClockStatus.SUSPENDED):
            raise DeadlineError(f"环节当前为“{self.status.label_zh}”，不能延期")
        if not approver.strip() or not reason.strip():
            raise DeadlineError("延期须写明批准人和理由")
        current_due = self._projected_due(self.limit, calendar)
        judged_at = self._open_from() or at
        if judged_at > current_due:
            raise DeadlineError(
                f"办理期限已于{format_instant_zh(current_due)}届满，不能再延期；超期须说明原因"
            )
        new_due = self._projected_due(new_limit, calendar)
        if new_limit.unit is self.limit.unit:
            longer = new_limit.amount > self.limit.amount
        else:
            longer = new_due > current_due
        if not longer:
            raise DeadlineError(
                f"延期后的时限（{new_limit.describe_zh()}）应长于现时限（{self.limit.describe_zh()}）"
            )
        if new_limit.unit is self.statutory.unit:
            within = new_limit.amount <= self.statutory.amount
        else:
            within = new_due <= self._projected_due(self.statutory, calendar)
        if not within:
            raise DeadlineError(
                f"延期后的时限（{new_limit.describe_zh()}）超过法定时限（{self.statutory.describe_zh()}）"
            )
        extension = Extension(at, approver, reason, self.limit, new_limit)
        return replace(self, limit=new_limit, extensions=self.extensions + (extension,))

    def note_applicant_notified(self, at: dt.datetime) -> HopClock:
        """Record that the applicant was told in writing of every extension so far."""
        _aware(at, "告知时刻")
        if not self.unnotified_extensions:
            raise DeadlineError("没有待告知申请人的延期")
        updated = tuple(e if e.applicant_notified_at else replace(e, applicant_notified_at=at) for e in self.extensions)
        return replace(self, extensions=updated)

    def stop(self, at: dt.datetime, reason: StopReason) -> HopClock:
        """Passed on, done or returned. An open suspension ends at the stop."""
        self._check_at(at, "停止计时")
        if self.stop_at is not None:
            raise DeadlineError("环节计时已经停止")
        suspensions = self.suspensions
        if self.status is ClockStatus.SUSPENDED:
            suspensions = suspensions[:-1] + (replace(suspensions[-1], end_at=at),)
        return replace(self, suspensions=suspensions, stop_at=at, stop_reason=reason)

    def reopen(self, at: dt.datetime) -> HopClock:
        """A hop passed on that the next tier did not take in (an upper tier refusing a 上报 it cannot
        verify): the matter never left this hop, so its clock runs on as if it had never stopped."""
        self._check_at(at, "恢复办理")
        if self.stop_reason is not StopReason.PASSED_ON:
            raise DeadlineError("只有已移交上级、且上级未受理的环节才能恢复办理")
        return replace(self, stop_at=None, stop_reason=None)

    # -- serialization (the store keeps this in a column, so deadlines can be recomputed) -------

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "limit": self.limit.to_text(),
            "statutory": self.statutory.to_text(),
            "received_us": _us(self.received_at),
            "start_us": _us_or_none(self.start_at),
            "suspensions": [
                {"reason": s.reason.value, "start_us": _us(s.start_at), "end_us": _us_or_none(s.end_at), "note": s.note}
                for s in self.suspensions
            ],
            "extensions": [
                {
                    "decided_us": _us(e.decided_at),
                    "approver": e.approver,
                    "reason": e.reason,
                    "previous": e.previous_limit.to_text(),
                    "new": e.new_limit.to_text(),
                    "notified_us": _us_or_none(e.applicant_notified_at),
                }
                for e in self.extensions
            ],
            "stop_us": _us_or_none(self.stop_at),
            "stop_reason": self.stop_reason.value if self.stop_reason else None,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> HopClock:
        if data.get("v") != 1:
            raise DeadlineError(f"不支持的环节时钟记录版本：{data.get('v')!r}")
        try:
            return cls(
                limit=Limit.parse(data["limit"]),
                statutory=Limit.parse(data["statutory"]),
                received_at=_from_us(data["received_us"]),
                start_at=_from_us_or_none(data.get("start_us")),
                suspensions=tuple(
                    Suspension(
                        SuspensionReason(s["reason"]),
                        _from_us(s["start_us"]),
                        _from_us_or_none(s.get("end_us")),
                        s.get("note", ""),
                    )
                    for s in data.get("suspensions", [])
                ),
                extensions=tuple(
                    Extension(
                        _from_us(e["decided_us"]),
                        e["approver"],
                        e["reason"],
                        Limit.parse(e["previous"]),
                        Limit.parse(e["new"]),
                        _from_us_or_none(e.get("notified_us")),
                    )
                    for e in data.get("extensions", [])
                ),
                stop_at=_from_us_or_none(data.get("stop_us")),
                stop_reason=StopReason(data["stop_reason"]) if data.get("stop_reason") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeadlineError(f"环节时钟记录损坏：{exc.__class__.__name__}") from exc


def _us(at: dt.datetime) -> int:
    return (at - _EPOCH) // _ONE_US


def _us_or_none(at: dt.datetime | None) -> int | None:
    return None if at is None else _us(at)


def _from_us(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(us))


def _from_us_or_none(us: int | None) -> dt.datetime | None:
    return None if us is None else _from_us(us)
