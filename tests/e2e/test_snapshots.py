"""Memory snapshots, pre-warmed templates and parallel bursts with real processes: a snapshot's state
is computed once and shared by forked containers, random streams differ after the fork, CUDA in a
snapshot is refused (and the function still runs), a crashed zygote is rebuilt while containers start
without it, redeploys and stops drop snapshots, each container records its start-up phases, and a
burst from zero starts its containers in parallel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import surge
from surge.sdk import context
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def snap(server: Any, apps_path: Any) -> Iterator[Any]:
    import snapshot_app

    with snapshot_app.app.run(show_logs=False):
        yield snapshot_app


def containers(app: str = "e2e-snapshots") -> list[dict[str, Any]]:
    rows = context.get_client().request("GET", "/v1/containers", params={"all": True})["containers"]
    return [c for c in rows if c["app"] == app]


def by_id(cid: str) -> dict[str, Any]:
    (row,) = [c for c in containers() if c["container_id"] == cid]
    return row


def zygotes(function: str, app: str = "e2e-snapshots") -> list[dict[str, Any]]:
    return [c for c in containers(app) if c["function"] == function and c["start"] == "zygote"]


def stop(cid: str) -> None:
    out = context.get_client().request("POST", f"/v1/containers/{cid}/stop", params={"wait": 30})
    assert out["stopped"], out


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# -- shared state ------------------------------------------------------------------------------------
def test_snapshot_state_is_computed_once_and_shared_by_forked_containers(snap: Any, tmp_path: Path) -> None:
    w = snap.Weights(state_dir=str(tmp_path))
    first = w.info.remote()
    stop(first["container"])                  # the next call needs a new container: a cold start
    second = w.info.remote()

    assert second["container"] != first["container"]
    assert first["pid"] != first["snap_pid"] and second["pid"] != first["pid"]
    assert second["snap_pid"] == first["snap_pid"]             # both forked from the same zygote
    assert first["checksum"] == second["checksum"] == float(sum(range(2_000_000)))
    assert lines(tmp_path / "snap_runs") == [str(first["snap_pid"])]      # computed once, in the zygote
    assert lines(tmp_path / "restores") == [str(first["pid"]), str(second["pid"])]   # snap=False: per container

    (zy,) = [z for z in zygotes("Weights") if z["pid"] == first["snap_pid"]]
    assert zy["state"] == "IDLE" and zy["gpu"] is None and zy["cpu"] == 0.0
    assert {"imports", "enter_snap", "snapshot", "ready"} <= set(zy["phases"])
    for c in (by_id(first["container"]), by_id(second["container"])):
        assert (c["start"], c["zygote"], c["fallback"]) == ("snapshot", zy["container_id"], None)
        assert c["pid"] in (first["pid"], second["pid"])
        # each container's own start: placement, the fork, its snap=False hooks, ready, first input
        assert {"placement", "spawn", "process", "enter", "ready", "first_input"} <= set(c["phases"])
        assert "imports" not in c["phases"] and "enter_snap" not in c["phases"]   # the zygote did those


def test_forked_containers_do_not_share_random_streams(snap: Any, tmp_path: Path) -> None:
    w = snap.Weights(state_dir=str(tmp_path))
    calls = [w.info.spawn(1.0) for _ in range(2)]   # held 1 s each: two containers at once
    a, b = (c.get(timeout=60) for c in calls)
    assert a["container"] != b["container"] and a["snap_pid"] == b["snap_pid"]
    assert a["random"] != b["random"]
    assert a["np_random"] != b["np_random"]


def test_a_plain_function_snapshot_holds_its_module(snap: Any) -> None:
    zygote_pid, pid = snap.imported_in.remote()
    assert zygote_pid != pid and zygote_pid != os.getpid()     # imported in the zygote, not the container
    (zy,) = [z for z in zygotes("imported_in") if z["state"] == "IDLE"]
    assert zy["pid"] == zygote_pid
    (ct,) = [c for c in containers() if c["function"] == "imported_in" and c["pid"] == pid]
    assert ct["start"] == "snapshot"


# -- CUDA --------------------------------------------------------------------------------------------
def test_cuda_initialised_in_the_snapshot_is_refused_and_the_function_still_runs(snap: Any) -> None:
    pid = snap.CudaInSnapshot().where.remote()
    (ct,) = [c for c in containers() if c["function"] == "CudaInSnapshot" and c["pid"] == pid]
    assert ct["start"] in ("template", "fresh")
    if ct["fallback"] == "no snapshot yet":
        # a class's zygote is built at its first call, beside the container that call starts: on a
        # busy machine that container may start before the build was refused. The next one knows.
        wait_for("the snapshot to be refused", lambda: _cuda_refusal_logged(snap), 30)
        stop(ct["container_id"])
        pid = snap.CudaInSnapshot().where.remote()
        (ct,) = [c for c in containers() if c["function"] == "CudaInSnapshot" and c["pid"] == pid]
        assert ct["start"] in ("template", "fresh")
    note = ct["fallback"]
    assert "CUDA was initialised during the hook CudaInSnapshot.load_to_gpu" in note
    assert "torch.cuda.is_initialized() is True" in note
    assert "@surge.enter(snap=False)" in note and "enable_memory_snapshot=False" in note

    wait_for("the reason in the app's logs", lambda: _cuda_refusal_logged(snap), 10)
    # `surge container list` shows the reason too
    out = subprocess.run([sys.executable, "-m", "surge.cli.main", "container", "list"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "COLUMNS": "400"})
    assert out.returncode == 0, out.stderr
    assert "no snapshot: memory snapshot refused: CUDA was initialised" in out.stdout


def _cuda_refusal_logged(snap: Any) -> bool:
    logs = context.get_client().request("GET", "/v1/logs", params={"app_id": snap.app._app_id})["lines"]
    return any("memory snapshot unavailable" in ln["text"] and "CudaInSnapshot.load_to_gpu" in ln["text"]
               for ln in logs)


# -- a crashed zygote ----------------------------------------------------------------------------------
def test_a_crashed_zygote_falls_back_then_recovers(snap: Any, tmp_path: Path) -> None:
    w = snap.Weights(state_dir=str(tmp_path))
    first = w.info.remote()
    zygote_pid = first["snap_pid"]
    (tmp_path / "slow_snapshot").write_text("3")   # the rebuild will take 3 s: long enough to see
    os.kill(zygote_pid, signal.SIGKILL)
    wait_for("the crash to be noticed",
             lambda: [z for z in zygotes("Weights") if z["pid"] == zygote_pid and z["state"] == "STOPPED"])

    # containers it forked live on
    again = w.info.remote()
    assert again["container"] == first["container"] and again["pid"] == first["pid"]

    # while it is rebuilt, a cold start goes the normal way, and says why
    stop(first["container"])
    fallback = w.info.remote()
    ct = by_id(fallback["container"])
    assert ct["start"] in ("template", "fresh") and fallback["snap_pid"] == fallback["pid"]
    assert "died (signal 9)" in ct["fallback"] and "rebuilding" in ct["fallback"]

    # once rebuilt, cold starts fork again
    rebuilt = wait_for("the rebuilt zygote", lambda: [z for z in zygotes("Weights")
                                                      if z["state"] == "IDLE" and z["pid"] not in (zygote_pid,)
                                                      and str(z["pid"]) in lines(tmp_path / "snap_runs")], 60)
    stop(fallback["container"])
    last = w.info.remote()
    assert last["snap_pid"] == rebuilt[0]["pid"] != zygote_pid
    assert by_id(last["container"])["start"] == "snapshot"
    # the snapshot ran three times: the first zygote, the fallback container itself, the rebuild
    assert sorted(lines(tmp_path / "snap_runs")) == sorted(map(str, (zygote_pid, fallback["pid"],
                                                                    rebuilt[0]["pid"])))


# -- redeploys and stops -----------------------------------------------------------------------------
def test_a_redeploy_replaces_the_snapshot_and_a_stop_drops_it(snap: Any) -> None:
    client = context.get_client()
    try:
        snap.deploy_app.deploy(name="e2e-snap-deploy")
        # built at deploy, before any call
        (old,) = wait_for("the snapshot built at deploy",
                          lambda: [z for z in zygotes("deployed_snapshot", "e2e-snap-deploy") if z["state"] == "IDLE"])
        pid = surge.Function.from_name("e2e-snap-deploy", "deployed_snapshot").remote()
        (ct,) = [c for c in containers("e2e-snap-deploy") if c["pid"] == pid]
        assert (ct["start"], ct["zygote"]) == ("snapshot", old["container_id"])

        snap.deploy_app.deploy(name="e2e-snap-deploy")
        wait_for("the old version's zygote to exit", lambda: gone(old["pid"]))
        (new,) = wait_for("the new version's snapshot",
                          lambda: [z for z in zygotes("deployed_snapshot", "e2e-snap-deploy")
                                   if z["state"] == "IDLE" and z["pid"] != old["pid"]])
        wait_for("the old zygote's record to say it was stopped",
                 lambda: [z for z in zygotes("deployed_snapshot", "e2e-snap-deploy")
                          if z["pid"] == old["pid"] and (z["state"], z["stop_reason"]) == ("STOPPED", "STOP")], 10)
    finally:
        client.request("POST", "/v1/apps/e2e-snap-deploy/stop")
    wait_for("the stopped app's zygote to exit", lambda: gone(new["pid"]))
    wait_for("every zygote of the stopped app to be recorded as stopped",
             lambda: all(z["state"] == "STOPPED" for z in zygotes("deployed_snapshot", "e2e-snap-deploy")))


# -- templates, phases, bursts -------------------------------------------------------------------------
def test_a_function_without_snapshot_starts_from_the_template(snap: Any) -> None:
    pid = snap.plain.remote()
    (ct,) = [c for c in containers() if c["function"] == "plain" and c["pid"] == pid]
    assert (ct["start"], ct["fallback"], ct["zygote"]) == ("template", None, None)
    # it imported the user's module itself, after the fork
    assert {"placement", "spawn", "process", "imports", "ready", "first_input"} <= set(ct["phases"])
    assert ct["phases"]["ready"] >= ct["phases"]["imports"]


def test_a_burst_from_zero_starts_its_containers_in_parallel(snap: Any) -> None:
    calls = [snap.hold.spawn(1.0) for _ in range(4)]
    served = {c.get(timeout=60) for c in calls}
    assert len(served) == 4                     # four containers (max_containers=4), not one after another
    rows = [by_id(cid) for cid in served]
    inputs = [context.get_client().get_call(c.object_id)["input_list"][0] for c in calls]
    # every container was started before the first input finished: they started together
    assert max(r["created_at"] for r in rows) < min(i["finished_at"] for i in inputs)


def test_usage_reports_cold_starts_by_kind_and_meters_snapshots(snap: Any, tmp_path: Path) -> None:
    snap.Weights(state_dir=str(tmp_path)).info.remote()
    snap.plain.remote()
    wait_for("the metering records to be written", lambda: _usage()["cold_starts"]["snapshot"]["count"] > 0
             and _usage()["cold_starts"]["template"]["count"] > 0)
    usage = _usage()
    assert usage["cold_starts"]["snapshot"]["ready"] >= 1 and usage["cold_starts"]["template"]["count"] >= 1
    assert "e2e-snapshots::Weights [snapshot]" in usage["by_function"]   # the zygote's memory, apart


def _usage() -> dict[str, Any]:
    data: dict[str, Any] = context.get_client().request("GET", "/v1/usage", params={"app": "e2e-snapshots"})
    return data


def test_stopping_an_unknown_container_is_a_404(snap: Any) -> None:
    with pytest.raises(surge.NotFoundError, match="no running container 'ct-nope'"):
        context.get_client().request("POST", "/v1/containers/ct-nope/stop")
