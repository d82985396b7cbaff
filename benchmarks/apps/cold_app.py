"""The function every row of ``benchmarks/cold_start.py`` runs: a model whose ``@enter(snap=True)``
builds a NumPy array standing in for weights (500 MB by default; ``SURGE_BENCH_WEIGHTS_MB``), and
whose method reads one element of it. ``Snapshotted`` and ``Plain`` are the same class, with and
without ``enable_memory_snapshot`` (``burst_predict`` is the same model as a function, for the burst row); the
Ray row builds the same array in an actor."""

from __future__ import annotations

import os

import numpy as np

import surge

app = surge.App("bench-cold")

WEIGHTS_MB = int(os.environ.get("SURGE_BENCH_WEIGHTS_MB", "500"))


def load_weights() -> np.ndarray:
    return np.ones(WEIGHTS_MB * 2**20 // 8, dtype=np.float64)   # written, so really resident


def predict(weights: np.ndarray, i: int) -> float:
    return float(weights[i % weights.size]) + i


@app.cls(enable_memory_snapshot=True, max_containers=8, scaledown_window=600)
class Snapshotted:
    @surge.enter(snap=True)
    def load(self) -> None:
        self.weights = load_weights()

    @surge.method()
    def predict(self, i: int) -> float:
        return predict(self.weights, i)


@app.cls(max_containers=8, scaledown_window=600)
class Plain:
    @surge.enter(snap=True)
    def load(self) -> None:
        self.weights = load_weights()

    @surge.method()
    def predict(self, i: int) -> float:
        return predict(self.weights, i)



# The burst row's function: the same model as a plain function, so its snapshot is built when the
# app starts (a class's waits for its first call) and the first burst of 8 finds a snapshot but no
# measured run time. The weights are module state: built in the snapshot, not in the caller.
_WEIGHTS = None if surge.is_local() else load_weights()


@app.function(enable_memory_snapshot=True, max_containers=8, scaledown_window=600)
def burst_predict(i: int) -> float:
    assert _WEIGHTS is not None
    return predict(_WEIGHTS, i)
