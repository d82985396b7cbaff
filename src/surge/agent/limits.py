"""Memory limits for containers: a cgroup (v2 or v1, whichever the host lets us write) so the kernel
OOM-kills at the limit and we can tell an OOM kill from any other SIGKILL; ``RLIMIT_DATA`` where
no cgroup is writable (then an allocation past the limit raises ``MemoryError`` in the function).

The same per-container cgroup carries the sandbox's process limit (``pids.max``, issue 5): in v2
one directory holds both controllers; in v1 the pids hierarchy is a second directory, which the
container joins through ``CgroupGroup.extra_procs`` (``surge.agent.sandbox``)."""

from __future__ import annotations

import logging
import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING

from surge.agent.sandbox import Confinement, preexec_confine

if TYPE_CHECKING:
    from surge.agent.mounts import MountPlan

log = logging.getLogger("surge.agent.limits")

_ROOT = Path("/sys/fs/cgroup")


def own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path in ``controller``'s hierarchy (None: the v2 unified one)."""
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
    """One container's cgroup (``path``: memory, and in v2 pids too; ``pids_path``: v1's pids
    directory)."""

    def __init__(self, path: Path | None, version: int, pids_path: Path | None = None) -> None:
        self.path = path
        self.version = version
        self.pids_path = pids_path

    def procs_file(self) -> str | None:
        return str(self.path / "cgroup.procs") if self.path is not None else None

    def extra_procs(self) -> list[str]:
        """Further ``cgroup.procs`` files the container must join (v1's pids hierarchy)."""
        return [str(self.pids_path / "cgroup.procs")] if self.pids_path is not None else []

    def pids_refused(self) -> int:
        """How many forks the pids limit refused (``pids.events``: ``max N``)."""
        d = self.pids_path or (self.path if self.version == 2 else None)
        try:
            text = (d / "pids.events").read_text() if d is not None else ""
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit():
                return int(value)
        return 0

    def oom_killed(self) -> bool:
        if self.path is None:
            return False
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

    def rename(self, name: str) -> None:
        """Rename its directories within their parents (a spare's cgroups becoming its container's:
        ``agent.starts``); a directory that cannot be renamed keeps its name (this object still
        points at it)."""
        for attr in ("path", "pids_path"):
            d: Path | None = getattr(self, attr)
            if d is None or d.name == name:
                continue
            try:
                d.rename(d.with_name(name))
            except OSError as exc:
                log.warning("could not rename cgroup %s to %s: %s", d, name, exc)
                continue
            setattr(self, attr, d.with_name(name))

    def remove(self) -> None:
        for d in (self.path, self.pids_path):
            try:
                if d is not None:
                    d.rmdir()
            except OSError:
                pass


class MemoryLimiter:
    """Creates per-container cgroups under a parent of our own, or falls back to rlimits."""

    def __init__(self, name: str) -> None:
        self.version = 0
        self.parent: Path | None = None
        self.reason = ""
        self.pids = False                    # pids.max can be set (v2: in `parent`; v1: in `pids_parent`)
        self.pids_parent: Path | None = None
        self._name = name
        for version, base, controller in ((2, _ROOT, None), (2, _ROOT / "unified", None),
                                          (1, _ROOT / "memory", "memory")):
            own = own_cgroup(controller)
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
            self._enable_pids()
            return
        self.reason = self.reason or "no writable memory cgroup"

    def _enable_pids(self) -> None:
        assert self.parent is not None
        if self.version == 2:
            try:
                (self.parent / "cgroup.subtree_control").write_text("+pids")
                self.pids = True
            except OSError as exc:
                log.info("no pids controller under %s: %s", self.parent, exc)
            return
        own = own_cgroup("pids")
        if own is None or not (_ROOT / "pids").is_dir():
            return
        parent = _ROOT / "pids" / own.lstrip("/") / f"surge-{self._name}"
        try:
            parent.mkdir(exist_ok=True)
        except OSError as exc:
            log.info("pids cgroup %s not writable: %s", parent, exc)
            return
        self.pids, self.pids_parent = True, parent

    @property
    def mechanism(self) -> str:
        return f"cgroup v{self.version}" if self.version else "rlimit (RLIMIT_DATA)"

    def create(self, container_id: str, limit_mib: int | None, *, pids_max: int | None = None) -> CgroupGroup | None:
        """The container's cgroup: a memory limit (``limit_mib``), a process limit (``pids_max``,
        if the host has the controller), either or both; None if neither could be set up."""
        if self.parent is None:
            return None
        pids_max = pids_max if self.pids else None
        group = self._create_memory(container_id, limit_mib, pids_max if self.version == 2 else None)
        if pids_max is None or self.version == 2:
            return group
        assert self.pids_parent is not None
        pids_path = self.pids_parent / container_id
        try:
            pids_path.mkdir()
            (pids_path / "pids.max").write_text(str(pids_max))
        except OSError as exc:
            log.warning("could not create pids cgroup %s: %s", pids_path, exc)
            try:
                pids_path.rmdir()
            except OSError:
                pass
            return group
        if group is None:
            return CgroupGroup(None, 1, pids_path)
        group.pids_path = pids_path
        return group

    def _create_memory(self, container_id: str, limit_mib: int | None, pids_max: int | None) -> CgroupGroup | None:
        if limit_mib is None and pids_max is None:
            return None
        assert self.parent is not None
        path = self.parent / container_id
        try:
            path.mkdir()
            if pids_max is not None:
                (path / "pids.max").write_text(str(pids_max))
            if limit_mib is not None:
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
        for parent in (self.parent, self.pids_parent):
            if parent is None:
                continue
            for child in parent.iterdir() if parent.exists() else ():
                if child.is_dir():
                    try:
                        child.rmdir()
                    except OSError:
                        pass
            try:
                parent.rmdir()
            except OSError:
                pass


def preexec(cgroup_procs: str | None, limit_mib: int | None, mounts: MountPlan | None = None,
            confinement: Confinement | None = None) -> None:
    """Runs in the child between fork and exec: its mount namespace (volumes, image files, working
    directory) if it has mounts; then join the cgroup, or cap the data segment; then the sandbox
    (``surge.agent.sandbox``: its view of the file system, limits, its user)."""
    if mounts is not None:
        mounts.apply()
    if cgroup_procs is not None:
        with open(cgroup_procs, "w") as f:
            f.write(str(os.getpid()))
    elif limit_mib is not None:
        # interpreter overhead is not the user's budget: leave 64 MiB of headroom
        limit = (limit_mib + 64) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if confinement is not None:
        preexec_confine(confinement, mounts_done=mounts is not None and bool(mounts.mounts))
