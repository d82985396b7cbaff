"""@surge.batched on class methods, and batched functions called through the HTTP job API (used by
tests/e2e/test_batching_more.py)."""

from __future__ import annotations

import os

import surge

app = surge.App("e2e-batch-more")


@app.cls(max_containers=1)
class Scaler:
    factor: int = surge.parameter(default=10)

    @surge.enter()
    def load(self) -> None:
        self.pid = os.getpid()

    @surge.method()
    @surge.batched(max_batch_size=4, wait_ms=2000)
    def scale(self, xs: list[int]) -> list[list[int]]:
        return [[x * self.factor, len(xs), self.pid] for x in xs]


@app.cls(max_containers=1)
class Counter:
    """Modal's spelling: @surge.batched alone makes the method callable."""

    @surge.batched(max_batch_size=4, wait_ms=300)
    async def count(self, texts: list[str]) -> list[int]:
        return [len(t) for t in texts]


@app.function(max_containers=1)
@surge.batched(max_batch_size=4, wait_ms=2000)
def square(x: list[int]) -> list[object]:
    return [ValueError(f"negative: {v}") if v < 0 else {"x": v, "square": v * v, "batch": len(x)} for v in x]


@app.function(max_containers=1)
@surge.batched(max_batch_size=3, wait_ms=2000)
def drops_one(x: list[int]) -> list[int]:
    return x[:-1]


@app.function(max_containers=1)
@surge.batched(max_batch_size=2, wait_ms=2000)
def leaks_a_set(x: list[int]) -> list[object]:
    return [{v} if v == 1 else v for v in x]
