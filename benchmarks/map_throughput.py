"""Map throughput: a no-op ``.map`` over 20,000 inputs, end to end (first submit to last result).

    .venv/bin/python benchmarks/map_throughput.py              # 20,000 inputs per row, beside Ray
    .venv/bin/python benchmarks/map_throughput.py --inputs 2000 --no-ray --json map.json

Rows: surge with ``max_containers`` 1 and 2, each plain (one input runs at a time in a container)
and with ``@surge.concurrent(max_inputs=64)``; a short untimed map first starts the containers, so no
row pays a cold start. The containers column counts those that ran part of the timed map. With Ray installed: 20,000 no-op tasks submitted at once and gathered with ``ray.get``.
Every result is checked. Target (issue 2): ≥ 10,000 inputs/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

TARGET_PER_S = 10_000.0

# bench_app function -> row label
VARIANTS = {
    "noop": "surge map, max_containers=1",
    "noop2": "surge map, max_containers=2",
    "noop_conc": "surge map, max_containers=1, concurrent(64)",
    "noop2_conc": "surge map, max_containers=2, concurrent(64)",
}


def _inputs_done(tag: str) -> dict[str, int]:
    """Inputs each live container of ``tag`` has finished so far."""
    from surge.sdk import context

    page = context.get_client().request("GET", "/v1/containers")
    return {c["container_id"]: c["inputs_done"] for c in page["containers"] if c["function"] == tag}


def _timed_map(fn: Any, n: int, time_limit: float) -> tuple[int, float]:
    """``(results, seconds)`` of ``fn.map(range(n))``, cut short (and cancelled) at ``time_limit``."""
    done = 0
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    for value in fn.map(range(n)):
        if value != done:
            raise AssertionError(f"{fn}: result #{done} is {value!r}, expected {done}")
        done += 1
        if done % 256 == 0 and time.perf_counter() > deadline:
            break   # leaving the loop cancels the rest of the call
    return done, time.perf_counter() - t0


def measure_surge(n: int, warmup: int, time_limit: float) -> dict[str, dict[str, Any]]:
    out = {}
    with harness.surge_app() as bench:
        for tag in VARIANTS:
            fn = getattr(bench, tag)
            _timed_map(fn, warmup, time_limit)          # starts the containers
            before = _inputs_done(tag)
            done, seconds = _timed_map(fn, n, time_limit)
            after = _inputs_done(tag)
            used = sum(1 for cid, k in after.items() if k > before.get(cid, 0))
            out[tag] = {"inputs": done, "seconds": seconds, "per_s": done / seconds,
                        "containers": used, "complete": done == n, "cpu_pressure": harness.cpu_pressure()}
    return out


def measure_ray(ray: Any, n: int, warmup: int, time_limit: float) -> dict[str, Any]:
    """The same work as Ray core tasks, in a live Ray session (``harness.ray_session()``)."""
    @ray.remote
    def noop(x: object) -> object:
        return x

    ray.get([noop.remote(i) for i in range(warmup)])   # starts the worker processes
    t0 = time.perf_counter()
    refs = [noop.remote(i) for i in range(n)]
    try:
        values = ray.get(refs, timeout=time_limit)
    except ray.exceptions.GetTimeoutError:
        values = ray.get(ray.wait(refs, num_returns=n, timeout=0)[0])
    seconds = time.perf_counter() - t0
    if len(values) == n and values != list(range(n)):
        raise AssertionError("Ray returned wrong results")
    return {"inputs": len(values), "seconds": seconds, "per_s": len(values) / seconds,
            "containers": None, "complete": len(values) == n, "cpu_pressure": harness.cpu_pressure()}


def run(*, inputs: int = 20_000, warmup: int = 1000, time_limit: float = 180.0,
        ray: bool = True) -> dict[str, Any]:
    """Measure each row; returns ``{"inputs", "rows": {name: {...}}, "target_per_s", "target_met"}``."""
    rows = measure_surge(inputs, warmup, time_limit)
    if ray and harness.ray_available():
        with harness.ray_session() as session:
            rows["ray"] = measure_ray(session, inputs, warmup, time_limit)
    return finish(rows, inputs)


def finish(rows: dict[str, dict[str, Any]], inputs: int) -> dict[str, Any]:
    best = max(r["per_s"] for k, r in rows.items() if k != "ray")
    return {"inputs": inputs, "rows": rows, "target_per_s": TARGET_PER_S, "best_surge_per_s": best,
            "target_met": best >= TARGET_PER_S}


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    ref = rows.get("ray", {}).get("per_s")
    labels = {**VARIANTS, "ray": "Ray core, tasks submitted at once (2 workers)"}
    body = [[labels[k] + ("" if r["complete"] else " (time limit hit)"), r["containers"], r["inputs"],
             r["seconds"], r["per_s"], harness.ratio(r["per_s"], ref), r["cpu_pressure"]] for k, r in rows.items()]
    verdict = "met" if result["target_met"] else "NOT met"
    return (harness.table("No-op map throughput (end to end, first submit to last result)",
                          ["path", "containers", "inputs", "seconds", "inputs/s", "vs Ray", "CPU PSI % (60 s)"], body)
            + f"\ntarget: >= {result['target_per_s']:,.0f} inputs/s -> {verdict} "
              f"(best surge row: {result['best_surge_per_s']:,.0f}/s)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", type=int, default=20_000, help="inputs per row (default 20000)")
    p.add_argument("--map-warmup", type=int, default=1000, help="inputs of the untimed warm-up map")
    p.add_argument("--map-time-limit", type=float, default=180.0, help="seconds at most per row")


def main(argv: list[str] | None = None) -> None:
    args, before = harness.start(harness.parser(__doc__, add_arguments), argv)
    result = run(inputs=args.inputs, warmup=args.map_warmup, time_limit=args.map_time_limit,
                 ray=not args.no_ray)
    harness.publish(args, before, {"map_throughput": result}, render(result))


if __name__ == "__main__":
    main()
