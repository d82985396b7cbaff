"""The workload of scenarios 1 and 2: N spawned inputs of 50–500 ms, submitted by a few client threads
paced over a window, then waited on through the store until every accepted one is terminal."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.checker import TERMINAL, read_store


@dataclass
class Submitted:
    accepted: list[str] = field(default_factory=list)        # call ids
    errors: list[str] = field(default_factory=list)
    first_at: float = 0.0
    last_at: float = 0.0
    latencies: list[float] = field(default_factory=list)


def submit(fn: Any, log: Path, n: int, r: random.Random, *, window: float, threads: int = 4) -> Submitted:
    """Spawn ``n`` inputs through the SDK (idempotency keys, retries on connection errors and 503)
    spread evenly over ``window`` seconds."""
    durations = [round(r.uniform(0.05, 0.5), 3) for _ in range(n)]
    out = Submitted(first_at=time.time())
    mu = threading.Lock()
    t0 = time.monotonic()

    def worker(k: int) -> None:
        for i in range(k, n, threads):
            delay = t0 + window * i / max(1, n) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s = time.monotonic()
            try:
                call = fn.spawn(str(log), durations[i], i)
            except Exception as exc:
                with mu:
                    out.errors.append(f"input {i}: {type(exc).__name__}: {exc}")
                continue
            with mu:
                out.accepted.append(call.object_id)
                out.latencies.append(time.monotonic() - s)
                out.last_at = time.time()

    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def wait_terminal(db: Path, tag: str, calls: list[str], timeout: float) -> float:
    """Wait until every accepted call's input is terminal in the store; returns when that was seen."""
    wanted = set(calls)
    deadline = time.monotonic() + timeout
    while True:
        rows = read_store(db, tag)
        seen = {r.call_id for r in rows.values() if r.state in TERMINAL}
        if wanted <= seen:
            return time.time()
        if time.monotonic() > deadline:
            return float("nan")
        time.sleep(0.5)
