"""Dynamic batching: a function costing 5 ms per call + 0.05 ms per item, batched vs not.

    .venv/bin/python benchmarks/batching.py                   # 10,000 items batched, 1,000 unbatched
    .venv/bin/python benchmarks/batching.py --items 2000 --json batching.json

Both rows use one container (``max_containers=1``), so the comparison is the same hardware doing
the same per-item work; the unbatched row runs fewer items (each costs a whole call) and is
reported as a rate. A short untimed map warms each container first. Every result is checked.
Target (issue 4): batched (``max_batch_size=64``) ≥ 10x the unbatched throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

TARGET_RATIO = 10.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--items", type=int, default=10_000, help="items through the batched function")
    p.add_argument("--unbatched-items", type=int, default=1_000, help="items through the unbatched one")
    p.add_argument("--batch-time-limit", type=float, default=120.0, help="seconds at most per row")


def _timed(fn: Any, n: int, time_limit: float) -> tuple[int, float]:
    done = 0
    t0 = time.perf_counter()
    for value in fn.map(range(n)):
        if value != done:
            raise AssertionError(f"{fn}: result #{done} is {value!r}, expected {done}")
        done += 1
        if done % 64 == 0 and time.perf_counter() - t0 > time_limit:
            break
    return done, time.perf_counter() - t0


def measure(items: int, unbatched: int, time_limit: float) -> dict[str, dict[str, Any]]:
    out = {}
    with harness.surge_app() as bench:
        for label, fn, n in (("surge, unbatched (1 item per call)", bench.per_item, unbatched),
                             ("surge, @surge.batched(max_batch_size=64, wait_ms=10)", bench.per_batch, items)):
            list(fn.map(range(32)))                      # warm the container
            done, seconds = _timed(fn, n, time_limit)
            out[label] = {"items": done, "seconds": seconds, "per_s": done / seconds,
                          "psi": harness.cpu_pressure()}
    return out


def render(rows: dict[str, dict[str, Any]]) -> tuple[str, float]:
    """The table and the batched/unbatched throughput ratio."""
    (_, base), (_, batched) = rows.items()
    table = harness.table(
        "Dynamic batching (5 ms per call + 0.05 ms per item, one container)",
        ["path", "items", "seconds", "items/s", "vs unbatched", "CPU PSI % (60 s)"],
        [[label, r["items"], r["seconds"], r["per_s"], harness.ratio(r["per_s"], base["per_s"]), r["psi"]]
         for label, r in rows.items()])
    ratio = float(batched["per_s"] / base["per_s"])
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    return f"{table}\ntarget: batched >= {TARGET_RATIO:g}x unbatched -> {verdict} ({ratio:.1f}x)", ratio


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    before = harness.machine()
    print(harness.describe_machine(before), flush=True)
    rows = measure(args.items, args.unbatched_items, args.batch_time_limit)
    text, ratio = render(rows)
    harness.publish(args, before, {"batching": rows, "ratio": ratio}, text)


if __name__ == "__main__":
    main()
