"""The injected clock. Domain code never reads the system time itself; it is handed a `Clock`.

All instants are timezone-aware UTC `datetime`s; conversion to Asia/Shanghai happens only where
office hours and working days are computed.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol

UTC = dt.UTC


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    """The real clock; used only by entry points (`bootstrap`, `cli`)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FakeClock:
    """A test clock that only moves when told to and refuses to go backwards."""

    def __init__(self, start_at: dt.datetime) -> None:
        if start_at.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start_at
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, by_after: dt.timedelta) -> dt.datetime:
        if by_after < dt.timedelta(0):
            raise ValueError("a FakeClock never goes backwards")
        with self._lock:
            self._now += by_after
            return self._now

    def set(self, to_at: dt.datetime) -> None:
        with self._lock:
            if to_at < self._now:
                raise ValueError("a FakeClock never goes backwards")
            self._now = to_at


def to_unix_ms(at: dt.datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("naive datetime: every instant must carry its timezone")
    return int(at.timestamp() * 1000)


def from_unix_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, UTC)
