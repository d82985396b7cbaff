"""The dispatcher: in-memory hot queues in front of the store.

Inputs are committed by the API before they reach a queue here; the dispatcher hands them to
containers with free slots (one conditional QUEUED→RUNNING update per batch), turns container
outputs into terminal states or retries (one conditional update keyed on ``(input_id, attempt)``),
and wakes whoever waits on a call. Everything it decides comes from ``surge.core``.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import time
from collections.abc import Iterable
from signal import SIGKILL
from typing import Any

from surge.agent.agent import ContainerHandle, ExitInfo
from surge.agent.backend import NodeBackend
from surge.core.leases import LEASE_TTL, lease_expiry
from surge.core.models import InputState, TerminalReason
from surge.core.prefetch import fair_share, prefetch_depth, update_mean
from surge.core.priority import insert_position
from surge.core.progress import is_progress_seq
from surge.core.retries import Retries, decide_retry
from surge.core.states import terminal_state_for
from surge.core.ttl import expired
from surge.sdk.options import FunctionOptions
from surge.server.pools import Pool, Waiters, Work, spawn
from surge.store.base import FunctionRow, InputEvent, InputRow, Store, Transition
from surge.store.errors import StoreUnavailable

log = logging.getLogger("surge.dispatcher")

# While the store is unavailable, assignment and output writes are retried this often
STORE_RETRY_SECONDS = 0.25

class Dispatcher:
    def __init__(self, store: Store, agent: NodeBackend, *, max_infra_retries: int = 8,
                 lease_ttl: float = LEASE_TTL) -> None:
        self.store = store
        self.lease_ttl = lease_ttl
        self.agent = agent
        self.pools: dict[str, Pool] = {}
        self.running: dict[str, Work] = {}
        self.calls = Waiters()
        self.inputs = Waiters()
        self.max_infra_retries = max_infra_retries
        self._assign_scheduled: set[str] = set()
        self._seq = 0
        self.on_demand: Any = None     # set by the scaler: called with a pool that needs containers
        self.on_room: Any = None       # set by the web gateway: a pool with held requests may have room
        self._pending_outputs: list[tuple[ContainerHandle, list[tuple[dict[str, Any], bytes]], float]] = []
        # calls whose submitter is waiting for the outputs: completed rows are kept here too, so the
        # waiter answers from memory instead of reading back what was just written
        self.watched: dict[str, list[InputRow]] = {}
        self._flusher: asyncio.Task[Any] | None = None
        self.stats: collections.Counter[str] = collections.Counter()
        # when a write last failed because the store was unavailable: leases could not be renewed,
        # so the reaper waits a full lease after it before it trusts them again
        self.renew_failed_at = 0.0

    # -- pools -----------------------------------------------------------------------------------
    def pool_for(self, key: str, function: FunctionRow, workspace: str, app_id: str, params: bytes | None) -> Pool:
        pool = self.pools.get(key)
        if pool is None:
            options = FunctionOptions.from_json(function.spec["options"])
            pool = Pool(key, function, options, workspace, app_id, params or b"")
            self.pools[key] = pool
        return pool

    def enqueue(self, pool: Pool, works: Iterable[Work], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for w in works:
            w.pool_key = pool.key
            if w.next_run_at > now:
                self._seq += 1
                heapq.heappush(pool.delayed, (w.next_run_at, self._seq, w))
            else:
                _push(pool.queue, w)
        self.kick(pool)

    def kick(self, pool: Pool) -> None:
        """Assign queued inputs soon (coalesced), and let the scaler know about demand."""
        if pool.key not in self._assign_scheduled:
            self._assign_scheduled.add(pool.key)
            asyncio.get_running_loop().call_soon(self._start_assign, pool)
        if self.on_demand is not None and (pool.queue or pool.delayed):
            self.on_demand(pool)
        if pool.held and self.on_room is not None:
            self.on_room(pool)

    def _start_assign(self, pool: Pool) -> None:
        spawn(self._assign(pool))

    def promote_delayed(self, now: float) -> None:
        for pool in self.pools.values():
            moved = False
            while pool.delayed and pool.delayed[0][0] <= now:
                _push(pool.queue, heapq.heappop(pool.delayed)[2])
                moved = True
            if moved:
                self.kick(pool)

    async def _assign(self, pool: Pool) -> None:
        self._assign_scheduled.discard(pool.key)
        try:
            depth = prefetch_depth(max_inputs=pool.options.max_inputs, mean_runtime=pool.mean_runtime)
            if pool.options.batch_max_size:
                # a batch can only fill from inputs the container holds: room for two batches
                depth = max(depth, 2 * pool.options.batch_max_size - pool.options.max_inputs)
            for c in pool.containers.values():
                c.prefetch = depth
            while pool.queue:
                # pack: the fullest container with room, most recently busy first, so surplus
                # containers stay idle and scale down after the window
                room = [c for c in pool.containers.values() if c.free_slots > 0]
                if pool.queue[0].start_by is not None and pool.queue[0].attempt == 0:
                    room = [c for c in room if c.free_slots > c.prefetch]    # a ttl: see below
                target = min(room, key=lambda c: (c.free_slots, -(c.idle_since or 0.0)), default=None)
                if target is None:
                    return
                n = min(target.free_slots, len(pool.queue), fair_share(len(pool.queue), len(room)))
                batch = [pool.queue.popleft() for _ in range(n)]
                now = time.time()
                late = [w for w in batch if w.start_by is not None and expired(w.start_by, attempt=w.attempt, now=now)]
                if late:
                    # past their ttl: they end EXPIRED and never run
                    spawn(self.expire_queued(late))
                    batch = [w for w in batch if not expired(w.start_by, attempt=w.attempt, now=now)]
                    n = len(batch)
                    if not n:
                        continue
                if any(w.start_by is not None and w.attempt == 0 for w in batch):
                    # a job with a ttl is never prefetched: waiting in a container's own queue, it could
                    # outlive its ttl there. It goes only where it starts at once, else waits here.
                    run_now = max(0, target.free_slots - target.prefetch)
                    sendable: list[Work] = []
                    held: list[Work] = []
                    for w in batch:
                        ttl_bound = w.start_by is not None and w.attempt == 0
                        (held if ttl_bound and len(sendable) >= run_now else sendable).append(w)
                    pool.queue.extendleft(reversed(held))
                    batch, n = sendable, len(sendable)
                    if not n:
                        return      # kicked again when a slot frees up
                target.reserved += n
                try:
                    await self._send(pool, target, batch)
                except StoreUnavailable:
                    # nothing was claimed: the inputs go back to the front of the queue, tried again soon
                    self.renew_failed_at = time.time()
                    pool.queue.extendleft(reversed(batch))
                    self.stats["assign_store_unavailable"] += 1
                    asyncio.get_running_loop().call_later(STORE_RETRY_SECONDS, self.kick, pool)
                    return
                finally:
                    target.reserved -= n
        except Exception:
            log.exception("assigning inputs of %s failed", pool.key)
            self.stats["assign_errors"] += 1

    async def _send(self, pool: Pool, target: ContainerHandle, batch: list[Work]) -> None:
        now = time.time()
        lease = lease_expiry(now, self.lease_ttl)
        transitions = [Transition(w.id, (InputState.QUEUED,), InputState.RUNNING,
                                  set={"attempt": w.attempt + 1, "container_id": target.id,
                                       "started_at": now, "lease_expires_at": lease})
                       for w in batch]
        applied = await self.store.transition(transitions, now)
        claimed = [w for w, ok in zip(batch, applied, strict=True) if ok]
        for w in claimed:
            w.attempt += 1
            w.container_id = target.id
            w.started_at = now
            self.running[w.id] = w
        if not claimed:
            return
        items = [({"input_id": w.id, "attempt": w.attempt, "call_id": w.call_id, "timeout": w.timeout,
                   "method": w.method, **({"codec": w.codec} if w.codec else {})}, w.args) for w in claimed]
        self.stats["input_frames"] += 1
        self.stats["inputs_sent"] += len(items)
        if not self.agent.send_inputs(target, items):
            # the container went away between choosing it and claiming: put the inputs back
            await self._requeue_lost(pool, claimed, "container stopped before the inputs reached it")

    # -- results from containers -----------------------------------------------------------------
    async def on_outputs(self, h: ContainerHandle, items: list[tuple[dict[str, Any], bytes]]) -> None:
        """Group commit: outputs that arrive while a batch is being written go in the next one, so
        under load many containers' results share one transaction; when idle, the batch is one."""
        self._pending_outputs.append((h, items, time.time()))
        if self._flusher is None or self._flusher.done():
            self._flusher = spawn(self._flush_outputs())

    async def _flush_outputs(self) -> None:
        while self._pending_outputs:
            batch, self._pending_outputs = self._pending_outputs, []
            try:
                await self._apply_outputs(batch)
            except Exception:
                # the inputs stay RUNNING in the store; their leases expire and they run again
                log.exception("writing %d output batches failed", len(batch))
                self.stats["output_errors"] += 1

    async def _apply_outputs(self, batch: list[tuple[ContainerHandle, list[tuple[dict[str, Any], bytes]], float]]) -> None:
        events: list[InputEvent] = []
        transitions: list[Transition] = []
        retry_works: list[Work] = []
        touched: dict[str, Pool] = {}
        for h, items, now in batch:
            pool = self.pools.get(h.spec.pool_key)
            if pool is not None:
                touched[pool.key] = pool
            self._collect(pool, items, now, events, transitions, retry_works)
        now = time.time()
        while True:
            # results that reached us are kept until written: while the store is unavailable they
            # wait here (the containers have moved on), and arrive once it is back
            try:
                if events:
                    await self.store.append_events(events)
                    events_written, events = events, []
                    for iid in {e.input_id for e in events_written}:
                        self.inputs.notify(iid)
                applied = await self.store.transition(transitions, now) if transitions else []
                break
            except StoreUnavailable:
                self.renew_failed_at = time.time()
                self.stats["output_store_unavailable"] += 1
                await asyncio.sleep(STORE_RETRY_SECONDS)
        if transitions:
            self.stats["output_batches"] += 1
            self._after(transitions, applied, retry_works)
        for pool in touched.values():
            self.kick(pool)

    def _collect(self, pool: Pool | None, items: list[tuple[dict[str, Any], bytes]], now: float,
                 events: list[InputEvent], transitions: list[Transition], retry_works: list[Work]) -> None:
        for meta, data in items:
            iid, attempt = meta["input_id"], meta["attempt"]
            if meta["kind"] in ("item", "progress"):
                w = self.running.get(iid)
                kind, seq = meta["kind"], int(meta["seq"])
                if (w is not None and w.attempt != attempt) or (kind == "progress" and w is None):
                    # a zombie attempt's items must not mix into the stream of the running attempt
                    self.stats["stale_refused"] += 1
                    continue
                if is_progress_seq(seq) != (kind == "progress"):
                    self.stats["bad_events_refused"] += 1      # items and reports keep their ranges
                    continue
                events.append(InputEvent(iid, seq, kind, data, now))
                continue
            w = self.running.get(iid)
            status = meta.get("status")
            if pool is not None and "took" in meta:
                pool.mean_runtime = update_mean(pool.mean_runtime, max(0.0, float(meta["took"])))
            if status == "ok":
                transitions.append(Transition(iid, (InputState.RUNNING,), InputState.SUCCEEDED, attempt,
                                              {"result": data, "lease_expires_at": None, "finished_at": now}))
            elif status == "too_large":
                transitions.append(self._terminal(iid, attempt, TerminalReason.RESULT_TOO_LARGE,
                                                  meta.get("error", "result too large")))
            else:
                t, retry = self._failure(pool, w, iid, attempt, TerminalReason.USER_EXCEPTION,
                                         meta.get("error", ""), now, result=data,
                                         traceback=meta.get("traceback", ""))
                transitions.append(t)
                if retry is not None:
                    retry_works.append(retry)

    def _terminal(self, iid: str, attempt: int | None, reason: TerminalReason, message: str, *,
                  result: bytes | None = None, exit_code: int | None = None, signal: int | None = None,
                  traceback: str = "", from_states: tuple[InputState, ...] = (InputState.RUNNING,)) -> Transition:
        fields: dict[str, Any] = {"terminal_reason": reason.value, "error_message": _with_tb(message, traceback),
                                  "lease_expires_at": None, "exit_code": exit_code, "signal": signal,
                                  "finished_at": time.time()}
        if result is not None:
            fields["result"] = result
        return Transition(iid, from_states, terminal_state_for(reason), attempt, fields)

    def _failure(self, pool: Pool | None, w: Work | None, iid: str, attempt: int, reason: TerminalReason,
                 message: str, now: float, *, result: bytes | None = None, exit_code: int | None = None,
                 signal: int | None = None, traceback: str = "") -> tuple[Transition, Work | None]:
        """A failed attempt: either back to QUEUED (retry, with backoff) or a terminal state."""
        if w is not None and w.attempt != attempt:
            # a stale attempt's failure: its transition will be refused, and the Work is the running
            # attempt's, whose failure counts and container this must not touch
            w = None
        policy = pool.retries if pool is not None else Retries(max_retries=0)
        uf = w.user_failures if w else 0
        inf = w.infra_failures if w else 0
        d = decide_retry(policy, reason, user_failures=uf, infra_failures=inf,
                         max_infra_retries=self.max_infra_retries)
        if d.retry and w is not None:
            w.user_failures += 1 if d.counts_against_user else 0
            w.infra_failures += 0 if d.counts_against_user else 1
            w.next_run_at = now + d.delay
            w.container_id = None
            t = Transition(iid, (InputState.RUNNING,), InputState.QUEUED, attempt,
                           {"user_failures": w.user_failures, "infra_failures": w.infra_failures,
                            "next_run_at": w.next_run_at, "container_id": None, "lease_expires_at": None,
                            "terminal_reason": reason.value, "error_message": _with_tb(message, traceback)})
            return t, w
        t = self._terminal(iid, attempt, reason, message, result=result, exit_code=exit_code,
                           signal=signal, traceback=traceback)
        # the final failure counts too: retries=1 that fails twice ends with user_failures == 2
        t.set["user_failures" if d.counts_against_user else "infra_failures"] = (uf if d.counts_against_user else inf) + 1
        return t, None

    def _after(self, transitions: list[Transition], applied: list[bool], retry_works: list[Work]) -> None:
        retry_ids = {w.id for w in retry_works}
        touched_calls: set[str] = set()
        requeue: dict[str, list[Work]] = {}
        for t, ok in zip(transitions, applied, strict=True):
            w = self.running.get(t.input_id)
            if ok:
                self.stats[f"to_{t.to_state.value}"] += 1
                if w is not None:
                    touched_calls.add(w.call_id)
                    box = self.watched.get(w.call_id)
                    if box is not None and t.to_state.terminal:
                        box.append(_finished_row(w, t))
                if t.input_id in retry_ids and w is not None:
                    requeue.setdefault(w.pool_key, []).append(w)
                else:
                    self.inputs.notify(t.input_id)
            else:
                self.stats["stale_refused"] += 1
            if w is not None and (ok or t.expect_attempt == w.attempt):
                self.running.pop(t.input_id, None)
        for cid in touched_calls:
            self.calls.notify(cid)
        for key, works in requeue.items():
            pool = self.pools.get(key)
            if pool is not None:
                self.enqueue(pool, works)

    async def on_heartbeat(self, h: ContainerHandle, running: list[tuple[str, int]]) -> None:
        # a live container holds its prefetched (and batch-collecting) inputs too: renew those
        # leases as well, or an input waiting in its queue longer than a lease would be taken back
        held = dict(running)
        held.update((iid, fl.attempt) for iid, fl in h.inflight.items())
        running = list(held.items())
        if running:
            try:
                await self.store.renew_leases(running, lease_expiry(time.time(), self.lease_ttl))
            except StoreUnavailable:
                # the worker is alive; only the store is not: the reaper holds off (``renew_failed_at``)
                self.renew_failed_at = time.time()
                self.stats["renew_store_unavailable"] += 1

    async def on_exit(self, h: ContainerHandle, info: ExitInfo) -> None:
        """A container ended: settle its in-flight inputs, and on a failed start, the pool's queue."""
        now = time.time()
        pool = self.pools.get(h.spec.pool_key)
        if pool is not None:
            pool.containers.pop(h.id, None)
        transitions: list[Transition] = []
        retries: list[Work] = []
        reason, message = classify_exit(info, h)
        for iid, fl in info.inflight.items():
            w = self.running.get(iid)
            r, m = reason, message
            if info.kill_reason == "TIMEOUT":
                if iid in info.timed_out:
                    r = TerminalReason.TIMEOUT
                    limit = fl.timeout or (pool.options.timeout if pool else "?")
                    m = f"input ran longer than its timeout of {limit} s"
                else:
                    r, m = TerminalReason.WORKER_LOST, "container stopped because another input timed out"
            elif info.kill_reason == "CANCELLED":
                if w is None:
                    continue   # the cancelled input itself: already CANCELLED by cancel_inputs
                # another input shared the container (@surge.concurrent, prefetch): it runs again now,
                # not when its lease runs out, and the loss is not the user's
                r, m = TerminalReason.WORKER_LOST, "container stopped because another input on it was cancelled"
            t, retry = self._failure(pool, w, iid, fl.attempt, r, m, now, exit_code=info.exit_code,
                                     signal=info.signal)
            transitions.append(t)
            if retry is not None:
                retries.append(retry)
        if transitions:
            applied = await self.store.transition(transitions, now)
            self._after(transitions, applied, retries)
        if pool is None:
            return
        if info.init_error is not None or info.kill_reason == "STARTUP_TIMEOUT" or (
                h.ready_at is None and info.kill_reason is None):
            await self._init_failed(pool, info, h)
        else:
            pool.init_failures = 0
        self.kick(pool)

    async def _init_failed(self, pool: Pool, info: ExitInfo, h: ContainerHandle) -> None:
        """A container never became ready. Each queued input takes it as a (user) failure: a broken
        import or ``@enter`` hook fails callers fast instead of restarting forever."""
        now = time.time()
        pool.init_failures += 1
        pool.start_blocked_until = now + min(0.25 * 2 ** (pool.init_failures - 1), 30.0)
        if info.init_error is not None:
            summary, tb, data = info.init_error
            message = f"container failed to start: {summary}"
        else:
            summary, tb, data = "", "", b""
            if info.kill_reason == "STARTUP_TIMEOUT":
                message = (f"container did not become ready within startup_timeout="
                           f"{pool.options.startup_timeout:g} s (imports and @enter hooks)")
            else:
                message = describe_exit(info) + _tail(info)
        pool.init_error = message
        works = list(pool.queue)
        pool.queue.clear()
        transitions: list[Transition] = []
        keep: list[Work] = []
        for w in works:
            d = decide_retry(pool.retries, TerminalReason.INIT_FAILURE, user_failures=w.user_failures,
                             infra_failures=w.infra_failures)
            if d.retry:
                w.user_failures += 1
                w.next_run_at = now + d.delay
                keep.append(w)
                transitions.append(Transition(w.id, (InputState.QUEUED,), InputState.QUEUED, None,
                                              {"user_failures": w.user_failures, "next_run_at": w.next_run_at}))
            else:
                transitions.append(self._terminal(w.id, None, TerminalReason.INIT_FAILURE, message,
                                                  result=data or None, traceback=tb,
                                                  from_states=(InputState.QUEUED,)))
        if transitions:
            applied = await self.store.transition(transitions, now)
            for t, ok in zip(transitions, applied, strict=True):
                if ok and t.to_state != InputState.QUEUED:
                    self.inputs.notify(t.input_id)
            for w in works:
                self.calls.notify(w.call_id)
        if keep:
            self.enqueue(pool, keep, now)

    async def _requeue_lost(self, pool: Pool, works: list[Work], message: str) -> None:
        now = time.time()
        transitions, retries = [], []
        for w in works:
            t, retry = self._failure(pool, w, w.id, w.attempt, TerminalReason.WORKER_LOST, message, now)
            transitions.append(t)
            if retry is not None:
                retries.append(retry)
        applied = await self.store.transition(transitions, now)
        self._after(transitions, applied, retries)

    async def fail_queued(self, pool: Pool, reason: TerminalReason, message: str) -> None:
        """End every queued input of a pool (e.g. NO_CAPACITY: it can never be placed)."""
        works = list(pool.queue) + [w for _, _, w in pool.delayed]
        pool.queue.clear()
        pool.delayed.clear()
        if not works:
            return
        now = time.time()
        transitions = [self._terminal(w.id, None, reason, message, from_states=(InputState.QUEUED,))
                       for w in works]
        await self.store.transition(transitions, now)
        for w in works:
            self.inputs.notify(w.id)
            self.calls.notify(w.call_id)

    # -- cancellation and lost leases ----------------------------------------------------------
    def _unqueue(self, ids: set[str]) -> None:
        """Take these inputs out of every pool's queue and backoff heap (they will not run)."""
        for pool in self.pools.values():
            if pool.queue and any(w.id in ids for w in pool.queue):
                pool.queue = collections.deque(w for w in pool.queue if w.id not in ids)
            if pool.delayed and any(w.id in ids for _, _, w in pool.delayed):
                pool.delayed = [e for e in pool.delayed if e[2].id not in ids]
                heapq.heapify(pool.delayed)

    async def cancel_inputs(self, rows: list[InputRow], message: str = "cancelled by the caller") -> int:
        """Cancel queued and running inputs; containers running them are killed (within the grace)."""
        now = time.time()
        ids = {r.id for r in rows}
        self._unqueue(ids)
        transitions = [self._terminal(r.id, None, TerminalReason.CANCELLED, message,
                                      from_states=(InputState.QUEUED, InputState.RUNNING)) for r in rows]
        applied = await self.store.transition(transitions, now) if transitions else []
        victims: dict[str, ContainerHandle] = {}
        for r, ok in zip(rows, applied, strict=True):
            if not ok:
                continue
            self.inputs.notify(r.id)
            self.calls.notify(r.call_id)
            w = self.running.pop(r.id, None)
            cid = (w.container_id if w else None) or r.container_id
            if r.state == InputState.RUNNING and cid and cid in self.agent.containers:
                victims[cid] = self.agent.containers[cid]
        for h in victims.values():
            self.agent.kill(h, "CANCELLED", grace=1.0)
        return sum(applied)

    async def expire_queued(self, works: Iterable[Work | InputRow]) -> int:
        """End queued inputs whose ttl passed as EXPIRED (they never run); returns how many."""
        ids = {w.id for w in works}
        if not ids:
            return 0
        self._unqueue(ids)
        transitions = [self._terminal(i, 0, TerminalReason.EXPIRED, "the job was still queued when its ttl ran out",
                                      from_states=(InputState.QUEUED,)) for i in sorted(ids)]
        applied = await self.store.transition(transitions, time.time())
        calls = {w.id: w.call_id for w in works}
        for t, ok in zip(transitions, applied, strict=True):
            if ok:
                self.stats["to_EXPIRED"] += 1
                self.inputs.notify(t.input_id)
                self.calls.notify(calls[t.input_id])
        return sum(applied)

    async def reap_expired(self, now: float) -> int:
        """RUNNING inputs whose lease ran out: the worker is lost (hung, stopped, or its node died)."""
        if now - self.renew_failed_at < self.lease_ttl:
            # leases could not be renewed because the store was unavailable, not because workers
            # went silent: wait until a full lease has passed with renewals written again
            return 0
        rows = await self.store.expired_leases(now)
        n = 0
        for r in rows:
            h = self.agent.containers.get(r.container_id or "")
            pool = self.pools.get(h.spec.pool_key) if h else None
            w = self.running.get(r.id)
            if w is None or w.attempt != r.attempt:
                w = Work.from_row(r, await self.store.get_function(r.function_id))
            if pool is None:
                pool = next((p for p in self.pools.values() if p.key == r.pool_key), None)
            t, retry = self._failure(pool, w, r.id, r.attempt, TerminalReason.WORKER_LOST,
                                     "the worker stopped renewing its lease", now)
            self.running[r.id] = w
            applied = await self.store.transition([t], now)
            self._after([t], applied, [retry] if retry else [])
            if applied[0] and h is not None and r.id in h.inflight:
                # the attempt is over: re-queued at once, fenced by its attempt number (a late result
                # from the silent worker is refused), and the worker is killed
                self.agent.kill(h, "LOST")
            n += 1
        return n


def _push(queue: collections.deque[Work], w: Work) -> None:
    """Queue ``w`` behind every input of the same or a higher priority."""
    at = insert_position(queue, w.priority, priority_of=_priority)
    if at == len(queue):
        queue.append(w)
    else:
        queue.insert(at, w)


def _priority(w: Work) -> int:
    return w.priority


def _finished_row(w: Work, t: Transition) -> InputRow:
    """The output row as the store now holds it, built from what was just written."""
    s = t.set
    return InputRow(id=w.id, call_id=w.call_id, idx=w.idx, function_id="", pool_key=w.pool_key,
                    state=t.to_state, attempt=w.attempt, args=b"", created_at=0.0,
                    user_failures=s.get("user_failures", w.user_failures),
                    infra_failures=s.get("infra_failures", w.infra_failures), started_at=w.started_at,
                    finished_at=s.get("finished_at"), container_id=w.container_id, result=s.get("result"),
                    terminal_reason=s.get("terminal_reason"), error_message=s.get("error_message"),
                    exit_code=s.get("exit_code"), signal=s.get("signal"))


def describe_exit(info: ExitInfo) -> str:
    if info.oom_killed:
        return "container was killed for exceeding its memory limit (OOM)"
    if info.signal is not None:
        return f"container was killed by signal {info.signal}"
    return f"container exited with code {info.exit_code}"


def classify_exit(info: ExitInfo, h: ContainerHandle) -> tuple[TerminalReason, str]:
    """Why the inputs a container was running ended, from how it ended."""
    if info.kill_reason in ("STOP", "EVICTED", "LOST", "STARTUP_TIMEOUT"):
        return TerminalReason.WORKER_LOST, f"container stopped ({info.kill_reason.lower()})"
    if info.oom_killed:
        limit = h.spec.memory_limit_mib
        return TerminalReason.OOM_KILLED, f"container exceeded its memory limit of {limit} MiB and was OOM-killed"
    if info.signal == SIGKILL:
        # not ours (kill_reason is None) and not the cgroup's OOM killer: an operator, the host's
        # global OOM killer or a node-level kill took the worker — an infrastructure failure, as in
        # Celery (WorkerLostError) and Ray (system failure); retried without using ``retries``
        return TerminalReason.WORKER_LOST, "container was killed by SIGKILL from outside surge" + _tail(info)
    if info.signal is not None:
        return TerminalReason.SIGNALED, f"container was killed by signal {info.signal}" + _tail(info)
    return TerminalReason.EXITED, f"container exited with code {info.exit_code} while running the input" + _tail(info)


def _tail(info: ExitInfo) -> str:
    return f"\nlast stderr lines:\n{info.stderr_tail}" if info.stderr_tail else ""


TRACEBACK_MARK = "\n--- remote traceback ---\n"


def _with_tb(message: str, tb: str) -> str:
    return f"{message}{TRACEBACK_MARK}{tb}" if tb else message
