"""The escape suite (issue 5): user functions on a real server with ``--sandbox strict`` try to read
the control plane's database, token and secrets key, another workspace's volume on the host, to
signal the control plane and the test, to see host processes, to become root, to fork-bomb, to fill
the disk and to exhaust file descriptors. Each attempt must succeed 0 times, the container must end
in a clear state, and the host must stay responsive (the test's own requests keep being answered
during the fork bomb).

The limits are set small for the suite (pids 48, files 256, largest file 8 MiB, private /tmp 16 MiB)
and every attempt is capped by the test besides, so a sandbox that failed could not fill this
machine's disk. Where the host lacks a mechanism (not root, no namespaces, no pids cgroup), the
tests that need it are skipped with the reason, never passed.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import surge
from surge.agent.hostcheck import cgroups
from surge.sdk import context, embedded
from surge.sdk.client import Client
from tests.e2e.test_cli import GPUS, Cli

PIDS, NOFILE, FSIZE_MIB, TMP_MIB = 48, 256, 8, 16
MIB = 1 << 20


def _probe() -> dict[str, str | None]:
    out = subprocess.run([sys.executable, "-m", "surge.agent.hostcheck"], capture_output=True, text=True,
                         timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


PROBED = _probe()
STRICT_MISSING = PROBED["strict"]
needs_strict = pytest.mark.skipif(STRICT_MISSING is not None, reason=f"strict sandbox unavailable: {STRICT_MISSING}")


class Env:
    def __init__(self, info: embedded.ServerInfo, home: Path, targets: dict[str, Any], module: ModuleType) -> None:
        self.info, self.home, self.targets, self.app = info, home, targets, module


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, apps_path: Path) -> Iterator[Env]:
    if STRICT_MISSING is not None:
        pytest.skip(f"strict sandbox unavailable on this host: {STRICT_MISSING}")
    home = tmp_path_factory.mktemp("sandbox-home")
    info = embedded.start(home, gpus=GPUS, extra_args=[
        "--sandbox", "strict", "--sandbox-pids", str(PIDS), "--sandbox-nofile", str(NOFILE),
        "--sandbox-fsize-mib", str(FSIZE_MIB), "--sandbox-tmp-mib", str(TMP_MIB),
        "--kill-grace", "1", "--log-level", "warning"])
    client = Client(info.url, info.token)
    old = context.set_client(client)
    try:
        # another workspace's volume, with a file in it, somewhere under SURGE_HOME/volumes
        admin = Cli(info, home, tmp_path_factory.mktemp("sandbox-admin"))
        admin.run("workspace", "create", "other")
        other = Cli(info, home, tmp_path_factory.mktemp("sandbox-other"))
        other.env["SURGE_TOKEN"] = admin.json("token", "create", "--workspace", "other", "--name", "o")["token"]
        other.run("volume", "create", "private")
        other.run("volume", "put", "private", other.write("secret.txt", "the other team's data"), "/secret.txt")
        found = [p for p in (home / "volumes").rglob("secret.txt") if p.is_file()]
        assert found, "the other workspace's file is not under SURGE_HOME/volumes"
        targets = {"home": str(home), "database": str(home / "surge.db"), "token": str(home / "token"),
                   "secrets_key": str(home / "secrets.key"), "server_json": str(home / "server.json"),
                   "volumes_root": str(home / "volumes"), "other_volume": str(found[0]),
                   "server_pid": info.process.pid if info.process else 0, "test_pid": os.getpid()}
        for name in ("database", "token", "other_volume"):
            assert Path(targets[name]).is_file(), name      # the targets exist: a denial means something
        import sandbox_app

        with sandbox_app.app.run(show_logs=False):
            yield Env(info, home, targets, sandbox_app)
    finally:
        context.set_client(old)
        client.close()
        info.stop()


def health(env: Env) -> dict[str, Any]:
    r = httpx.get(f"{env.info.url}/health", timeout=5.0)
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def test_the_server_reports_the_strict_sandbox(env: Env) -> None:
    sandbox = health(env)["node"]["sandbox"]
    assert sandbox["level"] == "strict" and sandbox["pids_max"] == PIDS
    assert any("seccomp" in g for g in sandbox["gaps"])


def check_confined(out: dict[str, Any], *, own_pid_namespace: bool) -> None:
    ident = out["identity"]
    assert ident["uid"] >= 2_000_000_000 and ident["euid"] == ident["uid"] and ident["gid"] >= 2_000_000_000
    assert ident["groups"] == []
    assert ident["no_new_privs"] == "1"
    assert out["root"] == "EPERM"
    for name in ("read_database", "read_token", "read_secrets_key", "read_server_json", "read_other_volume"):
        assert out[name] in ("ENOENT", "EACCES"), (name, out[name])
    # SURGE_HOME is an empty tmpfs with only what the container needs bound back into it
    assert out["list_home"] == "ENOENT" or set(out["list_home"]) <= {"sources", "cache", "images"}, out["list_home"]
    assert out["list_volumes_root"] in ("ENOENT", "EACCES"), out["list_volumes_root"]
    assert out["write_home"] in ("EACCES", "EROFS", "ENOENT"), out["write_home"]
    for name in ("signal_server_pid", "signal_test_pid"):
        assert out[name] in ("ESRCH", "EPERM"), (name, out[name])
    if own_pid_namespace:
        assert ident["pid"] == 2 and set(ident["procs"]) <= {1, 2} | set(range(3, 3 + PIDS))
        assert out["see_server_pid"] is False and out["see_test_pid"] is False


@needs_strict
def test_a_template_forked_container_cannot_reach_the_host(env: Env) -> None:
    check_confined(env.app.probe.remote(env.targets), own_pid_namespace=True)


@needs_strict
def test_a_fresh_container_with_a_volume_cannot_reach_the_host_and_writes_its_volume(env: Env) -> None:
    out = env.app.probe_with_volume.remote(env.targets)
    check_confined(out, own_pid_namespace=True)
    assert out["volume_write"] == "wrote" and out["volume_subdir_write"] == "wrote"


@needs_strict
def test_a_snapshot_container_cannot_reach_the_host(env: Env) -> None:
    out = env.app.probe_snapshot.remote(env.targets)
    check_confined(out, own_pid_namespace=False)


@needs_strict
def test_a_snapshot_container_does_not_see_host_processes(env: Env) -> None:
    """Snapshot forks share their zygote's PID namespace (the host's), but their /proc is a private
    procfs with hidepid=invisible: only their workspace's processes are in it."""
    out = env.app.probe_snapshot.remote(env.targets)
    assert out["see_server_pid"] is False and out["see_test_pid"] is False
    assert out["identity"]["pid"] in out["identity"]["procs"]     # its own process is there


@pytest.mark.skipif(not cgroups().pids, reason="no writable pids cgroup on this host: a fork bomb is not bounded")
def test_a_fork_bomb_stops_at_the_pids_limit_and_the_host_keeps_answering(env: Env) -> None:
    answered: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def control() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                health(env)
                answered.append(time.monotonic() - t0)
            except Exception as exc:
                failures.append(repr(exc))
            time.sleep(0.05)

    watcher = threading.Thread(target=control, daemon=True)
    watcher.start()
    try:
        out = env.app.bomb.remote(PIDS * 4)
    finally:
        stop.set()
        watcher.join()
    assert out["refused"] == "EAGAIN" and out["forked"] < PIDS, out
    assert failures == [] and answered, failures
    assert env.app.bomb.remote(4) == {"forked": 4, "refused": ""}     # the container is usable again


@needs_strict
def test_filling_the_scratch_disk_stops_at_its_size(env: Env) -> None:
    out = env.app.fill_tmp.remote(4 * TMP_MIB * MIB)
    assert out["error"] == "ENOSPC" and out["written"] <= TMP_MIB * MIB, out
    assert env.app.fill_tmp.remote(MIB) == {"written": MIB, "error": ""}    # freed: it works again


def test_a_file_stops_growing_at_the_file_size_limit(env: Env) -> None:
    out = env.app.grow_file.remote("/tmp", 4 * FSIZE_MIB * MIB)
    assert out["error"] == "EFBIG" and out["written"] <= FSIZE_MIB * MIB, out


def test_opening_too_many_files_stops_at_the_limit(env: Env) -> None:
    out = env.app.many_files.remote(NOFILE * 8)
    assert out["error"] == "EMFILE" and out["opened"] < NOFILE, out
    assert errno.errorcode[errno.EMFILE] == "EMFILE"


@needs_strict
def test_a_container_killed_by_a_signal_is_reported_as_such(env: Env) -> None:
    """pid 2 of its namespace, not init: a signal it sends itself kills it, and the agent sees the signal."""
    with pytest.raises(surge.ExecutionError) as info:
        env.app.kill_self.remote(int(signal.SIGABRT))
    assert (info.value.reason, info.value.signal) == ("SIGNALED", signal.SIGABRT)
    assert env.app.alive.remote() == 2


@needs_strict
def test_a_connection_to_the_agent_socket_from_outside_a_container_is_refused(env: Env) -> None:
    """The agent's socket is reachable by every sandbox user; a hello naming a container is
    honoured only from that container's own processes."""
    from surge import wire

    env.app.alive.remote()
    rows = context.get_client().request("GET", "/v1/containers")["containers"]
    (row, *_) = [c for c in rows if c["state"] in ("IDLE", "BUSY") and c.get("pid")]
    environ = Path(f"/proc/{row['pid']}/environ").read_bytes().split(b"\0")
    sock = next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"SURGE_AGENT_SOCK="))
    conn = wire.BlockingConn.connect(sock)
    try:
        conn.send({"t": "hello", "container_id": row["container_id"], "pid": os.getpid()})
        with pytest.raises((EOFError, ConnectionError, OSError)):
            conn.recv()
    finally:
        conn.close()
    assert env.app.alive.remote() == 2           # the real container is unaffected


def test_doctor_reports_what_the_server_and_host_do(env: Env) -> None:
    """`surge doctor --json` runs the agent's probes: it agrees with the server it finds."""
    proc = subprocess.run([sys.executable, "-m", "surge.cli.main", "doctor", "--json"], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "SURGE_HOME": str(env.home), "SURGE_SERVER_URL": env.info.url})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {c["name"]: c for c in report["checks"]}
    assert rows["sandbox: strict"]["status"] == "ok"
    assert rows["pid namespace"]["status"] == rows["mount namespace"]["status"] == "ok"
    assert rows["pids limit"]["status"] == ("ok" if cgroups().pids else "missing")
    assert rows["seccomp"]["status"] == "warn" and rows["network namespace"]["status"] == "warn"
    assert rows["server"]["status"] == "ok" and "sandbox strict" in rows["server"]["detail"]
    assert report["server_sandbox"]["level"] == "strict"
    for row in report["checks"]:
        assert row["status"] in ("ok", "warn", "missing")
        assert row["status"] == "ok" or row["fix"], row          # everything not ok says how to fix it
