"""Probe functions for the chaos suite.

Every function appends ``start`` and ``end`` lines — ``kind input_id attempt pid unix_time`` — to a
probe log whose path the test passes in, with one ``O_APPEND`` write per line (atomic on Linux), so
the log outside the platform says which attempt of which input ran in which process, whatever
happens to the platform. Results carry the same identity, so the checker can tell which attempt's
result the store kept.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from typing import Any

import surge

app = surge.App("chaos")

# How many containers the workload function may use (set by the test before this module is imported).
WORK_CONTAINERS = int(os.environ.get("SURGE_CHAOS_WORK_CONTAINERS", "6"))


def probe(log: str, kind: str, note: str = "") -> None:
    line = f"{kind} {surge.current_input_id()} {surge.current_input_attempt()} {os.getpid()} {time.time():.6f}"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + (f" {note}" if note else "") + "\n").encode())
    finally:
        os.close(fd)


def identity(tag: Any = None) -> dict[str, Any]:
    return {"input_id": surge.current_input_id(), "attempt": surge.current_input_attempt(),
            "pid": os.getpid(), "tag": tag}


@app.function(max_containers=WORK_CONTAINERS, scaledown_window=60, timeout=120)
def work(log: str, seconds: float, tag: int) -> dict[str, Any]:
    """A unit of the workload: sleeps ``seconds`` (50–500 ms in scenarios 1 and 2)."""
    probe(log, "start")
    time.sleep(seconds)
    probe(log, "end")
    return identity(tag)


@app.function(min_containers=2, max_containers=2, scaledown_window=60, timeout=120)
def deaf(log: str, seconds: float, tag: int) -> dict[str, Any]:
    """Ignores SIGTERM (as a function doing its own cleanup might), so that a worker stopped past its
    lease and woken again in the kill grace really does deliver its late result."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    probe(log, "start")
    time.sleep(seconds)
    probe(log, "end")
    return identity(tag)


# -- lifecycle faults (scenario 6): one container at most, so the next call proves the slot is free --
@app.function(max_containers=1, scaledown_window=30, timeout=1)
def hang(log: str, mode: str) -> dict[str, Any]:
    probe(log, "start")
    if mode == "hang":
        while True:
            time.sleep(0.05)
    return identity()


@app.function(max_containers=1, scaledown_window=30, timeout=60)
def crash(log: str, mode: str) -> dict[str, Any]:
    probe(log, "start")
    if mode == "exit":
        probe(log, "event")
        sys.exit(7)
    if mode == "segfault":
        probe(log, "event")
        ctypes.string_at(0)
    if mode == "sleep":
        time.sleep(30)
    return identity()


@app.function(max_containers=1, scaledown_window=30, timeout=60, memory=64)
def oom(log: str, mib: int) -> dict[str, Any]:
    probe(log, "start")
    if mib:
        probe(log, "event")
        data = b"\x01" * (mib << 20)      # every page touched
        return {**identity(), "held": len(data)}
    return identity()


# -- autoscaling (scenario 7) -----------------------------------------------------------------------
@app.function(max_containers=8, scaledown_window=3, timeout=60)
def steady(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return identity()


@app.function(scaledown_window=3, timeout=60)
def burst(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
