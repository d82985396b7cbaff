"""Sandbox decisions: which level a node confines containers at, which user a workspace's
containers run as, and what a container's private file-system view hides and shows.

Pure: the host's answers (may this process use namespaces? can the sandbox user traverse this
directory?) come in as values and predicates; ``surge.agent.sandbox`` applies the results.

Levels (``surge server --sandbox``):

- ``strict``: ``basic`` plus an unprivileged user per workspace, a PID namespace, and a mount
  namespace in which the control plane's state, ``/tmp`` and everything the container does not need
  are hidden (size-capped private ``/tmp``, ``/var/tmp``, ``/dev/shm``).
- ``basic``: limits only: a pids cgroup, ``RLIMIT_FSIZE``/``RLIMIT_NOFILE``/``RLIMIT_CORE``,
  ``PR_SET_NO_NEW_PRIVS``; the function sees the host as the server's user does.
- ``off``: memory limits only (what surge did before the sandbox).
- ``auto`` (the default): ``strict`` for a standalone server on a host that supports it, ``basic``
  for the embedded server ``surge run`` starts on a developer's machine (their own code, which
  commonly reads local files) and on hosts without the mechanisms.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

LEVELS = ("strict", "basic", "off")
CHOICES = ("auto", *LEVELS)

UID_BASE = 2_000_000_000        # below 2**31: tools that read a uid as a signed int stay correct
UID_SPAN = 100_000_000


class SandboxUnavailable(ValueError):
    """The requested level needs a mechanism this host lacks."""


def resolve_level(requested: str, *, embedded: bool, strict_missing: str | None) -> str:
    """The level a node runs at. ``strict_missing``: why this host cannot run ``strict`` (None: it
    can). An explicit ``strict`` on a host that cannot is refused rather than quietly weakened."""
    if requested not in CHOICES:
        raise ValueError(f"sandbox={requested!r} is not one of {', '.join(CHOICES)}")
    if requested == "auto":
        return "strict" if strict_missing is None and not embedded else "basic"
    if requested == "strict" and strict_missing is not None:
        raise SandboxUnavailable(f"--sandbox strict is not available on this host: {strict_missing}. "
                                 "Run `surge doctor` for the fix, or start with --sandbox basic")
    return requested


def uid_for(workspace: str, taken: Mapping[int, str], *, base: int = UID_BASE, span: int = UID_SPAN) -> int:
    """A stable uid for a workspace's containers: the same after a restart (from a hash of its name),
    never shared with another workspace this node has seen (``taken``: uid -> workspace)."""
    n = int(hashlib.sha256(workspace.encode()).hexdigest()[:12], 16) % span
    for i in range(span):
        uid = base + (n + i) % span
        if taken.get(uid, workspace) == workspace:
            return uid
    raise RuntimeError("no free sandbox uid")     # only with `span` workspaces on one node


@dataclass(frozen=True)
class ViewOp:
    """One step of building a container's file-system view, in order: ``tmpfs`` mounts an empty
    file system over ``path`` (``options``: mount data); ``bind`` shows the host's ``path`` again
    at the same place (read-only unless ``writable``)."""

    kind: str          # "tmpfs" | "bind"
    path: str
    options: str = ""
    writable: bool = False


def _depth(path: str) -> int:
    return 0 if path == "/" else path.count("/")


def _under(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]`` (not ``/``, not the path itself)."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def plan_view(needed: Iterable[tuple[str, bool]], hidden: Mapping[str, str],
              blocked: Callable[[str], bool]) -> list[ViewOp]:
    """The mounts that give a container its view.

    ``needed``: (absolute path, writable) the container must reach: its interpreter, the surge
    package, its app source, its agent socket's directory. ``hidden``: paths to cover with an empty
    tmpfs whatever they hold (path -> tmpfs options: the control plane's home, the shared scratch
    directories). ``blocked(dir)``: the sandbox user cannot traverse ``dir`` (e.g. ``/root``);
    the shallowest blocked ancestor of a needed path is covered too, so the path can be shown
    without opening up its siblings.

    Needed paths under a cover are bound back (a path under another needed path comes with it).
    Steps run shallow first, a cover before a bind at the same depth, so a bind lands inside the
    tmpfs it needs and a hidden path inside a bound one is covered again after it.
    """
    merged: dict[str, bool] = {}
    for p, w in needed:
        key = posixpath.normpath(p)
        merged[key] = merged.get(key, False) or w
    wanted = sorted(merged.items())
    covers: dict[str, str] = {posixpath.normpath(p): o for p, o in hidden.items()}
    for path, _ in wanted:
        for a in ancestors(path):
            if blocked(a):
                covers.setdefault(a, "mode=0755,size=64k")
                break
    binds: dict[str, bool] = {}
    for path, writable in wanted:
        if not any(_under(path, c) for c in covers):
            continue                       # visible as it is
        parent = next((b for b in binds if _under(path, b)), None)
        if parent is not None:
            binds[parent] = binds[parent] or writable
            continue
        binds[path] = writable
    ops = [ViewOp("tmpfs", p, o) for p, o in covers.items()]
    ops += [ViewOp("bind", p, writable=w) for p, w in binds.items()]
    return sorted(ops, key=lambda op: (_depth(op.path), op.kind != "tmpfs", op.path))
