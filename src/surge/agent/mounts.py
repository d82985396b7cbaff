"""A container's private filesystem view: a mount namespace with its volumes and image files.

The agent prepares a ``MountPlan`` (plain data); ``apply`` runs in the child between fork and exec
(``surge.agent.limits.preexec``): ``unshare(CLONE_NEWNS)``, make every mount private so nothing
leaks back to the host, then mount each entry and ``chdir`` to the working directory.

- ``overlay``: a volume. The committed version is the read-only lower layer, the container's own
  upper directory takes its writes (copy-on-write), and ``commit()`` merges that upper directory
  into a new version (``surge.server.volumes``).
- ``bind``: an image's ``add_local_dir`` files, read-only.
- ``tmpfs``: a private, empty working directory (``Image.workdir`` not covered by another mount).

Mount points that do not exist on the host are created by ``MountPoints`` and removed again when
the last container using them has exited, so the host is not left with empty directories.
Hosts without mount namespaces or overlayfs (not root, some container sandboxes) get a clear error
at launch; ``probe()`` says why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

# Loaded at import, in the parent: the child between fork and exec must not import anything.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class MountError(OSError):
    pass


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(err, f"{what}: {os.strerror(err)}")


def unshare_mounts() -> None:
    """Enter a new mount namespace whose mounts do not propagate to the host."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                     data.encode() if data else None)
    _check(rc, f"mount {fstype or 'bind'} at {target}")


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def overlay_options(lower: str, upper: str, work: str) -> str:
    for p in (lower, upper, work):
        if any(c in p for c in ",:\\\n"):
            raise MountError(22, f"overlay paths may not contain ',', ':' or '\\': {p!r}")
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def mount_overlay(target: str, lower: str, upper: str, work: str) -> None:
    mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV, overlay_options(lower, upper, work))


@dataclass(frozen=True)
class Mount:
    kind: str                  # "overlay" | "bind" | "tmpfs"
    target: str                # path the container sees
    source: str = ""           # bind: the host directory; overlay: the lower (committed) directory
    upper: str = ""
    work: str = ""
    readonly: bool = False


@dataclass
class MountPlan:
    mounts: list[Mount] = field(default_factory=list)
    workdir: str | None = None

    def apply(self) -> None:
        """In the child, before exec: private namespace, mounts, working directory. A failure is
        written to the child's stderr first (the container's log): ``subprocess`` itself only
        reports "Exception occurred in preexec_fn"."""
        try:
            if self.mounts:
                unshare_mounts()
            for m in self.mounts:
                if m.kind == "overlay":
                    mount_overlay(m.target, m.source, m.upper, m.work)
                elif m.kind == "bind":
                    mount(m.source, m.target, None, MS_BIND | MS_REC, None)
                    if m.readonly:
                        mount("none", m.target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None)
                else:
                    mount("tmpfs", m.target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
            if self.workdir:
                os.chdir(self.workdir)
        except OSError as exc:
            os.write(2, f"surge: cannot set up the container's mounts: {exc}\n".encode())
            raise


class MountPoints:
    """Creates missing mount-point directories on the host and removes them when unused."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._users: dict[str, int] = {}
        self._created: dict[str, list[str]] = {}    # target -> directories we created, deepest last

    def acquire(self, targets: list[str]) -> None:
        with self._mu:
            for t in targets:
                if self._users.get(t, 0) == 0:
                    made: list[str] = []
                    p = Path(t)
                    missing = [q for q in (p, *p.parents) if not q.exists()]
                    for q in reversed(missing):
                        q.mkdir(mode=0o755)
                        made.append(str(q))
                    if not p.is_dir():
                        raise MountError(20, f"mount path {t} exists on the host and is not a directory")
                    self._created[t] = made
                self._users[t] = self._users.get(t, 0) + 1

    def release(self, targets: list[str]) -> None:
        with self._mu:
            for t in targets:
                n = self._users.get(t, 0) - 1
                if n > 0:
                    self._users[t] = n
                    continue
                self._users.pop(t, None)
                for d in reversed(self._created.pop(t, [])):
                    try:
                        os.rmdir(d)      # only if still empty: never remove anything with content
                    except OSError:
                        break

    def held(self) -> dict[str, int]:
        with self._mu:
            return dict(self._users)


def probe_child(scratch: str) -> None:
    """Run in a throwaway child: can this host give a container a namespace with an overlay?"""
    lower, upper, work, merged = (os.path.join(scratch, d) for d in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        os.makedirs(d, exist_ok=True)
    unshare_mounts()
    mount_overlay(merged, lower, upper, work)
    Path(merged, "probe").write_text("ok")
    umount(merged)
