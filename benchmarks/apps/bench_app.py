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

