"""Queue-depth admission control (surge.core.admission) as parameter tables."""

from __future__ import annotations

import pytest

from surge.core.admission import MAX_RETRY_AFTER, MIN_RETRY_AFTER, Admission, admit, drain_rate


@pytest.mark.parametrize(("slots", "runtime", "expected"), [
    (0, 1.0, None),          # nothing running: no drain rate to speak of
    (4, None, None),         # speed not measured yet
    (4, 0.0, None),
    (4, 0.5, 8.0),           # 4 slots, 0.5 s each → 8 inputs/s
    (1, 2.0, 0.5),
])
def test_drain_rate(slots: int, runtime: float | None, expected: float | None) -> None:
    assert drain_rate(slots, runtime) == expected


@pytest.mark.parametrize(("queued", "incoming", "limit", "rate", "admitted", "retry_after"), [
    (0, 10, 100, None, True, 0.0),
    (90, 10, 100, None, True, 0.0),          # exactly at the limit
    (90, 11, 100, None, False, MIN_RETRY_AFTER),  # unknown speed: retry in a second
    (0, 5000, 100, None, True, 0.0),         # an empty queue takes one batch, whatever its size
    (1, 5000, 100, 1.0, False, MAX_RETRY_AFTER),  # capped
    (100, 20, 100, 10.0, False, 2.0),        # 20 over at 10/s
    (100, 1, 100, 1000.0, False, MIN_RETRY_AFTER),  # never less than a second
    (100, 15, 100, 10.0, False, 2.0),        # 1.5 s rounds up
    (10**6, 10, 0, None, True, 0.0),         # limit 0: unbounded
    (10**6, 10, -1, None, True, 0.0),
])
def test_admit(queued: int, incoming: int, limit: int, rate: float | None, admitted: bool,
               retry_after: float) -> None:
    assert admit(queued, incoming, limit, rate) == Admission(admitted, retry_after, queued, limit)
