"""A per-client token-bucket rate limiter for public pages (e.g. the public status lookup) and the
login form.

In memory, per process: good enough to blunt scraping and password spraying from one address
without a shared store. Memory is bounded: at most `max_clients` buckets are kept, and when full
the least recently used bucket is dropped (a dropped client just starts again with a full bucket,
which is what it would have after a long pause anyway).

Keys are client addresses (`shared.console.web.client_address`): the socket's peer, or, only when
that peer is a configured trusted proxy, the address it forwarded (`shared.console.guard`). An
`X-Forwarded-For` from anyone else is ignored, so a client cannot choose its own bucket.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from shared.clock import Clock

__all__ = ["RateLimiter", "RateDecision"]


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float   # 0 when allowed; otherwise seconds until one token is back


class RateLimiter:
    """`capacity` requests at once, refilled at `refill_per_second`; one bucket per key."""

    def __init__(self, capacity: int, refill_per_second: float, *, clock: Clock, max_clients: int = 10_000) -> None:
        if capacity < 1 or refill_per_second <= 0 or max_clients < 1:
            raise ValueError("capacity, refill rate and max_clients must be positive")
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self.max_clients = max_clients
        self._clock = clock
        # key -> (tokens, last refill as POSIX seconds); OrderedDict order = recency of use.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def check(self, key: str) -> RateDecision:
        """Take one token for `key` if there is one."""
        now = self._clock.now().timestamp()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.capacity), now))
            # max(): a clock step backwards must not mint tokens or go negative.
            tokens = min(float(self.capacity), tokens + max(0.0, now - last) * self.refill_per_second)
            if tokens >= 1.0:
                tokens -= 1.0
                decision = RateDecision(True, 0.0)
            else:
                decision = RateDecision(False, (1.0 - tokens) / self.refill_per_second)
            self._buckets[key] = (tokens, max(now, last))
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return decision

    def retry_after_header(self, decision: RateDecision) -> str:
        return str(max(1, math.ceil(decision.retry_after_s)))
