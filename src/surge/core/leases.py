"""Attempt leases: how long a worker may go silent before its input is taken back.

A worker running an input holds a lease on ``(input_id, attempt)`` that expires ``LEASE_TTL``
seconds after its last heartbeat. The reaper treats an expired lease as WORKER_LOST and
queues an infrastructure retry; the stale attempt's late result is then refused because the
terminal update is keyed on ``(input_id, attempt)``.

>>> is_expired(lease_expiry(100.0), now=110.0), is_expired(lease_expiry(100.0), now=115.0)
(False, True)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["HEARTBEAT_INTERVAL", "LEASE_TTL", "expired_ids", "is_expired", "lease_expiry"]

HEARTBEAT_INTERVAL = 3.0
"""Seconds between a worker's lease renewals."""

LEASE_TTL = 15.0
"""Seconds a lease lasts after its last renewal.

The rule is TTL >= 3 heartbeat intervals; 15 s is five, so a lease survives four
consecutive lost or late heartbeats (a GC pause, a busy event loop, a store write retried
under lock contention) before the input is declared lost. A TTL under three intervals would
turn one slow round-trip into a spurious WORKER_LOST and a duplicate execution; a much longer
one only delays recovery from a real crash, which costs the user the whole TTL in latency.
"""


def lease_expiry(now: float, ttl: float = LEASE_TTL) -> float:
    """When a lease granted or renewed at ``now`` expires."""
    return now + ttl


def is_expired(lease_expires_at: float | None, now: float) -> bool:
    """Whether a lease has run out at ``now``; ``None`` (not leased) never expires.

    The expiry instant itself counts as expired, so a lease is never valid for longer than
    its TTL.
    """
    return lease_expires_at is not None and lease_expires_at <= now


def expired_ids(leases: Iterable[tuple[str, int, float | None]], now: float) -> list[tuple[str, int]]:
    """The ``(input_id, attempt)`` of every expired lease among ``(input_id, attempt, expires_at)``.

    Order is preserved, so the reaper retries the longest-waiting inputs first when the
    store returns them oldest first.
    """
    return [(input_id, attempt) for input_id, attempt, expires_at in leases if is_expired(expires_at, now)]
