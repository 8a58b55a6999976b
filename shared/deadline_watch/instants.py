"""Pure arithmetic of the deadline tables: instants as integer milliseconds, the next level to fire,
the state an open clock is counted under, and the rules (calendar, thresholds) instants are computed
under. Package-internal: the other modules of `shared.deadline_watch` share these names, nothing else
should need them. No database here, so every rule is testable on its own."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.calendar import WorkingCalendar
from shared.deadline_watch.errors import DeadlineStoreError
from shared.domain.deadlines import ClockState, ClockStatus, HopClock, Thresholds

_LEVEL_BY_RANK = {1: ClockState.WARNING, 2: ClockState.OVERDUE, 3: ClockState.SUPERVISE}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ceil_ms(at: dt.datetime) -> int:
    us = (at - _EPOCH) // dt.timedelta(microseconds=1)
    return -(-us // 1000)


def _from_ms(ms: int | None) -> dt.datetime | None:
    return None if ms is None else _EPOCH + dt.timedelta(milliseconds=ms)


def _now_ms(now: dt.datetime) -> int:
    if now.tzinfo is None:
        raise DeadlineStoreError("now 必须是带时区的时刻")
    return (now - _EPOCH) // dt.timedelta(milliseconds=1)



def _instants(clock: HopClock, calendar: WorkingCalendar, thresholds: Thresholds) -> dict[str, int | None]:
    marks = clock.deadlines(calendar, thresholds)
    if marks is not None:
        return {
            "warn_at_ms": _ceil_ms(marks.warn_at),
            "due_at_ms": _ceil_ms(marks.due_at),
            "escalate_at_ms": _ceil_ms(marks.escalate_at),
        }
    due = clock.due_at(calendar) if clock.status is ClockStatus.STOPPED else None
    return {"warn_at_ms": None, "due_at_ms": None if due is None else _ceil_ms(due), "escalate_at_ms": None}


def _level_instants(warn_ms: int | None, due_ms: int | None, esc_ms: int | None) -> dict[int, int | None]:
    # Overdue is reached just after the due instant: the due instant itself is still on time.
    return {1: warn_ms, 2: None if due_ms is None else due_ms + 1, 3: esc_ms}


def _next_fire(status: str, warn_ms: int | None, due_ms: int | None, esc_ms: int | None, fired: int) -> int | None:
    if status != ClockStatus.RUNNING.value:
        return None
    for rank, instant in sorted(_level_instants(warn_ms, due_ms, esc_ms).items()):
        if rank > fired and instant is not None:
            return instant
    return None


def _phase(status: str, warn_ms: int | None, due_ms: int | None, esc_ms: int | None,
           now_ms: int) -> tuple[str | None, int | None]:
    """The state an open clock is counted under at `now_ms` and the instant that state ends; the
    same rules as `clock_counts_scanned` (a stopped clock: not counted)."""
    if status == ClockStatus.STOPPED.value:
        return None, None
    if status != ClockStatus.RUNNING.value:
        return status, None
    if warn_ms is None:
        return ClockState.ON_TIME.value, None
    overdue_from = None if due_ms is None else due_ms + 1   # the due instant itself is still on time
    if esc_ms is not None and esc_ms <= now_ms:
        return ClockState.SUPERVISE.value, None
    if overdue_from is not None and overdue_from <= now_ms:
        return ClockState.OVERDUE.value, esc_ms
    ends = [m for m in (overdue_from, esc_ms) if m is not None]
    if warn_ms <= now_ms:
        return ClockState.WARNING.value, min(ends) if ends else None
    return ClockState.ON_TIME.value, min([warn_ms, *ends])



def _count_changes(changes: dict[tuple[str, str], int], hop: str, old: str | None, new: str | None) -> None:
    if old == new:
        return
    if old is not None:
        changes[(hop, old)] = changes.get((hop, old), 0) - 1
    if new is not None:
        changes[(hop, new)] = changes.get((hop, new), 0) + 1



@dataclass(frozen=True)
class _Rules:
    """The calendar and thresholds instants are computed under, and their fingerprint (kept per row)."""

    calendar: WorkingCalendar
    thresholds: Thresholds
    fp: str

    @classmethod
    def of(cls, calendar: WorkingCalendar, thresholds: Thresholds) -> _Rules:
        return cls(calendar, thresholds, f"{calendar.fingerprint[:40]}|{thresholds.to_text()}"[:64])



def _at_ms(ms: int) -> dt.datetime:
    """`_from_ms` for a column that is never NULL."""
    return _EPOCH + dt.timedelta(milliseconds=ms)
