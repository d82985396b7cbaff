"""Confining containers: an unprivileged user, PID and mount namespaces, limits (issue 5).

The agent's ``Sandbox`` decides, per container, a ``Confinement``: plain data (it travels to a
template zygote inside the fork request) that the child applies to itself before it runs user
code: in ``launcher.spawn``'s pre-exec hook (``surge.agent.limits.preexec``) or in a template's
child after the fork (``surge.runtime.zygote``).

At ``strict`` (see ``surge.core.sandbox`` for the levels) a container

- runs as a uid of its own workspace (``2000000000 + hash``, no passwd entry; or the account
  named by ``--sandbox-user``), with no supplementary groups and ``PR_SET_NO_NEW_PRIVS``;
- is the second process of its own PID namespace (``surge.agent.pidinit``), with a ``/proc`` that
  shows only its own processes;
- has a mount namespace in which ``SURGE_HOME`` (the database, the token, secrets.key, other
  workspaces' volumes and sources) is covered by an empty tmpfs, ``/tmp``, ``/var/tmp`` and
  ``/dev/shm`` are private size-capped tmpfs, and directories the sandbox user could not traverse
  anyway (``/root`` when the interpreter lives there) are covered; what it needs (its interpreter,
  the surge package, its app's source, its image, its directory for the agent socket) is bound
  back read-only;
- is in a pids cgroup (``pids.max``) beside its memory cgroup, with ``RLIMIT_FSIZE``,
  ``RLIMIT_NOFILE`` and ``RLIMIT_CORE=0``.

At ``basic`` it gets the limits and ``no_new_privs`` only. A snapshot zygote runs user code (its
module's import, ``@enter(snap=True)``), so at ``strict`` it is itself confined as its workspace's
user in a mount namespace of its own; its forks share it (they are the same function version) and
cannot enter PID namespaces of their own (that needs privileges the zygote gave up): the agent
moves each into its cgroups, and their ``/proc`` is a private procfs mounted with
``hidepid=invisible``, so it lists only processes of their workspace's uid, not the host's.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import logging
import os
import pwd
import resource
import socket
import stat
import struct
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from surge.agent import pidinit
from surge.agent.mounts import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
    unshare_mounts,
)
from surge.core.sandbox import UID_BASE, ViewOp, plan_view, resolve_level, uid_for

if TYPE_CHECKING:
    from surge.agent.agent import LaunchSpec
    from surge.agent.limits import CgroupGroup

log = logging.getLogger("surge.agent.sandbox")

PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_RLIMITS = {"NOFILE": resource.RLIMIT_NOFILE, "FSIZE": resource.RLIMIT_FSIZE, "CORE": resource.RLIMIT_CORE}
PIDINIT = os.path.abspath(pidinit.__file__)
# never handed to a container: credentials of the control plane itself
PRIVATE_ENV = ("SURGE_DATABASE_URL", "PGPASSWORD", "PGPASSFILE")


@dataclass(frozen=True)
class SandboxConfig:
    """``surge server --sandbox …`` options (``ServerConfig.sandbox``)."""

    level: str = "auto"                  # auto | strict | basic | off
    user: str | None = None              # one named account for every container (default: a uid per workspace)
    pids_max: int = 4096                 # processes and threads per container
    nofile: int = 65536                  # open files per process
    fsize_mib: int = 64 * 1024           # largest file a container may write
    tmp_mib: int = 1024                  # each of /tmp, /var/tmp, /dev/shm at strict (memory: charged to the container)


@dataclass
class Confinement:
    """What one container's process applies to itself (JSON-able: it crosses the zygote socket)."""

    level: str
    uid: int | None = None
    gid: int | None = None
    mount_ns: bool = False
    pid_ns: bool = False
    view: list[ViewOp] = field(default_factory=list)
    chown: list[str] = field(default_factory=list)     # mount targets handed to the sandbox user
    rlimits: dict[str, int] = field(default_factory=dict)
    join: list[str] = field(default_factory=list)      # further cgroup.procs files (v1 pids)
    no_new_privs: bool = True
    workdir: str | None = None
    # no PID namespace (a snapshot zygote and its forks): a private /proc with hidepid=invisible,
    # so only processes of this workspace's uid are visible in it, never the host's
    hide_pids: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Confinement:
        view = [ViewOp(**op) for op in data.get("view", ())]
        return cls(**{**data, "view": view})

    # -- in the child (root until drop; nothing may be imported from here on) ----------------
    def setup(self, *, mounts_done: bool = False) -> None:
        """Everything that needs privileges: cgroups, the file-system view, limits."""
        pid = str(os.getpid())
        for procs in self.join:
            with open(procs, "w") as f:
                f.write(pid)
        if self.mount_ns:
            if not mounts_done:
                unshare_mounts()
            self._build_view()
            if self.hide_pids:
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
            for target in self.chown:
                os.chown(target, self.uid if self.uid is not None else -1, self.gid if self.gid is not None else -1)
        for name, value in self.rlimits.items():
            limit = _RLIMITS[name]
            _, hard = resource.getrlimit(limit)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, value))
        if self.no_new_privs and _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")

    def _build_view(self) -> None:
        fds: dict[str, int] = {}
        try:
            for op in self.view:         # opened before anything is covered
                if op.kind == "bind":
                    with contextlib.suppress(FileNotFoundError):
                        fds[op.path] = os.open(op.path, os.O_PATH | os.O_CLOEXEC)
            covered: list[str] = []
            for op in self.view:
                inside = any(op.path.startswith(c.rstrip("/") + "/") for c in covered)
                if op.kind == "tmpfs":
                    if inside:
                        os.makedirs(op.path, exist_ok=True)
                    elif not os.path.isdir(op.path):
                        continue          # nothing there to hide (and nothing is created on the host)
                    mount("tmpfs", op.path, "tmpfs", MS_NOSUID | MS_NODEV, op.options)
                    covered.append(op.path)
                elif op.path in fds:
                    os.makedirs(op.path, exist_ok=True)
                    mount(f"/proc/self/fd/{fds[op.path]}", op.path, None, MS_BIND | MS_REC, None)
                    if not op.writable:
                        mount("none", op.path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        finally:
            for fd in fds.values():
                os.close(fd)

    def finish(self) -> None:
        """After ``setup`` where there is no PID namespace to make: become the user, move in."""
        pidinit.drop(self.uid, self.gid)
        if self.workdir:
            os.chdir(self.workdir)

    def enter_forked(self) -> None:
        """A template zygote's child (root, single-threaded, its own session): confine this process.
        With a PID namespace, returns in the namespace's container process (see ``pidinit``)."""
        self.setup()
        if self.pid_ns:
            pidinit.split(self.uid, self.gid)
            if self.workdir:
                os.chdir(self.workdir)
        else:
            self.finish()

    def argv(self, python: str) -> list[str]:
        """The command a fresh container runs (through ``pidinit`` when it gets a PID namespace)."""
        runtime = [python, "-m", "surge.runtime"]
        if not self.pid_ns:
            return runtime
        ids = ["-" if v is None else str(v) for v in (self.uid, self.gid)]
        return [sys.executable, "-I", "-S", PIDINIT, *ids, "--", *runtime]


def preexec_confine(conf: Confinement, *, mounts_done: bool) -> None:
    """The end of a spawned process's pre-exec hook; a failure is written to its stderr (the
    container's log) first, since ``subprocess`` only reports that the hook raised."""
    try:
        conf.setup(mounts_done=mounts_done)
        if conf.pid_ns:
            if conf.workdir:
                os.chdir(conf.workdir)    # pidinit drops privileges after its own privileged steps
        else:
            conf.finish()
    except OSError as exc:
        os.write(2, f"surge: cannot confine the container ({conf.level} sandbox): {exc}\n".encode())
        raise


# -- the agent's side ------------------------------------------------------------------------


def _traversable(path: str, uid: int, gid: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return True                      # missing: nothing to cover
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _prefix(python: str) -> list[str]:
    """Directories an interpreter needs: its venv (if it is one) and the real installation."""
    out = []
    venv = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        out.append(venv)
    out.append(os.path.dirname(os.path.dirname(os.path.realpath(python))))
    return out


class Sandbox:
    """The agent's sandbox: resolves the level at start, confines each container, cleans up."""

    def __init__(self, config: SandboxConfig, *, home: Path | None, embedded: bool, run_dir: str) -> None:
        self.config = config
        self.home = home
        self.embedded = embedded
        self.run_dir = run_dir
        self.level = "off" if config.level == "off" else "basic"    # until start() has probed
        self.missing: str | None = None      # why strict is unavailable here (None: it is)
        self._taken: dict[int, str] = {}
        self._named: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._chowned: set[tuple[str, int]] = set()
        self._dirs: dict[str, str] = {}      # container or zygote id -> its directory under run_dir/c
        self._links: dict[str, str] = {}    # container id -> host symlink of its web socket
        self._base_needed = self._server_paths()

    async def start(self) -> None:
        from surge.agent.hostcheck import strict_missing

        if self.config.level in ("strict", "auto") and not (self.config.level == "auto" and self.embedded):
            self.missing = await strict_missing()
        self.level = resolve_level(self.config.level, embedded=self.embedded, strict_missing=self.missing)
        if self.config.user:
            try:
                pw = pwd.getpwnam(self.config.user)
            except KeyError:
                raise ValueError(f"--sandbox-user {self.config.user!r}: no such account; create it with "
                                 f"`useradd --system --no-create-home --shell /usr/sbin/nologin "
                                 f"{self.config.user}` or leave the option out (a uid per workspace)") from None
            if pw.pw_uid == 0:
                raise ValueError(f"--sandbox-user {self.config.user!r} is root: pick an unprivileged account")
            self._named = (pw.pw_uid, pw.pw_gid)
        if self.level == "strict":
            self._prepare_host()
        log.info("sandbox: %s%s", self.level, f" (strict unavailable: {self.missing})" if self.missing else "")

    @property
    def strict(self) -> bool:
        return self.level == "strict"

    @property
    def pids_max(self) -> int | None:
        return self.config.pids_max if self.level != "off" and self.config.pids_max > 0 else None

    def ids(self, workspace: str) -> tuple[int, int]:
        if self._named is not None:
            return self._named
        with self._lock:
            uid = uid_for(workspace, self._taken)
            self._taken[uid] = workspace
        return uid, uid

    def _server_paths(self) -> list[str]:
        paths = {*_prefix(sys.executable), sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix)}
        import surge

        paths.add(os.path.dirname(os.path.dirname(os.path.abspath(surge.__file__))))
        for p in sys.path:
            if p and os.path.isabs(p) and os.path.isdir(p):
                paths.add(p)
        return sorted(paths)

    def _prepare_host(self) -> None:
        """The agent's run directory: traversable, not listable; its socket connectable (each
        connection is checked against the container's process: ``peer_ok``)."""
        os.chmod(self.run_dir, 0o711)
        os.makedirs(os.path.join(self.run_dir, "c"), mode=0o711, exist_ok=True)
        os.chmod(os.path.join(self.run_dir, "c"), 0o711)
        if self.home is not None:
            weights = self.home / "cache" / "weights"
            for d in (weights, weights / "sha256", weights / "locks"):
                d.mkdir(parents=True, exist_ok=True)
                os.chmod(d, 0o1777)     # shared by every workspace's containers, like /tmp

    def agent_socket_ready(self, socket_path: str) -> None:
        if self.strict:
            os.chmod(socket_path, 0o666)

    # -- per container -------------------------------------------------------------------------
    def limits(self) -> dict[str, int]:
        c = self.config
        return {"NOFILE": c.nofile, "FSIZE": c.fsize_mib << 20, "CORE": 0}

    def confine(self, spec: LaunchSpec, cgroup: CgroupGroup | None, *, holder: str | None = None,
                pid_ns: bool = True) -> tuple[Confinement | None, dict[str, str]]:
        """The confinement of a container (or, with ``holder``, of a snapshot zygote: no PID
        namespace) and the environment it needs; (None, {}) at ``off``."""
        if self.level == "off":
            return None, {}
        join = cgroup.extra_procs() if cgroup is not None else []
        if self.level == "basic":
            return Confinement("basic", rlimits=self.limits(), join=join), {}
        uid, gid = self.ids(spec.workspace)
        own = self._own_dir(holder or spec.container_id, uid, gid)
        if holder is None:
            self._link_web(spec.container_id, own)
        home = str(self.home) if self.home is not None else None
        # the server's own paths, but never SURGE_HOME or a directory holding it (a server started with
        # its working directory there would otherwise bind the database back)
        needed = [(p, False) for p in self._base_needed
                  if home is None or not (p == home or home.startswith(p.rstrip("/") + "/")
                                          or p.startswith(home + "/"))]
        needed += [(p, False) for p in self._spec_paths(spec)]
        needed.append((own, True))
        if self.home is not None and (self.home / "cache" / "weights").is_dir():
            needed.append((str(self.home / "cache" / "weights"), True))
        chown: list[str] = []
        workdir = "/tmp"
        if spec.mounts is not None:
            for m in spec.mounts.mounts:
                needed.append((m.target, True))
                if m.kind == "tmpfs" or m.kind == "overlay":
                    chown.append(m.target)
                if m.kind == "overlay":
                    self._chown_tree(m.source, uid, gid)
            workdir = spec.mounts.workdir or workdir
        tmp = f"mode=1777,size={self.config.tmp_mib}m"
        hidden = {"/tmp": tmp, "/var/tmp": tmp, "/dev/shm": tmp}
        if self.home is not None:
            hidden[str(self.home)] = "mode=0755,size=64k"
        view = plan_view(needed, hidden, lambda d: not _traversable(d, uid, gid))
        conf = Confinement("strict", uid=uid, gid=gid, mount_ns=True, pid_ns=pid_ns, view=view, chown=chown,
                           rlimits=self.limits(), join=join, workdir=workdir, hide_pids=not pid_ns)
        env = {"SURGE_AGENT_SOCK": os.path.join(own, "agent.sock"), "HOME": "/tmp", "TMPDIR": "/tmp",
               "USER": f"surge-{uid}", "LOGNAME": f"surge-{uid}"}
        return conf, env

    def _spec_paths(self, spec: LaunchSpec) -> list[str]:
        out = []
        if spec.python:
            out += _prefix(spec.python)
            if self.home is not None and spec.python.startswith(str(self.home / "images") + "/"):
                out.append(str(Path(spec.python).parents[2]))        # images/<hash>
                out.append(str(self.home / "images" / ".runtime"))   # what its .pth files link to
        src = spec.function.get("source_dir")
        if src:
            out.append(str(src))
        if self.home is not None:
            for p in out:
                if p.startswith(str(self.home) + "/") and os.path.isdir(p):
                    os.chmod(p, os.stat(p).st_mode | 0o555)   # made by mkdtemp: 0700
        return out

    def _own_dir(self, key: str, uid: int, gid: int) -> str:
        d = self._dirs.get(key)
        if d is not None:
            return d
        d = os.path.join(self.run_dir, "c", key)
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chown(d, uid, gid)
        sock = os.path.join(self.run_dir, "agent.sock")
        with contextlib.suppress(FileExistsError):
            os.link(sock, os.path.join(d, "agent.sock"))     # the agent's socket, reachable from inside
        self._dirs[key] = d
        return d

    def _link_web(self, container_id: str, own: str) -> None:
        """A web endpoint's socket is made in the container's own directory; the gateway finds it at
        the usual place through a symlink."""
        from surge.wire import web_socket_path

        link = web_socket_path(self.run_dir, container_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(web_socket_path(own, container_id), link)
        self._links[container_id] = link

    def snapshot_child_env(self, zygote_id: str, container_id: str) -> dict[str, str]:
        """A snapshot zygote's child shares its zygote's directory (it sees the zygote's view)."""
        d = self._dirs.get(zygote_id)
        if d is None or not self.strict:
            return {}
        self._link_web(container_id, d)
        return {"SURGE_AGENT_SOCK": os.path.join(d, "agent.sock")}

    def _chown_tree(self, root: str, uid: int, gid: int) -> None:
        """Hand a volume's committed version to the workspace's user (once per version: versions
        are immutable and hard-linked, so later ones mostly share these inodes)."""
        key = (root, uid)
        if key in self._chowned:
            return
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
                with contextlib.suppress(OSError):
                    st = os.lstat(name)
                    if st.st_uid != uid or st.st_gid != gid:
                        os.lchown(name, uid, gid)
        self._chowned.add(key)

    def adopt(self, pid: int, cgroup: CgroupGroup | None) -> None:
        """Move a process into a container's cgroups from the outside (a snapshot zygote's child:
        it no longer has the privileges to join them itself)."""
        if cgroup is None:
            return
        for procs in [cgroup.procs_file(), *cgroup.extra_procs()]:
            if procs is not None:
                with open(procs, "w") as f:
                    f.write(str(pid))

    def release(self, key: str) -> None:
        d = self._dirs.pop(key, None)
        link = self._links.pop(key, None)
        if link is not None:
            with contextlib.suppress(OSError):
                os.unlink(link)
        if d is not None:
            for name in os.listdir(d) if os.path.isdir(d) else ():
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(d, name))
            with contextlib.suppress(OSError):
                os.rmdir(d)

    def peer_ok(self, sock: Any, container_pid: int | None) -> bool:
        """At ``strict`` the agent socket is reachable by every sandbox user: a connection speaks
        for a container only if it comes from that container's session."""
        if not self.strict:
            return True
        if sock is None or container_pid is None:
            return False
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", creds)[0]
            return pid == container_pid or os.getsid(pid) == container_pid
        except OSError:
            return False

    def describe(self) -> dict[str, Any]:
        """For /health and ``surge doctor``."""
        return {"level": self.level, "requested": self.config.level, "strict_unavailable": self.missing,
                "user": self.config.user or (f"uid {UID_BASE}+ per workspace" if self.strict else None),
                "pids_max": self.pids_max, "nofile": self.config.nofile, "fsize_mib": self.config.fsize_mib,
                "gaps": self.gaps()}

    def gaps(self) -> list[str]:
        if self.level == "off":
            return ["the sandbox is off: containers run as the server's user with memory limits only"]
        out = ["no seccomp filter: containers share the host kernel's full system-call surface",
               "no network namespace: containers reach the network and the host's loopback services",
               "GPU memory is not isolated between containers sharing a GPU"]
        if self.level == "basic":
            out.insert(0, "basic: containers run as the server's user and see the host's files and processes")
        else:
            out.append("snapshot containers share their zygote's mount namespace and the host's PID "
                       "namespace (their /proc hides other users' processes, hidepid=invisible)")
        return out
