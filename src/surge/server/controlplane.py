"""The control plane: wires the store, the dispatcher, the scaler and the node agent, recovers
after a restart, and implements the operations the HTTP routes expose."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from surge import errors
from surge.agent.agent import ContainerHandle, ExitInfo, LaunchSpec, LocalAgent
from surge.agent.inventory import build_inventory
from surge.core.models import InputState, TerminalReason
from surge.core.placement import Placement
from surge.core.retries import Retries, decide_retry
from surge.server import loops
from surge.server.calls import CallOps
from surge.server.config import ServerConfig
from surge.server.cron import CronLoop, check_schedules
from surge.server.dispatcher import Dispatcher
from surge.server.images import ImageService
from surge.server.pools import Pool, Waiters, Work
from surge.server.scaler import Scaler
from surge.server.secretbox import SecretBox
from surge.server.secrets import Secrets
from surge.server.sources import SourceCache
from surge.server.volumes import VolumeService
from surge.store import open_store
from surge.store.base import (
    AppRow,
    CallRow,
    ContainerRow,
    FunctionRow,
    LogLine,
    Transition,
    UsageEvent,
)
from surge.store.blobs import BlobStore
from surge.store.errors import StoreUnavailable

log = logging.getLogger("surge.controlplane")

LIVE_APP_STATES = ("deployed", "ephemeral")


class ControlPlane(CallOps):
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.home = config.home
        self.store = open_store(config.db_url)
        self.blobs = BlobStore(self.home / "blobs")
        self.sources = SourceCache(self.home / "sources", self.blobs)
        self.volumes = VolumeService(self.home / "volumes", self.store)        # issue 3: volumes, images
        self.images = ImageService(self.home, self.store, self.blobs, self.volumes)
        inventory = build_inventory(config.gpus, node_id=config.node_id, cpu=config.cpu,
                                    memory_mib=config.memory_mib)
        self.agent = LocalAgent(inventory, self, kill_grace=config.kill_grace, sandbox=config.sandbox_config(),
                                home=str(self.home), embedded=config.embedded)   # issue 5: sandbox
        self.dispatcher = Dispatcher(self.store, self.agent, lease_ttl=config.lease_ttl)
        self.scaler = Scaler(self.dispatcher, self.agent, self._launch_spec)
        self.secrets = Secrets(self.store, SecretBox.from_file(self.home / "secrets.key"), self.dispatcher)
        self.cron = CronLoop(self)   # issue 4: schedules
        self.logs = Waiters()
        self._log_buffer: list[LogLine] = []
        self._usage_buffer: list[UsageEvent] = []
        self._dirty_containers: dict[str, ContainerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._functions: dict[str, FunctionRow] = {}
        self._apps: dict[str, AppRow] = {}
        self._by_name: dict[tuple[str, str], tuple[AppRow | None, list[FunctionRow]]] = {}
        self.started_at = time.time()
        self.healthy = True

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.open()
        await self.agent.start()
        await self._recover()
        for name, interval, step in (
            ("dispatch", 0.05, self._promote),
            ("autoscale", 0.25, self.scaler.tick),
            ("flush", 0.1, self._flush),
            ("reaper", 1.0, self.dispatcher.reap_expired),
            ("retention", 60.0, self.store.purge_expired),
            ("cron", 1.0, self.cron.tick),
        ):
            self._tasks.append(asyncio.create_task(loops.run_forever(name, interval, step)))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.agent.close()
        await self._flush(time.time())
        await self.store.close()

    async def _promote(self, now: float) -> None:
        self.dispatcher.promote_delayed(now)

    async def _recover(self) -> None:
        """After a restart nothing is running (containers die with their agent): RUNNING inputs are
        lost workers and go back to the queue; QUEUED inputs are reloaded into their pools."""
        now = time.time()
        running = await self.store.inputs_in_state([InputState.RUNNING])
        transitions = []
        for r in running:
            d = decide_retry(Retries(max_retries=0), TerminalReason.WORKER_LOST, user_failures=r.user_failures,
                             infra_failures=r.infra_failures)
            if d.retry:
                transitions.append(Transition(r.id, (InputState.RUNNING,), InputState.QUEUED, r.attempt,
                                              {"infra_failures": r.infra_failures + 1, "container_id": None,
                                               "lease_expires_at": None, "next_run_at": now,
                                               "terminal_reason": TerminalReason.WORKER_LOST.value,
                                               "error_message": "the control plane restarted"}))
            else:
                transitions.append(Transition(r.id, (InputState.RUNNING,), InputState.FAILED, r.attempt,
                                              {"terminal_reason": TerminalReason.WORKER_LOST.value,
                                               "error_message": "worker lost too many times"}))
        if transitions:
            await self.store.transition(transitions, now)
        queued = await self.store.inputs_in_state([InputState.QUEUED])
        calls: dict[str, CallRow | None] = {}
        for r in queued:
            if r.call_id not in calls:
                calls[r.call_id] = await self.store.get_call(r.call_id)
            call = calls[r.call_id]
            fn = await self.store.get_function(r.function_id)
            if call is None or fn is None:
                continue
            pool = await self.pool(fn, call.pool_key, call.params, call.workspace)
            self.dispatcher.enqueue(pool, [Work.from_row(r, fn)], now)
        # warm pools of deployed apps
        for app in [a for w in await self.store.list_workspaces() for a in await self.store.list_apps(w.name)]:
            if app.state == "deployed" and app.current_version:
                await self._warm_pools(app.id, app.current_version, app.workspace)
        for s in await self.store.list_containers(None, active_only=True):
            s.state, s.stopped_at, s.stop_reason = "STOPPED", now, "control plane restarted"
            await self.store.upsert_container(s)
        if running or queued:
            log.info("recovered %d running and %d queued inputs", len(running), len(queued))

    # -- pools ---------------------------------------------------------------------------------
    async def pool(self, fn: FunctionRow, pool_key: str, params: bytes | None, workspace: str) -> Pool:
        pool = self.dispatcher.pools.get(pool_key)
        if pool is not None:
            return pool
        app = await self.app_row(fn.app_id)
        if app is None:
            raise errors.NotFoundError(f"app {fn.app_id} not found")
        pool = self.dispatcher.pool_for(pool_key, fn, workspace, fn.app_id, params)
        pool.retired = app.state not in LIVE_APP_STATES or (
            app.state == "deployed" and fn.version != app.current_version)
        return pool

    async def _warm_pools(self, app_id: str, version: int, workspace: str) -> None:
        for fn in await self.store.list_functions(app_id, version):
            opts = fn.spec.get("options", {})
            # warm: min_containers, and the memory snapshot the scaler keeps (issue 3)
            if (opts.get("min_containers", 0) > 0 or opts.get("enable_memory_snapshot")) and not fn.spec.get("cls"):
                pool = await self.pool(fn, fn.id, None, workspace)
                self.dispatcher.kick(pool)
                self.scaler.on_demand(pool)

    async def _launch_spec(self, pool: Pool, container_id: str, placement: Placement) -> LaunchSpec:
        fn = pool.function
        app = await self.app_row(fn.app_id)
        version = await self.store.get_version(fn.app_id, fn.version)
        if app is None or version is None:
            raise errors.NotFoundError(f"app version {fn.app_id} v{fn.version} is gone")
        source_dir = await self.sources.ensure(version.source_hash)
        spec = dict(fn.spec)
        siblings = await self.store.list_functions(fn.app_id, fn.version)
        spec.update({"app": app.name, "source_dir": str(source_dir), "function_id": fn.id,
                     "app_functions": {str(f.spec.get("tag")): f.id for f in siblings}})
        o = pool.options
        env = dict(o.env)
        env.update({"SURGE_SERVER_URL": self.url, "SURGE_TOKEN": self._container_token(pool.workspace), "SURGE_APP": app.name,
                    "SURGE_FUNCTION": fn.spec.get("tag", ""),
                    "SURGE_HEARTBEAT_INTERVAL": repr(max(0.05, self.config.lease_ttl / 5))})
        memory_limit = fn.spec.get("options", {}).get("memory_limit")
        try:
            le = await self.images.launch_environment(container_id, pool.workspace, fn.spec,
                                                      [str(source_dir), self.agent.socket_path])
        except errors.Error as exc:   # its image or volumes cannot be set up: fail the queue, say why
            await self.dispatcher.fail_queued(pool, TerminalReason.INIT_FAILURE, f"container setup: {exc}")
            raise
        env.update(le.env)
        env.update(await self.secrets.launch_env(pool, app.name))   # issue 5: secrets (decrypted here)
        return LaunchSpec(
            container_id=container_id, workspace=pool.workspace, app_id=fn.app_id, function_id=fn.id,
            function_tag=str(fn.spec.get("cls") or fn.spec.get("tag")), pool_key=pool.key,
            function=spec, params=pool.params, resources=o.resources(), placement=placement, env=env,
            max_inputs=o.max_inputs, startup_timeout=o.startup_timeout,
            memory_limit_mib=int(memory_limit) if memory_limit else None,
            max_result_bytes=self.config.max_result_bytes, python=le.python, mounts=le.mounts)

    url: str = ""
    token: str = ""
    # set by create_app: a workspace's in-memory token for its containers (surge.server.tokens)
    container_token: Callable[[str], str] | None = None

    def _container_token(self, workspace: str) -> str:
        return self.container_token(workspace) if self.container_token is not None else self.token

    # -- agent listener ------------------------------------------------------------------------
    async def on_ready(self, h: ContainerHandle) -> None:
        pool = self.dispatcher.pools.get(h.spec.pool_key)
        if pool is not None:
            pool.init_failures = 0
            self.dispatcher.kick(pool)

    async def on_outputs(self, h: ContainerHandle, items: list[tuple[dict[str, Any], bytes]]) -> None:
        await self.dispatcher.on_outputs(h, items)

    async def on_heartbeat(self, h: ContainerHandle, running: list[tuple[str, int]]) -> None:
        await self.dispatcher.on_heartbeat(h, running)

    async def on_exit(self, h: ContainerHandle, info: ExitInfo) -> None:
        # written now, before its inputs are settled: whoever sees the failure also sees how it ended
        self._dirty_containers.pop(h.id, None)
        await self.store.upsert_container(self.container_row(h))
        if info.init_error is not None:
            self.on_log(h, "system", f"container failed to start: {info.init_error[0]}", time.time())
        await self.dispatcher.on_exit(h, info)
        await self.volumes.container_exited(h.id, commit=info.init_error is None and info.exit_code == 0)
        self.scaler.capacity_freed()

    def on_state(self, h: ContainerHandle, kind: str, at: float) -> None:
        self._usage_buffer.append(UsageEvent(h.id, kind, at))
        self._dirty_containers[h.id] = h

    def on_log(self, h: ContainerHandle, stream: str, text: str, at: float) -> None:
        only = next(iter(h.inflight)) if len(h.inflight) == 1 else None
        text = self.secrets.redact(h.spec.function_id, text)     # exact secret values → ***
        self._log_buffer.append(LogLine(app_id=h.spec.app_id, function_tag=h.spec.function_tag,
                                        container_id=h.id, stream=stream, text=text, at=at, input_id=only))

    async def _flush(self, now: float) -> None:
        if self._dirty_containers:
            dirty, self._dirty_containers = self._dirty_containers, {}
            for h in dirty.values():
                await self.store.upsert_container(self.container_row(h))
        if self._usage_buffer:
            usage, self._usage_buffer = self._usage_buffer, []
            await _or_keep(self.store.record_usage(usage), usage, self._usage_buffer)
        if self._log_buffer:
            lines, self._log_buffer = self._log_buffer, []
            await _or_keep(self.store.append_logs(lines), lines, self._log_buffer)
            for app_id in {ln.app_id for ln in lines}:
                self.logs.notify(app_id)
            self.logs.notify("*")

    def container_row(self, h: ContainerHandle) -> ContainerRow:
        s = h.spec
        return ContainerRow(
            id=h.id, workspace=s.workspace, app_id=s.app_id, function_id=s.function_id, pool_key=s.pool_key,
            node_id=s.placement.node_id, state=h.state.value, created_at=h.created_at, pid=h.pid,
            gpu_type=s.placement.gpu_type, gpu_indices=list(s.placement.gpu_indices), cpu=s.resources.cpu,
            memory=s.resources.memory, ready_at=h.ready_at,
            stopped_at=time.time() if h.state.value == "STOPPED" else None, stop_reason=h.kill_reason,
            exit_code=h.proc.returncode if h.proc and h.proc.returncode is not None and h.proc.returncode >= 0 else None,
            signal=-h.proc.returncode if h.proc and h.proc.returncode is not None and h.proc.returncode < 0 else None,
            inputs_done=h.inputs_done, phases=dict(h.phases))

    # -- cached rows -----------------------------------------------------------------------------
    # Function rows and app versions are immutable; app rows change only through this process
    # (which owns the store), so hot paths read them from memory. ``_forget_app`` drops an app's
    # entries whenever this process changes it.
    async def function_row(self, function_id: str) -> FunctionRow | None:
        fn = self._functions.get(function_id)
        if fn is None:
            fn = await self.store.get_function(function_id)
            if fn is not None:
                self._functions[function_id] = fn
        return fn

    async def app_row(self, app_id: str) -> AppRow | None:
        app = self._apps.get(app_id)
        if app is None:
            app = await self.store.get_app(app_id)
            if app is not None:
                self._apps[app_id] = app
        return app

    async def deployed_functions(self, workspace: str, name: str) -> tuple[AppRow | None, list[FunctionRow]]:
        key = (workspace, name)
        hit = self._by_name.get(key)
        if hit is not None:
            return hit
        app = await self.store.find_app(workspace, name)
        fns = await self.store.list_functions(app.id, app.current_version) if app is not None else []
        self._by_name[key] = (app, fns)
        return app, fns

    def _forget_app(self, app_id: str | None = None, name: tuple[str, str] | None = None) -> None:
        if app_id is not None:
            self._apps.pop(app_id, None)
        if name is not None:
            self._by_name.pop(name, None)
        else:
            self._by_name.clear()

    # -- operations (called by routes) -------------------------------------------------------
    async def app_name(self, app_id: str) -> str:
        app = await self.app_row(app_id)
        return app.name if app is not None else app_id

    async def resolve_function(self, workspace: str, body: dict[str, Any]) -> FunctionRow:
        if body.get("function_id"):
            fn = await self.function_row(str(body["function_id"]))
            app = await self.app_row(fn.app_id) if fn else None
            if fn is None or app is None or app.workspace != workspace:
                raise errors.NotFoundError(f"function {body['function_id']!r} not found")
            if app.state == "stopped" or (app.state == "ephemeral" and app.current_version == -1):
                raise errors.ConflictError(f"app {app.name!r} is stopped; run or deploy it again")
            return fn
        app_name, tag = body.get("app"), body.get("function")
        if not app_name or not tag:
            raise errors.InvalidError("give either function_id, or app and function names")
        app, fns = await self.deployed_functions(workspace, str(app_name))
        if app is None or app.state != "deployed":
            state = f" (it is {app.state})" if app else ""
            raise errors.NotFoundError(f"no deployed app named {app_name!r}{state}; deploy it with "
                                       f"`surge deploy`")
        for fn in fns:
            if fn.spec.get("tag") == tag:
                return fn
        known = ", ".join(sorted(str(f.spec.get("tag")) for f in fns)) or "none"
        raise errors.NotFoundError(f"app {app_name!r} has no function {tag!r} (functions: {known})")

    async def create_app(self, workspace: str, body: dict[str, Any]) -> dict[str, Any]:
        from surge.sdk.options import options_from_wire
        from surge.sdk.web import check_functions_json

        sha = str(body.get("source_hash", ""))
        if not self.blobs.exists(sha):
            raise errors.InvalidError(f"source archive {sha} was not uploaded; PUT /v1/blobs/{{sha}} first")
        functions = body.get("functions") or []
        tags = [str(f.get("tag")) for f in functions]
        if not functions or len(set(tags)) != len(tags):
            raise errors.InvalidError("an app needs at least one function, each with a unique tag")
        for f in functions:
            try:
                options_from_wire(f.get("options") or {})      # as strict as the decorator
            except errors.InvalidError as exc:
                raise errors.InvalidError(f"function {f.get('tag')!r}: invalid options: {exc}") from None
        check_functions_json(functions)                        # web endpoints (surge.sdk.web)
        check_schedules(functions)                             # schedules (surge.server.cron)
        await self.images.prepare_functions(workspace, functions)     # build images, resolve volumes
        name = str(body.get("name") or "").strip()
        if not name:
            raise errors.InvalidError("the app needs a name")
        functions = await self.secrets.seal_functions(workspace, name, functions)  # no clear values stored
        deployed = bool(body.get("deployed"))
        now = time.time()
        previous = await self.store.find_app(workspace, name) if deployed else None
        app, version, fns = await self.store.create_version(
            workspace, name, deployed=deployed, source_hash=sha, module=str(body.get("module", "")),
            spec={"client": body.get("client")}, functions=[(t, f) for t, f in zip(tags, functions, strict=True)],
            now=now)
        await self.sources.ensure(sha)
        self._forget_app(app.id, (workspace, name))
        if previous is not None:
            self.retire_app_pools(app.id, keep_version=version.version)
        await self._warm_pools(app.id, version.version, workspace)
        return {"app_id": app.id, "name": app.name, "version": version.version, "state": app.state,
                "functions": {f.spec["tag"]: f.id for f in fns}}

    def retire_app_pools(self, app_id: str, keep_version: int | None = None) -> None:
        for pool in self.dispatcher.pools.values():
            if pool.app_id == app_id and pool.function.version != keep_version:
                pool.retired = True

    async def stop_app(self, workspace: str, app_ref: str) -> dict[str, Any]:
        app = await self.store.get_app(app_ref)
        if app is None or app.workspace != workspace:
            app = await self.store.find_app(workspace, app_ref)
        if app is None:
            raise errors.NotFoundError(f"no app {app_ref!r}")
        await self.store.set_app_state(app.id, "stopped")
        self._forget_app(app.id, (app.workspace, app.name))
        self.retire_app_pools(app.id)
        cancelled = 0
        for pool in list(self.dispatcher.pools.values()):
            if pool.app_id != app.id:
                continue
            works = list(pool.queue) + [w for _, _, w in pool.delayed]
            rows = await self.store.get_inputs([w.id for w in works]) if works else []
            running = [await self.store.get_input(w.id) for w in self.dispatcher.running.values()
                       if w.container_id in pool.containers]
            cancelled += await self.dispatcher.cancel_inputs(
                rows + [r for r in running if r is not None], "the app was stopped")
            for h in list(pool.containers.values()):
                self.agent.shutdown(h)
        waits = [h.exited.wait() for p in self.dispatcher.pools.values() if p.app_id == app.id
                 for h in p.containers.values()]
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout=15.0)
            except TimeoutError:
                pass
        await self._flush(time.time())
        return {"app_id": app.id, "name": app.name, "state": "stopped", "cancelled": cancelled}

    async def rollback(self, workspace: str, name: str, version: int | None) -> dict[str, Any]:
        app = await self.store.find_app(workspace, name)
        if app is None:
            raise errors.NotFoundError(f"no deployed app named {name!r}")
        versions = await self.store.list_versions(app.id)
        if version is None:
            older = [v for v in versions if v.version < app.current_version]
            if not older:
                raise errors.ConflictError(f"app {name!r} has no version before v{app.current_version} "
                                           "to roll back to")
            target = older[-1]
        else:
            found = [v for v in versions if v.version == version]
            if not found:
                raise errors.NotFoundError(f"app {name!r} has no version {version} "
                                           f"(versions: {', '.join(str(v.version) for v in versions)})")
            target = found[0]
        fns = await self.store.list_functions(app.id, target.version)
        new_app, new_version, new_fns = await self.store.create_version(
            workspace, name, deployed=True, source_hash=target.source_hash, module=target.module,
            spec={**target.spec, "rollback_of": target.version},
            functions=[(str(f.spec["tag"]), f.spec) for f in fns], now=time.time())
        self._forget_app(new_app.id, (workspace, name))
        self.retire_app_pools(new_app.id, keep_version=new_version.version)
        await self._warm_pools(new_app.id, new_version.version, workspace)
        return {"app_id": new_app.id, "name": name, "version": new_version.version,
                "rolled_back_to": target.version, "functions": {f.spec["tag"]: f.id for f in new_fns}}

    async def logs_page(self, *, app_id: str | None, function: str | None, since: int,
                        wait: float, workspace: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + min(wait, 300.0)
        key = app_id or "*"
        while True:
            ev = self.logs.event(key)
            lines = await self.store.logs_since(app_id=app_id, function_tag=function, since_id=since, limit=2000,
                                                workspace=workspace)
            left = deadline - time.monotonic()
            if lines or left <= 0:
                break
            await Waiters.wait(ev, left)
        return {"lines": [{"id": ln.id, "at": ln.at, "function": ln.function_tag, "container_id": ln.container_id,
                           "stream": ln.stream, "text": ln.text, "input_id": ln.input_id} for ln in lines],
                "cursor": max([since] + [ln.id for ln in lines])}

    def health(self) -> dict[str, Any]:
        inv, usage = self.agent.node_view()
        return {"status": "ok" if self.healthy else "degraded", "uptime": time.time() - self.started_at,
                "node": {"id": inv.node_id, "cpu": inv.cpu, "memory_mib": inv.memory,
                         "gpus": [{"index": g.index, "type": g.type} for g in inv.gpus],
                         "allocated": {"cpu": usage.cpu, "memory_mib": usage.memory,
                                       "gpu_indices": sorted(usage.gpu_indices)},
                         "memory_limits": self.agent.limiter.mechanism, "sandbox": self.agent.sandbox.describe()},
                "containers": len(self.agent.containers),
                "loops": {"ticks": dict(loops.ticks), "errors": dict(loops.errors)},
                "dispatcher": dict(self.dispatcher.stats)}


async def _or_keep(write: Any, items: list[Any], buffer: list[Any]) -> None:
    """Await a buffered write; if the store is unavailable, put the items back for the next flush."""
    try:
        await write
    except StoreUnavailable:
        buffer[:0] = items
        raise
