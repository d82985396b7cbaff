"""What this host can do for isolation and what surge needs around it: the probes behind the
agent's choice of sandbox level (``surge.agent.sandbox``) and behind ``surge doctor``, so the two
always agree.

Namespace probes run in a throwaway child process (``python -m surge.agent.hostcheck``) that forks
once per probe: a probe changes the namespaces of the process that runs it, and forking is only
safe in a single-threaded process. The strict-sandbox probe confines a child exactly as a container
is confined (``Confinement.setup`` + ``pidinit.split``) and checks from inside that it is pid 2,
runs as the sandbox user and sees only its own processes.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from surge.agent import launcher
from surge.agent.limits import own_cgroup

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x20000000, 0x10000000, 0x40000000
_CGROUP = Path("/sys/fs/cgroup")
PROBE_UID = 1_999_999_999        # below the per-workspace range: never a real container's user


@dataclass(frozen=True)
class Check:
    name: str
    status: str          # ok | warn | missing
    detail: str
    fix: str = ""


# -- cgroups (read-only: no directory is created) ---------------------------------------------------


@dataclass(frozen=True)
class CgroupInfo:
    version: int          # 2, 1, or 0 (none found)
    memory: bool
    pids: bool
    writable: bool
    detail: str


def cgroups() -> CgroupInfo:
    """The hierarchy ``agent.limits.MemoryLimiter`` will use: v2 where it has the memory controller,
    else v1 (hybrid hosts mount an empty v2 at /sys/fs/cgroup/unified beside the v1 controllers)."""
    own = own_cgroup(None)
    v2: CgroupInfo | None = None
    for base in (_CGROUP, _CGROUP / "unified"):
        if own is not None and (base / own.lstrip("/") / "cgroup.controllers").exists():
            d = base / own.lstrip("/")
            available = (d / "cgroup.controllers").read_text().split()
            v2 = CgroupInfo(2, "memory" in available, "pids" in available, os.access(d, os.W_OK),
                            f"cgroup v2 at {d} (controllers: {' '.join(available) or 'none'})")
            if v2.memory:
                return v2
    found: dict[str, bool] = {}
    for controller in ("memory", "pids"):
        path = own_cgroup(controller)
        d = _CGROUP / controller / (path or "/").lstrip("/")
        found[controller] = path is not None and d.is_dir() and os.access(d, os.W_OK)
    if any(found.values()) or (_CGROUP / "memory").is_dir():
        return CgroupInfo(1, found["memory"], found["pids"], any(found.values()),
                          f"cgroup v1 ({', '.join(k for k, v in found.items() if v) or 'no writable controllers'})")
    return v2 or CgroupInfo(0, False, False, False, "no cgroup file system at /sys/fs/cgroup")


# -- namespaces, in a probe child -------------------------------------------------------------------


def _fork_probe(fn: Callable[[], None]) -> str | None:
    """Run ``fn`` in a forked child; None if it returned, else what went wrong."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            fn()
            os._exit(0)
        except BaseException as exc:
            os.write(w, f"{type(exc).__name__}: {exc}".encode()[:500])
            os._exit(2)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else (err or f"probe exited with {code}")


def _unshare(flag: int) -> Callable[[], None]:
    def run() -> None:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.unshare(flag) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return run


def _overlay() -> None:
    from surge.agent.mounts import probe_child

    scratch = tempfile.mkdtemp(prefix="surge-probe-")
    try:
        probe_child(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _strict() -> None:
    """Confine this (forked) process like a strict container and look around from inside."""
    from surge.agent import pidinit
    from surge.agent.sandbox import Confinement
    from surge.core.sandbox import ViewOp

    conf = Confinement("strict", uid=PROBE_UID, gid=PROBE_UID, mount_ns=True, pid_ns=True,
                       view=[ViewOp("tmpfs", "/tmp", "mode=1777,size=1m")],
                       rlimits={"NOFILE": 1024, "FSIZE": 1 << 20, "CORE": 0}, workdir="/tmp")
    conf.setup()
    pidinit.split(conf.uid, conf.gid)
    problems = []
    if os.getpid() != 2:
        problems.append(f"pid is {os.getpid()}, not 2")
    if os.getuid() != PROBE_UID or os.getgid() != PROBE_UID:
        problems.append(f"uid {os.getuid()}, gid {os.getgid()}")
    procs = [d for d in os.listdir("/proc") if d.isdigit()]
    if len(procs) > 2:
        problems.append(f"/proc shows {len(procs)} processes")
    try:
        os.setuid(0)
        problems.append("could become root again")
    except PermissionError:
        pass
    if problems:
        raise RuntimeError("; ".join(problems))


def probe() -> dict[str, str | None]:
    """Each probe: None if it works, else why not. Call in a single-threaded process."""
    out: dict[str, str | None] = {}
    for name, flag in (("mount", CLONE_NEWNS), ("pid", CLONE_NEWPID), ("user", CLONE_NEWUSER),
                       ("net", CLONE_NEWNET)):
        out[name] = _fork_probe(_unshare(flag))
    out["overlay"] = _fork_probe(_overlay)
    out["strict"] = (_fork_probe(_strict) if os.geteuid() == 0 else
                     f"the server runs as uid {os.geteuid()}, not root: it cannot switch a container to "
                     "another user or build its namespaces")
    return out


async def probe_async() -> dict[str, str | None]:
    """``probe()`` in a fresh interpreter (the agent's own process has threads)."""
    lines: list[str] = []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    rc = await launcher.run_command([sys.executable, "-m", "surge.agent.hostcheck"], env=env, on_line=lines.append)
    for line in reversed(lines):
        if line.startswith("{"):
            result: dict[str, str | None] = json.loads(line)
            return result
    why = (lines[-1] if lines else f"exit code {rc}")
    return {k: f"the probe failed: {why}" for k in ("mount", "pid", "user", "net", "overlay", "strict")}


async def strict_missing() -> str | None:
    """Why this host cannot run the strict sandbox, or None."""
    return (await probe_async())["strict"]


# -- what doctor shows --------------------------------------------------------------------------


def sandbox_checks(probed: dict[str, str | None]) -> list[Check]:
    cg = cgroups()
    root = os.geteuid() == 0
    out = [
        Check("sandbox: strict", "ok" if probed["strict"] is None else "missing",
              "available: `surge server` confines containers strictly by default" if probed["strict"] is None
              else str(probed["strict"]),
              "" if probed["strict"] is None else "run `surge server` as root on a host that allows mount and PID "
              "namespaces (not inside an unprivileged container); until then containers get --sandbox basic"),
        Check("unprivileged user", "ok" if root and probed["strict"] is None else "missing",
              f"containers run as uid {PROBE_UID + 1}+ (one per workspace), never as the server's user"
              if root else f"the server runs as uid {os.geteuid()}: containers run as that same user",
              "" if root else "run the server as root: it drops to an unprivileged uid in each container"),
        Check("cgroups", "ok" if cg.version and cg.writable else "missing", cg.detail,
              "" if cg.version and cg.writable else "mount a writable cgroup file system (cgroup v2, or v1 "
              "memory and pids controllers) and run the server as root"),
        Check("memory limit", "ok" if cg.memory and cg.writable else "warn",
              "memory cgroup: OOM kills are detected" if cg.memory and cg.writable
              else "no writable memory cgroup: RLIMIT_DATA instead (MemoryError, not an OOM kill)",
              "" if cg.memory and cg.writable else "enable the memory controller (cgroup_enable=memory)"),
        Check("pids limit", "ok" if cg.pids and cg.writable else "missing",
              "pids cgroup: a fork bomb stops at pids.max" if cg.pids and cg.writable
              else "no writable pids cgroup: a fork bomb is bounded only by RLIMIT_NPROC of the user",
              "" if cg.pids and cg.writable else "enable the pids controller in the server's cgroup"),
    ]
    for name, what, fix in (
            ("mount", "private file-system view, volumes", "allow unshare(CLONE_NEWNS) (run as root, not in a "
             "restricted container)"),
            ("pid", "containers see and signal only their own processes", "allow unshare(CLONE_NEWPID)")):
        err = probed[name]
        out.append(Check(f"{name} namespace", "ok" if err is None else "missing",
                         what if err is None else err, "" if err is None else fix))
    out.append(Check("user namespace", "ok" if probed["user"] is None else "warn",
                     "available (not used: containers get a real unprivileged uid instead)"
                     if probed["user"] is None else f"unavailable ({probed['user']}); surge does not need it"))
    out.append(Check("network namespace", "warn",
                     "not used: containers share the host's network, including loopback services",
                     "bind databases and internal services to addresses containers should not reach, "
                     "or firewall the sandbox uids (iptables -m owner --uid-owner 2000000000-2099999999)"))
    out.append(Check("snapshot forks", "warn" if probed["strict"] is None else "ok",
                     "a memory snapshot's containers share their zygote's mount namespace and the host's PID "
                     "namespace; their /proc (hidepid=invisible) lists only their workspace's processes, "
                     "and signalling others is refused (other uids)"
                     if probed["strict"] is None else "no strict sandbox: nothing more to lose",
                     "enable_memory_snapshot=False for functions that must not see other processes"
                     if probed["strict"] is None else ""))
    out.append(Check("overlayfs", "ok" if probed["overlay"] is None else "missing",
                     "volumes mount as copy-on-write overlays" if probed["overlay"] is None else str(probed["overlay"]),
                     "" if probed["overlay"] is None else "load the overlay module (modprobe overlay); "
                     "volumes cannot be mounted without it"))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    out.append(Check("rlimits", "ok", f"RLIMIT_FSIZE, RLIMIT_NOFILE (hard limit here: "
                     f"{'unlimited' if nofile == resource.RLIM_INFINITY else nofile}), RLIMIT_CORE=0, no_new_privs"))
    out.append(Check("seccomp", "warn", "no system-call filter: containers share the host kernel's full surface",
                     "run untrusted code on hosts (or VMs) dedicated to one team"))
    return out


def gpu_check() -> Check:
    declared = os.environ.get("SURGE_GPUS")
    if declared:
        return Check("GPUs", "ok", f"declared: {declared} (SURGE_GPUS)")
    from surge.agent.inventory import detect_gpus

    gpus = detect_gpus()
    if gpus:
        kinds = ", ".join(f"{g.index}: {g.type}" for g in gpus)
        return Check("GPUs", "ok", f"NVML: {kinds}; GPU memory is not isolated between containers sharing a GPU")
    return Check("GPUs", "warn", "none detected (no NVML driver)",
                 "install the NVIDIA driver and `pip install nvidia-ml-py`, or declare GPUs with --gpus")


def uv_check() -> Check:
    from surge.agent.images import uv_binary

    try:
        return Check("uv", "ok", uv_binary())
    except Exception as exc:
        return Check("uv", "missing", str(exc), "pip install uv (it builds surge images)")


def disk_check(home: Path) -> Check:
    where = home if home.exists() else next((p for p in home.parents if p.exists()), Path("/"))
    free = shutil.disk_usage(where).free
    gib = free / (1 << 30)
    status = "ok" if gib >= 5 else ("warn" if gib >= 1 else "missing")
    return Check("disk", status, f"{gib:.1f} GiB free under {where}",
                 "" if status == "ok" else "free space or move SURGE_HOME: images, volumes and results live there")


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


if __name__ == "__main__":
    print(json.dumps(probe()), flush=True)
