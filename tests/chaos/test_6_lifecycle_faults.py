"""Scenario 6: hangs, exits, signals, OOM and cancels each end in the right state and reason soon after
the event, and the container's slot is reused.

Every function here has ``max_containers=1``, so the call that follows a fault can only run if the
failed container's slot (and its resources) were released. The event's time comes from the probe
log (written just before the crash) or, for a hang, from the attempt's start plus its timeout; the
end's time is the input's ``finished_at`` in the store. Latencies are recorded; the issue's bound
(2 s) is asserted on the median, the maximum is reported (the machine is shared).
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from surge.sdk.client import Client
from tests.chaos import harness
from tests.chaos.checker import read_probe_log
from tests.chaos.harness import ChaosServer, sized, wait_until

REPEATS = sized(2, 10)
BOUND = 2.0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _probe(log: Path, input_id: str, kind: str) -> Any:
    return next((p for p in read_probe_log(log) if p.input_id == input_id and p.kind == kind), None)


def _row(client: Client, call_id: str) -> dict[str, Any]:
    row: dict[str, Any] = client.get_call(call_id)["input_list"][0]
    return row


class Case:
    def __init__(self, name: str, fn: Any, bad: Any, good: Any, state: str, reason: str,
                 extra: Callable[[dict[str, Any]], bool] = lambda r: True) -> None:
        self.name, self.fn, self.bad, self.good = name, fn, bad, good
        self.state, self.reason, self.extra = state, reason, extra
        self.latencies: list[float] = []
        self.reuse: list[float] = []
        self.wrong: list[str] = []


def run_case(case: Case, client: Client, log: Path, *, timeout: float | None = None, cancel: bool = False) -> None:
    call = case.fn.spawn(str(log), case.bad)
    iid = client.get_call(call.object_id)["input_list"][0]["input_id"]
    start = wait_until(f"{case.name}: the input to start", lambda: _probe(log, iid, "start"), timeout=30)
    event_at: float
    if cancel:
        pid = start.pid
        event_at = time.time()
        call.cancel()
        wait_until("the cancelled container to die", lambda: not _alive(pid), timeout=10, interval=0.01)
        died = time.time() - event_at
    row = wait_until(f"{case.name}: a terminal state",
                     lambda: (r := _row(client, call.object_id))["state"] not in ("QUEUED", "RUNNING") and r,
                     timeout=30)
    if cancel:
        # the state is set by the cancel itself; the figure is when its container was gone
        case.latencies.append(died)
    elif timeout is not None:
        event_at = start.at + timeout
        case.latencies.append(row["finished_at"] - event_at)
    else:
        ev = _probe(log, iid, "event")
        case.latencies.append(row["finished_at"] - ev.at)
    if (row["state"], row["reason"]) != (case.state, case.reason) or not case.extra(row):
        case.wrong.append(f"{row['state']}/{row['reason']}: {row['message']}")
    t = time.monotonic()
    after = case.fn.remote(str(log), case.good)
    case.reuse.append(time.monotonic() - t)
    assert after["input_id"], after


@pytest.mark.timeout(sized(150, 900))
def test_faults_end_in_the_right_state_and_free_the_slot(chaos_app: ModuleType, chaos_home: Path,
                                                         tmp_path: Path) -> None:
    server = ChaosServer(chaos_home, lease_ttl=2.0, kill_grace=1.0)
    server.start()
    log = tmp_path / "probe.log"
    memory = server.health()["node"]["memory_limits"]
    cases = [
        Case("hang past timeout", chaos_app.hang, "hang", "ok", "TIMED_OUT", "TIMEOUT"),
        Case("sys.exit(7)", chaos_app.crash, "exit", "ok", "FAILED", "EXITED"),
        Case("SIGSEGV", chaos_app.crash, "segfault", "ok", "FAILED", "SIGNALED"),
        Case("cancel while running", chaos_app.crash, "sleep", "ok", "CANCELLED", "CANCELLED"),
    ]
    # an OOM kill needs a memory cgroup; under the RLIMIT_DATA fallback the function gets a MemoryError
    oom_testable = memory.startswith("cgroup")
    if oom_testable:
        cases.insert(3, Case(f"OOM ({memory})", chaos_app.oom, 256, 0, "FAILED", "OOM_KILLED"))
    try:
        with harness.sdk(server) as client, chaos_app.app.run(show_logs=False):
            for case in cases:
                for _ in range(REPEATS):
                    run_case(case, client, log, timeout=1.0 if case.fn is chaos_app.hang else None,
                             cancel=case.reason == "CANCELLED")
    finally:
        server.stop()
    figures: dict[str, Any] = {}
    for c in cases:
        figures[c.name] = {"expected": f"{c.state}/{c.reason}", "right": REPEATS - len(c.wrong),
                           "of": REPEATS, "event_to_end_s_median": round(statistics.median(c.latencies), 3),
                           "event_to_end_s_max": round(max(c.latencies), 3),
                           "next_call_s_max": round(max(c.reuse), 3)}
    if not oom_testable:
        figures["OOM"] = f"not tested: memory limits here are {memory}, not a cgroup"
    harness.publish("6-lifecycle-faults", figures)
    for c in cases:
        assert not c.wrong, (c.name, c.wrong)
        assert statistics.median(c.latencies) <= BOUND, (c.name, c.latencies)
    if not oom_testable:
        pytest.skip(f"the other faults passed; the OOM case needs a writable memory cgroup (this host: {memory})")


def test_an_external_sigkill_is_a_lost_worker_not_the_users_failure(chaos_app: ModuleType, chaos_home: Path,
                                                                   tmp_path: Path) -> None:
    """A SIGKILL that is neither surge's nor the cgroup OOM killer's (an operator, the host's OOM
    killer, node-level chaos) re-runs the input as ``WORKER_LOST`` without using ``retries``."""
    server = ChaosServer(chaos_home)
    server.start()
    log = tmp_path / "probe.log"
    try:
        with harness.sdk(server) as client, chaos_app.app.run(show_logs=False):
            call = chaos_app.crash.spawn(str(log), "sleep")
            iid = client.get_call(call.object_id)["input_list"][0]["input_id"]
            first = wait_until("attempt 1", lambda: _probe(log, iid, "start"), timeout=30)
            assert server.signal_container(first.pid, signal.SIGKILL)
            wait_until("attempt 2", lambda: [p for p in read_probe_log(log)
                                             if p.input_id == iid and p.attempt == 2], timeout=30)
            row = _row(client, call.object_id)     # attempt 2 running: the last failure's reason shows
            client.cancel(call.object_id)
    finally:
        server.stop()
    assert (row["state"], row["attempt"], row["user_failures"], row["infra_failures"]) == ("RUNNING", 2, 0, 1)
    assert row["reason"] == "WORKER_LOST", row
    assert "SIGKILL" in row["message"], row
