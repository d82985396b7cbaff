"""Scenario 1: inputs of 50–500 ms while a random container is SIGKILLed every few seconds and the
whole node's containers at once every few more.

"Killing the agent": for the local backend the node agent runs inside the control-plane process, so
killing it *is* killing the control plane — scenario 2 does that. Here the node-level fault is its
closest equivalent that leaves the control plane up: every container of the node SIGKILLed at the
same instant (what a node agent's death does to its containers).

Figures: ok / lost / duplicated / unexpected (the checker), re-runs, the kills, the time from the last
submit until every input was terminal (bound: 120 s).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import pytest

from tests.chaos import harness
from tests.chaos.checker import classify, read_probe_log, read_store
from tests.chaos.faults import Killer
from tests.chaos.harness import ChaosServer, RecordingTransport, Ticker, sized
from tests.chaos.workload import submit, wait_terminal

N = sized(200, 2000)
CONTAINER_KILL_EVERY = sized(1.5, 5.0)
NODE_KILL_EVERY = sized(6.0, 20.0)
SUBMIT_WINDOW = sized(13.0, 40.0)
TERMINAL_WITHIN = 120.0


@pytest.mark.timeout(sized(170, 900))
def test_inputs_survive_container_and_node_kills(chaos_app: ModuleType, chaos_home: Path, tmp_path: Path) -> None:
    server = ChaosServer(chaos_home)
    server.start()
    transport = RecordingTransport()
    log = tmp_path / "probe.log"
    try:
        with harness.sdk(server, transport) as client, chaos_app.app.run(show_logs=False):
            killer = Killer(server, client, "worker-kills")
            with Ticker("container-killer", CONTAINER_KILL_EVERY, killer.one) as t1, \
                    Ticker("node-killer", NODE_KILL_EVERY, killer.all) as t2:
                sub = submit(chaos_app.work, log, N, harness.rng("worker-kills-load"), window=SUBMIT_WINDOW)
                # keep killing until the work is done: the tail must survive faults too
                done_at = wait_terminal(server.db, "work", sub.accepted, TERMINAL_WITHIN)
            assert not t1.errors and not t2.errors, (t1.errors, t2.errors)
        store = read_store(server.db, "work")
    finally:
        server.stop()
    verdict = classify(sub.accepted, store, read_probe_log(log))
    retried_not_lost = [r.input_id for r in store.values() if r.attempt > 1 and r.terminal_reason != "WORKER_LOST"]
    figures = {
        "inputs": N, **verdict.summary(),
        "container_kills": killer.container_kills, "of_them_busy": killer.busy_kills,
        "node_kills (all containers at once)": killer.node_kills,
        "retries_not_recorded_worker_lost": len(retried_not_lost),
        "submit_errors": len(sub.errors),
        "terminal_after_last_submit_s": None if math.isnan(done_at) else round(done_at - sub.last_at, 2),
        "client_statuses": {str(k): v for k, v in sorted(transport.statuses.items())},
        "kill_every_s": {"container": CONTAINER_KILL_EVERY, "node": NODE_KILL_EVERY},
    }
    harness.publish("1-worker-kills", figures)
    assert not sub.errors, sub.errors[:5]
    assert not math.isnan(done_at), f"not every input was terminal {TERMINAL_WITHIN:g} s after the last submit"
    verdict.assert_clean()
    assert verdict.counts["ok"] == N
    assert not retried_not_lost, retried_not_lost[:5]
    assert verdict.user_retries_used == 0
    assert killer.busy_kills > 0 and verdict.reruns > 0, "the faults never hit a running input"
    assert not transport.unexpected(), transport.unexpected()
