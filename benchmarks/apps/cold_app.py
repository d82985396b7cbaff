"""The function every row of ``benchmarks/cold_start.py`` runs: a model whose ``@enter(snap=True)``
builds a NumPy array standing in for weights (500 MB by default; ``SURGE_BENCH_WEIGHTS_MB``), and
whose method reads one element of it. ``Snapshotted`` and ``Plain`` are the same class, with and
without ``enable_memory_snapshot``; the Ray row builds the same array in an actor."""

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
