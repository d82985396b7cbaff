"""A zygote seen from the agent: a fork server process (``surge.runtime.zygote``: a template or a
memory snapshot), the socket the agent speaks to it over, and the containers it forked.

The agent makes each container's stdout and stderr pipes itself and hands the write ends to the
zygote with the ``fork`` request (SCM_RIGHTS), so it reads a forked container's output exactly as
a spawned one's. The zygote reaps its children and reports how each ended; if the zygote itself
dies, its children live on (they are in sessions of their own) and are watched through a pidfd,
their exit status unknown (``ForkedProcess.wait`` returns None and the agent calls the container
lost).

A ``Spare`` is a snapshot zygote's child forked ahead of demand (``surge.runtime.zygote``): it has
joined the cgroups of a container-to-be and waits on a socket pair of its own for ``assign``, which
carries what a ``fork`` request would, and the pipe ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from surge import wire
from surge.agent import launcher
from surge.agent.sandbox import Confinement

if TYPE_CHECKING:
    from surge.agent.limits import CgroupGroup

log = logging.getLogger("surge.agent.zygote")

FORK_TIMEOUT = 10.0      # seconds for a fork request's answer before the zygote counts as broken


class ZygoteError(Exception):
    """The zygote could not fork (or is gone)."""


class ForkedProcess:
    """A container forked by a zygote (implements ``launcher.ContainerProcess``)."""

    def __init__(self, stdout: asyncio.StreamReader | None, stderr: asyncio.StreamReader | None) -> None:
        self._pid = 0
        self._returncode: int | None = None
        self._stdout = stdout
        self._stderr = stderr
        self._done = asyncio.Event()
        self.forked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._poller: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        return self._stdout      # None: a spare, until it is assigned

    @property
    def stderr(self) -> asyncio.StreamReader | None:
        return self._stderr

    async def wait(self) -> int | None:
        await self._done.wait()
        return self._returncode

    def exited(self, returncode: int | None) -> None:
        if not self._done.is_set():
            self._returncode = returncode
            self._done.set()

    def orphaned(self) -> None:
        """Our zygote died: watch the process ourselves until it ends (status unknown)."""
        if self._done.is_set():
            return
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self._pid)
        except ProcessLookupError:
            self.exited(None)
            return
        except (OSError, AttributeError):     # no pidfd (old kernel): poll
            self._poller = asyncio.ensure_future(self._poll())
            return

        def done() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self.exited(None)

        loop.add_reader(fd, done)

    async def _poll(self) -> None:
        while _alive(self._pid):
            await asyncio.sleep(0.2)
        self.exited(None)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def _pipe_reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader


class Spare:
    """A child forked ahead of demand, in the cgroups of the container it will become, waiting for
    its assignment on ``sock`` (``StartPaths`` owns its life: ``agent.starts``)."""

    def __init__(self, zygote: Zygote, spare_id: str, sock: socket.socket, proc: ForkedProcess) -> None:
        self.zygote = zygote
        self.id = spare_id
        self.sock = sock
        self.proc = proc
        self.cgroup: CgroupGroup | None = None   # the cgroups it joined: the container's, once assigned
        self.ready = False                       # in its cgroups, waiting
        self.claimed = False                     # taken by a launch (its cgroups are the container's)
        self.assigned = False
        self.done = asyncio.Event()              # assigned, ended, or failed before it was ready
        self._writer: asyncio.StreamWriter | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.forked.done() and not self.proc._done.is_set() and self._writer is not None

    async def wait_ready(self, timeout: float = FORK_TIMEOUT) -> None:
        """Until the child has joined its cgroups; ZygoteError if it could not."""
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.forked), timeout=timeout)
            reader, self._writer = await asyncio.open_unix_connection(sock=self.sock, limit=1 << 16)
            header, _ = await asyncio.wait_for(wire.read_frame(reader), timeout=timeout)
        except TimeoutError:
            raise ZygoteError(f"the spare was not ready within {timeout:g} s") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            raise ZygoteError("the spare ended before it was ready") from None
        if header.get("t") != "ready":
            raise ZygoteError(str(header.get("error") or f"unexpected frame from the spare: {header.get('t')}"))

    async def wait_ended(self) -> None:
        """Until the process is gone (at once if it was never forked)."""
        try:
            await asyncio.shield(self.proc.forked)
        except ZygoteError:
            return
        await self.proc.wait()

    def discard(self) -> None:
        """Not needed: EOF on its socket makes it exit; SIGKILL in case it is stuck joining."""
        self.done.set()
        self.zygote.spares.pop(self.id, None)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        else:
            self.sock.close()
        if self.proc.forked.done() and not self.proc.forked.exception() and not self.proc._done.is_set():
            launcher.signal_group(self.pid, launcher.SIGKILL)


class Zygote:
    """One fork server. ``kind`` is ``"template"`` (runtime imported) or ``"snapshot"`` (the
    function's module imported and its ``@enter(snap=True)`` hooks run)."""

    def __init__(self, kind: str, key: str, zygote_id: str, *,
                 on_log: Callable[[Zygote, str, str], None] | None = None,
                 on_exit: Callable[[Zygote], None] | None = None) -> None:
        self.kind = kind
        self.key = key
        self.id = zygote_id
        self.state = "starting"          # starting | ready | failed | closed
        self.error: str | None = None    # why it failed or ended
        self.cuda = False                # it failed because CUDA was initialised in the snapshot
        self.phases: dict[str, float] = {}
        self.created_at = time.time()
        self.ready_at: float | None = None
        self.rss_mib = 0.0
        self.settled = asyncio.Event()   # ready or failed
        self.proc: asyncio.subprocess.Process | None = None
        self.children: dict[int, ForkedProcess] = {}
        self.forks = 0
        self._pending: dict[str, ForkedProcess] = {}
        self.spares: dict[str, Spare] = {}   # not yet assigned (or just assigned)
        self._sock: socket.socket | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_log = on_log
        self._on_exit = on_exit
        self.closing = False
        self.rebuild = False             # replaces one that crashed: nobody waits for it

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def _task(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def start(self, env: Mapping[str, str], *, function: dict[str, Any] | None = None, params: bytes = b"",
                    python: str | None = None, cgroup_procs: str | None = None,
                    memory_limit_mib: int | None = None, confinement: Confinement | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            theirs.set_inheritable(True)
            self.proc = await launcher.spawn_zygote(env, theirs.fileno(), cgroup_procs=cgroup_procs,
                                                    memory_limit_mib=memory_limit_mib, python=python,
                                                    confinement=confinement)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        reader, self._writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 20)
        self._writer.write(wire.encode({"t": "load", "function": function}, params))
        self._task(self._read(reader))
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._task(self._pump(self.proc.stdout, "stdout"))
        self._task(self._pump(self.proc.stderr, "stderr"))
        self._task(self._watch())

    async def fork(self, container_id: str, env: Mapping[str, str], *, cgroup_procs: str | None,
                   memory_limit_mib: int | None, cwd: str | None = None,
                   sandbox: dict[str, Any] | None = None) -> ForkedProcess:
        """Fork a container; returns once the zygote has told us its pid."""
        if self.state != "ready" or self._sock is None:
            raise ZygoteError(f"the {self.kind} zygote is {self.state}")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            # readers first, and the request registered before it is sent: the answer may come
            # back before this coroutine runs again
            proc = ForkedProcess(await _pipe_reader(out_r), await _pipe_reader(err_r))
        except BaseException:
            for fd in (out_r, out_w, err_r, err_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        self._pending[container_id] = proc
        try:
            frame = wire.encode({"t": "fork", "container_id": container_id, "env": dict(env), "cwd": cwd,
                                 "cgroup_procs": cgroup_procs, "memory_limit_mib": memory_limit_mib,
                                 "sandbox": sandbox})    # agent.sandbox.Confinement, applied by the child
            sent = socket.send_fds(self._sock, [frame], [out_w, err_w])
            if sent != len(frame):
                # a stream socket may take part of a big frame: the rest follows without fds
                assert self._writer is not None
                self._writer.write(frame[sent:])
        except (OSError, AssertionError) as exc:
            self._pending.pop(container_id, None)
            raise ZygoteError(f"could not reach the {self.kind} zygote: {exc}") from None
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            await asyncio.wait_for(asyncio.shield(proc.forked), timeout=FORK_TIMEOUT)
        except TimeoutError:
            self._pending.pop(container_id, None)
            self.kill()
            raise ZygoteError(f"the {self.kind} zygote did not fork within {FORK_TIMEOUT:g} s") from None
        self.forks += 1
        return proc

    def spare(self, spare_id: str, join: list[str]) -> Spare:
        """Ask for a spare that joins the cgroups whose ``cgroup.procs`` files are ``join``; await
        ``Spare.wait_ready`` before assigning it."""
        if self.state != "ready" or self._sock is None:
            raise ZygoteError(f"the {self.kind} zygote is {self.state}")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = ForkedProcess(None, None)
        self._pending[spare_id] = proc
        try:
            frame = wire.encode({"t": "spare", "container_id": spare_id, "join": join})
            sent = socket.send_fds(self._sock, [frame], [theirs.fileno()])
            if sent != len(frame):
                assert self._writer is not None
                self._writer.write(frame[sent:])
        except (OSError, AssertionError) as exc:
            self._pending.pop(spare_id, None)
            ours.close()
            raise ZygoteError(f"could not reach the {self.kind} zygote: {exc}") from None
        finally:
            theirs.close()
        sp = Spare(self, spare_id, ours, proc)
        self.spares[spare_id] = sp
        return sp

    async def assign(self, sp: Spare, container_id: str, env: Mapping[str, str], *, memory_limit_mib: int | None,
                     cwd: str | None = None, sandbox: dict[str, Any] | None = None) -> ForkedProcess:
        """Turn a ready spare into the container ``container_id``: the ``fork`` request's fields
        (its cgroups are joined already) and its pipe ends, on the spare's own socket."""
        if sp.assigned or not sp.alive or self.state != "ready":
            raise ZygoteError("the spare is gone")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            sp.proc._stdout = await _pipe_reader(out_r)
            sp.proc._stderr = await _pipe_reader(err_r)
            frame = wire.encode({"t": "assign", "container_id": container_id, "env": dict(env), "cwd": cwd,
                                 "cgroup_procs": None, "memory_limit_mib": memory_limit_mib, "sandbox": sandbox})
            sent = socket.send_fds(sp.sock, [frame], [out_w, err_w])
            if sent != len(frame):
                assert sp._writer is not None
                sp._writer.write(frame[sent:])
        except (OSError, AssertionError) as exc:
            sp.discard()
            raise ZygoteError(f"could not reach the spare: {exc}") from None
        finally:
            for fd in (out_w, err_w):
                os.close(fd)
            if sp.proc._stdout is None:
                os.close(out_r)
            if sp.proc._stderr is None:
                os.close(err_r)
        sp.assigned = True
        sp.done.set()
        self.spares.pop(sp.id, None)
        if sp._writer is not None:
            sp._writer.close()           # the child has what it needs; its end closes on its own
            sp._writer = None
        self.forks += 1
        return sp.proc

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header, _ = await wire.read_frame(reader)
                self._on_frame(header)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("bad frame from zygote %s", self.id)
            self.kill()
        finally:
            self._lost("its socket closed")

    def _on_frame(self, header: dict[str, Any]) -> None:
        t = header.get("t")
        if t == "exit":
            proc = self.children.pop(int(header["pid"]), None)
            if proc is not None:
                proc.exited(header.get("returncode"))
        elif t == "forked":
            proc = self._pending.pop(str(header["container_id"]), None)
            if proc is not None:
                proc._pid = int(header["pid"])
                self.children[proc.pid] = proc
                proc.forked.set_result(proc.pid)
        elif t == "fork_failed":
            proc = self._pending.pop(str(header["container_id"]), None)
            if proc is not None:
                proc.forked.set_exception(ZygoteError(str(header.get("error"))))
        elif t == "loaded":
            self.state = "ready"
            self.ready_at = time.time()
            self.phases = {k: float(v) for k, v in (header.get("phases") or {}).items()}
            self.rss_mib = float(header.get("rss_mib") or 0.0)
            self.settled.set()
        elif t == "load_failed":
            self.state = "failed"
            self.cuda = bool(header.get("cuda"))
            self.error = str(header.get("error"))
            if not self.cuda and header.get("traceback") and self._on_log is not None:
                for line in str(header["traceback"]).rstrip().splitlines():
                    self._on_log(self, "stderr", line)
            self.settled.set()

    def _lost(self, why: str) -> None:
        if self.state in ("starting", "ready"):
            self.state = "failed" if self.state == "starting" else "closed"
            self.error = self.error or f"the {self.kind} zygote ended ({why})"
        self.settled.set()
        for proc in self._pending.values():
            if not proc.forked.done():
                proc.forked.set_exception(ZygoteError(f"the {self.kind} zygote ended"))
        self._pending.clear()
        for proc in self.children.values():
            proc.orphaned()
        self.children.clear()
        for sp in list(self.spares.values()):
            if not sp.assigned:
                sp.discard()          # orphaned: EOF makes it exit, its watch reports the end
        self.spares.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        buf = b""
        while chunk := await stream.read(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                self._log(name, raw)
        if buf:
            self._log(name, buf)

    def _log(self, name: str, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        if self._on_log is not None:
            self._on_log(self, name, text)
        else:
            log.info("zygote %s %s: %s", self.id, name, text)

    async def _watch(self) -> None:
        assert self.proc is not None
        rc = await self.proc.wait()
        if rc and not self.closing and self.state != "failed":
            sig = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
            self.error = f"the {self.kind} zygote died ({sig})"
        self._lost(f"exit {rc}")
        if self.state == "ready":
            self.state = "closed"
        if self._on_exit is not None:
            self._on_exit(self)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            launcher.signal_group(self.proc.pid, launcher.SIGKILL)

    def close(self) -> None:
        """Stop the zygote; the containers it forked go on until they are stopped themselves."""
        self.closing = True
        if self._writer is not None:
            self._writer.close()      # EOF: the zygote exits
            self._writer = None
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    async def wait_closed(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        except TimeoutError:
            self.kill()
