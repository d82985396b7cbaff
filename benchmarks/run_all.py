"""Run every benchmark and print its table: warm-call latency, map throughput, batching, cold starts,
web endpoints (their load rows need ``wrk``; without it they are skipped, with the reason printed).

    .venv/bin/python benchmarks/run_all.py                    # full counts (several minutes)
    .venv/bin/python benchmarks/run_all.py --quick            # small counts: a fast check
    .venv/bin/python benchmarks/run_all.py --json bench.json  # also machine-readable results

Each benchmark starts its own surge control plane on 127.0.0.1 with a temporary SURGE_HOME, and
Ray (when ``import ray`` works; ``--no-ray`` skips it) only after surge has stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import batching
import cold_start
import harness
import map_throughput
import warm_call
import web_endpoint

QUICK = {"calls": 200, "warmup": 50, "inputs": 2000, "map_warmup": 200, "items": 2000, "unbatched_items": 200,
         "starts": 5, "weights_mb": 100, "duration": 2.0, "cold": 2}
BENCHMARKS = ("warm_call", "map_throughput", "batching", "cold_start", "web_endpoint")


def main(argv: list[str] | None = None) -> None:
    p = harness.parser(__doc__, warm_call.add_arguments, map_throughput.add_arguments, batching.add_arguments,
                       cold_start.add_arguments, web_endpoint.add_arguments)
    p.add_argument("--quick", action="store_true",
                   help=f"small counts for a fast check ({', '.join(f'{k}={v}' for k, v in QUICK.items())})")
    p.add_argument("--only", choices=BENCHMARKS, help="run one benchmark")
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        p.set_defaults(**QUICK)     # explicit flags still win over --quick
    args, before = harness.start(p, argv)
    want = [b for b in BENCHMARKS if args.only in (None, b)]
    # surge first, each on its own server; then one Ray session for both Ray parts, so Ray never
    # competes with surge for the cores (and starts once: a second ray.init() is slow and flaky)
    warm_rows: dict[str, Any] = {}
    map_rows: dict[str, Any] = {}
    if "warm_call" in want:
        warm_rows["surge"] = warm_call.measure_surge(args.calls, args.warmup, args.time_limit)
    if "map_throughput" in want:
        map_rows.update(map_throughput.measure_surge(args.inputs, args.map_warmup, args.map_time_limit))
    cold_rows: dict[str, Any] = {}
    if "cold_start" in want:
        cold_rows.update(cold_start.measure_surge(args.starts, args.weights_mb))
    web_rows: dict[str, Any] = {}
    if "web_endpoint" in want:
        web_rows = web_endpoint.measure_local(args.duration, args.cold, need_wrk=True)
    if not args.no_ray and harness.ray_available():
        with harness.ray_session() as ray:
            # the map first: the Serve replica of the warm-call row would hold one of Ray's 2 CPUs
            if "map_throughput" in want:
                map_rows["ray"] = map_throughput.measure_ray(ray, args.inputs, args.map_warmup,
                                                             args.map_time_limit)
            if "warm_call" in want:
                warm_rows.update(warm_call.measure_ray(ray, args.calls, args.warmup, args.time_limit))
            if "cold_start" in want:
                cold_rows["ray"] = cold_start.measure_ray(ray, args.starts, args.weights_mb)
            if "web_endpoint" in want:     # last: it restarts Serve with an HTTP proxy
                web_endpoint.ray_rows(ray, web_rows, args.duration, args.cold)
    results: dict[str, Any] = {}
    tables = []
    if warm_rows:
        results["warm_call"] = warm_call.finish(warm_rows, args.calls)
        tables.append(warm_call.render(results["warm_call"]))
    if map_rows:
        results["map_throughput"] = map_throughput.finish(map_rows, args.inputs)
        tables.append(map_throughput.render(results["map_throughput"]))
    if "batching" in want:
        rows = batching.measure(args.items, args.unbatched_items, args.batch_time_limit)
        text, ratio = batching.render(rows)
        results["batching"] = {"rows": rows, "ratio": ratio}
        tables.append(text)
    if cold_rows:
        results["cold_start"] = cold_start.finish(cold_rows, args.starts, args.weights_mb)
        tables.append(cold_start.render(results["cold_start"]))
    if web_rows:
        results["web_endpoint"] = web_endpoint.finish(web_rows, args.duration)
        tables.append(web_endpoint.render(results["web_endpoint"]))
    harness.publish(args, before, results, "\n\n".join(tables))


if __name__ == "__main__":
    main()
