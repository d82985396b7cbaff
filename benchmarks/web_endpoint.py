"""Web endpoints: throughput and latency of a no-op endpoint under 16 keep-alive connections, and
the time from a request at zero containers to its response; beside Ray Serve and bare uvicorn.

    apt-get install -y wrk                               # the load generator (Debian/Ubuntu package)
    .venv/bin/python benchmarks/web_endpoint.py          # 10 s per row, beside Ray Serve when installed
    .venv/bin/python benchmarks/web_endpoint.py --duration 3 --cold 3 --no-ray --json web.json

Rows, all over real HTTP on 127.0.0.1, each loaded by ``wrk -c 16`` for ``--duration`` seconds
(without wrk: a bounded httpx async loop, much slower, so the numbers then show the client):

- bare uvicorn: a raw ASGI no-op in one uvicorn process (the ceiling: no proxy, no framework);
- surge ``@surge.fastapi_endpoint`` no-op and ``@surge.asgi_app`` raw no-op (both with
  ``@surge.concurrent(max_inputs=64)``, one container): client → control plane gateway →
  container (uvicorn on a Unix socket);
- Ray Serve: a deployment (``max_ongoing_requests=64``, one replica) behind its HTTP proxy.

Scale-from-zero: each sample requests an endpoint that has no container (surge: a function never
called before; Ray Serve: an app with ``min_replicas=0, initial_replicas=0``) and times the
response. Surge first, then Ray, so the two never share the cores. Targets (issue 4):
>= 3,000 req/s with p99 <= 20 ms, and scale-from-zero <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

CONNECTIONS = 16
TARGET_RPS = 3000.0
TARGET_P99_MS = 20.0
TARGET_COLD_MS = 100.0
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


# -- load --------------------------------------------------------------------------------------------
def load(url: str, duration: float) -> dict[str, Any]:
    """Requests/s and latency percentiles (ms) for ``CONNECTIONS`` keep-alive connections."""
    row = _wrk(url, duration) if shutil.which("wrk") else asyncio.run(_httpx_load(url, duration))
    row["cpu_pressure"] = harness.cpu_pressure("avg10")
    return row


def _wrk(url: str, duration: float) -> dict[str, Any]:
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    pct = {m.group(1): float(m.group(2)) * _UNIT[m.group(3)]
           for m in re.finditer(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))   # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))          # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"tool": "wrk", "requests": total, "rps": rps, "p50_ms": pct.get("50"), "p90_ms": pct.get("90"),
            "p99_ms": pct.get("99"), "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


async def _httpx_load(url: str, duration: float) -> dict[str, Any]:
    samples: list[float] = []
    bad = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        async def worker() -> None:
            nonlocal bad
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                resp = await client.get(url)
                samples.append(time.perf_counter() - t0)
                bad += resp.status_code >= 400
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - t0
    stats = harness.latency_stats(samples)
    return {"tool": "httpx", "requests": len(samples), "rps": len(samples) / elapsed, "p50_ms": stats["p50_ms"],
            "p90_ms": stats["p90_ms"], "p99_ms": stats["p99_ms"], "non_2xx": bad, "socket_errors": 0}


def _cold_stats(samples: list[float]) -> dict[str, Any]:
    ms = sorted(s * 1e3 for s in samples)
    return {"n": len(ms), "p50_ms": statistics.median(ms), "min_ms": ms[0], "max_ms": ms[-1],
            "mean_ms": statistics.fmean(ms)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5.0).status_code < 500:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.05)


# -- rows ------------------------------------------------------------------------------------------
def measure_uvicorn(duration: float) -> dict[str, Any]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(harness.APPS), "web_bench_app:raw_noop",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"])
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url)
        return load(url, duration)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def surge_web_app() -> Iterator[Any]:
    from surge.sdk import context, embedded
    from surge.sdk.client import Client

    with tempfile.TemporaryDirectory(prefix="surge-bench-") as home:
        info = embedded.start(Path(home), extra_args=["--log-level", "warning"])
        client = Client(info.url, info.token)
        old = context.set_client(client)
        sys.path.insert(0, str(harness.APPS))
        try:
            import web_bench_app

            with web_bench_app.app.run(show_logs=False):
                yield web_bench_app
        finally:
            sys.path.remove(str(harness.APPS))
            context.set_client(old)
            client.close()
            info.stop()


def measure_surge(duration: float, cold: int, *, load_rows: bool = True) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with surge_web_app() as bench:
        for name, fn in (("surge_fastapi", bench.noop), ("surge_asgi", bench.raw)) if load_rows else ():
            url = fn.get_web_url()
            _wait_http(url)
            load(url, min(2.0, duration))                    # warm: connections, caches
            rows[name] = load(url, duration)
        # after the load rows, so the agent's template process (a zygote that has imported the
        # runtime, uvicorn and FastAPI) is up, as it is on a server that has been running a while
        if not load_rows:
            _wait_http(bench.noop.get_web_url())
        cold_samples = []
        for i in range(min(cold, bench.COLD)):
            url = getattr(bench, f"cold_{i}").get_web_url()
            t0 = time.perf_counter()
            resp = httpx.get(url, timeout=60.0)
            cold_samples.append(time.perf_counter() - t0)
            assert resp.status_code == 200, resp.text
        rows["cold"] = _cold_stats(cold_samples)
    return rows


def measure_ray(ray: Any, duration: float, cold: int, *, load_rows: bool = True) -> dict[str, Any]:
    from ray import serve
    from starlette.responses import JSONResponse

    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    port = _free_port()
    # in run_all's shared Ray session another benchmark may have started Serve without an HTTP proxy
    serve.shutdown()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    rows: dict[str, Any] = {}
    if load_rows:
        rows.update(_ray_load(port, duration))

    @serve.deployment(max_ongoing_requests=64,
                      autoscaling_config={"min_replicas": 0, "initial_replicas": 0, "max_replicas": 1})
    class Cold:
        async def __call__(self, request: Any) -> Any:
            return JSONResponse({"ok": True})

    samples = []
    for i in range(cold):
        serve.run(Cold.bind(), name=f"cold{i}", route_prefix=f"/cold{i}")
        t0 = time.perf_counter()
        resp = httpx.get(f"http://127.0.0.1:{port}/cold{i}", timeout=120.0)
        samples.append(time.perf_counter() - t0)
        assert resp.status_code == 200, resp.text
        serve.delete(f"cold{i}")
    rows["ray_cold"] = _cold_stats(samples)
    return rows


def _ray_load(port: int, duration: float) -> dict[str, Any]:
    from ray import serve
    from starlette.responses import JSONResponse

    @serve.deployment(max_ongoing_requests=64, num_replicas=1)
    class Noop:
        async def __call__(self, request: Any) -> Any:
            return JSONResponse({"ok": True})

    serve.run(Noop.bind(), name="noop", route_prefix="/noop")
    url = f"http://127.0.0.1:{port}/noop"
    _wait_http(url)
    load(url, min(2.0, duration))
    rows = {"ray_serve": load(url, duration)}
    serve.delete("noop")
    return rows


def measure_local(duration: float, cold: int, *, need_wrk: bool = False) -> dict[str, Any]:
    """The bare-uvicorn and surge rows. With ``need_wrk`` (``run_all``) and no ``wrk`` installed, the
    load rows are skipped, with the reason printed, rather than measured with the slower httpx loop
    (whose numbers would show the client); scale from zero needs no load generator."""
    load_rows = not need_wrk or shutil.which("wrk") is not None
    if not load_rows:
        print("web_endpoint: skipping the load rows: `wrk` is not installed (apt-get install -y wrk); "
              "measuring scale from zero only", file=sys.stderr, flush=True)
    rows: dict[str, Any] = {"uvicorn": measure_uvicorn(duration)} if load_rows else {}
    rows.update(measure_surge(duration, cold, load_rows=load_rows))
    return rows


def ray_rows(ray: Any, rows: dict[str, Any], duration: float, cold: int) -> None:
    """Ray Serve's rows (load only when the surge load rows ran, so the table compares like with like)."""
    rows.update(measure_ray(ray, duration, max(1, min(cold, 3)), load_rows="surge_fastapi" in rows))


def finish(rows: dict[str, Any], duration: float) -> dict[str, Any]:
    best = rows.get("surge_fastapi")
    return {"duration_s": duration, "connections": CONNECTIONS, "rows": rows,
            "targets": {"rps": TARGET_RPS, "p99_ms": TARGET_P99_MS, "cold_ms": TARGET_COLD_MS},
            "throughput_met": None if best is None else
            best["rps"] >= TARGET_RPS and (best["p99_ms"] or 1e9) <= TARGET_P99_MS,
            "cold_met": rows["cold"]["p50_ms"] <= TARGET_COLD_MS}


def run(*, duration: float = 10.0, cold: int = 5, ray: bool = True) -> dict[str, Any]:
    rows = measure_local(duration, cold)
    if ray and harness.ray_available():
        with harness.ray_session() as session:
            ray_rows(session, rows, duration, cold)
    return finish(rows, duration)


LOAD_LABELS = {"uvicorn": "bare uvicorn, raw ASGI no-op (ceiling)",
               "surge_fastapi": "surge @fastapi_endpoint no-op",
               "surge_asgi": "surge @asgi_app raw no-op",
               "ray_serve": "Ray Serve deployment no-op"}
COLD_LABELS = {"cold": "surge (fresh container)", "ray_cold": "Ray Serve (min_replicas=0)"}


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    cold = [[COLD_LABELS[k], r["n"], r["p50_ms"], r["min_ms"], r["max_ms"]]
            for k, r in rows.items() if k in COLD_LABELS]
    t = result["targets"]
    if "uvicorn" in rows:
        ceiling = rows["uvicorn"]["rps"]
        body = [[LOAD_LABELS[k], r["requests"], r["rps"], r["p50_ms"], r["p90_ms"], r["p99_ms"],
                 r["non_2xx"] + r["socket_errors"], harness.ratio(r["rps"], ceiling), r["cpu_pressure"]]
                for k, r in rows.items() if k in LOAD_LABELS]
        head = [harness.table(f"No-op web endpoint, {result['connections']} keep-alive connections, "
                              f"{result['duration_s']:g} s ({rows['uvicorn']['tool']})",
                              ["path", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "vs ceiling",
                               "CPU PSI % (10 s)"], body),
                f"target: surge >= {t['rps']:,.0f} req/s with p99 <= {t['p99_ms']:g} ms -> "
                f"{'met' if result['throughput_met'] else 'NOT met'}"]
    else:
        head = ["No-op web endpoint under load: skipped (`wrk` is not installed: apt-get install -y wrk)"]
    return "\n".join([
        *head,
        "",
        harness.table("Scale from zero: a request at zero containers until its response (ms)",
                      ["path", "samples", "p50", "min", "max"], cold),
        f"target: surge p50 <= {t['cold_ms']:g} ms -> {'met' if result['cold_met'] else 'NOT met'}",
    ])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per row (default 10)")
    p.add_argument("--cold", type=int, default=5, help="scale-from-zero samples (default 5; Ray: at most 3)")


def main(argv: list[str] | None = None) -> None:
    args, before = harness.start(harness.parser(__doc__, add_arguments), argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    result = run(duration=args.duration, cold=args.cold, ray=not args.no_ray)
    harness.publish(args, before, {"web_endpoint": result}, render(result))


if __name__ == "__main__":
    main()
