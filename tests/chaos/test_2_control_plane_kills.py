"""Scenario 2: scenario 1's workload and container kills while the control plane itself is SIGKILLed
and restarted in place (same SURGE_HOME, same port) several times.

For the local backend the node agent lives in the control-plane process, so each kill also takes the
agent: its containers see their socket close and exit, and their running inputs are re-queued as
``WORKER_LOST`` by the recovery at the next start. Results a container finished but had not yet
handed over are lost with it and the input runs again: no result can be produced *during* the
outage, and every result of an input that ran across it arrives after the restart (figures:
``probe_ends_during_outages``, all of whose inputs must still end ``ok``).

Clients must see only connection errors and 503s, and the SDK's retried submissions (same
idempotency key) must create no extra input.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from tests.chaos import harness
from tests.chaos.checker import classify, read_probe_log, read_store
from tests.chaos.faults import Killer
from tests.chaos.harness import ChaosServer, RecordingTransport, Ticker, sized
from tests.chaos.test_1_worker_kills import CONTAINER_KILL_EVERY, NODE_KILL_EVERY
from tests.chaos.workload import Submitted, submit, wait_terminal

N = sized(150, 2000)
CP_KILLS = sized(2, 5)
CP_KILL_EVERY = sized(4.0, 10.0)
OUTAGE = sized(1.0, 2.0)
TERMINAL_WITHIN = 120.0
# what a client may meet while the control plane is away (the SDK retries all of them)
ALLOWED_ERRORS = {"ConnectError", "ReadError", "WriteError", "RemoteProtocolError"}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(sized(170, 900))
def test_inputs_survive_control_plane_kills(chaos_app: ModuleType, chaos_home: Path, tmp_path: Path) -> None:
    server = ChaosServer(chaos_home)
    server.start()
    transport = RecordingTransport()
    log = tmp_path / "probe.log"
    outages: list[tuple[float, float]] = []
    orphans: list[int] = []
    window = CP_KILLS * CP_KILL_EVERY + 2.0
    try:
        with harness.sdk(server, transport) as client, chaos_app.app.run(show_logs=False):
            killer = Killer(server, client, "control-plane-kills")
            result: dict[str, object] = {}

            def load() -> None:
                result["sub"] = submit(chaos_app.work, log, N, harness.rng("control-plane-kills-load"),
                                       window=window)

            loader = threading.Thread(target=load, daemon=True)
            with Ticker("container-killer", CONTAINER_KILL_EVERY, killer.one) as t1, \
                    Ticker("node-killer", NODE_KILL_EVERY, killer.all) as t2:
                loader.start()
                for _ in range(CP_KILLS):
                    time.sleep(CP_KILL_EVERY)
                    down = time.time()
                    children = server.sigkill()
                    time.sleep(OUTAGE)
                    server.start()
                    outages.append((down, time.time()))
                    # the dead agent's containers must exit by themselves (their socket closed)
                    harness.wait_until("the old containers to exit",
                                       lambda c=children: not [p for p in c if _alive(p)], timeout=10)
                    orphans.extend(p for p in children if _alive(p))
                loader.join(timeout=TERMINAL_WITHIN)
                sub = result["sub"]
                assert isinstance(sub, Submitted), "the submitting thread did not finish"
                done_at = wait_terminal(server.db, "work", sub.accepted, TERMINAL_WITHIN)
            assert not t1.errors and not t2.errors, (t1.errors, t2.errors)
        store = read_store(server.db, "work")
    finally:
        server.stop()
    probes = read_probe_log(log)
    verdict = classify(sub.accepted, store, probes)
    ends_in_outage = [p for p in probes if p.kind == "end" and any(a <= p.at <= b for a, b in outages)]
    extra_inputs = len(store) - len(set(sub.accepted))
    figures = {
        "inputs": N, **verdict.summary(),
        "control_plane_kills": server.kills, "outage_s": OUTAGE,
        "restart_s": [round(s, 2) for s in server.start_seconds[1:]],
        "container_kills": killer.container_kills, "node_kills": killer.node_kills,
        "extra_inputs_from_retries": extra_inputs,
        "submissions_retried": transport.post_retries,
        "client_statuses": {str(k): v for k, v in sorted(transport.statuses.items())},
        "client_errors": dict(transport.errors),
        "probe_ends_during_outages": len(ends_in_outage),
        "orphan_containers": len(orphans),
        "terminal_after_last_submit_s": None if math.isnan(done_at) else round(done_at - sub.last_at, 2),
    }
    harness.publish("2-control-plane-kills", figures)
    assert not sub.errors, sub.errors[:5]
    assert not math.isnan(done_at), f"not every input was terminal {TERMINAL_WITHIN:g} s after the last submit"
    verdict.assert_clean()
    assert verdict.counts["ok"] == N
    assert extra_inputs == 0
    assert verdict.user_retries_used == 0
    assert not orphans
    assert not transport.unexpected(), transport.unexpected()
    assert set(transport.errors) <= ALLOWED_ERRORS, transport.errors
    assert transport.post_retries > 0 or server.kills == 0, "no submission met an outage: the test proved nothing"
