"""No-op functions the benchmarks call: the work is nothing, so what is measured is surge itself.

Containers import this module by name from its directory, so the directory stays small. A long
``scaledown_window`` keeps the containers warm between a benchmark's warm-up and its timed part.
"""

from __future__ import annotations

import surge

app = surge.App("bench")


@app.function(max_containers=1, scaledown_window=120)
def noop(x: object) -> object:
    return x


@app.function(max_containers=2, scaledown_window=120)
def noop2(x: object) -> object:
    return x


@app.function(max_containers=1, scaledown_window=120)
@surge.concurrent(max_inputs=64)
def noop_conc(x: object) -> object:
    return x


@app.function(max_containers=2, scaledown_window=120)
@surge.concurrent(max_inputs=64)
def noop2_conc(x: object) -> object:
    return x



# -- batching (benchmarks/batching.py): 5 ms per call + 0.05 ms per item, like a GPU forward pass --
def _cost(items: int) -> None:
    import time

    time.sleep(0.005 + 0.00005 * items)


@app.function(max_containers=1, scaledown_window=120)
def per_item(x: int) -> int:
    _cost(1)
    return x


@app.function(max_containers=1, scaledown_window=120)
@surge.batched(max_batch_size=64, wait_ms=10)
def per_batch(xs: list[int]) -> list[int]:
    _cost(len(xs))
    return xs
