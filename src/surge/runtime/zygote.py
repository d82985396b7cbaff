"""A fork server ("zygote"): a process that has already done the slow part of a container start,
and forks containers on request.

Two kinds, one program:

- a **template** has imported the container runtime only; its children import the user's module
  themselves (a cold start without interpreter start-up and runtime imports);
- a **snapshot** zygote has also imported the user's module, built the ``@app.cls`` object and run
  its ``@enter(snap=True)`` hooks; its children only run the ``snap=False`` hooks, and share the
  zygote's memory copy-on-write.

The agent starts it (``python -m surge.runtime`` with ``SURGE_ZYGOTE_FD``) with one end of a Unix
socket pair and speaks ``surge.wire`` frames over it:

  agent → zygote   load  {function: spec | None}; body = pickled class parameters
                   fork  {container_id, env, cwd, cgroup_procs, memory_limit_mib}
                         + the container's stdout and stderr pipe ends (SCM_RIGHTS)
                   spare {container_id: spare id, join: [cgroup.procs files]}
                         + one end of a socket pair the agent keeps the other end of
  zygote → agent   loaded {pid, phases}   |  load_failed {error, traceback, cuda}
                   forked {container_id, pid}  |  fork_failed {container_id, error}
                   exit   {pid, returncode}    (os.waitstatus_to_exitcode: -N for signal N)

The zygote reaps its children (SIGCHLD wakes the loop) and reports each exit, so the agent
classifies a forked container's end exactly like a spawned one's. A child starts a session of its
own (so a kill reaches its process group), takes its pipes as stdout/stderr, its environment
(``CUDA_VISIBLE_DEVICES``, secrets, its container id), its memory cgroup or rlimit, re-seeds
``random`` and ``numpy.random``, and runs the normal container main loop.

A **spare** is a child forked ahead of demand (``agent.starts``): it starts its session, joins the
cgroups of a container-to-be (on cgroup v1 each migration waits for an RCU grace period, ~15 ms:
the slow part of a snapshot start), tells the agent ``ready`` over its own socket and blocks there.
The agent's ``assign`` frame on that socket (the ``fork`` fields, minus the cgroup joins, with the
pipe ends) turns it into the container; EOF before that makes it exit. The zygote reports its
``forked`` and ``exit`` like any child's.

CUDA must not be initialised in a snapshot: a forked child cannot use the parent's CUDA context.
After the import and after each ``snap=True`` hook the zygote checks (``torch.cuda.is_initialized()``
when torch is imported, and open ``/dev/nvidia*`` files) and refuses the snapshot, naming the step.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from surge import wire
from surge.agent.sandbox import Confinement  # a template's children confine themselves (issue 5)
from surge.runtime import container  # what every child runs: imported once, here
from surge.runtime.service import Service
from surge.sdk import serialization  # noqa: F401  (arguments and results: cloudpickle)


class SnapshotRefused(Exception):
    """The snapshot would hold state a forked child cannot use (CUDA)."""


def cuda_evidence(proc_fd_dir: str = "/proc/self/fd") -> str | None:
    """Why this process counts as having initialised CUDA, or None."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    is_initialized = getattr(cuda, "is_initialized", None)
    if callable(is_initialized):
        try:
            if is_initialized():
                return "torch.cuda.is_initialized() is True"
        except Exception:
            pass
    devices = nvidia_handles(proc_fd_dir)
    if devices:
        return f"the process holds open handles to {', '.join(devices)}"
    return None


def nvidia_handles(proc_fd_dir: str = "/proc/self/fd") -> list[str]:
    """The ``/dev/nvidia*`` device files this process has open (sorted, without duplicates)."""
    found: set[str] = set()
    try:
        names = os.listdir(proc_fd_dir)
    except OSError:
        return []
    for name in names:
        try:
            target = os.readlink(os.path.join(proc_fd_dir, name))
        except OSError:
            continue
        if target.startswith("/dev/nvidia"):
            found.add(target)
    return sorted(found)


def check_no_cuda(step: str) -> None:
    evidence = cuda_evidence()
    if evidence is not None:
        raise SnapshotRefused(
            f"memory snapshot refused: CUDA was initialised during {step} ({evidence}). A forked "
            "container cannot use its parent's CUDA context. Load weights to the CPU in "
            "@surge.enter(snap=True) and move them to the GPU in @surge.enter(snap=False) (do not call "
            "torch.cuda.* before that), or set enable_memory_snapshot=False. Until then this function "
            "starts without a snapshot.")


class Channel:
    """The zygote's end of the agent's socket: blocking frames, with file descriptors passed
    alongside (kept in arrival order: each ``fork`` frame takes the two that came with it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._fds: list[int] = []

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self.sock.sendall(wire.encode(header, body))

    def fill(self) -> bool:
        """Read what is there (blocking until something is); False at EOF."""
        fds = array.array("i")
        data, ancdata, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        self._fds.extend(fds)
        if not data:
            return False
        self._buf += data
        return True

    def frames(self) -> list[tuple[dict[str, Any], bytes]]:
        """The complete frames received so far."""
        out = []
        while len(self._buf) >= 8:
            total = int.from_bytes(self._buf[:4], "big")
            hlen = int.from_bytes(self._buf[4:8], "big")
            if len(self._buf) < 8 + total:
                break
            raw = bytes(self._buf[8:8 + total])
            del self._buf[:8 + total]
            out.append((json.loads(raw[:hlen]), raw[hlen:]))
        return out

    def recv(self) -> tuple[dict[str, Any], bytes]:
        while True:
            got = self.frames()
            if got:
                assert len(got) == 1, "the agent sends one frame and waits for the answer"
                return got[0]
            if not self.fill():
                raise EOFError("the agent closed the zygote's socket")

    def take_fds(self, n: int) -> list[int]:
        taken, self._fds = self._fds[:n], self._fds[n:]
        if len(taken) != n:
            raise RuntimeError(f"expected {n} file descriptors with the frame, got {len(taken)}")
        return taken


class Zygote:
    def __init__(self, chan: Channel, service: Service | None) -> None:
        self.chan = chan
        self.service = service
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        while True:
            sock = self.chan.sock.fileno()
            ready, _, _ = select.select([sock, self._wake_r], [], [])
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                self.reap()
            if sock in ready:
                if not self.chan.fill():
                    return      # the agent is gone (its containers notice on their own sockets)
                for header, _ in self.chan.frames():
                    if header.get("t") == "fork":
                        self.fork(header)
                    elif header.get("t") == "spare":
                        self.fork(header, spare=True)
            self.reap()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.chan.send({"t": "exit", "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def fork(self, req: dict[str, Any], *, spare: bool = False) -> None:
        """Fork a container (with its two pipe ends), or a spare (with its end of the agent's socket
        pair: it waits there for its assignment)."""
        cid = str(req["container_id"])
        try:
            fds = self.chan.take_fds(1 if spare else 2)
        except RuntimeError as exc:
            self.chan.send({"t": "fork_failed", "container_id": cid, "error": str(exc)})
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            with warnings.catch_warnings():
                # user imports (BLAS pools) may have started threads; fork keeps only this one
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.chan.send({"t": "fork_failed", "container_id": cid, "error": f"fork failed: {exc}"})
            return
        if pid == 0:
            self._child(req, fds, spare=spare)     # never returns
        for fd in fds:
            os.close(fd)
        self.chan.send({"t": "forked", "container_id": cid, "pid": pid})

    def _child(self, req: dict[str, Any], fds: list[int], *, spare: bool = False) -> None:
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.chan.sock.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            if spare:
                req, fds = wait_assignment(fds[0], [str(p) for p in req.get("join") or ()])
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            apply_limits(req.get("cgroup_procs"), req.get("memory_limit_mib"))
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})
            if req.get("cwd"):
                os.chdir(str(req["cwd"]))
            if req.get("sandbox"):
                Confinement.from_json(req["sandbox"]).enter_forked()
            reseed()
            container.main(self.service)
            code = 0
        except SystemExit as exc:       # exit the way an interpreter would: sys.exit(3) is code 3
            code = exit_code(exc.code)
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)


def wait_assignment(fd: int, join: list[str]) -> tuple[dict[str, Any], list[int]]:
    """A spare's life before it is a container: join the cgroups (the slow part, done ahead of
    demand), say ``ready``, wait for the ``assign`` frame and its two pipe ends. EOF: not needed
    after all (its zygote is dropped or the agent is going), exit quietly."""
    chan = Channel(socket.socket(fileno=fd))
    try:
        pid = str(os.getpid())
        for procs in join:
            with open(procs, "w") as f:
                f.write(pid)
    except OSError as exc:
        with contextlib.suppress(OSError):
            chan.send({"t": "spare_failed", "error": f"could not join {exc.filename}: {exc.strerror}"})
        os._exit(1)
    try:
        chan.send({"t": "ready"})
        header, _ = chan.recv()
        fds = chan.take_fds(2)
    except (EOFError, OSError):
        os._exit(0)
    chan.sock.close()
    return header, fds


def exit_code(code: object) -> int:
    """The process exit code of ``SystemExit(code)``, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def apply_limits(cgroup_procs: str | None, limit_mib: int | None) -> None:
    """Join the container's memory cgroup, or cap its data segment (as ``agent.limits.preexec``
    does for a spawned container)."""
    if cgroup_procs:
        with open(cgroup_procs, "w") as f:
            f.write(str(os.getpid()))
    elif limit_mib:
        limit = (int(limit_mib) + 64) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def reseed() -> None:
    """Forked containers must not share random streams: ``random`` (also re-seeded by CPython's
    own fork hook), ``numpy.random``'s global state and torch's default generator, if imported."""
    import random

    random.seed()
    # numpy.random only if the snapshot imported it (numpy 2 imports it lazily: touching np.random
    # here would import it in every child, ~10 ms); not imported means no state to share
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        with contextlib.suppress(Exception):
            np_random.seed()
    torch = sys.modules.get("torch")
    seed = getattr(torch, "seed", None)
    if callable(seed):
        with contextlib.suppress(Exception):
            seed()


def main() -> None:
    sock = socket.socket(fileno=int(os.environ.pop("SURGE_ZYGOTE_FD")))
    chan = Channel(sock)
    try:
        header, body = chan.recv()
    except EOFError:
        os._exit(0)
    spec = header.get("function")
    service: Service | None = None
    phases: dict[str, float] = {}
    if spec:
        t0 = time.perf_counter()
        try:
            service = Service.prepare(spec, body, check=check_no_cuda)
        except BaseException as exc:    # SystemExit too: a module that exits at import is a failure
            summary = str(exc) if isinstance(exc, SnapshotRefused) else f"{type(exc).__name__}: {exc}"
            chan.send({"t": "load_failed", "error": summary, "cuda": isinstance(exc, SnapshotRefused),
                       "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))})
            os._exit(3)
        phases = dict(service.phases)
        phases["snapshot"] = time.perf_counter() - t0
        if service.web is not None or service.web_methods:
            from surge.runtime import web

            web.preload()           # a web endpoint's children serve without importing uvicorn/FastAPI
    else:
        from surge.runtime import web

        web.preload()               # web endpoints' servers (uvicorn, FastAPI): ~150 ms per cold start
    # what exists now is shared with every child: keep the collector from touching (and so copying)
    # those pages in the children
    gc.collect()
    gc.freeze()
    chan.send({"t": "loaded", "pid": os.getpid(), "phases": phases,
               "rss_mib": _rss_mib()})
    Zygote(chan, service).serve()
    os._exit(0)


def _rss_mib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
