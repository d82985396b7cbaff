"""Volumes on this node: versioned directory trees, per-container copy-on-write views, commits.

Layout (``SURGE_HOME/volumes/<volume id>/``)::

    v/<n>/                 committed version n: an immutable tree (0 is the empty volume)
    c/<container>/<gen>/   a container's overlay layers (upper: its writes; work: overlayfs's)
    .staging-*             a commit being assembled (renamed to v/<n+1> when complete)

A container mounts the committed version current at its start as the read-only lower layer of
an overlay, with its own upper directory: it sees a consistent tree, and its writes are private.
``commit()`` builds version n+1 as a hard-link copy of version n (no file data copied) plus the
container's changes (files copied, whiteouts deleted), renames it into place and moves the
volume's version in the store with a compare-and-set. ``reload()`` commits pending changes and
remounts the container on the newest version. Old versions are deleted once no container uses
them. Unchanged files are shared between versions by hard links, never modified in place: every
change writes a new inode.

Paths from clients are checked twice: by the pure rules (``surge.core.paths``: no ``..``, no NUL)
and here, on resolved real paths, so a symlink inside a volume cannot lead out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surge.agent import launcher
from surge.agent.mounts import Mount, MountPoints
from surge.core.paths import contains, mount_path, under, volume_name, volume_parts
from surge.errors import ConflictError, InvalidError, NotFoundError, UnavailableError
from surge.store.base import Store, VolumeRow

log = logging.getLogger("surge.volumes")

Signature = tuple[int, int, int, int]    # (mode, inode, size, mtime_ns): has an upper entry changed?


@dataclass
class ContainerMount:
    volume_id: str
    workspace: str
    name: str
    target: str
    version: int
    gen: int
    layers: Path                          # c/<container>/
    committed: dict[str, Signature] = field(default_factory=dict)

    @property
    def upper(self) -> Path:
        return self.layers / str(self.gen) / "upper"

    @property
    def work(self) -> Path:
        return self.layers / str(self.gen) / "work"


def resolve_inside(tree: Path, path: str, *, follow_last: bool = True) -> Path:
    """``tree/path`` if its real path stays inside ``tree``; a symlink out of it is refused."""
    parts = volume_parts(path)
    full = tree.joinpath(*parts)
    root = os.path.realpath(tree)
    check = os.path.realpath(full) if follow_last or not parts else os.path.join(
        os.path.realpath(full.parent), full.name)
    if not contains(root, check):
        raise InvalidError(f"volume path {path!r} leads outside the volume (through a symlink); refused")
    return full


class VolumeService:
    def __init__(self, root: Path, store: Store, mountpoints: MountPoints | None = None) -> None:
        self.root = root
        self.store = store
        self.mountpoints = mountpoints or MountPoints()
        root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        self.mounts: dict[str, list[ContainerMount]] = {}    # container id -> its volume mounts
        self.mount_targets: dict[str, list[str]] = {}        # container id -> every mount point it holds
        self._support: str | None = None                     # None: unknown; "" supported; else why not

    # -- rows --------------------------------------------------------------------------------------
    async def row(self, workspace: str, name: str, *, create: bool = False) -> VolumeRow:
        volume_name(name)
        if create:
            created, _ = await self.store.create_volume(workspace, name, time.time())
            return created
        row = await self.store.find_volume(workspace, name)
        if row is None:
            raise NotFoundError(f"no volume named {name!r}; create it with `surge volume create {name}` or "
                                "surge.Volume.from_name(name, create_if_missing=True)")
        return row

    def scratch(self, row: VolumeRow) -> Path:
        """A directory on the volume's file system for uploads in progress (moved in, not copied)."""
        path = self.root / row.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def tree(self, row: VolumeRow, version: int | None = None) -> Path:
        path = self.root / row.id / "v" / str(row.version if version is None else version)
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)   # version 0: the empty volume
        return path

    async def delete(self, workspace: str, name: str) -> None:
        row = await self.row(workspace, name)
        users = [cid for cid, ms in self.mounts.items() if any(m.volume_id == row.id for m in ms)]
        if users:
            raise ConflictError(f"volume {name!r} is mounted by {len(users)} running container(s) "
                                f"({', '.join(sorted(users)[:3])}); stop them first")
        await self.store.delete_volume(workspace, name)
        await asyncio.to_thread(shutil.rmtree, self.root / row.id, True)

    # -- reading -----------------------------------------------------------------------------------
    async def listdir(self, workspace: str, name: str, path: str, recursive: bool) -> list[dict[str, Any]]:
        row = await self.row(workspace, name)
        tree = self.tree(row)
        base = resolve_inside(tree, path)
        if base.is_file():
            return [_entry(tree, base)]
        if not base.is_dir():
            raise NotFoundError(f"volume {name!r} has no {path!r}")
        out = []
        if recursive:
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames.sort()
                for n in sorted(dirnames + filenames):
                    out.append(_entry(tree, Path(dirpath) / n))
        else:
            for child in sorted(base.iterdir()):
                out.append(_entry(tree, child))
        return out

    async def file(self, workspace: str, name: str, path: str) -> Path:
        row = await self.row(workspace, name)
        full = resolve_inside(self.tree(row), path)
        if not full.is_file():
            raise NotFoundError(f"volume {name!r} has no file {path!r}")
        return full

    # -- writing (from outside containers) ---------------------------------------------------------
    async def put(self, workspace: str, name: str, files: list[tuple[str, Path]], *, force: bool) -> VolumeRow:
        """Add files (``(volume path, local temp file)``; the temp files are moved in) as one commit."""
        row = await self.row(workspace, name)
        checked = [(volume_parts(p), src) for p, src in files]
        for parts, _ in checked:
            if not parts:
                raise InvalidError("a file needs a path inside the volume, not its root")

        def apply(tree: Path) -> None:
            for parts, src in checked:
                dest = resolve_inside(tree, "/".join(parts), follow_last=False)
                if not force and (dest.exists() or dest.is_symlink()):
                    raise ConflictError(f"volume {name!r} already has {'/'.join(parts)!r}; "
                                        "pass force=True (--force) to overwrite")
                _make_parents(tree, dest)
                os.replace(src, dest)
        return await self._commit(row, apply)

    async def remove(self, workspace: str, name: str, path: str, *, recursive: bool) -> VolumeRow:
        row = await self.row(workspace, name)
        parts = volume_parts(path)
        if not parts:
            raise InvalidError("cannot remove the volume's root; delete the volume instead")
        current = resolve_inside(self.tree(row), path, follow_last=False)
        if not (current.exists() or current.is_symlink()):
            raise NotFoundError(f"volume {name!r} has no {path!r}")
        if current.is_dir() and not current.is_symlink() and not recursive:
            raise InvalidError(f"{path!r} is a directory; pass recursive=True (-r) to remove it")

        def apply(tree: Path) -> None:
            _remove(resolve_inside(tree, path, follow_last=False))
        return await self._commit(row, apply)

    # -- commits -----------------------------------------------------------------------------------
    async def _commit(self, row: VolumeRow, apply: Callable[[Path], None]) -> VolumeRow:
        lock = self._locks.setdefault(row.id, asyncio.Lock())
        async with lock:
            fresh = await self.store.get_volume(row.id)
            if fresh is None:
                raise NotFoundError(f"volume {row.name!r} was deleted")
            base = self.tree(fresh)
            staging = Path(tempfile.mkdtemp(dir=self.scratch(row), prefix=".staging-"))
            try:
                size, files = await asyncio.to_thread(_build_version, base, staging, apply)
                new = fresh.version + 1
                dest = self.root / row.id / "v" / str(new)
                if dest.exists():        # left by a crash between rename and the store update
                    await asyncio.to_thread(shutil.rmtree, dest)
                staging.rename(dest)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            now = time.time()
            if not await self.store.set_volume_version(row.id, expect=fresh.version, version=new, now=now,
                                                       size_bytes=size, files=files):
                shutil.rmtree(dest, ignore_errors=True)
                raise ConflictError(f"volume {row.name!r} changed or was deleted during the commit; retry")
            self._gc(row.id, new)
            return VolumeRow(row.id, row.workspace, row.name, row.created_at, new, now, size, files)

    def _gc(self, volume_id: str, current: int) -> None:
        used = {m.version for ms in self.mounts.values() for m in ms if m.volume_id == volume_id}
        versions = self.root / volume_id / "v"
        for d in versions.iterdir() if versions.is_dir() else ():
            if d.name.isdigit() and int(d.name) != current and int(d.name) not in used:
                shutil.rmtree(d, ignore_errors=True)

    async def commit_container(self, container_id: str, workspace: str, name: str | None) -> list[VolumeRow]:
        """Commit a container's changes to its mounts of ``name`` (all of its volumes if None)."""
        mounts = [m for m in self.mounts.get(container_id, []) if m.workspace == workspace
                  and (name is None or m.name == name)]
        if name is not None and not mounts:
            raise NotFoundError(f"volume {name!r} is not mounted in container {container_id}")
        out = []
        for m in mounts:
            row = await self.store.get_volume(m.volume_id)
            if row is None:
                raise NotFoundError(f"volume {m.name!r} was deleted")
            changes = await asyncio.to_thread(_pending, m)
            if not changes:
                out.append(row)
                continue
            seen = set(m.committed)
            out.append(await self._commit(row, functools.partial(_merge, m.upper, changes=changes, seen=seen)))
            m.committed.update(changes)
        return out

    async def reload_container(self, container_id: str, workspace: str, name: str) -> list[dict[str, str]]:
        """Commit pending changes, then give the container fresh layers over the newest version."""
        await self.commit_container(container_id, workspace, name)
        out = []
        for m in self.mounts.get(container_id, []):
            if m.name != name or m.workspace != workspace:
                continue
            row = await self.store.get_volume(m.volume_id)
            assert row is not None
            m.version, m.gen, m.committed = row.version, m.gen + 1, {}
            m.upper.mkdir(parents=True)
            m.work.mkdir(parents=True)
            out.append({"target": m.target, "lower": str(self.tree(row)), "upper": str(m.upper),
                        "work": str(m.work)})
        return out

    # -- containers ----------------------------------------------------------------------------------
    async def supported(self) -> str:
        """"" when this host can give containers mount namespaces with overlays; else the reason."""
        if self._support is None:
            scratch = Path(tempfile.mkdtemp(dir=self.root, prefix=".probe-"))
            lines: list[str] = []
            try:
                rc = await launcher.run_command(
                    [os.environ.get("SURGE_PROBE_PYTHON") or _python(), "-c",
                     "import sys; from surge.agent.mounts import probe_child; probe_child(sys.argv[1])",
                     str(scratch)], env=dict(os.environ), on_line=lines.append)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            self._support = "" if rc == 0 else (lines[-1] if lines else f"exit code {rc}")
        return self._support

    async def mounts_for(self, container_id: str, workspace: str, volumes: dict[str, Any],
                         protected: list[str]) -> list[Mount]:
        """Overlay mounts of ``volumes`` (``{path: {"name", "create_if_missing"}}``) for a new container.
        ``protected``: host paths the container needs, which no mount may hide."""
        if not volumes:
            return []
        why = await self.supported()
        if why:
            raise UnavailableError(f"volumes need a private mount namespace with overlayfs, which this host "
                                   f"refuses ({why}); run the server as root on Linux (see docs/volumes.md)")
        out, mine = [], []
        for target, ref in sorted(volumes.items()):
            target = mount_path(target)
            for p in protected:
                if under(p, target):
                    raise InvalidError(f"volume mount path {target!r} would hide {p}, which the container "
                                       "needs; mount the volume somewhere else")
            row = await self.row(workspace, str(ref["name"]), create=bool(ref.get("create_if_missing")))
            layers = self.root / row.id / "c" / container_id
            m = ContainerMount(row.id, workspace, row.name, target, row.version, 0, layers)
            m.upper.mkdir(parents=True, exist_ok=True)
            m.work.mkdir(parents=True, exist_ok=True)
            mine.append(m)
            out.append(Mount("overlay", target, str(self.tree(row)), str(m.upper), str(m.work)))
        self.mounts[container_id] = mine
        return out

    async def container_exited(self, container_id: str, *, commit: bool) -> None:
        """Commit a cleanly stopped container's changes (as Modal does at shutdown), drop its layers."""
        targets = self.mount_targets.pop(container_id, None)
        if targets:
            self.mountpoints.release(targets)
        mounts = self.mounts.get(container_id)
        if not mounts:
            return
        try:
            if commit:
                ws = mounts[0].workspace
                for name in sorted({m.name for m in mounts}):
                    try:
                        await self.commit_container(container_id, ws, name)
                    except Exception:
                        log.exception("could not commit volume %s of container %s at exit", name, container_id)
        finally:
            self.mounts.pop(container_id, None)
            for m in mounts:
                await asyncio.to_thread(shutil.rmtree, m.layers, True)
                row = await self.store.get_volume(m.volume_id)
                if row is not None:
                    self._gc(m.volume_id, row.version)


# -- file-tree helpers (run on a thread) ---------------------------------------------------------

def _python() -> str:
    import sys

    return sys.executable


def _entry(tree: Path, p: Path) -> dict[str, Any]:
    st = p.lstat()
    kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "file"
    return {"path": str(p.relative_to(tree)), "type": kind, "size": st.st_size if kind == "file" else 0,
            "mtime": st.st_mtime}


def _make_parents(tree: Path, dest: Path) -> None:
    parent = dest.parent
    if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
        raise ConflictError(f"{parent.relative_to(tree)} is a file, not a directory")
    parent.mkdir(parents=True, exist_ok=True)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _build_version(base: Path, staging: Path, apply: Callable[[Path], None]) -> tuple[int, int]:
    """``staging`` := a hard-link copy of ``base``, then ``apply``; returns (bytes, files)."""
    for dirpath, dirnames, filenames in os.walk(base):
        rel = os.path.relpath(dirpath, base)
        target = staging if rel == "." else staging / rel
        target.mkdir(exist_ok=True)
        for n in dirnames:
            src = Path(dirpath) / n
            if src.is_symlink():
                os.symlink(os.readlink(src), target / n)
        for n in filenames:
            src = Path(dirpath) / n
            if src.is_symlink():
                os.symlink(os.readlink(src), target / n)
            else:
                os.link(src, target / n)
    apply(staging)
    size = files = 0
    for dirpath, _, filenames in os.walk(staging):
        for n in filenames:
            st = os.lstat(os.path.join(dirpath, n))
            files += 1
            size += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return size, files


def _signature(st: os.stat_result) -> Signature:
    return (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns)


def _pending(m: ContainerMount) -> dict[str, Signature]:
    """Entries of the container's upper layer that changed since its last commit."""
    out: dict[str, Signature] = {}
    upper = m.upper
    for dirpath, dirnames, filenames in os.walk(upper):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, upper)
            sig = _signature(os.lstat(full))
            if m.committed.get(rel) != sig:
                out[rel] = sig
    return out


def _opaque(path: str) -> bool:
    with contextlib.suppress(OSError):
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    return False


def _merge(upper: Path, tree: Path, *, changes: dict[str, Signature], seen: set[str]) -> None:
    """Apply overlayfs's record of changes (``upper``) to ``tree``: whiteouts (0/0 character
    devices) delete, opaque directories replace, files and symlinks are copied as new inodes."""
    for rel in sorted(changes, key=lambda r: (r.count("/"), r)):
        src = upper / rel
        dest = resolve_inside(tree, rel, follow_last=False)
        st = os.lstat(src)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            _remove(dest)
        elif stat.S_ISDIR(st.st_mode):
            # opaque: the container replaced the directory (once; its files are changes too)
            if (_opaque(str(src)) and rel not in seen) or not dest.is_dir() or dest.is_symlink():
                _remove(dest)
            _make_parents(tree, dest)
            dest.mkdir(exist_ok=True)
        else:
            _make_parents(tree, dest)
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}"[:255])
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), tmp)
            else:
                shutil.copy2(src, tmp)
            os.replace(tmp, dest)
