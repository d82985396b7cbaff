"""Failure handling with real worker processes: retries and their backoff, timeouts (SIGTERM, then
SIGKILL), crashes (exit code, signals), init failures, and a worker that stops renewing its lease.

Each test reads the input's record (``GET /v1/calls/{id}``) and the container's record
(``GET /v1/containers``) as well as the exception the caller gets, so the reason and the numbers
are checked where the platform keeps them, not only as the SDK reports them.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import surge
from surge.sdk import context


@pytest.fixture(scope="module")
def faults(server: Any, apps_path: Any) -> Iterator[Any]:
    import faults_app

    with faults_app.app.run(show_logs=False):
        yield faults_app


def input_of(call: surge.FunctionCall) -> dict[str, Any]:
    (row,) = context.get_client().get_call(call.object_id)["input_list"]
    return row


def container(container_id: str) -> dict[str, Any]:
    rows = context.get_client().request("GET", "/v1/containers", params={"all": True})["containers"]
    (row,) = [c for c in rows if c["container_id"] == container_id]
    return row


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def attempt_starts(state_dir: Path) -> list[float]:
    return [float(line) for line in (state_dir / "attempts").read_text().split()]


# -- retries ---------------------------------------------------------------------------------------
def test_retries_succeed_on_the_third_attempt(faults: Any, tmp_path: Path) -> None:
    call = faults.flaky_two_retries.spawn(str(tmp_path), 2)
    assert call.get(timeout=30) == 3
    row = input_of(call)
    assert (row["state"], row["attempt"], row["user_failures"], row["infra_failures"]) == ("SUCCEEDED", 3, 2, 0)
    assert len(attempt_starts(tmp_path)) == 3


def test_retries_exhausted_raise_the_users_exception(faults: Any, tmp_path: Path) -> None:
    call = faults.flaky_one_retry.spawn(str(tmp_path), 5)
    with pytest.raises(faults.FlakyError, match="attempt 2 fails on purpose"):
        call.get(timeout=30)
    row = input_of(call)
    assert (row["state"], row["reason"], row["attempt"], row["user_failures"], row["infra_failures"]) == (
        "FAILED", "USER_EXCEPTION", 2, 2, 0)      # both failures are counted, the last one too
    assert len(attempt_starts(tmp_path)) == 2      # retries=1: one retry, then no more


def test_retry_backoff_grows(faults: Any, tmp_path: Path) -> None:
    call = faults.flaky_backoff.spawn(str(tmp_path), 2)
    assert call.get(timeout=30) == 3
    starts = attempt_starts(tmp_path)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 2
    # initial_delay=0.2, backoff_coefficient=2: 0.2 s then 0.4 s (not the 1 s of retries=<int>)
    assert 0.2 <= gaps[0] < 0.9, gaps
    assert 0.4 <= gaps[1] < 1.5, gaps
    assert input_of(call)["user_failures"] == 2


# -- timeouts --------------------------------------------------------------------------------------
def check_timed_out(faults: Any, fn: Any, sig: int, *, min_run: float, max_run: float) -> None:
    call = fn.spawn(True)
    with pytest.raises(surge.FunctionTimeoutError) as info:
        call.get(timeout=30)
    assert (info.value.reason, info.value.signal) == ("TIMEOUT", sig)
    row = input_of(call)
    assert (row["state"], row["reason"], row["attempt"]) == ("TIMED_OUT", "TIMEOUT", 1)
    ran = row["finished_at"] - row["started_at"]
    assert min_run <= ran < max_run, ran
    dead = container(row["container_id"])
    assert (dead["state"], dead["stop_reason"], dead["signal"]) == ("STOPPED", "TIMEOUT", sig)
    assert not alive(dead["pid"])
    # the slot is free again: the next call runs, in a new container
    after = fn.remote(False)
    assert after["container"] != row["container_id"]


def test_timeout_kills_a_busy_loop(faults: Any) -> None:
    # timeout=2: SIGTERM at 2 s ends it (Python's default SIGTERM action)
    check_timed_out(faults, faults.spin, signal.SIGTERM, min_run=2.0, max_run=4.0)


def test_timeout_kills_a_function_that_ignores_sigterm(faults: Any) -> None:
    # SIGTERM at 2 s is ignored; SIGKILL follows after the server's 1 s kill grace
    check_timed_out(faults, faults.deaf_to_sigterm, signal.SIGKILL, min_run=3.0, max_run=5.0)


# -- crashes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("how", "reason", "exit_code", "sig"), [
    ("exit", "EXITED", 3, None),
    # a SIGKILL that is neither ours nor the cgroup's OOM kill is a lost worker (tests/chaos)
    ("abort", "SIGNALED", None, signal.SIGABRT),
    ("segfault", "SIGNALED", None, signal.SIGSEGV),
])
def test_crash_is_reported_and_the_container_replaced(faults: Any, how: str, reason: str,
                                                      exit_code: int | None, sig: int | None) -> None:
    call = faults.crash.spawn(how)
    with pytest.raises(surge.ExecutionError) as info:
        call.get(timeout=30)
    err = info.value
    assert type(err) is surge.ExecutionError
    assert (err.reason, err.exit_code, err.signal) == (reason, exit_code, sig)
    row = input_of(call)
    assert (row["state"], row["reason"], row["attempt"]) == ("FAILED", reason, 1)
    dead = container(row["container_id"])
    assert (dead["state"], dead["exit_code"], dead["signal"]) == ("STOPPED", exit_code, sig)
    assert not alive(dead["pid"])
    after = faults.crash.remote("ok")
    assert after["container"] != row["container_id"]


# -- init failures ---------------------------------------------------------------------------------
def test_enter_failure_fails_fast_with_the_original_type(faults: Any) -> None:
    t0 = time.monotonic()
    call = faults.BrokenEnter().ping.spawn()
    with pytest.raises(faults.EnterError, match="the enter hook fails on purpose"):
        call.get(timeout=30)
    assert time.monotonic() - t0 < 10
    row = input_of(call)
    assert (row["state"], row["reason"], row["attempt"]) == ("FAILED", "INIT_FAILURE", 0)
    assert "the enter hook fails on purpose" in row["message"]


def test_import_failure_fails_fast(faults: Any) -> None:
    t0 = time.monotonic()
    call = faults.broken_import.spawn()
    with pytest.raises(Exception, match="refuses to import") as info:
        call.get(timeout=30)
    assert time.monotonic() - t0 < 10
    assert (type(info.value).__module__, type(info.value).__qualname__) == ("faults_app", "ImportTimeError")
    row = input_of(call)
    assert (row["state"], row["reason"], row["attempt"]) == ("FAILED", "INIT_FAILURE", 0)


def test_import_failure_raises_the_importable_exception_type(faults: Any) -> None:
    # the container could not import faults_app, so the class travelled by value; the caller can
    # import it, so it gets the real class back
    with pytest.raises(faults.ImportTimeError) as info:
        faults.broken_import.remote()
    assert type(info.value) is faults.ImportTimeError


# -- a worker that stops renewing its lease ----------------------------------------------------------
@pytest.mark.slow
def test_stalled_worker_is_rerun_once_as_an_infrastructure_retry(faults: Any, tmp_path: Path) -> None:
    # stall_first has retries=0: only an infrastructure retry can run it again
    call = faults.stall_first.spawn(str(tmp_path))
    pid = call.get(timeout=60)
    stalled = int((tmp_path / "first").read_text())
    assert pid != stalled
    assert (tmp_path / "finished").read_text().split() == [str(pid)]    # completed exactly once
    row = input_of(call)
    assert (row["state"], row["attempt"], row["user_failures"], row["infra_failures"]) == ("SUCCEEDED", 2, 0, 1)
    # the input was re-queued the moment its lease expired (fenced by its attempt number); the silent
    # container is SIGKILLed within the kill grace, possibly after the re-run already finished
    deadline = time.monotonic() + 10
    while True:
        rows = context.get_client().request("GET", "/v1/containers", params={"all": True})["containers"]
        (lost,) = [c for c in rows if c["pid"] == stalled]
        if lost["state"] == "STOPPED" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (lost["state"], lost["stop_reason"], lost["signal"]) == ("STOPPED", "LOST", signal.SIGKILL)
    assert not alive(stalled)
