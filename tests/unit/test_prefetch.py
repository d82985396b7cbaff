from __future__ import annotations

import doctest

import pytest

import surge.core.prefetch
from surge.core.prefetch import MAX_PREFETCH, fair_share, prefetch_depth, update_mean


@pytest.mark.parametrize(("max_inputs", "mean", "expected"), [
    (1, None, 0),               # unknown speed: no prefetch until one input has finished
    (1, 0.0, MAX_PREFETCH),     # instant functions: the cap
    (1, 0.00001, MAX_PREFETCH),  # 10 µs: capped
    (1, 0.0001, 1000),          # 0.1 ms: 100 ms of buffered work
    (1, 0.01, 10),
    (1, 0.05, 2),
    (1, 0.2, 0),                # slow: none
    (4, 0.01, 40),              # concurrency scales the buffer
    (0, 0.001, 0),
])
def test_prefetch_depth(max_inputs: int, mean: float | None, expected: int) -> None:
    assert prefetch_depth(max_inputs=max_inputs, mean_runtime=mean) == expected


@pytest.mark.parametrize(("queued", "containers", "expected"), [
    (0, 3, 0), (1, 3, 1), (10, 3, 4), (10, 0, 10), (100, 16, 7),
])
def test_fair_share(queued: int, containers: int, expected: int) -> None:
    assert fair_share(queued, containers) == expected


def test_update_mean() -> None:
    assert update_mean(None, 2.0) == 2.0
    assert update_mean(2.0, 1.0, alpha=0.5) == 1.5
    with pytest.raises(ValueError, match="negative"):
        update_mean(1.0, -0.1)


def test_docstring_examples() -> None:
    assert doctest.testmod(surge.core.prefetch).failed == 0
