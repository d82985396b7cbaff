"""Warm-call latency: a no-op ``.remote()`` on a container that is already running.

    .venv/bin/python benchmarks/warm_call.py            # 2,000 calls each, beside Ray when installed
    .venv/bin/python benchmarks/warm_call.py --calls 200 --no-ray --json warm.json

Rows: surge ``f.remote(x)`` (sync no-op, one warm container); with Ray installed, a Ray core task
round trip ``ray.get(f.remote(x))`` and a Ray Serve handle call ``handle.remote(x).result()``, each
warmed first. Calls are sequential: this is latency, not throughput. Target (issue 2): surge p50 ≤ 2 ms.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

TARGET_P50_MS = 2.0


def measure_surge(calls: int, warmup: int, time_limit: float) -> dict[str, Any]:
    with harness.surge_app() as bench:
        fn = bench.noop
        harness.time_calls(fn.remote, warmup, time_limit)   # the first call also starts the container
        return harness.measure_latency(fn.remote, calls, time_limit)


def measure_ray(ray: Any, calls: int, warmup: int, time_limit: float) -> dict[str, dict[str, Any]]:
    """Ray core and Ray Serve rows, in a live Ray session (``harness.ray_session()``)."""
    from ray import serve

    logging.getLogger("ray.serve").setLevel(logging.WARNING)

    @ray.remote
    def noop(x: object) -> object:
        return x

    def core(i: int) -> object:
        return ray.get(noop.remote(i))

    harness.time_calls(core, warmup, time_limit)
    out = {"ray_core": harness.measure_latency(core, calls, time_limit)}

    serve.start(http_options={"location": "NoServer"})   # handles only: no HTTP proxy to bind

    @serve.deployment
    class Noop:
        def __call__(self, x: object) -> object:
            return x

    handle = serve.run(Noop.bind(), name="bench", route_prefix=None)

    def serve_call(i: int) -> object:
        return handle.remote(i).result()

    harness.time_calls(serve_call, warmup, time_limit)
    out["ray_serve"] = harness.measure_latency(serve_call, calls, time_limit)
    return out   # ray.shutdown() takes Serve down with it (serve.shutdown() first only adds noise)


LABELS = {"surge": "surge f.remote() (warm)", "ray_core": "Ray core ray.get(f.remote())",
          "ray_serve": "Ray Serve handle.remote().result()"}


def run(*, calls: int = 2000, warmup: int = 200, time_limit: float = 120.0, ray: bool = True) -> dict[str, Any]:
    """Measure each row; returns ``{"calls", "rows": {name: stats}, "target_p50_ms", "target_met"}``."""
    rows = {"surge": measure_surge(calls, warmup, time_limit)}
    if ray and harness.ray_available():
        with harness.ray_session() as session:
            rows.update(measure_ray(session, calls, warmup, time_limit))
    return finish(rows, calls)


def finish(rows: dict[str, dict[str, Any]], calls: int) -> dict[str, Any]:
    return {"calls": calls, "rows": rows, "target_p50_ms": TARGET_P50_MS,
            "target_met": rows["surge"]["p50_ms"] <= TARGET_P50_MS}


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    ref = rows.get("ray_core", {}).get("p50_ms")
    body = [[LABELS[k], s["n"], s["p50_ms"], s["p90_ms"], s["p99_ms"], s["mean_ms"],
             harness.ratio(s["p50_ms"], ref), s["cpu_pressure"]] for k, s in rows.items()]
    verdict = "met" if result["target_met"] else "NOT met"
    return (harness.table("Warm no-op call latency (ms; sequential calls)",
                          ["path", "calls", "p50", "p90", "p99", "mean", "p50 vs Ray core", "CPU PSI % (60 s)"], body)
            + f"\ntarget: surge p50 <= {result['target_p50_ms']:g} ms -> {verdict}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=2000, help="timed calls per row (default 2000)")
    p.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds at most per row's loop")


def main(argv: list[str] | None = None) -> None:
    args, before = harness.start(harness.parser(__doc__, add_arguments), argv)
    result = run(calls=args.calls, warmup=args.warmup, time_limit=args.time_limit, ray=not args.no_ray)
    harness.publish(args, before, {"warm_call": result}, render(result))


if __name__ == "__main__":
    main()
