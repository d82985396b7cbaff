"""Memory snapshots, pre-warmed templates and bursts, used by tests/e2e/test_snapshots.py.

``Weights`` takes the test's temporary directory as a class parameter, so each test gets a pool, and
a snapshot zygote, of its own; its hooks append to files there so a test can count how often each
ran and in which process.
"""

from __future__ import annotations

import os
import random
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

import surge

app = surge.App("e2e-snapshots")


@app.cls(enable_memory_snapshot=True, max_containers=4, scaledown_window=30)
class Weights:
    state_dir: str = surge.parameter()

    @surge.enter(snap=True)
    def load(self) -> None:
        d = Path(self.state_dir)
        with (d / "snap_runs").open("a") as f:   # only this hook writes it: one line per computation
            f.write(f"{os.getpid()}\n")
        slow = d / "slow_snapshot"
        if slow.exists():                       # a test makes a rebuild slow to catch the fallback
            time.sleep(float(slow.read_text()))
        self.snap_pid = os.getpid()
        self.weights = np.arange(2_000_000, dtype=np.float64)   # 16 MB standing in for model weights
        self.checksum = float(self.weights.sum())

    @surge.enter(snap=False)
    def restore(self) -> None:
        with (Path(self.state_dir) / "restores").open("a") as f:
            f.write(f"{os.getpid()}\n")

    @surge.method()
    def info(self, hold: float = 0.0) -> dict[str, Any]:
        time.sleep(hold)
        return {"snap_pid": self.snap_pid, "pid": os.getpid(), "checksum": self.checksum,
                "container": os.environ["SURGE_CONTAINER_ID"], "random": random.random(),
                "np_random": float(np.random.random()), "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES")}


class StandInCuda:
    """A stand-in for ``torch.cuda`` in a user's environment with torch and a GPU. The test machines
    have neither, so ``CudaInSnapshot`` puts a ``torch`` module holding this under ``sys.modules``
    and initialises it, as ``torch.cuda.init()`` (or any tensor ``.cuda()``) would in a real app."""

    def __init__(self) -> None:
        self._initialized = False

    def init(self) -> None:
        self._initialized = True

    def is_initialized(self) -> bool:
        return self._initialized


@app.cls(enable_memory_snapshot=True, scaledown_window=30)
class CudaInSnapshot:
    @surge.enter(snap=True)
    def load_to_gpu(self) -> None:
        torch = types.ModuleType("torch")
        torch.cuda = StandInCuda()  # type: ignore[attr-defined]
        sys.modules["torch"] = torch
        torch.cuda.init()  # type: ignore[attr-defined]

    @surge.method()
    def where(self) -> int:
        return os.getpid()


_IMPORTED_IN = os.getpid()     # in a snapshot: the zygote's pid, not the container's


@app.function(enable_memory_snapshot=True, scaledown_window=30)
def imported_in() -> tuple[int, int]:
    return _IMPORTED_IN, os.getpid()


@app.function(max_containers=4, scaledown_window=30)
def hold(seconds: float) -> str:
    time.sleep(seconds)
    return os.environ["SURGE_CONTAINER_ID"]


@app.function(scaledown_window=30)
def plain() -> int:
    return os.getpid()


# deployed (not run) by a test: a redeploy and a stop must replace and drop its snapshot
deploy_app = surge.App("e2e-snap-deploy")


@deploy_app.function(enable_memory_snapshot=True)
def deployed_snapshot() -> int:
    return os.getpid()
