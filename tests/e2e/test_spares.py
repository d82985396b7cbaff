"""Snapshot spares with real processes (``agent/starts.py``): a snapshot zygote keeps one child
forked ahead of demand that has already joined the cgroups of a container-to-be. A container started
from it is in cgroups of its own (named for it), has its own environment and random stream; an OOM
in it is classified ``OOM_KILLED``; a spare killed before it is used is replaced and its cgroups
removed; a spare is not a container (not listed by the containers API)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import surge
from surge.sdk import context, embedded
from surge.sdk.client import Client
from tests.e2e.test_snapshots import stop
from tests.waiting import wait_for

APP = "e2e-spares"


@pytest.fixture(scope="module")
def spares(server: Any, apps_path: Any) -> Iterator[Any]:
    node = context.get_client().request("GET", "/health")["node"]
    if not node["memory_limits"].startswith("cgroup"):
        pytest.skip(f"no writable memory cgroup on this host ({node['memory_limits']}): spares join none")
    import spare_app

    with spare_app.app.run(show_logs=False):
        yield spare_app


def containers() -> list[dict[str, Any]]:
    rows = context.get_client().request("GET", "/v1/containers", params={"all": True})["containers"]
    return [c for c in rows if c["app"] == APP]


def cgroup_dirs(text: str, leaf: str) -> list[Path]:
    """The directories of the cgroups (one per hierarchy) named ``leaf`` in a /proc/<pid>/cgroup."""
    out = []
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if path.rsplit("/", 1)[-1] == leaf and not controllers.startswith("name="):
            base = Path("/sys/fs/cgroup") / controllers if controllers else Path("/sys/fs/cgroup")
            out.append(base / path.lstrip("/"))
    return out


def spare_of(zygote_pid: int) -> tuple[int, str] | None:
    """The zygote's ready spare: (pid, its provisional id), from the cgroups it joined."""
    try:
        children = psutil.Process(zygote_pid).children()
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            text = Path(f"/proc/{child.pid}/cgroup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            leaf = line.rsplit("/", 1)[-1]
            if leaf.startswith("sp-") and "/surge-" in line:
                return child.pid, leaf
    return None


def ready_spare(probe: Any) -> tuple[int, int, str]:
    """Start the pool (its first container may be a plain fork: the zygote was being built), stop
    that container, and wait for the spare: (zygote pid, spare pid, spare id)."""
    first = probe.info.remote()
    stop(first["container"])
    pid, spare_id = wait_for("a ready spare", lambda: spare_of(first["snap_pid"]))
    return first["snap_pid"], pid, spare_id


def test_a_container_started_from_a_spare_has_its_own_cgroups_env_and_random_stream(spares: Any) -> None:
    probe = spares.Probe(tag="own")
    zygote, spare, spare_id = ready_spare(probe)
    spare_dirs = cgroup_dirs(Path(f"/proc/{spare}/cgroup").read_text(), spare_id)
    assert len(spare_dirs) >= 1 and all(d.is_dir() for d in spare_dirs)

    a = probe.info.remote()
    assert a["pid"] == spare and a["snap_pid"] == zygote       # the spare became the container
    dirs = cgroup_dirs(a["cgroup"], a["container"])
    # the spare's cgroups, renamed for the container: the same set of hierarchies, now its own
    assert sorted(d.parent for d in dirs) == sorted(d.parent for d in spare_dirs)
    assert not any(d.exists() for d in spare_dirs)
    for d in dirs:
        assert str(spare) in (d / "cgroup.procs").read_text().split()
    memory = [d for d in dirs if (d / "memory.limit_in_bytes").exists() or (d / "memory.max").exists()]
    assert memory, f"no memory cgroup among {dirs}"
    limit = memory[0] / ("memory.max" if (memory[0] / "memory.max").exists() else "memory.limit_in_bytes")
    assert int(limit.read_text()) == 100 << 20
    assert (a["mark"], a["secret"]) == ("marked", "s3cret")
    row = next(c for c in containers() if c["container_id"] == a["container"])
    assert (row["start"], row["pid"]) == ("snapshot", spare)

    # the next spare is forked in the background; a second container from it draws other numbers
    stop(a["container"])
    assert not any(d.exists() for d in dirs)                   # the container's cgroups went with it
    spare2, _ = wait_for("the next spare", lambda: spare_of(zygote))
    b = probe.info.remote()
    assert b["pid"] == spare2 != spare and b["container"] != a["container"]
    assert (b["random"], b["urandom"]) != (a["random"], a["urandom"])
    assert cgroup_dirs(b["cgroup"], b["container"])
    stop(b["container"])


def test_an_oom_in_a_spare_started_container_is_oom_killed(spares: Any) -> None:
    probe = spares.Probe(tag="oom")
    _, spare, _ = ready_spare(probe)
    call = probe.hog.spawn(400)                                # memory=100
    with pytest.raises(surge.ExecutionError) as info:
        call.get(timeout=30)
    assert (info.value.reason, info.value.signal) == ("OOM_KILLED", signal.SIGKILL)
    row = context.get_client().get_call(call.object_id)["input_list"][0]
    (ct,) = [c for c in containers() if c["container_id"] == row["container_id"]]
    assert (ct["pid"], ct["start"]) == (spare, "snapshot")     # the container the spare became


def test_a_killed_spare_is_replaced_and_its_cgroups_removed(spares: Any) -> None:
    probe = spares.Probe(tag="killed")
    zygote, spare, spare_id = ready_spare(probe)
    dirs = cgroup_dirs(Path(f"/proc/{spare}/cgroup").read_text(), spare_id)
    assert dirs and all(d.is_dir() for d in dirs)
    os.kill(spare, signal.SIGKILL)

    spare2, spare2_id = wait_for("a new spare", lambda: (s := spare_of(zygote)) and s[0] != spare and s)
    assert spare2_id != spare_id
    wait_for("the killed spare's cgroups to be removed", lambda: not any(d.exists() for d in dirs))
    assert probe.info.remote()["pid"] == spare2               # and the replacement serves


def test_spares_are_not_containers(spares: Any) -> None:
    probe = spares.Probe(tag="hidden")
    zygote, spare, _ = ready_spare(probe)
    rows = [c for c in containers() if c["state"] != "STOPPED"]
    assert spare not in {c["pid"] for c in rows}
    live = [c for c in rows if c["function"] == "Probe" and c["start"] != "zygote"]
    assert all(c["pid"] != spare for c in live)
    assert zygote in {c["pid"] for c in rows if c["start"] == "zygote"}
    assert not [c for c in context.get_client().request("GET", "/v1/containers")["containers"]
                if c["container_id"].startswith("sp-")]


# -- strict sandbox: the agent moves the spare into its cgroups (its zygote has no privileges left) --
@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, apps_path: Any) -> Iterator[Any]:
    from tests.e2e.test_sandbox import STRICT_MISSING

    if STRICT_MISSING is not None:
        pytest.skip(f"strict sandbox unavailable on this host: {STRICT_MISSING}")
    home = tmp_path_factory.mktemp("spares-strict-home")
    info = embedded.start(home, extra_args=["--sandbox", "strict", "--kill-grace", "1",
                                              "--log-level", "warning"])
    client = Client(info.url, info.token)
    old = context.set_client(client)
    try:
        import spare_app

        with spare_app.strict_app.run(show_logs=False):
            yield spare_app
    finally:
        context.set_client(old)
        client.close()
        info.stop()


def test_a_strict_spare_is_moved_into_its_cgroups_by_the_agent(strict: Any) -> None:
    first = strict.where.remote()
    rows = context.get_client().request("GET", "/v1/containers")["containers"]
    (zygote,) = [c["pid"] for c in rows if c["function"] == "where" and c["start"] == "zygote"]
    stop(first["container"])
    spare, _ = wait_for("a ready spare", lambda: spare_of(zygote))
    assert psutil.Process(spare).uids().real == first["uid"] != 0      # the workspace's user

    out = strict.where.remote()
    assert out["pid"] == spare and out["uid"] == first["uid"]
    dirs = cgroup_dirs(out["cgroup"], out["container"])
    assert dirs and all(str(spare) in (d / "cgroup.procs").read_text().split() for d in dirs)
    stop(out["container"])
