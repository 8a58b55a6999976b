from __future__ import annotations

import random

import pytest

from shared.retry import Backoff, RetryPolicy


def test_the_ceiling_grows_exponentially_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(initial_s=0.5, multiplier=2, cap_s=30)
    assert [policy.ceiling(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.ceiling(10_000) == 30   # a week-long outage does not overflow


def test_every_delay_is_jittered_between_the_floor_and_the_ceiling() -> None:
    policy = RetryPolicy(initial_s=1, cap_s=10, floor_s=0.1)
    rng = random.Random(3)
    delays = [policy.delay(6, rng) for _ in range(2000)]
    assert all(0.1 <= d <= 10 for d in delays)
    assert max(delays) - min(delays) > 5, "full jitter spreads a crowd of reconnecting villages"


def test_backoff_counts_failures_and_resets_after_success() -> None:
    backoff = Backoff(RetryPolicy(initial_s=1, cap_s=4, floor_s=0.01), random.Random(1))
    ceilings = []
    for _ in range(4):
        backoff.next_delay()
        ceilings.append(backoff.policy.ceiling(backoff.failures))
    assert ceilings == [1, 2, 4, 4]
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() <= 1


def test_an_inconsistent_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(initial_s=10, cap_s=1)
