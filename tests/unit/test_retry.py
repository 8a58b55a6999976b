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


def test_a_policy_without_jitter_waits_exactly_the_capped_exponential() -> None:
    policy = RetryPolicy(initial_s=0.01, cap_s=0.04, floor_s=0.01, jitter=0)
    rng = random.Random(5)
    assert [policy.delay(n, rng) for n in range(1, 6)] == [0.01, 0.02, 0.04, 0.04, 0.04]


def test_half_jitter_keeps_every_wait_in_the_top_half_of_its_ceiling() -> None:
    policy = RetryPolicy(initial_s=30, cap_s=3600, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = policy.ceiling(attempt)
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert policy.ceiling(20) == 3600


def test_the_schedule_is_the_injected_random_sources_draw_scaled_into_the_jitter_band() -> None:
    policy = RetryPolicy(initial_s=0.5, cap_s=30, jitter=0.5)
    draws = random.Random(11)
    expected = [c / 2 + c / 2 * draws.random() for c in (0.5, 1.0, 2.0, 4.0)]
    rng = random.Random(11)
    assert [policy.delay(n, rng) for n in range(1, 5)] == pytest.approx(expected)


def test_full_jitter_is_the_default_and_never_drops_below_the_floor() -> None:
    policy = RetryPolicy(initial_s=0.1, cap_s=0.1, floor_s=0.05)

    class Zero(random.Random):
        def random(self) -> float:
            return 0.0

    assert policy.jitter == 1.0
    assert policy.delay(1, Zero()) == 0.05


def test_nothing_failed_yet_means_no_wait() -> None:
    assert RetryPolicy().delay(0, random.Random(1)) == 0.0


def test_a_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
