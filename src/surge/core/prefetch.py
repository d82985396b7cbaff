"""How many inputs to hand a container beyond what it runs at once.

A container that runs one input at a time sits idle for a round trip between inputs (result out,
next input in). For short functions that round trip dominates, so the dispatcher lets the container
hold a few more inputs in its own queue — enough to cover ``BUFFER_SECONDS`` of work at the
function's observed speed, and never more than its fair share of the queue, so one container does
not hoard work that idle containers could run. Slow or unknown functions get no prefetch: a long
input must not hold others hostage.

>>> prefetch_depth(max_inputs=1, mean_runtime=0.0002)
500
>>> prefetch_depth(max_inputs=1, mean_runtime=2.0)
0
"""

from __future__ import annotations

import math

BUFFER_SECONDS = 0.1      # queued work a container may hold beyond what it runs (covers a round trip)
MAX_PREFETCH = 1024
EWMA_ALPHA = 0.2


def prefetch_depth(*, max_inputs: int, mean_runtime: float | None) -> int:
    """Extra inputs a container may hold, from the function's mean run time (None: unknown)."""
    if mean_runtime is None or max_inputs < 1:
        return 0
    if mean_runtime <= 0:
        return MAX_PREFETCH
    return max(0, min(MAX_PREFETCH, int(BUFFER_SECONDS * max_inputs / mean_runtime)))


def fair_share(queued: int, containers_with_room: int) -> int:
    """At most this many inputs go to one container in one assignment round."""
    if queued <= 0:
        return 0
    return max(1, math.ceil(queued / max(1, containers_with_room)))


def update_mean(mean: float | None, sample: float, alpha: float = EWMA_ALPHA) -> float:
    """Exponentially weighted mean of run times; the first sample seeds it."""
    if sample < 0:
        raise ValueError(f"run time {sample} is negative")
    return sample if mean is None else (1 - alpha) * mean + alpha * sample
