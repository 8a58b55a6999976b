"""The one backoff schedule for anything that retries: exponential, capped, jittered.

Pure: the caller passes the attempt number and a random source, so tests are deterministic.
Used by the relay client (a village or township reconnecting to the tier above), the webhook
notifier (retries within one send) and the notification outbox relay (retries across drains).

Jitter is the randomized fraction of each wait: 1.0 (the default, "full jitter") draws uniformly
between 0 and the capped exponential, which spreads a crowd of villages that lost the township at
the same moment so they do not all reconnect in the same instant; 0.5 keeps at least half of it;
0 makes the schedule exact.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy", "Backoff"]


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 0.5
    multiplier: float = 2.0
    cap_s: float = 60.0
    # Never wait less than this: a zero draw would turn into a hot loop against a dead peer.
    floor_s: float = 0.05
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.floor_s <= self.initial_s <= self.cap_s) or self.multiplier < 1:
            raise ValueError("retry policy needs 0 < floor <= initial <= cap and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("retry policy needs 0 <= jitter <= 1")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait before retry number `attempt` (1 for the first retry)."""
        if attempt < 1:
            return 0.0
        # Exponent clamped so a long outage never overflows the float.
        return min(self.cap_s, self.initial_s * self.multiplier ** min(attempt - 1, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry number `attempt`: within the top `jitter` fraction of the ceiling,
        never below the floor (0 for an attempt below 1: nothing has failed yet)."""
        ceiling = self.ceiling(attempt)
        if ceiling <= 0:
            return 0.0
        if not self.jitter:
            return max(self.floor_s, ceiling)
        return max(self.floor_s, rng.uniform(ceiling * (1 - self.jitter), ceiling))


class Backoff:
    """Counts consecutive failures for one destination; `reset()` after a success."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        self.failures += 1
        return self.policy.delay(self.failures, self._rng)

    def reset(self) -> None:
        self.failures = 0
