"""Applies autoscaling decisions: for each pool, ``core.autoscaler.decide`` says how many containers
to start and which idle ones to stop; ``core.placement.place`` says where (which GPU indices).

A burst against an empty pool starts every container the decision asks for in one pass: each
launch returns once the process is spawned or forked (not when it is ready), so the containers
start in parallel. The scaler also keeps each live snapshot pool's zygote (``agent/starts.py``):
built ahead of demand, dropped when the pool's version is retired."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from surge.agent.agent import ContainerHandle, LaunchSpec
from surge.agent.backend import NodeBackend
from surge.core.autoscaler import AutoscalerConfig, ContainerView, PoolView, decide
from surge.core.models import ContainerState, TerminalReason
from surge.core.placement import Placement, never_fits, place
from surge.ids import new_id
from surge.server.dispatcher import Dispatcher
from surge.server.pools import Pool, spawn

log = logging.getLogger("surge.scaler")


class Scaler:
    def __init__(self, dispatcher: Dispatcher, agent: NodeBackend,
                 launch_spec: Callable[[Pool, str, Any], Awaitable[LaunchSpec]]) -> None:
        self.dispatcher = dispatcher
        self.agent = agent
        self._launch_spec = launch_spec
        self._pending: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        dispatcher.on_demand = self.on_demand

    def on_demand(self, pool: Pool) -> None:
        """Scale-from-zero must not wait for the next tick."""
        if pool.key in self._pending:
            return
        self._pending.add(pool.key)
        asyncio.get_running_loop().call_soon(lambda: spawn(self._evaluate_pending(pool)))

    async def _evaluate_pending(self, pool: Pool) -> None:
        self._pending.discard(pool.key)
        try:
            await self.evaluate(pool, time.time())
        except Exception:
            log.exception("scaling %s failed", pool.key)

    async def tick(self, now: float) -> None:
        for pool in list(self.dispatcher.pools.values()):
            try:
                await self.evaluate(pool, now)
            except Exception:
                log.exception("scaling %s failed", pool.key)
            if pool.retired and not pool.containers and not pool.queue and not pool.delayed:
                self.dispatcher.pools.pop(pool.key, None)
                self._locks.pop(pool.key, None)
        self._drop_stale_snapshots()

    def _drop_stale_snapshots(self) -> None:
        """A snapshot belongs to one pool of one version: a redeploy or stop retires the pool, and its
        zygote goes (containers it forked run on until they stop)."""
        live = {k for k, p in self.dispatcher.pools.items() if not p.retired}
        for key in self.agent.snapshot_keys():
            if key not in live:
                self.agent.drop_snapshot(key)

    async def _keep_snapshot(self, pool: Pool) -> None:
        """Build the pool's snapshot before its first container needs it (the launch of a
        container with a snapshot being built waits for it). Functions with an image or volumes
        get theirs built by their first container instead: their launch environment is per
        container."""
        fn = pool.function.spec
        if (not pool.options.enable_memory_snapshot or pool.retired or fn.get("volumes") or fn.get("image")
                or not self.agent.snapshot_wanted(pool.key)):
            return
        inventory, _ = self.agent.node_view()
        spec = await self._launch_spec(pool, new_id("zy"), Placement(inventory.node_id, None, ()))
        self.agent.prepare_snapshot(spec)

    def config(self, pool: Pool) -> AutoscalerConfig:
        o = pool.options
        if pool.retired:
            return AutoscalerConfig(min_containers=0, max_containers=o.max_containers, scaledown_window=0.0,
                                    target_inputs=o.target_inputs or o.max_inputs, max_inputs=o.max_inputs)
        return AutoscalerConfig(min_containers=o.min_containers, max_containers=o.max_containers,
                                buffer_containers=o.buffer_containers, scaledown_window=o.scaledown_window,
                                target_inputs=o.target_inputs or o.max_inputs, max_inputs=o.max_inputs)

    async def evaluate(self, pool: Pool, now: float) -> None:
        lock = self._locks.setdefault(pool.key, asyncio.Lock())
        async with lock:      # a tick and an on-demand wake-up must not both start containers
            await self._evaluate(pool, now)

    async def _evaluate(self, pool: Pool, now: float) -> None:
        views = tuple(ContainerView(id=h.id, state=h.state, inflight=len(h.inflight) + h.reserved + h.requests,
                                    idle_since=h.idle_since, started_at=h.created_at)
                      for h in pool.containers.values())
        queued = len(pool.queue) + len(pool.held) + sum(1 for t, _, _ in pool.delayed if t <= now + 1.0)
        decision = decide(self.config(pool), PoolView(queued=queued, containers=views,
                                                       mean_runtime=pool.mean_runtime), now)
        for cid in decision.stop:
            h = pool.containers.get(cid)
            if h is not None:
                self.agent.shutdown(h)
        await self._keep_snapshot(pool)
        if decision.start <= 0 or now < pool.start_blocked_until:
            return
        if pool.retired and not pool.queue:
            return
        for _ in range(decision.start):
            started = await self._start_one(pool)
            if started is None:
                break

    def _evict_idle_for(self, pool: Pool) -> None:
        """Warm-but-idle containers of other pools yield to queued work: stop the longest-idle one
        (never below its pool's min_containers). Its exit wakes the waiting pools."""
        if any(h.state == ContainerState.STOPPING for p in self.dispatcher.pools.values()
               for h in p.containers.values() if h.kill_reason == "EVICTED"):
            return   # one eviction at a time; the next follows when it has exited
        candidates = []
        for other in self.dispatcher.pools.values():
            if other is pool:
                continue
            live = [h for h in other.containers.values() if h.live]
            spare = len(live) - (0 if other.retired else other.options.min_containers)
            idle = sorted((h for h in live if h.state == ContainerState.IDLE and not h.inflight
                           and not h.reserved), key=lambda h: h.idle_since or 0.0)
            candidates += idle[:max(0, spare)]
        if candidates:
            victim = min(candidates, key=lambda h: h.idle_since or 0.0)
            victim.kill_reason = "EVICTED"
            self.agent.shutdown(victim)

    def capacity_freed(self) -> None:
        """A container stopped: pools waiting for room may start now."""
        for pool in self.dispatcher.pools.values():
            if pool.queue:
                self.on_demand(pool)

    async def _start_one(self, pool: Pool) -> ContainerHandle | None:
        requested_at = time.time()
        request = pool.options.resources()
        inventory, usage = self.agent.node_view()
        placement = place(request, [(inventory, usage)])
        if placement is None:
            reason = never_fits(request, [inventory])
            if reason is not None:
                await self.dispatcher.fail_queued(pool, TerminalReason.NO_CAPACITY, reason)
            self._evict_idle_for(pool)
            return None   # fits once something else stops: the inputs wait in the queue
        placed_at = time.time()
        spec = await self._launch_spec(pool, new_id("ct"), placement)
        spec.phases = {"placement": placed_at - requested_at, "image": time.time() - placed_at}
        h: ContainerHandle = await self.agent.launch(spec)
        if h.live:
            pool.containers[h.id] = h
        return h
