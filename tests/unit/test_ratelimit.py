"""Token buckets (surge.core.ratelimit) as parameter tables, with the clock passed in."""

from __future__ import annotations

import pytest

from surge.core.ratelimit import Bucket, RateLimit, refill, take
from surge.testing import FakeClock

LIMIT = RateLimit(rate=10.0, burst=5.0)


@pytest.mark.parametrize(("bucket", "now", "expected"), [
    (None, 3.0, Bucket(5.0, 3.0)),                    # a new caller starts with a full bucket
    (Bucket(0.0, 0.0), 0.2, Bucket(2.0, 0.2)),        # 10/s for 0.2 s
    (Bucket(4.0, 0.0), 10.0, Bucket(5.0, 10.0)),      # never above the burst
    (Bucket(1.0, 5.0), 4.0, Bucket(1.0, 5.0)),        # a clock that steps back refills nothing
])
def test_refill(bucket: Bucket | None, now: float, expected: Bucket) -> None:
    assert refill(LIMIT, bucket, now) == pytest.approx(expected)


@pytest.mark.parametrize(("bucket", "now", "cost", "allowed", "tokens_left", "retry_after"), [
    (None, 0.0, 1.0, True, 4.0, 0.0),
    (Bucket(1.0, 0.0), 0.0, 1.0, True, 0.0, 0.0),
    (Bucket(0.0, 0.0), 0.0, 1.0, False, 0.0, 0.1),    # one token takes 0.1 s at 10/s
    (Bucket(0.5, 0.0), 0.0, 1.0, False, 0.5, 0.05),
    (Bucket(0.0, 0.0), 0.1, 1.0, True, 0.0, 0.0),     # refilled just enough
    (Bucket(2.0, 0.0), 0.0, 3.0, False, 2.0, 0.1),    # a heavier request waits for its cost
])
def test_take(bucket: Bucket | None, now: float, cost: float, allowed: bool, tokens_left: float,
              retry_after: float) -> None:
    d = take(LIMIT, bucket, now, cost)
    assert d.allowed is allowed
    assert d.bucket.tokens == pytest.approx(tokens_left)
    assert d.retry_after == pytest.approx(retry_after)


def test_unlimited_always_allows_and_keeps_no_debt() -> None:
    unlimited = RateLimit(rate=0.0, burst=0.0)
    assert unlimited.unlimited and not LIMIT.unlimited
    d = take(unlimited, None, 1.0, cost=1e9)
    assert d.allowed and d.retry_after == 0.0
    assert take(unlimited, d.bucket, 1.0).allowed


def test_a_cost_above_the_burst_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="never fit a bucket of 5"):
        take(LIMIT, None, 0.0, cost=6.0)


def test_sustained_rate_matches_the_limit() -> None:
    """Hammering for 10 s lets through burst + rate × 10 requests, whatever the request rate."""
    clock, bucket, allowed = FakeClock(), None, 0
    for _ in range(10_000):               # 1,000 requests/s offered
        d = take(LIMIT, bucket, clock())
        bucket, allowed = d.bucket, allowed + d.allowed
        clock.advance(0.001)
    assert allowed == pytest.approx(5 + 10 * 10, abs=1)


def test_retry_after_is_when_the_request_succeeds() -> None:
    clock = FakeClock()
    d = take(LIMIT, Bucket(0.0, 0.0), clock())
    assert not d.allowed
    clock.advance(d.retry_after)
    assert take(LIMIT, d.bucket, clock()).allowed
