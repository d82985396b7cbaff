"""Queue order by job priority: higher first, first-come first-served within one priority.

A pool's queue is kept sorted (non-increasing priority), so taking from its front is always the
next input to run. Inputs made by the SDK have priority 0; HTTP jobs may set -100 … 100.

>>> insert_position([5, 5, 0, 0], 5, priority_of=int)
2
>>> insert_position([5, 5, 0, 0], 9, priority_of=int)
0
>>> insert_position([5, 5, 0, 0], -1, priority_of=int)
4
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

MIN_PRIORITY = -100
MAX_PRIORITY = 100
DEFAULT_PRIORITY = 0


def insert_position(queue: Sequence[T], priority: int, *, priority_of: Callable[[T], int]) -> int:
    """Where an item of ``priority`` goes in ``queue`` (sorted by non-increasing priority): after
    every item of the same or a higher priority."""
    if not queue or priority_of(queue[-1]) >= priority:
        return len(queue)          # the common case (all equal): append, no search
    return bisect.bisect_right(queue, -priority, key=lambda item: -priority_of(item))
