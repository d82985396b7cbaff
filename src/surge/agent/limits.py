"""Memory limits for containers: a cgroup (v2 or v1, whichever the host lets us write) so the kernel
OOM-kills at the limit and we can tell an OOM kill from any other SIGKILL; ``RLIMIT_DATA`` where
no cgroup is writable (then an allocation past the limit raises ``MemoryError`` in the function)."""

from __future__ import annotations

import logging
import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from surge.agent.mounts import MountPlan

log = logging.getLogger("surge.agent.limits")

_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup(controller: str | None) -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller is None and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


class CgroupGroup:
    """One container's cgroup."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def oom_killed(self) -> bool:
        try:
            if self.version == 2:
                text = (self.path / "memory.events").read_text()
            else:
                text = (self.path / "memory.oom_control").read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
        return False

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass


class MemoryLimiter:
    """Creates per-container cgroups under a parent of our own, or falls back to rlimits."""

    def __init__(self, name: str) -> None:
        self.version = 0
        self.parent: Path | None = None
        self.reason = ""
        for version, base, controller in ((2, _ROOT, None), (2, _ROOT / "unified", None),
                                          (1, _ROOT / "memory", "memory")):
            own = _own_cgroup(controller)
            if own is None:
                continue
            if version == 2 and not (base / own.lstrip("/") / "cgroup.controllers").exists():
                continue
            if version == 2 and "memory" not in (base / own.lstrip("/") / "cgroup.controllers").read_text():
                continue
            parent = base / own.lstrip("/") / f"surge-{name}"
            try:
                parent.mkdir(exist_ok=True)
                if version == 2:
                    (parent / "cgroup.subtree_control").write_text("+memory")
                probe = parent / "probe"
                probe.mkdir(exist_ok=True)
                probe.rmdir()
            except OSError as exc:
                self.reason = f"cgroup v{version} at {parent} not writable: {exc}"
                continue
            self.version, self.parent = version, parent
            return
        self.reason = self.reason or "no writable memory cgroup"

    @property
    def mechanism(self) -> str:
        return f"cgroup v{self.version}" if self.version else "rlimit (RLIMIT_DATA)"

    def create(self, container_id: str, limit_mib: int) -> CgroupGroup | None:
        if self.parent is None:
            return None
        path = self.parent / container_id
        try:
            path.mkdir()
            limit = str(limit_mib * 1024 * 1024)
            if self.version == 2:
                (path / "memory.max").write_text(limit)
                (path / "memory.swap.max").write_text("0") if (path / "memory.swap.max").exists() else None
            else:
                (path / "memory.limit_in_bytes").write_text(limit)
            return CgroupGroup(path, self.version)
        except OSError as exc:
            log.warning("could not create cgroup %s: %s; falling back to rlimit", path, exc)
            try:
                path.rmdir()
            except OSError:
                pass
            return None

    def close(self) -> None:
        if self.parent is not None:
            for child in self.parent.iterdir() if self.parent.exists() else ():
                if child.is_dir():
                    try:
                        child.rmdir()
                    except OSError:
                        pass
            try:
                self.parent.rmdir()
            except OSError:
                pass


def preexec(cgroup_procs: str | None, limit_mib: int | None, mounts: MountPlan | None = None) -> None:
    """Runs in the child between fork and exec: its mount namespace (volumes, image files, working
    directory) if it has mounts; then join the cgroup, or cap the data segment."""
    if mounts is not None:
        mounts.apply()
    if cgroup_procs is not None:
        with open(cgroup_procs, "w") as f:
            f.write(str(os.getpid()))
    elif limit_mib is not None:
        # interpreter overhead is not the user's budget: leave 64 MiB of headroom
        limit = (limit_mib + 64) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
