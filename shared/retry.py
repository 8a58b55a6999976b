"""Backoff policy for anything that retries a remote call: exponential, capped, with full jitter.

Pure: the caller passes the attempt number and a random source, so tests are deterministic.
Full jitter (a uniform draw between 0 and the capped exponential) spreads a crowd of villages that
lost the township at the same moment, so they do not all reconnect in the same instant.
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

    def __post_init__(self) -> None:
        if not (0 < self.floor_s <= self.initial_s <= self.cap_s) or self.multiplier < 1:
            raise ValueError("retry policy needs 0 < floor <= initial <= cap and multiplier >= 1")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait before retry number `attempt` (1 for the first retry)."""
        if attempt < 1:
            return 0.0
        # Exponent clamped so a long outage never overflows the float.
        return min(self.cap_s, self.initial_s * self.multiplier ** min(attempt - 1, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = self.ceiling(attempt)
        if ceiling <= 0:
            return 0.0
        return max(self.floor_s, rng.uniform(0, ceiling))


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
