"""``StoreUnavailable``: the database could not take the operation in time.

Raised by the store drivers when a write waited longer than its budget for the database's write
lock (SQLite held by another process) or the database could not be reached (PostgreSQL stopped).
It is an ``UnavailableError``, so the HTTP layer answers ``503`` with ``Retry-After`` and the SDK
retries — nothing was committed, so nothing was accepted.
"""

from __future__ import annotations

from surge.errors import UnavailableError

# How long one write may wait for the database before it gives up: short enough that an API call
# answers 503 within 2 s while the database is unavailable, long enough that ordinary contention
# (a checkpoint, a large batch written by this process) never trips it.
WRITE_BUDGET = 1.5


class StoreUnavailable(UnavailableError):
    """The database is unavailable (locked by another process, stopped, unreachable)."""
