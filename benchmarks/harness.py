"""What the benchmarks share: a private surge server, a bounded local Ray, statistics, tables.

Every benchmark starts its own control plane (``python -m surge.server`` on 127.0.0.1, port chosen
by the OS) with a fresh temporary ``SURGE_HOME`` that is deleted afterwards, and Ray (the peer) only
after surge has stopped, so the two never compete for the same cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"


# -- surge -------------------------------------------------------------------------------------
@contextlib.contextmanager
def surge_app(module: str = "bench_app", env: dict[str, str] | None = None) -> Iterator[ModuleType]:
    """A private control plane running ``benchmarks/apps/<module>.py``; yields the module. ``env``
    is set for the server (and so its containers) while it runs."""
    import importlib

    from surge.sdk import context, embedded
    from surge.sdk.client import Client

    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with tempfile.TemporaryDirectory(prefix="surge-bench-") as home:
            info = embedded.start(Path(home), extra_args=["--log-level", "warning", "--sandbox", os.environ.get("SURGE_BENCH_SANDBOX", "auto")])
            client = Client(info.url, info.token)
            old = context.set_client(client)
            sys.path.insert(0, str(APPS))
            try:
                app_module = importlib.import_module(module)
                with app_module.app.run(show_logs=False):
                    yield app_module
            finally:
                sys.path.remove(str(APPS))
                context.set_client(old)
                client.close()
                info.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- ray ---------------------------------------------------------------------------------------
def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def ray_session() -> Iterator[Any]:
    """A local Ray head on 127.0.0.1 with 2 CPUs and no dashboard; shut down on exit."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


# -- measuring ---------------------------------------------------------------------------------
def time_calls(call: Callable[[int], Any], count: int, time_limit: float) -> list[float]:
    """Latencies (seconds) of up to ``count`` sequential calls, stopping early at ``time_limit`` s."""
    samples: list[float] = []
    deadline = time.perf_counter() + time_limit
    for i in range(count):
        t0 = time.perf_counter()
        call(i)
        t1 = time.perf_counter()
        samples.append(t1 - t0)
        if t1 > deadline:
            break
    return samples


def measure_latency(call: Callable[[int], Any], count: int, time_limit: float) -> dict[str, Any]:
    """``latency_stats`` of ``time_calls``, with the CPU pressure from other work meanwhile."""
    return {**latency_stats(time_calls(call, count, time_limit)), "cpu_pressure": cpu_pressure()}


def latency_stats(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean in milliseconds, plus the number of samples."""
    ms = sorted(s * 1e3 for s in samples)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]

    return {"n": len(ms), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "mean_ms": statistics.fmean(ms)}


# -- reporting ---------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--", "src"):
        commit += "+dirty"   # the editable install runs the working tree, which differs from HEAD
    return {"cpu_model": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "surge_commit": commit or "unknown",
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpu_pressure_avg10": cpu_pressure("avg10")}


def cpu_pressure(window: str = "avg60") -> float | None:
    """Share of the last ``window`` (avg10, avg60) in which some runnable task waited for a CPU
    (Linux PSI), in %. It counts the benchmark's own processes too: read before a run, it shows
    other work on the machine; read after a row, how contended that row was."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(some.split(f"{window}=")[1].split()[0])
    return None


def describe_machine(m: dict[str, Any]) -> str:
    return (f"{m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
            f"surge {m['surge_commit']}; load average {m['load_average'][0]}, CPU pressure "
            f"{m['cpu_pressure_avg10']}% (PSI some avg10)")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=False).stdout.strip()


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    rule = "-" * len(line(cells[0]))
    return "\n".join([title, rule, line(cells[0]), rule, *(line(r) for r in cells[1:]), rule])


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:,.0f}" if abs(c) >= 1000 else f"{c:.2f}"
    if isinstance(c, int):
        return f"{c:,}"
    return "-" if c is None else str(c)


def ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def parser(doc: str, *adders: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """A benchmark's command line: its own options, then ``--no-ray`` and ``--json PATH``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    for add in adders:
        add(p)
    p.add_argument("--no-ray", action="store_true", help="skip the Ray rows")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p


def start(p: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse the command line and note the machine (and how busy it is) before anything runs."""
    args = p.parse_args(argv)
    before = machine()
    print(describe_machine(before), flush=True)
    return args, before


def publish(args: argparse.Namespace, before: dict[str, Any], results: dict[str, Any], text: str) -> None:
    """Print the tables and write ``--json`` if asked."""
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": before, **results}, indent=2) + "\n")
        print(f"wrote {args.json}")
