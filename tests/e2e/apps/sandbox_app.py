"""Escape attempts, run as user functions (tests/e2e/test_sandbox.py). Each attempt reports what
happened as plain data instead of raising, so one call can try many things and the test can say
exactly which one got through. Every size is capped by the caller: a failed sandbox must not be
able to fill the test machine's disk."""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any

import surge

VOLUME = os.environ.get("SURGE_TEST_SANDBOX_VOLUME", "sandbox-e2e")
vol = surge.Volume.from_name(VOLUME, create_if_missing=True)
app = surge.App("sandbox-e2e", env={"SURGE_TEST_SANDBOX_VOLUME": VOLUME})


def _err(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def read(path: str) -> str:
    """"read N bytes" if the file could be read, else the errno name."""
    try:
        with open(path, "rb") as f:
            return f"read {len(f.read(4096))} bytes"
    except OSError as exc:
        return _err(exc)


def listdir(path: str) -> list[str] | str:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return _err(exc)


def write(path: str) -> str:
    try:
        with open(path, "w") as f:
            f.write("escaped")
        return "wrote"
    except OSError as exc:
        return _err(exc)


def kill(pid: int, sig: int) -> str:
    try:
        os.kill(pid, sig)
        return "signalled"
    except OSError as exc:
        return _err(exc)


def identity() -> dict[str, Any]:
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "pid": os.getpid(), "procs": sorted(int(d) for d in os.listdir("/proc") if d.isdigit()),
            "no_new_privs": _status_field("NoNewPrivs")}


def _status_field(name: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def become_root() -> str:
    try:
        os.setuid(0)
        return "became root"
    except OSError as exc:
        return _err(exc)


def fork_bomb(cap: int) -> dict[str, Any]:
    """Fork sleeping children until the kernel refuses (or ``cap`` is reached), then reap them."""
    children: list[int] = []
    refused = ""
    try:
        while len(children) < cap:
            try:
                pid = os.fork()
            except OSError as exc:
                refused = _err(exc)
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        for pid in children:
            os.waitpid(pid, 0)
    return {"forked": len(children), "refused": refused}


def fill(directory: str, cap_bytes: int, chunk: int = 1 << 20) -> dict[str, Any]:
    """Write 1 MiB files into ``directory`` until a write fails or ``cap_bytes`` are written."""
    written, error, n = 0, "", 0
    block = b"\0" * chunk
    try:
        while written < cap_bytes:
            with open(os.path.join(directory, f"fill-{n}"), "wb") as f:
                f.write(block)
            written += chunk
            n += 1
    except OSError as exc:
        error = _err(exc)
    finally:
        for i in range(n + 1):
            try:
                os.unlink(os.path.join(directory, f"fill-{i}"))
            except OSError:
                pass
    return {"written": written, "error": error}


def big_file(path: str, cap_bytes: int, chunk: int = 1 << 20) -> dict[str, Any]:
    """Grow one file until a write fails (RLIMIT_FSIZE: EFBIG) or ``cap_bytes``."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # get EFBIG instead of being killed
    written, error = 0, ""
    block = b"\0" * chunk
    try:
        with open(path, "wb") as f:
            while written < cap_bytes:
                f.write(block)
                f.flush()
                written += chunk
    except OSError as exc:
        error = _err(exc)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return {"written": written, "error": error}


def open_files(cap: int) -> dict[str, Any]:
    fds: list[int] = []
    error = ""
    try:
        while len(fds) < cap:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        error = _err(exc)
    finally:
        for fd in fds:
            os.close(fd)
    return {"opened": len(fds), "error": error}


def attempts(targets: dict[str, Any]) -> dict[str, Any]:
    """Every escape that returns quickly, against the paths and pids the test passes in."""
    out: dict[str, Any] = {"identity": identity(), "root": become_root()}
    for name in ("database", "token", "secrets_key", "other_volume", "server_json"):
        if targets.get(name):
            out[f"read_{name}"] = read(targets[name])
    for name in ("home", "volumes_root"):
        if targets.get(name):
            out[f"list_{name}"] = listdir(targets[name])
    out["write_home"] = write(os.path.join(targets["home"], "escaped"))
    for name in ("server_pid", "test_pid"):
        if targets.get(name):
            # signal 0: the kernel's permission and visibility checks of a real signal, without
            # delivering one (a sandbox that failed would otherwise stop the server or the test run)
            out[f"signal_{name}"] = kill(int(targets[name]), 0)
            out[f"see_{name}"] = os.path.exists(f"/proc/{targets[name]}")
    return out


@app.function(scaledown_window=2)
def probe(targets: dict[str, Any]) -> dict[str, Any]:
    return attempts(targets)


@app.function(volumes={"/data": vol}, scaledown_window=2)
def probe_with_volume(targets: dict[str, Any]) -> dict[str, Any]:
    """Mounts: started as a fresh process, not forked from the template."""
    out = attempts(targets)
    out["volume_write"] = write("/data/sandbox-owned-file")
    os.makedirs("/data/sub/dir", exist_ok=True)
    out["volume_subdir_write"] = write("/data/sub/dir/file")
    return out


@app.function(enable_memory_snapshot=True, scaledown_window=2)
def probe_snapshot(targets: dict[str, Any]) -> dict[str, Any]:
    return attempts(targets)


@app.function(scaledown_window=2)
def bomb(cap: int) -> dict[str, Any]:
    return fork_bomb(cap)


@app.function(scaledown_window=2)
def fill_tmp(cap_bytes: int) -> dict[str, Any]:
    return fill("/tmp", cap_bytes)


@app.function(scaledown_window=2)
def grow_file(directory: str, cap_bytes: int) -> dict[str, Any]:
    return big_file(os.path.join(directory, "big"), cap_bytes)


@app.function(scaledown_window=2)
def many_files(cap: int) -> dict[str, Any]:
    return open_files(cap)


@app.function(scaledown_window=2)
def alive() -> int:
    return os.getpid()


@app.function(scaledown_window=2)
def kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(10)
