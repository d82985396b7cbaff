"""Token buckets: how many requests a caller may make, as a pure function of the clock.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each request
takes ``cost`` tokens or is refused with the time until it could be served.

>>> limit = RateLimit(rate=2.0, burst=2.0)
>>> d = take(limit, None, now=0.0); d.allowed, d.bucket.tokens
(True, 1.0)
>>> d = take(limit, take(limit, d.bucket, now=0.0).bucket, now=0.0); d.allowed, d.retry_after
(False, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float                  # tokens per second; 0 (or less) means unlimited
    burst: float                 # bucket size: requests allowed at once after an idle period

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated: float               # when ``tokens`` was computed


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    bucket: Bucket               # the state to keep for the next request
    retry_after: float           # seconds until the request would be allowed (0 when it is)


def refill(limit: RateLimit, bucket: Bucket | None, now: float) -> Bucket:
    """The bucket at ``now``: full when new, refilled by the time elapsed (a clock that steps
    back refills nothing)."""
    if bucket is None:
        return Bucket(limit.burst, now)
    elapsed = max(0.0, now - bucket.updated)
    return Bucket(min(limit.burst, bucket.tokens + elapsed * limit.rate), max(now, bucket.updated))


def take(limit: RateLimit, bucket: Bucket | None, now: float, cost: float = 1.0) -> Decision:
    """Take ``cost`` tokens if there are enough; otherwise say when there will be."""
    if limit.unlimited:
        return Decision(True, bucket or Bucket(0.0, now), 0.0)
    if cost > limit.burst:
        raise ValueError(f"a request costing {cost} tokens can never fit a bucket of {limit.burst}")
    current = refill(limit, bucket, now)
    if current.tokens >= cost:
        return Decision(True, Bucket(current.tokens - cost, current.updated), 0.0)
    return Decision(False, current, (cost - current.tokens) / limit.rate)
