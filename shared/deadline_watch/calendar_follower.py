"""Keeps a process's deadline store on the calendar override file kept in its database.

The file is saved in a meta row, with a small "who and when" stamp beside it (by the county board,
`county-hub calendar set`, or, at a township, when the county's signed `calendar_update` is folded);
every process sharing that database — the server, a second server on the same PostgreSQL — sees the
stamp change on its next pass, takes the file up, and the clocks whose instants it moves are
recomputed from the tables at once (`DeadlineStore.recompute_stale`). Polling reads the stamp only,
not the file."""
from __future__ import annotations

import logging
from collections.abc import Callable

from shared.calendar import WorkingCalendar, parse_override_toml
from shared.clock import Clock
from shared.deadline_watch.store import DeadlineStore

__all__ = ["CalendarFollower", "calendar_from_text", "stamp_key"]

log = logging.getLogger(__name__)


def stamp_key(meta_key: str) -> str:
    """The meta row beside the file: "who|when (Unix ms)" of the file last saved."""
    return meta_key + ":by"


def calendar_from_text(text: str, source: str) -> WorkingCalendar:
    """The working calendar an override file gives (the built-in one when there is none)."""
    return WorkingCalendar(parse_override_toml(text, source)) if text else WorkingCalendar()


class CalendarFollower:
    def __init__(self, get_meta: Callable[[str], str], meta_key: str, deadlines: DeadlineStore, clock: Clock, *,
                 source: str, after_recompute: Callable[[], object] | None = None) -> None:
        self._get = get_meta
        self._key = meta_key
        self._deadlines = deadlines
        self._clock = clock
        self._source = source
        self._stamp = get_meta(stamp_key(meta_key))
        # What the tier keeps besides the deadline table (a matter row's due date) follows the recompute.
        self._after = after_recompute
        self._recheck = False

    def saved_calendar(self) -> WorkingCalendar:
        """The calendar of the file saved now (the built-in one when none is)."""
        return calendar_from_text(self._get(self._key), self._source)

    def take_up(self, text: str) -> WorkingCalendar:
        """Use `text` now (this process has just saved it, with its stamp) and recompute what it moves."""
        calendar = calendar_from_text(text, self._source)
        self._deadlines.use_calendar(calendar)
        self._recompute()
        self._stamp = self._get(stamp_key(self._key))
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
        stamp = self._get(stamp_key(self._key))
        if stamp == self._stamp:
            return False
        try:
            self.take_up(self._get(self._key))
        except Exception:
            log.exception("calendar override in the database cannot be used; keeping the previous calendar")
            self._stamp = stamp
            return False
        log.info("calendar override taken up (stamp %s)", stamp)
        return True
