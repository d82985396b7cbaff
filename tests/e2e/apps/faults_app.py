"""Functions that fail, hang, crash, stall or hold resources on purpose.

Used by tests/e2e/test_faults.py, test_resources.py and test_lifecycle.py. Functions that must keep
state across attempts (which attempt is this? did it start?) write files under a directory the test
passes in, since each attempt may run in a fresh process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

import surge

app = surge.App("e2e-faults")


class FlakyError(Exception):
    pass


class EnterError(Exception):
    pass


class ImportTimeError(Exception):
    pass


# Only the container started for `broken_import` sees its own tag here: its import fails, every
# other container (and the test process) imports this module normally.
if os.environ.get("SURGE_FUNCTION") == "broken_import":
    raise ImportTimeError("faults_app refuses to import in the broken_import container")


def _where() -> dict[str, object]:
    return {"container": os.environ["SURGE_CONTAINER_ID"], "pid": os.getpid()}


# -- retries ---------------------------------------------------------------------------------------
def _flaky(state_dir: str, fail_first: int) -> int:
    """Append this attempt's start time to ``state_dir/attempts``; the first ``fail_first`` fail."""
    path = Path(state_dir) / "attempts"
    with path.open("a") as f:
        f.write(f"{time.time()!r}\n")
    attempt = len(path.read_text().splitlines())
    if attempt <= fail_first:
        raise FlakyError(f"attempt {attempt} fails on purpose")
    return attempt


@app.function(retries=2)
def flaky_two_retries(state_dir: str, fail_first: int) -> int:
    return _flaky(state_dir, fail_first)


@app.function(retries=1)
def flaky_one_retry(state_dir: str, fail_first: int) -> int:
    return _flaky(state_dir, fail_first)


@app.function(retries=surge.Retries(max_retries=2, backoff_coefficient=2.0, initial_delay=0.2))
def flaky_backoff(state_dir: str, fail_first: int) -> int:
    return _flaky(state_dir, fail_first)


# -- timeouts --------------------------------------------------------------------------------------
@app.function(timeout=2)
def spin(forever: bool) -> dict[str, object]:
    while forever:
        pass
    return _where()


@app.function(timeout=2)
def deaf_to_sigterm(hang: bool) -> dict[str, object]:
    if hang:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    return _where()


# -- crashes ---------------------------------------------------------------------------------------
@app.function()
def crash(how: str) -> dict[str, object]:
    if how == "exit":
        sys.exit(3)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "abort":
        os.abort()
    if how == "segfault":
        ctypes.string_at(0)
    return _where()


@app.function(memory=100)
def hog(mib: int) -> dict[str, object]:
    data = b"\x01" * (mib << 20)     # bytes filled with non-zero: every page is touched
    return {**_where(), "held": len(data)}


@app.cls()
class BrokenEnter:
    @surge.enter()
    def setup(self) -> None:
        raise EnterError("the enter hook fails on purpose")

    @surge.method()
    def ping(self) -> str:
        return "pong"


@app.function()
def broken_import() -> str:
    return "never: this function's module fails to import in its container"


# -- lost leases -----------------------------------------------------------------------------------
@app.function()
def stall_first(state_dir: str) -> int:
    """The first attempt freezes its whole process (SIGSTOP: heartbeats stop too); later ones finish.
    Each finished attempt appends its pid to ``state_dir/finished``."""
    first = Path(state_dir) / "first"
    if not first.exists():
        first.write_text(str(os.getpid()))
        threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGSTOP), daemon=True).start()
        time.sleep(30)
    with (Path(state_dir) / "finished").open("a") as f:
        f.write(f"{os.getpid()}\n")
    return os.getpid()


# -- cancellation and scaling ----------------------------------------------------------------------
@app.function(max_containers=1, timeout=120)
def long_sleep(marker_dir: str, name: str) -> str:
    (Path(marker_dir) / name).write_text(str(os.getpid()))
    time.sleep(60)
    return name


@app.function(scaledown_window=2)
def short_lived() -> dict[str, object]:
    return _where()


@app.function(min_containers=1, scaledown_window=2)
def kept_warm() -> dict[str, object]:
    return _where()


# -- GPUs and concurrency --------------------------------------------------------------------------
def _devices(delay: float) -> str | None:
    time.sleep(delay)
    return os.environ.get("CUDA_VISIBLE_DEVICES")


@app.function(gpu="A100-80GB", scaledown_window=2)
def a100_first(delay: float) -> str | None:
    return _devices(delay)


@app.function(gpu="A100-80GB", scaledown_window=2)
def a100_second(delay: float) -> str | None:
    return _devices(delay)


@app.function(gpu="H100", scaledown_window=2)
def h100(delay: float) -> str | None:
    return _devices(delay)


@app.function(gpu=["H100", "A100-80GB"], scaledown_window=2)
def h100_else_a100(delay: float) -> str | None:
    return _devices(delay)


@app.function(gpu="A100-80GB:2", scaledown_window=2)
def a100_pair(delay: float) -> str | None:
    return _devices(delay)


@app.function(gpu="A100-80GB:3")
def a100_triple(delay: float) -> str | None:
    return _devices(delay)


@app.function(scaledown_window=2)
def no_gpu(delay: float) -> str | None:
    return _devices(delay)


@app.function()
@surge.concurrent(max_inputs=4)
def overlapping_sleep(seconds: float) -> dict[str, object]:
    start = time.time()
    time.sleep(seconds)
    return {**_where(), "start": start, "end": time.time()}
