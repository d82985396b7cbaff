"""Scenario 3: accepted means durable. Each trial submits one input, SIGKILLs the control plane the
moment its answer (201 Created, with the call id) arrives, restarts it on the same SURGE_HOME and
port, and looks the call up: it must exist, with its input, every time.

After the last trial the server runs on until every input is terminal, and the figures say how they
ended (inputs that were running at several kills in a row may use up their infrastructure retries).
"""

from __future__ import annotations

import math
import signal
import statistics
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.chaos import harness
from tests.chaos.checker import TERMINAL, read_store
from tests.chaos.harness import ChaosServer, pct, sized
from tests.chaos.workload import wait_terminal

TRIALS = sized(15, 1000)


@pytest.mark.timeout(sized(120, 3600))
def test_an_answered_submission_survives_an_immediate_kill(chaos_app: ModuleType, chaos_home: Path,
                                                           tmp_path: Path) -> None:
    server = ChaosServer(chaos_home)
    server.start()
    log = tmp_path / "probe.log"
    accepted: list[str] = []
    missing: list[str] = []
    kill_after_answer: list[float] = []
    try:
        with harness.sdk(server) as client, chaos_app.app.run(show_logs=False):
            for i in range(TRIALS):
                call = chaos_app.work.spawn(str(log), 0.05, i)
                t = time.monotonic()
                assert server.info is not None and server.info.process is not None
                server.info.process.send_signal(signal.SIGKILL)      # right after the answer
                kill_after_answer.append(time.monotonic() - t)
                server.sigkill()       # reaps it (already dead) and closes its stdin
                accepted.append(call.object_id)
                server.start()
                row = client.get_call(call.object_id)
                if row["call_id"] != call.object_id or len(row["input_list"]) != 1:
                    missing.append(call.object_id)
            done_at = wait_terminal(server.db, "work", accepted, timeout=sized(60, 300))
        store = read_store(server.db, "work")
    finally:
        server.stop()
    in_store = {r.call_id for r in store.values()}
    states: dict[str, int] = {}
    for r in store.values():
        key = r.state if r.state == "SUCCEEDED" else f"{r.state}/{r.terminal_reason}"
        states[key] = states.get(key, 0) + 1
    figures = {
        "trials": TRIALS,
        "found_after_restart": TRIALS - len(missing),
        "in_store_at_the_end": len(set(accepted) & in_store),
        "kill_sent_after_answer_us_median": round(statistics.median(kill_after_answer) * 1e6, 1),
        "restart_s_p50": pct(server.start_seconds[1:], 0.5),
        "restart_s_max": round(max(server.start_seconds[1:]), 2),
        "final_states": states,
        "all_terminal_after_trials": not math.isnan(done_at),
    }
    harness.publish("3-accepted-is-durable", figures)
    assert not missing, missing[:5]
    assert set(accepted) <= in_store
    assert all(r.state in TERMINAL for r in store.values())
