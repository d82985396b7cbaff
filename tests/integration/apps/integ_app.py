"""Functions for tests/integration: each one that must prove how often it ran appends a line to a
file the test passes in (every attempt may run in a fresh process, so memory cannot count)."""

from __future__ import annotations

import time
from pathlib import Path

import surge

app = surge.App("integ")


def _note(path: str, line: str) -> None:
    with Path(path).open("a") as f:
        f.write(line + "\n")


@app.function()
def echo(x: object) -> object:
    return x


@app.function()
def record(path: str, tag: str) -> str:
    """Appends ``tag`` to ``path``: the file has one line per execution."""
    _note(path, tag)
    return tag


@app.function(max_containers=2)
def slow(path: str, tag: str, seconds: float) -> str:
    """Notes each start in ``path``, then sleeps. At most two run at once, so more calls queue."""
    _note(path, f"start {tag}")
    time.sleep(seconds)
    return tag
