"""Scenario 7: autoscaling under steady load, at idle, and for a burst.

- Steady load sized for n = 2 containers (inputs of 250 ms arriving at 6/s: 1.5 busy on average),
  open loop, for 60 s (full; shorter in CI): after a warm-up the container count stays within
  [n-1, n+1] and scales down at most once (Knative's autoscale assertion; no flapping).
- Idle: with ``scaledown_window=3``, zero containers within the window + 2 s of the last input.
- Burst: 200 concurrent ``.remote`` calls from zero containers: 0 errors.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from surge.sdk.client import Client
from tests.chaos import harness
from tests.chaos.harness import ChaosServer, pct, sized, wait_until

STEADY_SECONDS = sized(20.0, 60.0)
WARMUP = 5.0
RATE = 6.0
RUN = 0.25
N_TARGET = 2
SCALEDOWN_WINDOW = 3.0
BURST = 200


def _count(server: ChaosServer, client: Client, tag: str) -> int:
    return len([c for c in server.containers(client) if c.function == tag])


@pytest.mark.timeout(sized(150, 400))
def test_steady_idle_and_burst(chaos_app: ModuleType, chaos_home: Path) -> None:
    server = ChaosServer(chaos_home)
    server.start()
    samples: list[tuple[float, int]] = []
    errors: list[str] = []
    try:
        with harness.sdk(server) as client, chaos_app.app.run(show_logs=False):
            # -- steady ------------------------------------------------------------------------
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.25):
                    samples.append((time.monotonic(), _count(server, client, "steady")))

            sampler = threading.Thread(target=sample, daemon=True)
            calls = []
            t0 = time.monotonic()
            sampler.start()
            i = 0
            while time.monotonic() - t0 < STEADY_SECONDS:
                calls.append(chaos_app.steady.spawn(RUN))
                i += 1
                time.sleep(max(0.0, t0 + i / RATE - time.monotonic()))
            last_input = time.monotonic()
            for c in calls:
                try:
                    c.get(timeout=60)
                except Exception as exc:
                    errors.append(f"steady: {type(exc).__name__}: {exc}")
            # -- idle --------------------------------------------------------------------------
            zero_at = wait_until("zero containers", lambda: _count(server, client, "steady") == 0 and time.monotonic(),
                                 timeout=SCALEDOWN_WINDOW + 30, interval=0.1)
            stop.set()
            sampler.join()
            # -- burst -------------------------------------------------------------------------
            barrier = threading.Barrier(BURST)
            latencies: list[float] = []
            mu = threading.Lock()
            peak = [0]

            def one() -> None:
                barrier.wait()
                s = time.monotonic()
                try:
                    chaos_app.burst.remote(0.2)
                except Exception as exc:
                    with mu:
                        errors.append(f"burst: {type(exc).__name__}: {exc}")
                    return
                with mu:
                    latencies.append(time.monotonic() - s)

            def watch() -> None:
                while len(latencies) + len([e for e in errors if e.startswith("burst")]) < BURST:
                    peak[0] = max(peak[0], _count(server, client, "burst"))
                    time.sleep(0.2)

            threads = [threading.Thread(target=one, daemon=True) for _ in range(BURST)]
            for t in threads:
                t.start()
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            for t in threads:
                t.join(timeout=120)
            watcher.join(timeout=5)
    finally:
        server.stop()
    steady = [n for t, n in samples if t0 + WARMUP <= t <= last_input]
    window = [(t, n) for t, n in samples if t0 + WARMUP <= t <= last_input]
    downs = sum(1 for (_, a), (_, b) in itertools.pairwise(window) if b < a)
    figures: dict[str, Any] = {
        "steady_seconds": STEADY_SECONDS, "offered_load_containers": RATE * RUN, "target_n": N_TARGET,
        "containers_min_max_after_warmup": [min(steady), max(steady)],
        "containers_median": sorted(steady)[len(steady) // 2],
        "scale_downs_during_load": downs,
        "zero_after_last_input_s": round(zero_at - last_input, 2), "scaledown_window_s": SCALEDOWN_WINDOW,
        "burst": BURST, "burst_errors": len([e for e in errors if e.startswith("burst")]),
        "burst_latency_s_p50": pct(latencies, 0.5), "burst_latency_s_max": round(max(latencies), 2),
        "burst_peak_containers": peak[0], "errors": len(errors),
    }
    harness.publish("7-autoscaling", figures)
    assert not errors, errors[:5]
    assert N_TARGET - 1 <= min(steady) and max(steady) <= N_TARGET + 1, steady
    assert downs <= 1, samples
    # the last input ends RUN s after it was sent; the autoscaler ticks every 0.25 s
    assert zero_at - last_input <= SCALEDOWN_WINDOW + RUN + 2.0, zero_at - last_input
    assert len(latencies) == BURST
