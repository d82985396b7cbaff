"""Functions called through the HTTP job API and streamed over SSE (tests/e2e/test_jobs*.py).

Coordination between a test and a function goes through files: a function waits for a *gate*
file the test creates, and leaves *marker* files the test looks for, so no test relies on timing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import surge

app = surge.App("e2e-jobs")


def wait_for(path: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.01)


@app.function()
def echo(text: str, n: int = 1) -> dict[str, object]:
    return {"text": text * n, "input_id": surge.current_input_id()}


@app.function()
def handler(event: dict[str, object]) -> dict[str, object]:
    """One positional parameter: a JSON object that does not bind as keywords arrives whole."""
    return {"got": event, "type": type(event).__name__}


@app.function()
def add(a: int, b: int) -> int:
    return a + b


@app.function()
def not_json() -> object:
    return {"a set": {1, 2}}


@app.function()
def nan() -> float:
    return float("nan")


@app.function(timeout=60)
def sleeper(seconds: float, marker: str) -> str:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "woke"


@app.function(max_containers=1, timeout=120)
def gated(gate: str, marker: str, log: str = "") -> str:
    """Leaves ``marker`` (proof it ran), appends it to ``log`` (run order), then waits for ``gate``."""
    Path(marker).write_text(str(os.getpid()))
    if log:
        with open(log, "a") as f:
            f.write(Path(marker).name + "\n")
    wait_for(gate)
    return Path(marker).name


@app.function(max_containers=1, timeout=120)
def ordered(gate: str, marker: str, log: str) -> str:
    """``gated`` for the priority test alone: a function no other test runs has no measured run time,
    so its container prefetches nothing and the whole queue stays in the server's priority order."""
    return str(gated.local(gate, marker, log))


@app.function()
def fail_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).write_text("failed once")
        raise RuntimeError("first run fails")
    return "second run works"


@app.function()
def items(n: int, gate: str) -> Iterator[dict[str, int]]:
    """Yields one item, waits for ``gate``, then yields the rest: the first item provably reaches a
    reader before the generator finishes."""
    yield {"i": 0}
    wait_for(gate)
    for i in range(1, n):
        yield {"i": i}


@app.function()
def ticker(marker: str) -> Iterator[dict[str, object]]:
    """Yields forever, recording each item in ``marker``; only a cancel stops it."""
    n = 0
    while True:
        with open(marker, "a") as f:
            f.write(f"{n}\n")
        yield {"n": n, "pid": os.getpid(), "call_id": surge.current_function_call_id()}
        n += 1
        time.sleep(0.02)
