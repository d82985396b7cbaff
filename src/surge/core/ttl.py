"""Job time-to-live: a job still queued after its ``ttl`` ends ``EXPIRED`` and never runs.

The clock starts when the job is accepted (committed). The ttl guards only the *first* start: once
an attempt has begun (``attempt > 0``), a retry waiting in the queue is not expired, because the
job has already run and its caller is waiting for how that ends.

>>> start_by(100.0, 30.0)
130.0
>>> expired(130.0, attempt=0, now=130.0)
True
>>> expired(130.0, attempt=1, now=500.0)
False
"""

from __future__ import annotations

MIN_TTL = 1
MAX_TTL = 7 * 86_400          # results are kept 7 days: a longer queue wait would outlive them


def start_by(created_at: float, ttl: float | None) -> float | None:
    """The time by which the job must have started, or None without a ttl."""
    return None if ttl is None else created_at + ttl


def expired(start_by: float | None, *, attempt: int, now: float) -> bool:
    """Whether a queued input with this deadline must end EXPIRED instead of running."""
    return start_by is not None and attempt == 0 and now >= start_by
