"""Scenario 5: a container SIGSTOPped past its lease, its input re-run elsewhere, then SIGCONT: its
late result must be refused — the input completes once, with the re-run's result.

The function ignores SIGTERM (as one doing its own cleanup might), so when the reaper takes the
input back and signals the silent worker, the worker — once woken — really does finish and deliver
its stale result within the kill grace, before the SIGKILL. The probe log proves the late result was
produced (``end`` of attempt 1); the dispatcher's ``stale_refused`` counter and the store prove it
was refused.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from surge.sdk import context
from tests.chaos import harness
from tests.chaos.checker import classify, read_probe_log, read_store
from tests.chaos.harness import ChaosServer, pct, sized, wait_until

TRIALS = sized(4, 100)
LEASE = 1.0
GRACE = 2.0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _starts(log: Path, input_id: str) -> dict[int, tuple[int, float]]:
    return {p.attempt: (p.pid, p.at) for p in read_probe_log(log) if p.input_id == input_id and p.kind == "start"}


def _ended(log: Path, input_id: str, attempt: int) -> bool:
    return any(p.input_id == input_id and p.attempt == attempt and p.kind == "end" for p in read_probe_log(log))


def _stale_refused(server: ChaosServer) -> int:
    return int(server.health()["dispatcher"].get("stale_refused", 0))


@pytest.mark.timeout(sized(150, 1800))
def test_a_woken_zombies_late_result_is_refused(chaos_app: ModuleType, chaos_home: Path, tmp_path: Path) -> None:
    server = ChaosServer(chaos_home, lease_ttl=LEASE, kill_grace=GRACE)
    server.start()
    log = tmp_path / "probe.log"
    accepted: list[str] = []
    wrong: list[str] = []
    late_produced = 0
    rerun_after: list[float] = []
    refused_before = 0
    try:
        with harness.sdk(server) as client, chaos_app.app.run(show_logs=False):
            refused_before = _stale_refused(server)

            def two_ready() -> bool:
                return len([c for c in server.containers(client)
                            if c.function == "deaf" and c.state == "IDLE"]) >= 2

            for i in range(TRIALS):
                wait_until("two idle deaf containers", two_ready, timeout=30)
                call = chaos_app.deaf.spawn(str(log), 1.5, i)
                accepted.append(call.object_id)
                iid = client.get_call(call.object_id)["input_list"][0]["input_id"]
                pid1, _ = wait_until("attempt 1 to start", lambda: _starts(log, iid).get(1), timeout=15)
                assert server.signal_container(pid1, signal.SIGSTOP), "the container is not ours"
                stopped_at = time.time()
                pid2, at2 = wait_until("attempt 2 to start elsewhere", lambda: _starts(log, iid).get(2),
                                       timeout=20, interval=0.01)
                rerun_after.append(at2 - stopped_at)
                os.kill(pid1, signal.SIGCONT)     # pid1 was checked above to be this server's container
                result: dict[str, Any] = call.get(timeout=30)
                if (result["attempt"], result["pid"]) != (2, pid2) or pid2 == pid1:
                    wrong.append(f"{iid}: kept {result} (attempt 2 ran in {pid2}, the zombie was {pid1})")
                wait_until("the zombie to be killed", lambda p=pid1: not _alive(p), timeout=GRACE + 10)
                late_produced += _ended(log, iid, 1)
            refused = _stale_refused(server) - refused_before
            outputs_seen = {}
            for cid in accepted:
                page = context.get_client().outputs(cid, 0, wait=0)
                for out in page["outputs"]:
                    outputs_seen[out["input_id"]] = outputs_seen.get(out["input_id"], 0) + 1
        store = read_store(server.db, "deaf")
    finally:
        server.stop()
    verdict = classify(accepted, store, read_probe_log(log), outputs_seen=outputs_seen)
    figures = {
        "trials": TRIALS, **verdict.summary(),
        "late_results_produced": late_produced, "late_results_refused": refused,
        "double_completions": verdict.counts["duplicated"] + len(wrong),
        "rerun_started_after_sigstop_s_p50": pct(rerun_after, 0.5),
        "rerun_started_after_sigstop_s_max": round(max(rerun_after), 3),
        "lease_ttl_s": LEASE, "kill_grace_s": GRACE,
    }
    harness.publish("5-zombie-worker", figures)
    assert not wrong, wrong[:5]
    verdict.assert_clean()
    assert verdict.counts["ok"] == TRIALS
    # every trial's zombie woke up in its grace and sent a result: each one was refused
    assert late_produced == TRIALS, f"only {late_produced}/{TRIALS} zombies delivered a late result"
    assert refused >= late_produced
