"""Functions for tests/e2e/test_unpickle_marker.py: one that takes anything, one that holds its
only container busy so that later inputs stay queued."""

from __future__ import annotations

import time

import surge

app = surge.App("gadget")


@app.function()
def take(x: object) -> str:
    return type(x).__name__


@app.function(max_containers=1, timeout=120)
def hold(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.cls()
class Keeper:
    name: str = surge.parameter(default="k")

    @surge.method()
    def get(self) -> str:
        return self.name
