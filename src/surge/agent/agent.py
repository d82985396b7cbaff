"""The local node agent: runs containers as worker processes and speaks the wire protocol with them.

It owns process lifetimes (launch, graceful shutdown, SIGTERM→SIGKILL kills, per-input deadlines,
start-up deadlines), the node's allocation of GPUs/CPU/memory, and log capture. It decides nothing
about *which* input runs *where*: that is the dispatcher's, told through ``Listener`` callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from surge import wire
from surge.agent import launcher
from surge.agent.limits import CgroupGroup, MemoryLimiter
from surge.agent.mounts import MountPlan
from surge.agent.sandbox import PRIVATE_ENV, Sandbox, SandboxConfig
from surge.agent.starts import StartAborted, StartPaths
from surge.core.models import ContainerState, NodeInventory, NodeUsage, Resources
from surge.core.placement import Placement, allocate, release

log = logging.getLogger("surge.agent")

KILL_GRACE = 3.0   # seconds between SIGTERM and SIGKILL


@dataclass
class LaunchSpec:
    container_id: str
    workspace: str
    app_id: str
    function_id: str
    function_tag: str
    pool_key: str
    function: dict[str, Any]          # sent to the container in the init frame
    params: bytes
    resources: Resources
    placement: Placement
    env: dict[str, str]
    max_inputs: int
    startup_timeout: float
    memory_limit_mib: int | None
    max_result_bytes: int
    python: str | None = None         # the image's interpreter (None: the agent's own)
    mounts: MountPlan | None = None   # volumes, image files, working directory (surge.agent.mounts)
    # start phases measured before the launch: "placement" (choosing the node and GPUs) and "image"
    # (its environment: interpreter, mounts, source), set by the scaler
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class Inflight:
    attempt: int
    deadline: float | None
    started: float | None          # None while it waits in the container's queue (prefetched)
    timeout: float | None = None


@dataclass
class ExitInfo:
    exit_code: int | None
    signal: int | None
    oom_killed: bool
    kill_reason: str | None           # why *we* stopped it: STOP, TIMEOUT, CANCELLED, STARTUP_TIMEOUT, LOST
    inflight: dict[str, Inflight]
    timed_out: set[str]
    init_error: tuple[str, str, bytes] | None   # (summary, traceback, pickled exception)
    stderr_tail: str = ""


@dataclass(eq=False)
class ContainerHandle:
    spec: LaunchSpec
    created_at: float
    state: ContainerState = ContainerState.STARTING
    proc: launcher.ContainerProcess | None = None
    writer: asyncio.StreamWriter | None = None
    ready_at: float | None = None
    idle_since: float | None = None
    inflight: dict[str, Inflight] = field(default_factory=dict)
    reserved: int = 0
    requests: int = 0              # web requests being proxied to it (server/gateway.py)
    prefetch: int = 0              # inputs it may hold beyond max_inputs (set by the dispatcher)
    kill_reason: str | None = None
    timed_out: set[str] = field(default_factory=set)
    init_error: tuple[str, str, bytes] | None = None
    # start-up phases in seconds, plus "start" (fresh | template | snapshot | zygote) and, when a
    # snapshot was wanted but not used, "fallback" (why)
    phases: dict[str, float | str] = field(default_factory=dict)
    cgroup: CgroupGroup | None = None
    inputs_done: int = 0
    stderr_tail: list[str] = field(default_factory=list)
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.spec.container_id

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def live(self) -> bool:
        return self.state in (ContainerState.STARTING, ContainerState.IDLE, ContainerState.BUSY)

    @property
    def free_slots(self) -> int:
        if self.state not in (ContainerState.IDLE, ContainerState.BUSY) or self.writer is None:
            return 0
        return max(0, self.spec.max_inputs + self.prefetch - len(self.inflight) - self.reserved - self.requests)


class Listener(Protocol):
    async def on_ready(self, h: ContainerHandle) -> None: ...
    async def on_outputs(self, h: ContainerHandle, items: list[tuple[dict[str, Any], bytes]]) -> None: ...
    async def on_heartbeat(self, h: ContainerHandle, running: list[tuple[str, int]]) -> None: ...
    async def on_exit(self, h: ContainerHandle, info: ExitInfo) -> None: ...
    def on_state(self, h: ContainerHandle, kind: str, at: float) -> None: ...
    def on_log(self, h: ContainerHandle, stream: str, text: str, at: float) -> None: ...


class LocalAgent:
    """Runs containers on this machine."""

    def __init__(self, inventory: NodeInventory, listener: Listener, *, kill_grace: float = KILL_GRACE,
                 sandbox: SandboxConfig | None = None, home: str | None = None, embedded: bool = False) -> None:
        self.inventory = inventory
        self.listener = listener
        self.usage = NodeUsage()
        self.containers: dict[str, ContainerHandle] = {}
        self.kill_grace = kill_grace
        self._run_dir = tempfile.mkdtemp(prefix="surge-agent-")   # short path: AF_UNIX limit is 108 bytes
        self.socket_path = os.path.join(self._run_dir, "agent.sock")
        self._server: asyncio.base_events.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.limiter = MemoryLimiter(os.path.basename(self._run_dir))
        # issue 5: users, namespaces, limits (agent/sandbox.py); off unless the server configures it
        self.sandbox = Sandbox(sandbox or SandboxConfig(level="off"), home=Path(home) if home else None,
                               embedded=embedded, run_dir=self._run_dir)
        self.starts = StartPaths(self)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._on_connect, path=self.socket_path,
                                                       limit=1 << 20)
        await self.sandbox.start()
        self.sandbox.agent_socket_ready(self.socket_path)
        self._timer = asyncio.create_task(self._deadlines())
        await self.starts.start()

    async def close(self) -> None:
        if self._timer:
            self._timer.cancel()
        for h in list(self.containers.values()):
            self.kill(h, "STOP", grace=1.0)
        waits = [h.exited.wait() for h in self.containers.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout=5.0)
        await self.starts.close()
        if self._server:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        self.limiter.close()
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
            os.rmdir(self._run_dir)

    def node_view(self) -> tuple[NodeInventory, NodeUsage]:
        return self.inventory, self.usage

    def _task(self, coro: Any) -> asyncio.Task[Any]:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # -- launching -----------------------------------------------------------------------------
    def container_env(self, spec: LaunchSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}   # not the server's credentials
        env.update(spec.env)
        visible = ",".join(str(i) for i in spec.placement.gpu_indices)
        env.update({
            "SURGE_CONTAINER_ID": spec.container_id,
            "SURGE_AGENT_SOCK": self.socket_path,
            "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": visible,
            "NVIDIA_VISIBLE_DEVICES": visible or "void",
            "SURGE_GPU_TYPE": spec.placement.gpu_type or "",
        })
        return env

    # -- memory snapshots (the scaler keeps one per snapshot pool; agent/starts.py builds them) --
    def snapshot_wanted(self, pool_key: str) -> bool:
        return self.starts.wanted(pool_key)

    def prepare_snapshot(self, spec: LaunchSpec) -> None:
        self.starts.prepare(spec)

    def snapshot_keys(self) -> list[str]:
        return list(self.starts.snapshots)

    def drop_snapshot(self, pool_key: str) -> None:
        self.starts.drop(pool_key)

    async def launch(self, spec: LaunchSpec) -> ContainerHandle:
        now = time.time()
        h = ContainerHandle(spec=spec, created_at=now)
        h.phases.update(spec.phases)
        self.containers[spec.container_id] = h
        self.usage = allocate(self.usage, spec.resources, spec.placement)
        # a snapshot pool's ready spare comes with its cgroups joined (agent/starts.py: spares)
        if not self.starts.claim_spare(h) and (spec.memory_limit_mib or self.sandbox.pids_max):
            h.cgroup = self.limiter.create(spec.container_id, spec.memory_limit_mib, pids_max=self.sandbox.pids_max)
        self.listener.on_state(h, "started", now)
        if self.starts.must_wait(spec):
            self._task(self._start(h))     # its snapshot is being built: the scaler need not wait
        else:
            await self._start(h)
        return h

    async def _start(self, h: ContainerHandle) -> None:
        """Start the process by the fastest path there is (``agent.starts``), then watch it."""
        t0 = time.time()
        try:
            h.proc = await self.starts.start_process(h, self.container_env(h.spec),
                                                     h.cgroup.procs_file() if h.cgroup else None)
        except StartAborted:
            await self._finish(h, None)
            return
        except Exception as exc:
            log.exception("could not start container %s", h.id)
            h.init_error = (f"could not start the container process: {exc}", "", b"")
            self._task(self._finish(h, None))
            return
        h.phases["spawn"] = time.time() - t0
        if h.state in (ContainerState.STOPPING, ContainerState.STOPPED):   # stopped while being forked
            launcher.signal_group(h.proc.pid, launcher.SIGKILL)
        self._task(self._watch(h))

    async def _watch(self, h: ContainerHandle) -> None:
        assert h.proc is not None and h.proc.stdout is not None and h.proc.stderr is not None
        readers = [self._task(self._pump(h, h.proc.stdout, "stdout")),
                   self._task(self._pump(h, h.proc.stderr, "stderr"))]
        rc = await h.proc.wait()
        if rc is None and h.kill_reason is None:
            h.kill_reason = "LOST"      # forked by a zygote that died first: how it ended is unknown
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), timeout=2.0)
        await self._finish(h, rc)

    async def _pump(self, h: ContainerHandle, stream: asyncio.StreamReader, name: str) -> None:
        buf = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            now = time.time()
            for raw in lines:
                self._log_line(h, name, raw, now)
        if buf:
            self._log_line(h, name, buf, time.time())

    def _log_line(self, h: ContainerHandle, name: str, raw: bytes, now: float) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        if name == "stderr":
            h.stderr_tail.append(text)
            del h.stderr_tail[:-20]
        self.listener.on_log(h, name, text, now)

    async def _finish(self, h: ContainerHandle, rc: int | None) -> None:
        if h.state == ContainerState.STOPPED:
            return
        h.state = ContainerState.STOPPED
        self.usage = release(self.usage, h.spec.resources, h.spec.placement)
        self.containers.pop(h.id, None)
        oom = h.cgroup.oom_killed() if h.cgroup else False
        if h.cgroup:
            if h.cgroup.pids_refused():
                self.listener.on_log(h, "system", f"the container reached its process limit (pids.max="
                                     f"{self.sandbox.pids_max}): {h.cgroup.pids_refused()} forks refused", time.time())
            h.cgroup.remove()
        self.sandbox.release(h.id)
        info = ExitInfo(
            exit_code=rc if rc is not None and rc >= 0 else None,
            signal=-rc if rc is not None and rc < 0 else None,
            oom_killed=oom, kill_reason=h.kill_reason, inflight=dict(h.inflight), timed_out=set(h.timed_out),
            init_error=h.init_error, stderr_tail="\n".join(h.stderr_tail[-10:]),
        )
        h.inflight.clear()
        if h.writer is not None:
            h.writer.close()
        with contextlib.suppress(OSError):   # a web endpoint's socket (surge.runtime.web), if it served one
            os.unlink(wire.web_socket_path(self._run_dir, h.id))
        self.listener.on_state(h, "stopped", time.time())
        h.exited.set()
        try:
            await self.listener.on_exit(h, info)
        except Exception:
            log.exception("exit handler failed for %s", h.id)

    # -- the socket ----------------------------------------------------------------------------
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        h: ContainerHandle | None = None
        try:
            header, _ = await wire.read_frame(reader)
            h = self.containers.get(str(header.get("container_id")))
            if header.get("t") != "hello" or h is None or not h.live:
                writer.close()
                return
            if self.sandbox.strict:     # the socket is reachable by every sandbox user: is it this container?
                while h.proc is None and h.live:
                    await asyncio.sleep(0.002)
                if not self.sandbox.peer_ok(writer.get_extra_info("socket"), h.pid):
                    log.warning("refused a connection claiming to be container %s", h.id)
                    writer.close()
                    return
            spec = h.spec
            writer.write(wire.encode({"t": "init", "container_id": spec.container_id, "function": spec.function,
                                      "max_result_bytes": spec.max_result_bytes}, spec.params))
            h.writer = writer
            while True:
                header, body = await wire.read_frame(reader)
                await self._on_frame(h, header, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("bad frame from container %s", h.id if h else "?")
            if h is not None:
                self.kill(h, "LOST")
        finally:
            writer.close()

    async def _on_frame(self, h: ContainerHandle, header: dict[str, Any], body: bytes) -> None:
        t = header["t"]
        now = time.time()
        if t == "out":
            items = []
            for meta, data in zip(header["items"], wire.split_body(header, body), strict=True):
                fl = h.inflight.get(meta["input_id"])
                if meta["kind"] == "started":
                    # a prefetched input began: its timeout counts from now
                    if fl is not None and fl.attempt == meta["attempt"] and fl.started is None:
                        fl.started = now
                        fl.deadline = now + fl.timeout if fl.timeout else None
                    continue
                if meta["kind"] == "result" and fl is not None and fl.attempt == meta["attempt"]:
                    del h.inflight[meta["input_id"]]
                    h.inputs_done += 1
                items.append((meta, data))
            if not h.inflight and not h.requests and h.state == ContainerState.BUSY:
                h.state = ContainerState.IDLE
                h.idle_since = now
                self.listener.on_state(h, "idle", now)
            await self.listener.on_outputs(h, items)
        elif t == "heartbeat":
            await self.listener.on_heartbeat(h, [(r[0], int(r[1])) for r in header.get("running", ())])
        elif t == "ready":
            h.phases.update(header.get("phases", {}))
            if h.state == ContainerState.STARTING:
                h.state = ContainerState.IDLE
                h.ready_at = h.idle_since = now
                h.phases["ready"] = now - h.created_at
                self.listener.on_state(h, "ready", now)
                await self.listener.on_ready(h)
        elif t == "init_failed":
            h.init_error = (str(header.get("error", "")), str(header.get("traceback", "")), body)

    # -- sending -------------------------------------------------------------------------------
    def send_inputs(self, h: ContainerHandle, items: Sequence[tuple[dict[str, Any], bytes]]) -> bool:
        if h.writer is None or not h.live or h.state == ContainerState.STARTING:
            return False
        now = time.time()
        if "first_input" not in h.phases:
            h.phases["first_input"] = now - h.created_at
        running = sum(1 for f in h.inflight.values() if f.started is not None)
        for meta, _ in items:
            t = meta.get("timeout")
            if running < h.spec.max_inputs:
                running += 1
                h.inflight[meta["input_id"]] = Inflight(meta["attempt"], now + t if t else None, now, t)
            else:
                # queued inside the container: it reports when it starts, and the deadline begins then
                meta["notify_start"] = True
                h.inflight[meta["input_id"]] = Inflight(meta["attempt"], None, None, t)
        if h.state == ContainerState.IDLE and h.inflight:
            h.state = ContainerState.BUSY
            self.listener.on_state(h, "busy", now)
        h.writer.write(wire.encode_parts({"t": "inputs", "items": [m for m, _ in items]}, [p for _, p in items]))
        return True

    def shutdown(self, h: ContainerHandle) -> None:
        """Graceful: exit hooks run, then the process exits; killed if it takes longer than the grace."""
        if not h.live:
            return
        h.state = ContainerState.STOPPING
        h.kill_reason = h.kill_reason or "STOP"   # (or EVICTED, set by the scaler)
        if h.writer is not None:
            with contextlib.suppress(Exception):
                h.writer.write(wire.encode({"t": "shutdown"}))
            self._task(self._kill_later(h, self.kill_grace + 10.0, launcher.SIGTERM))
        else:
            self.kill(h, "STOP")

    def kill(self, h: ContainerHandle, reason: str, *, timed_out: Sequence[str] = (),
             grace: float | None = None) -> None:
        """SIGTERM the container's process group now, SIGKILL after the grace period."""
        h.timed_out.update(timed_out)
        if h.state == ContainerState.STOPPED:
            return
        if h.kill_reason in (None, "STOP") or reason in ("TIMEOUT", "CANCELLED"):
            h.kill_reason = reason
        h.state = ContainerState.STOPPING
        if h.proc is not None:
            launcher.signal_group(h.proc.pid, launcher.SIGTERM)
            self._task(self._kill_later(h, self.kill_grace if grace is None else grace, launcher.SIGKILL))
        else:
            # no process yet (waiting for its snapshot, or being forked): it ends now; a process
            # that still appears is killed by _start
            self._task(self._finish(h, None))

    async def _kill_later(self, h: ContainerHandle, delay: float, sig: int) -> None:
        try:
            await asyncio.wait_for(h.exited.wait(), timeout=delay)
        except TimeoutError:
            if h.proc is not None:
                launcher.signal_group(h.proc.pid, sig)
                if sig != launcher.SIGKILL:
                    self._task(self._kill_later(h, self.kill_grace, launcher.SIGKILL))

    async def _deadlines(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.time()
            for h in list(self.containers.values()):
                try:
                    if h.state == ContainerState.STARTING and now - h.created_at > h.spec.startup_timeout:
                        self.kill(h, "STARTUP_TIMEOUT")
                    elif h.live:
                        late = [i for i, f in h.inflight.items() if f.deadline is not None and now > f.deadline]
                        if late:
                            self.kill(h, "TIMEOUT", timed_out=late)
                except Exception:
                    log.exception("deadline check failed for %s", h.id)
