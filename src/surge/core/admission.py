"""Admission control: whether a function's queue may take more inputs, as a pure decision.

A function's queue is bounded by ``limit`` queued inputs (waiting or in retry backoff, not
running). A batch that would take it past the limit is refused with a time to retry after,
estimated from how fast the function drains its queue, rather than queued without bound. An
empty queue always admits one batch, so a batch larger than the limit is not refused forever:
the queue never holds more than ``limit`` + one batch.

>>> admit(queued=90, incoming=20, limit=100, drain_rate=5.0)
Admission(admitted=False, retry_after=2.0, queued=90, limit=100)
>>> admit(queued=0, incoming=500, limit=100, drain_rate=None).admitted
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    retry_after: float           # seconds (0 when admitted)
    queued: int
    limit: int


def drain_rate(running_slots: int, mean_runtime: float | None) -> float | None:
    """Inputs per second the function's running containers finish, if their speed is known."""
    if running_slots <= 0 or mean_runtime is None or mean_runtime <= 0:
        return None
    return running_slots / mean_runtime


def admit(queued: int, incoming: int, limit: int, drain_rate: float | None) -> Admission:
    """Admit ``incoming`` inputs onto a queue holding ``queued``? ``limit`` <= 0 means unbounded."""
    if limit <= 0 or queued == 0 or queued + incoming <= limit:
        return Admission(True, 0.0, queued, limit)
    over = queued + incoming - limit
    wait = over / drain_rate if drain_rate else MIN_RETRY_AFTER
    wait = min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, float(math.ceil(wait))))
    return Admission(False, wait, queued, limit)
