"""@surge.batched functions (used by tests/e2e/test_batching.py)."""

from __future__ import annotations

import asyncio
import os

import surge

app = surge.App("e2e-batch")


@app.function(max_containers=1)
@surge.batched(max_batch_size=4, wait_ms=1000)
def sizes(xs: list[int]) -> list[tuple[int, int, int]]:
    # each item learns the size of the batch it ran in, and the container's pid
    return [(x, len(xs), os.getpid()) for x in xs]


@app.function(max_containers=1)
@surge.batched(max_batch_size=8, wait_ms=200)
def lonely(xs: list[int]) -> list[int]:
    return [len(xs)] * len(xs)


@app.function(max_containers=1)
@surge.batched(max_batch_size=4, wait_ms=500)
def wrong_length(xs: list[int]) -> list[int]:
    return xs[:-1]


@app.function(max_containers=1)
@surge.batched(max_batch_size=4, wait_ms=500)
def odd_fails(xs: list[int]) -> list[object]:
    return [ValueError(f"odd {x}") if x % 2 else x * 10 for x in xs]


@app.function(max_containers=1)
@surge.batched(max_batch_size=4, wait_ms=300)
def weighted(xs: list[int], weight: list[int]) -> list[int]:
    return [x * w for x, w in zip(xs, weight, strict=True)]


@app.function(max_containers=1)
@surge.batched(max_batch_size=4, wait_ms=300)
async def async_double(xs: list[int]) -> list[int]:
    await asyncio.sleep(0.01)
    return [2 * x for x in xs]


@app.function(max_containers=1)
@surge.batched(max_batch_size=8, wait_ms=6000)
def patient(xs: list[int]) -> list[int]:
    # one item waits 6 s for company: three leases (2 s in the e2e server) pass meanwhile
    return [len(xs)] * len(xs)
