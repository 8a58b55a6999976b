"""Keeps a process's deadline store on the calendar override file kept in its database.

The file is saved in a meta row (by the county board, `county-hub calendar set`, or, at a township,
when the county's signed `calendar_update` is folded); every process sharing that database — the
server, a second server on the same PostgreSQL — takes it up on its next pass, and the clocks whose
instants it moves are recomputed from the tables at once (`DeadlineStore.recompute_stale`)."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from shared.calendar import WorkingCalendar, parse_override_toml
from shared.clock import Clock
from shared.deadline_watch.store import DeadlineStore

__all__ = ["CalendarFollower", "calendar_from_text"]

log = logging.getLogger("shared.deadline_watch.calendar")


def calendar_from_text(text: str, source: str) -> WorkingCalendar:
    """The working calendar an override file gives (the built-in one when there is none)."""
    return WorkingCalendar(parse_override_toml(text, source)) if text else WorkingCalendar()


class CalendarFollower:
    def __init__(self, read_text: Callable[[], str], deadlines: DeadlineStore, clock: Clock, *, source: str,
                 taken_text: str = "", after_recompute: Callable[[], None] | None = None) -> None:
        self._read = read_text
        self._deadlines = deadlines
        self._clock = clock
        self._source = source
        self._taken = _digest(taken_text)
        # What the tier keeps besides the deadline table (a matter row's due date) follows the recompute.
        self._after = after_recompute
        self._recheck = False

    def take_up(self, text: str) -> WorkingCalendar:
        """Use `text` now (it was just saved by this process) and recompute what it moves."""
        calendar = calendar_from_text(text, self._source)
        self._deadlines.use_calendar(calendar)
        self._recompute()
        self._taken = _digest(text)
        # A clock another thread was saving under the old rules as they changed (or a row locked by
        # another process on PostgreSQL) is caught by one more pass on the next refresh.
        self._recheck = True
        return calendar

    def _recompute(self) -> None:
        if self._deadlines.recompute_stale(self._clock.now()) and self._after is not None:
            self._after()

    def refresh(self) -> bool:
        """Take up a file another process saved since; True when the calendar changed."""
        if self._recheck:
            self._recheck = False
            self._recompute()
        text = self._read()
        if _digest(text) == self._taken:
            return False
        try:
            self.take_up(text)
        except Exception:  # noqa: BLE001 - a bad file saved elsewhere must not stop this process's loop
            log.exception("calendar override in the database cannot be used; keeping the previous calendar")
            self._taken = _digest(text)
            return False
        log.info("calendar override taken up (%d bytes)", len(text))
        return True


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()
