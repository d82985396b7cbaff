"""Functions that report progress with ``surge.progress()``, and a generator for ``.remote_gen.aio()``
(used by tests/e2e/test_progress.py). Coordination with a test goes through files, as in jobs_app."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Iterator

import surge

app = surge.App("e2e-progress")


def wait_for(path: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.01)


@app.function()
def steps(n: int) -> dict[str, int]:
    """One report per step, further apart than the reporting interval: none is coalesced."""
    for i in range(n):
        time.sleep(0.08)
        surge.progress((i + 1) / n, message=f"step {i + 1}", data={"i": i})
    return {"done": n}


@app.function()
def flood(n: int) -> dict[str, float]:
    """A tight loop of reports: the container sends at most 20 a second, the last one always."""
    t0 = time.monotonic()
    for i in range(n):
        surge.progress((i + 1) / n)
    return {"seconds": time.monotonic() - t0}


@app.function()
def from_threads() -> str:
    """A thread the function starts has no input unless it runs in the input's context."""
    errors: list[str] = []

    def bare() -> None:
        try:
            surge.progress(0.5)
        except surge.InvalidError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=bare)
    t.start()
    t.join()
    ctx = contextvars.copy_context()
    t = threading.Thread(target=ctx.run, args=(surge.progress, 0.75), kwargs={"message": "from a thread"})
    t.start()
    t.join()
    return errors[0] if errors else "no error"


@app.function()
def counted(n: int) -> Iterator[dict[str, int]]:
    """A generator that reports before each item."""
    for i in range(n):
        surge.progress(i / n, message=f"item {i}")
        yield {"i": i}
        time.sleep(0.06)
    surge.progress(1.0, message="all items")


@app.function()
def waits_at_half(gate: str) -> str:
    surge.progress(0.5, message="half")
    wait_for(gate)
    surge.progress(1.0, message="done")
    return "ok"


@app.function(max_containers=1)
@surge.batched(max_batch_size=3, wait_ms=2000)
def batch_reports(xs: list[int]) -> list[int]:
    surge.progress(message=f"batch of {len(xs)}", data=sorted(xs))
    return [x * 2 for x in xs]


@app.function()
def quiet_after_first(marker: str) -> Iterator[dict[str, object]]:
    """Yields once, then works without yielding: a reader waits for an item that never comes."""
    yield {"pid": os.getpid(), "call_id": surge.current_function_call_id()}
    while True:
        with open(marker, "a") as f:
            f.write("tick\n")
        time.sleep(0.02)


@app.function()
def three() -> Iterator[int]:
    yield from range(3)
