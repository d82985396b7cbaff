"""How a container's process starts, fastest first: a fork of its function's memory snapshot, a
fork of a pre-warmed template, or a fresh interpreter; and the zygotes behind the first two.

- **Snapshots** (``enable_memory_snapshot=True``): one zygote per pool (function version and class
  parameters) that has imported the module and run the ``@enter(snap=True)`` hooks. The first
  container of a pool waits for it to be built (the build costs what a fresh start would); if the
  build fails the pool starts without a snapshot: for good when CUDA was initialised in the
  snapshot (the reason is shown on every container it starts), else retried with a backoff. A
  zygote that crashes is rebuilt in the background while containers start the normal way. A new
  deploy or a stop invalidates it (``drop``, from the scaler).
- **Spares**: each ready snapshot zygote keeps one child forked ahead of demand that has already
  joined the cgroups (memory, pids) a container of its pool gets, under a provisional id: on a
  cgroup v1 host every migration waits for an RCU grace period (~15 ms), the larger part of a
  snapshot start. A launch of the pool takes the ready spare (``claim_spare``: its cgroups are
  renamed to the container's id and become the container's), sends it its assignment (env, pipes,
  the rest of the sandbox) and asks for the next one in the background. A spare is no container:
  not listed, not metered (copy-on-write memory of its zygote). One that dies unassigned has its
  cgroups removed and is replaced; spares go with their zygote. ``SURGE_SPARES=0`` turns them off.
- **Templates**: one zygote per Python executable that has imported the container runtime only;
  its children import the user's module themselves. On unless ``SURGE_TEMPLATES=0``.
- **Fresh**: ``python -m surge.runtime`` (``launcher.spawn``): always works, and is what a container
  with its own interpreter or mounts (an image, volumes) gets.

A snapshot zygote holds memory for its function, so it is metered as a container of the function
(its memory, no GPU and no CPU reserved): it shows in ``surge container list`` with start kind
``zygote`` and in ``surge usage``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from surge.agent import launcher
from surge.agent.limits import CgroupGroup
from surge.agent.zygote import Spare, Zygote, ZygoteError
from surge.core.models import ContainerState, Resources
from surge.core.placement import Placement
from surge.ids import new_id

if TYPE_CHECKING:
    from surge.agent.agent import ContainerHandle, LaunchSpec, LocalAgent

log = logging.getLogger("surge.agent.starts")

TEMPLATE_RETRY = 5.0         # seconds before a failed template is started again
SNAPSHOT_RETRY = 30.0        # first backoff after a snapshot build failed (not CUDA); doubles
SNAPSHOT_RETRY_MAX = 600.0
CRASH_MEMORY = 300.0         # crashes this close together count as a crash loop
SPARE_RETRY = 5.0            # seconds before a pool whose spare could not get ready tries again


class StartAborted(Exception):
    """The container was stopped while it waited for its snapshot."""


def wants_snapshot(spec: LaunchSpec) -> bool:
    return bool((spec.function.get("options") or {}).get("enable_memory_snapshot"))


class StartPaths:
    def __init__(self, agent: LocalAgent, *, templates: bool | None = None, spares: bool | None = None) -> None:
        self.agent = agent
        self.templates_enabled = (os.environ.get("SURGE_TEMPLATES", "1") != "0"
                                  if templates is None else templates)
        self.spares_enabled = os.environ.get("SURGE_SPARES", "1") != "0" if spares is None else spares
        self.spares: dict[str, Spare] = {}                      # pool key -> its spare (getting ready or ready)
        self._claimed: dict[str, Spare] = {}                    # container id -> the spare it took at launch
        self._spare_retry: dict[str, float] = {}                # pool key -> no new spare before
        self.templates: dict[str, Zygote] = {}
        self.snapshots: dict[str, Zygote] = {}
        self.refused: dict[str, str] = {}                       # pool key -> why, for good
        self._failures: dict[str, tuple[int, float, str]] = {}  # pool key -> (count, retry at, why)
        self._specs: dict[str, LaunchSpec] = {}                 # pool key -> a spec to rebuild from
        self._crashes: dict[str, tuple[int, float]] = {}        # pool key -> (recent crashes, last at)
        self._template_retry_at = 0.0
        self.meters: dict[str, ContainerHandle] = {}            # zygote id -> its metering record
        self._cgroups: dict[str, CgroupGroup] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._template()

    async def close(self) -> None:
        spares = list(self.spares.values()) + list(self._claimed.values())
        self.spares.clear()
        self._claimed.clear()
        for sp in spares:
            sp.discard()
        zygotes = list(self.snapshots.values()) + list(self.templates.values())
        self.snapshots.clear()
        self.templates.clear()
        for z in zygotes:
            z.close()
        await asyncio.gather(*(z.wait_closed(2.0) for z in zygotes), return_exceptions=True)
        await asyncio.gather(*(asyncio.wait_for(sp.wait_ended(), 2.0) for sp in spares), return_exceptions=True)
        for sp in spares:
            if sp.cgroup is not None and not sp.assigned:
                sp.cgroup.remove()

    def drop(self, pool_key: str) -> None:
        """The pool's version was replaced or stopped: its snapshot is of no further use."""
        self._specs.pop(pool_key, None)
        self._crashes.pop(pool_key, None)
        self.refused.pop(pool_key, None)
        self._failures.pop(pool_key, None)
        self._spare_retry.pop(pool_key, None)
        sp = self.spares.pop(pool_key, None)
        if sp is not None:
            sp.discard()          # its watch (_spare_life) removes its cgroups once it is gone
        z = self.snapshots.pop(pool_key, None)
        if z is not None:
            z.close()

    def wanted(self, pool_key: str) -> bool:
        """No snapshot for this pool is built or being built, and one may be."""
        if pool_key in self.snapshots or pool_key in self.refused:
            return False
        failure = self._failures.get(pool_key)
        return failure is None or time.time() >= failure[1]

    def prepare(self, spec: LaunchSpec) -> None:
        """Build the pool's snapshot ahead of demand (after a deploy; after a rebuild's backoff)."""
        if wants_snapshot(spec):
            self._snapshot(spec)

    def status(self, pool_key: str) -> str | None:
        """Why a snapshot pool starts without its snapshot right now (None: it uses it)."""
        z = self.snapshots.get(pool_key)
        if z is not None and z.ready:
            return None
        if z is not None and z.state == "failed":     # just now: _build has not recorded it yet
            return z.error if z.cuda else f"the snapshot could not be built ({z.error})"
        if pool_key in self.refused:
            return self.refused[pool_key]
        failure = self._failures.get(pool_key)
        if failure is not None:
            return failure[2]
        return "the snapshot is being built" if z is not None else None

    # -- starting a container ------------------------------------------------------------------
    def must_wait(self, spec: LaunchSpec) -> bool:
        """This launch waits for its pool's first snapshot build (so run it in the background)."""
        if not wants_snapshot(spec):
            return False
        z = self._snapshot(spec)
        return z is not None and z.state == "starting" and not z.rebuild

    def claim_spare(self, h: ContainerHandle) -> bool:
        """At launch: give the container its pool's ready spare (and with it the spare's cgroups,
        renamed to the container's id); ``start_process`` assigns it. False: there is none."""
        spec = h.spec
        sp = self.spares.get(spec.pool_key)
        z = self.snapshots.get(spec.pool_key)
        if sp is None or z is None or sp.zygote is not z or not z.ready or not sp.ready or not sp.alive:
            return False
        del self.spares[spec.pool_key]
        sp.claimed = True
        self._claimed[h.id] = sp
        if sp.cgroup is not None:
            sp.cgroup.rename(spec.container_id)
        h.cgroup = sp.cgroup
        return True

    async def start_process(self, h: ContainerHandle, env: dict[str, str],
                            cgroup_procs: str | None) -> launcher.ContainerProcess:
        sp = self._claimed.pop(h.id, None)
        try:
            return await self._start_process(h, env, cgroup_procs, sp)
        finally:
            if sp is not None and not sp.assigned:
                sp.discard()        # not used: it goes (its cgroups are the container's now)

    async def _start_process(self, h: ContainerHandle, env: dict[str, str], cgroup_procs: str | None,
                             sp: Spare | None) -> launcher.ContainerProcess:
        spec = h.spec
        fork_env = {**env, "SURGE_SPAWNED_AT": repr(time.time())}
        if wants_snapshot(spec):
            z = self._snapshot(spec)
            if z is not None and z.state == "starting" and not z.rebuild:
                try:
                    await asyncio.wait_for(z.settled.wait(), timeout=spec.startup_timeout)
                except TimeoutError:
                    pass
                if h.state != ContainerState.STARTING:
                    raise StartAborted()
                fork_env["SURGE_SPAWNED_AT"] = repr(time.time())
            if z is not None and z.ready and sp is not None and sp.zygote is z:
                try:
                    proc = await self._assign(z, sp, h, fork_env)
                    h.phases["start"] = "snapshot"
                    h.phases["zygote"] = z.id
                    self._refill(z, spec)
                    return proc
                except ZygoteError as exc:
                    log.warning("spare for %s could not be assigned (%s); forking", spec.container_id, exc)
            if z is not None and z.ready:
                try:
                    proc = await self._fork_snapshot(z, h, fork_env, cgroup_procs)
                    self._refill(z, spec)
                    h.phases["start"] = "snapshot"
                    h.phases["zygote"] = z.id
                    return proc
                except ZygoteError as exc:
                    log.warning("snapshot fork for %s failed: %s", spec.container_id, exc)
                    h.phases["fallback"] = f"the snapshot could not fork: {exc}"
            else:
                h.phases["fallback"] = self.status(spec.pool_key) or "no snapshot yet"
        conf, sandbox_env = self.agent.sandbox.confine(spec, h.cgroup)    # issue 5: agent/sandbox.py
        template = self._template(spec)
        if template is not None and template.ready:
            try:
                proc = await template.fork(spec.container_id, {**fork_env, **sandbox_env}, cgroup_procs=cgroup_procs,
                                           memory_limit_mib=spec.memory_limit_mib,
                                           sandbox=conf.to_json() if conf else None)
                h.phases["start"] = "template"
                return proc
            except ZygoteError as exc:
                log.warning("template fork for %s failed: %s; starting a fresh process", spec.container_id, exc)
        h.phases["start"] = "fresh"
        return await launcher.spawn({**env, **sandbox_env}, cgroup_procs=cgroup_procs,
                                    memory_limit_mib=spec.memory_limit_mib, python=spec.python, mounts=spec.mounts,
                                    confinement=conf)

    async def _fork_snapshot(self, z: Zygote, h: ContainerHandle, env: dict[str, str],
                             cgroup_procs: str | None) -> launcher.ContainerProcess:
        """A strict sandbox's snapshot zygote runs as its workspace's user and cannot put a child
        into a cgroup: the agent moves it there before it is sent its first frame."""
        spec, sandbox = h.spec, self.agent.sandbox
        if not sandbox.strict:
            conf, _ = sandbox.confine(spec, h.cgroup)
            return await z.fork(spec.container_id, env, cgroup_procs=cgroup_procs,
                                memory_limit_mib=spec.memory_limit_mib, sandbox=conf.to_json() if conf else None)
        proc = await z.fork(spec.container_id, {**env, **sandbox.snapshot_child_env(z.id, spec.container_id)},
                            cgroup_procs=None, memory_limit_mib=None)
        try:
            sandbox.adopt(proc.pid, h.cgroup)
        except OSError as exc:
            launcher.signal_group(proc.pid, launcher.SIGKILL)
            raise ZygoteError(f"could not move the child into its cgroup: {exc}") from None
        return proc

    async def _assign(self, z: Zygote, sp: Spare, h: ContainerHandle, env: dict[str, str]) -> launcher.ContainerProcess:
        """What ``_fork_snapshot`` sends, minus the cgroup joins (the spare made them)."""
        spec, sandbox = h.spec, self.agent.sandbox
        if sandbox.strict:
            return await z.assign(sp, spec.container_id, {**env, **sandbox.snapshot_child_env(z.id, spec.container_id)},
                                  memory_limit_mib=None)
        conf, _ = sandbox.confine(spec, None)          # no cgroups to join
        # no memory cgroup (none writable, or v1 pids only): the data-segment rlimit, as a fork gets
        rlimit = spec.memory_limit_mib if h.cgroup is None or h.cgroup.procs_file() is None else None
        return await z.assign(sp, spec.container_id, env, memory_limit_mib=rlimit,
                              sandbox=conf.to_json() if conf else None)

    # -- spares --------------------------------------------------------------------------------
    def _refill(self, z: Zygote, spec: LaunchSpec) -> None:
        """Fork the pool's next spare (in the background) unless it has one."""
        key = spec.pool_key
        if (not self.spares_enabled or key in self.spares or not z.ready or z.closing
                or self.snapshots.get(key) is not z or time.time() < self._spare_retry.get(key, 0.0)):
            return
        spare_id = new_id("sp")
        sandbox = self.agent.sandbox
        cgroup = None
        if spec.memory_limit_mib or sandbox.pids_max:
            cgroup = self.agent.limiter.create(spare_id, spec.memory_limit_mib, pids_max=sandbox.pids_max)
        # a strict zygote's children cannot move themselves: the agent moves the spare (_spare_life)
        join = [] if sandbox.strict or cgroup is None else [
            p for p in (cgroup.procs_file(), *cgroup.extra_procs()) if p is not None]
        try:
            sp = z.spare(spare_id, join)
        except ZygoteError as exc:
            log.warning("could not ask for a spare of %s: %s", key, exc)
            if cgroup is not None:
                cgroup.remove()
            return
        sp.cgroup = cgroup
        self.spares[key] = sp
        self.agent._task(self._spare_life(sp, key))

    async def _spare_life(self, sp: Spare, key: str) -> None:
        """Get the spare ready, wait until it is assigned or gone; clean up one that went unassigned
        (and replace it, if its zygote is still the pool's)."""
        try:
            await sp.wait_ready()
            if self.agent.sandbox.strict and sp.cgroup is not None:
                await asyncio.to_thread(self.agent.sandbox.adopt, sp.pid, sp.cgroup)
            sp.ready = True
            ended = asyncio.ensure_future(sp.wait_ended())
            done = asyncio.ensure_future(sp.done.wait())
            try:
                await asyncio.wait({ended, done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                done.cancel()
        except (ZygoteError, OSError) as exc:
            if not sp.done.is_set():        # not discarded on purpose
                log.warning("a spare of %s could not get ready: %s", key, exc)
                self._spare_retry[key] = time.time() + SPARE_RETRY
        if sp.assigned or sp.claimed:
            return                          # the container's now (its cgroups too)
        was_ready = sp.ready
        sp.discard()
        await sp.wait_ended()
        if sp.cgroup is not None:
            sp.cgroup.remove()
        if self.spares.get(key) is sp:
            del self.spares[key]
            spec = self._specs.get(key)
            if was_ready and spec is not None:
                log.info("spare %s of %s ended unassigned; forking another", sp.id, key)
                self._refill(sp.zygote, spec)

    # -- templates -----------------------------------------------------------------------------
    def _template(self, spec: LaunchSpec | None = None) -> Zygote | None:
        if not self.templates_enabled:
            return None
        if spec is not None and (spec.mounts is not None or spec.python not in (None, sys.executable)):
            return None   # its own interpreter or mount namespace: the template has neither
        t = self.templates.get(sys.executable)
        if t is not None and t.state in ("starting", "ready"):
            return t
        if time.time() < self._template_retry_at:
            return None
        t = Zygote("template", sys.executable, new_id("zt"), on_exit=self._on_exit)
        self.templates[sys.executable] = t
        self.agent._task(self._start_template(t))
        return t

    async def _start_template(self, t: Zygote) -> None:
        env = dict(os.environ)
        env.update({"SURGE_AGENT_SOCK": self.agent.socket_path, "PYTHONUNBUFFERED": "1"})
        try:
            await t.start(env)
        except Exception as exc:
            log.warning("could not start the template process: %s", exc)
            t.state, t.error = "failed", str(exc)
            t.settled.set()
        await t.settled.wait()
        if not t.ready:
            log.warning("the template process failed (%s); containers start fresh", t.error)
            self._template_retry_at = time.time() + TEMPLATE_RETRY

    # -- snapshots -----------------------------------------------------------------------------
    def _snapshot(self, spec: LaunchSpec) -> Zygote | None:
        key = spec.pool_key
        z = self.snapshots.get(key)
        if z is not None and z.state in ("starting", "ready"):
            return z
        if key in self.refused:
            return None
        if spec.mounts is not None:
            self.refused[key] = ("memory snapshots are not used for functions with volumes or image files "
                                 "mounted yet; containers start without one")
            return None
        failures, retry_at, _ = self._failures.get(key, (0, 0.0, ""))
        if time.time() < retry_at:
            return None
        self._specs[key] = spec
        z = Zygote("snapshot", key, new_id("zy"), on_log=self._on_log, on_exit=self._on_exit)
        z.rebuild = failures > 0 or key in self._crashes
        self.snapshots[key] = z
        self.agent._task(self._build(z, spec))
        return z

    def _meter(self, z: Zygote, spec: LaunchSpec) -> ContainerHandle:
        from surge.agent.agent import ContainerHandle

        mspec = dataclasses.replace(
            spec, container_id=z.id, resources=Resources(cpu=0.0, memory=spec.resources.memory, gpu=None),
            placement=Placement(spec.placement.node_id, None, ()))
        m = ContainerHandle(spec=mspec, created_at=z.created_at)
        m.phases["start"] = "zygote"
        self.meters[z.id] = m
        return m

    async def _build(self, z: Zygote, spec: LaunchSpec) -> None:
        m = self._meter(z, spec)
        self.agent.listener.on_state(m, "started", z.created_at)
        env = self.agent.container_env(spec)
        # a zygote is inside the platform (in_container() holds for the user's code) but has no
        # container id of its own to serve inputs with, and sees no GPU: CUDA belongs after the fork
        env.update({"SURGE_CONTAINER_ID": z.id, "CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"})
        cgroup = self.agent.limiter.create(z.id, spec.memory_limit_mib) if spec.memory_limit_mib else None
        if cgroup is not None:
            self._cgroups[z.id] = cgroup
        # it runs user code (the import, snap hooks): confined like a container, minus the PID namespace
        conf, sandbox_env = self.agent.sandbox.confine(spec, cgroup, holder=z.id, pid_ns=False)
        env.update(sandbox_env)
        try:
            await z.start(env, function=spec.function, params=spec.params, python=spec.python,
                          cgroup_procs=cgroup.procs_file() if cgroup else None,
                          memory_limit_mib=spec.memory_limit_mib, confinement=conf)
            m.proc = z.proc
            await asyncio.wait_for(z.settled.wait(), timeout=spec.startup_timeout)
        except TimeoutError:
            z.error = (f"building the snapshot took longer than startup_timeout={spec.startup_timeout:g} s")
            z.state = "failed"
            z.kill()
        except Exception as exc:
            log.exception("could not start the snapshot zygote for %s", spec.pool_key)
            z.state, z.error = "failed", f"could not start the snapshot process: {exc}"
            z.settled.set()
            self._on_exit(z)
        if z.ready:
            now = time.time()
            m.state, m.ready_at, m.idle_since = ContainerState.IDLE, now, now
            m.phases.update(z.phases)
            m.phases["ready"] = now - z.created_at
            self.agent.listener.on_state(m, "ready", now)
            self._failures.pop(spec.pool_key, None)
            self._refill(z, spec)
            return
        reason = z.error or "the snapshot could not be built"
        if z.cuda:
            self.refused[spec.pool_key] = reason
        else:
            count = self._failures.get(spec.pool_key, (0, 0.0, ""))[0] + 1
            delay = min(SNAPSHOT_RETRY * 2 ** (count - 1), SNAPSHOT_RETRY_MAX)
            reason = f"the snapshot could not be built ({reason}); retrying in {delay:g} s"
            self._failures[spec.pool_key] = (count, time.time() + delay, reason)
        m.phases["fallback"] = reason
        log.warning("function %s starts without a memory snapshot: %s", spec.function_tag, reason)
        self.agent.listener.on_log(m, "system", f"memory snapshot unavailable: {reason}", time.time())

    def _on_log(self, z: Zygote, stream: str, text: str) -> None:
        m = self.meters.get(z.id)
        if m is not None:
            self.agent.listener.on_log(m, stream, text, time.time())

    def _on_exit(self, z: Zygote) -> None:
        """A zygote process ended: close its metering record; rebuild a crashed one."""
        m = self.meters.pop(z.id, None)
        cgroup = self._cgroups.pop(z.id, None)
        if m is not None and m.state != ContainerState.STOPPED:
            m.state = ContainerState.STOPPED
            m.kill_reason = "STOP" if z.closing else ("INIT_FAILURE" if z.ready_at is None else "LOST")
            self.agent.listener.on_state(m, "stopped", time.time())
        if cgroup is not None:
            cgroup.remove()
        self.agent.sandbox.release(z.id)
        if z.kind == "template":
            if self.templates.get(z.key) is z:
                del self.templates[z.key]
                if not z.closing:
                    log.warning("the template process ended (%s); starting another", z.error)
                    self._template_retry_at = time.time() + (TEMPLATE_RETRY if not z.forks else 0.0)
                    self._template()
            return
        if self.snapshots.get(z.key) is not z:
            return
        del self.snapshots[z.key]
        if z.closing or z.ready_at is None:
            return       # dropped on purpose, or a failed build (_build records why)
        spec = self._specs.get(z.key)
        now = time.time()
        reason = f"{z.error or 'the snapshot zygote died'}; rebuilding it"
        last = self._crashes.get(z.key)
        count = last[0] + 1 if last is not None and now - last[1] < CRASH_MEMORY else 1
        self._crashes[z.key] = (count, now)
        # the first crash is rebuilt at once; a zygote that keeps crashing less and less often
        delay = 0.0 if count == 1 else min(SNAPSHOT_RETRY * 2 ** (count - 2), SNAPSHOT_RETRY_MAX)
        self._failures[z.key] = (count, now + delay, reason)
        log.warning("snapshot zygote %s of %s ended: %s", z.id, z.key, reason)
        if m is not None:
            self.agent.listener.on_log(m, "system", f"snapshot zygote ended: {reason}", now)
        if spec is not None and delay == 0.0:
            self._snapshot(spec)

    def describe(self) -> dict[str, Any]:
        """For /health: which zygotes exist and in what state."""
        return {"templates": {k: z.state for k, z in self.templates.items()},
                "snapshots": {k: {"id": z.id, "state": z.state, "forks": z.forks, "rss_mib": z.rss_mib,
                                  "spare": self._spare_state(k)}
                              for k, z in self.snapshots.items()},
                "refused": dict(self.refused)}

    def _spare_state(self, pool_key: str) -> dict[str, Any] | None:
        sp = self.spares.get(pool_key)
        if sp is None:
            return None
        return {"id": sp.id, "pid": sp.pid or None, "ready": sp.ready and sp.alive,
                "cgroup": str(sp.cgroup.path or sp.cgroup.pids_path) if sp.cgroup is not None else None}
