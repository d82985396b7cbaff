"""A stale attempt's late result is refused (reliability R5), at the dispatcher, over a real SqliteStore.

The scenario the reaper makes: attempt 1 runs in container A, A stops renewing its lease (SIGSTOP,
a network partition), the reaper re-queues the input as WORKER_LOST and container B claims it as
attempt 2; then A wakes up and delivers its result. Containers are stand-ins with only what the
dispatcher reads (``id``, ``spec.pool_key``, slots); the agent stand-in records what it was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from surge.agent.agent import ExitInfo, Inflight
from surge.core.models import CallKind, InputState
from surge.ids import new_id
from surge.sdk.options import validate_options
from surge.server.dispatcher import Dispatcher
from surge.server.pools import Pool, Work
from surge.store import CallRow, InputRow, NewInput, Store, open_store
from surge.store.base import DEFAULT_WORKSPACE

LEASE = 0.2


@dataclass(eq=False)
class StandInContainer:
    id: str
    spec: Any
    slots: int = 1
    reserved: int = 0
    idle_since: float | None = None
    ready_at: float | None = field(default_factory=time.time)
    inflight: dict[str, Inflight] = field(default_factory=dict)   # as on a real ContainerHandle

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - len(self.inflight) - self.reserved)


class StandInAgent:
    def __init__(self) -> None:
        self.containers: dict[str, StandInContainer] = {}   # the agent no longer knows A: it is "lost"
        self.sent: list[tuple[str, str, int]] = []
        self.killed: list[str] = []

    def send_inputs(self, h: StandInContainer, items: list[tuple[dict[str, Any], bytes]]) -> bool:
        for meta, _ in items:
            h.inflight[meta["input_id"]] = Inflight(meta["attempt"], None, time.time())
            self.sent.append((h.id, meta["input_id"], meta["attempt"]))
        return True

    def kill(self, h: Any, reason: str, grace: float | None = None) -> None:
        self.killed.append(h.id)


@dataclass
class Scene:
    store: Store
    dispatcher: Dispatcher
    agent: StandInAgent
    pool: Pool
    input_id: str
    a: StandInContainer
    b: StandInContainer

    async def row(self) -> InputRow:
        row = await self.store.get_input(self.input_id)
        assert row is not None
        return row

    async def deliver(self, h: StandInContainer, items: list[tuple[dict[str, Any], bytes]]) -> None:
        """``on_outputs``, then wait until the batch is written (outputs are group-committed by a
        background flusher)."""
        await self.dispatcher.on_outputs(h, items)  # type: ignore[arg-type]
        flusher = getattr(self.dispatcher, "_flusher", None)
        if flusher is not None:
            await flusher

    async def result(self, h: StandInContainer, attempt: int, status: str = "ok", data: bytes = b"") -> None:
        meta = {"kind": "result", "input_id": self.input_id, "attempt": attempt, "status": status}
        if status == "error":
            meta |= {"error": f"ValueError: attempt {attempt} failed", "traceback": "Traceback ..."}
        await self.deliver(h, [(meta, data)])


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def scene_at_attempt_2(tmp_path: Path, retries: int = 0) -> Scene:
    """The input RUNNING as attempt 2 in container B, after attempt 1 in A lost its lease."""
    store = open_store(f"sqlite:///{tmp_path / 'surge.db'}")
    await store.open()
    now = time.time()
    spec = {"tag": "f", "module": "m", "options": validate_options(retries=retries).to_json()}
    app, _, (fn,) = await store.create_version(DEFAULT_WORKSPACE, "stale", deployed=True, source_hash="0" * 64,
                                              module="m", spec={}, functions=[("f", spec)], now=now)
    call = CallRow(id=new_id("fc"), workspace=DEFAULT_WORKSPACE, function_id=fn.id, kind=CallKind.SPAWN.value,
                   created_at=now, pool_key=fn.id, input_count=1)
    _, (row,), _ = await store.create_call(call, [NewInput(idx=0, args=b"args", timeout=60.0)], now)
    agent = StandInAgent()
    d = Dispatcher(store, agent, lease_ttl=LEASE)  # type: ignore[arg-type]
    pool = d.pool_for(fn.id, fn, DEFAULT_WORKSPACE, app.id, None)
    a = StandInContainer("ct-a", SimpleNamespace(pool_key=pool.key))
    b = StandInContainer("ct-b", SimpleNamespace(pool_key=pool.key))
    s = Scene(store, d, agent, pool, row.id, a, b)

    pool.containers[a.id] = a                                           # type: ignore[assignment]
    d.enqueue(pool, [Work.from_row(row, fn)])
    await until("attempt 1 running in A", lambda: _running(s, 1, a.id))
    del pool.containers[a.id]                                           # A is silent from here on
    pool.containers[b.id] = b                                           # type: ignore[assignment]

    await asyncio.sleep(LEASE * 1.5)
    assert await d.reap_expired(time.time()) == 1
    r = await s.row()
    assert r.infra_failures == 1 and r.user_failures == 0
    await until("attempt 2 running in B", lambda: _promote_and_check(s, 2, b.id))
    assert agent.sent == [(a.id, row.id, 1), (b.id, row.id, 2)]
    assert d.stats["stale_refused"] == 0
    return s


async def _running(s: Scene, attempt: int, container_id: str) -> bool:
    r = await s.row()
    return r.state == InputState.RUNNING and r.attempt == attempt and r.container_id == container_id


async def _promote_and_check(s: Scene, attempt: int, container_id: str) -> bool:
    s.dispatcher.promote_delayed(time.time())     # what the dispatch loop does every 50 ms
    return await _running(s, attempt, container_id)


def run(tmp_path: Path, body: Callable[[Scene], Awaitable[None]], *, retries: int = 0) -> None:
    async def main() -> None:
        s = await scene_at_attempt_2(tmp_path, retries)
        try:
            await body(s)
        finally:
            await s.store.close()

    asyncio.run(main())


def test_late_ok_from_attempt_1_is_refused_and_attempt_2_completes_once(tmp_path: Path) -> None:
    async def body(s: Scene) -> None:
        d = s.dispatcher
        await s.result(s.a, 1, data=b"stale result")
        assert d.stats["stale_refused"] == 1
        r = await s.row()
        assert (r.state, r.attempt, r.result, r.done_seq) == (InputState.RUNNING, 2, None, None)
        assert d.running[s.input_id].attempt == 2

        await s.result(s.b, 2, data=b"fresh result")
        r = await s.row()
        assert (r.state, r.attempt, r.result) == (InputState.SUCCEEDED, 2, b"fresh result")
        assert d.stats["to_SUCCEEDED"] == 1 and s.input_id not in d.running
        done_seq = r.done_seq

        # the same result delivered twice, and attempt 1 once more: nothing changes
        await s.result(s.b, 2, data=b"fresh result, again")
        await s.result(s.a, 1, data=b"stale result, again")
        r = await s.row()
        assert (r.state, r.result, r.done_seq) == (InputState.SUCCEEDED, b"fresh result", done_seq)
        assert d.stats["to_SUCCEEDED"] == 1 and d.stats["stale_refused"] == 3
        outputs = await s.store.outputs_since(r.call_id, 0)
        assert [(o.id, o.result) for o in outputs] == [(s.input_id, b"fresh result")]

    run(tmp_path, body)


def test_late_failure_from_attempt_1_does_not_touch_attempt_2(tmp_path: Path) -> None:
    """A stale failure is refused and leaves the running attempt's retry budget alone: attempt 2
    failing afterwards still gets its one user retry."""
    async def body(s: Scene) -> None:
        d = s.dispatcher
        await s.result(s.a, 1, status="error", data=b"pickled ValueError")
        assert d.stats["stale_refused"] == 1
        r = await s.row()
        assert (r.state, r.attempt, r.user_failures, r.container_id) == (InputState.RUNNING, 2, 0, s.b.id)
        w = d.running[s.input_id]
        assert (w.attempt, w.user_failures, w.infra_failures, w.container_id) == (2, 0, 1, s.b.id)

        await s.result(s.b, 2, status="error", data=b"pickled ValueError")
        r = await s.row()
        assert (r.state, r.user_failures) == (InputState.QUEUED, 1), "attempt 2's failure should be retried"

    run(tmp_path, body, retries=1)


def test_late_exit_of_attempt_1s_container_does_not_touch_attempt_2(tmp_path: Path) -> None:
    """Container A finally dies (SIGCONT then killed, say) reporting attempt 1 in flight."""
    async def body(s: Scene) -> None:
        d = s.dispatcher
        info = ExitInfo(exit_code=None, signal=9, oom_killed=False, kill_reason="LOST",
                        inflight={s.input_id: Inflight(attempt=1, deadline=None, started=time.time())},
                        timed_out=set(), init_error=None)
        await d.on_exit(s.a, info)  # type: ignore[arg-type]
        assert d.stats["stale_refused"] == 1
        r = await s.row()
        assert (r.state, r.attempt, r.infra_failures, r.container_id) == (InputState.RUNNING, 2, 1, s.b.id)
        w = d.running[s.input_id]
        assert (w.attempt, w.infra_failures, w.container_id) == (2, 1, s.b.id)

        await s.result(s.b, 2, data=b"fresh")
        assert (await s.row()).result == b"fresh"

    run(tmp_path, body)


def test_late_generator_items_from_attempt_1_are_refused(tmp_path: Path) -> None:
    """Items stream to the caller as they come: a zombie attempt's items must not mix into the stream
    of the attempt that is running."""
    async def body(s: Scene) -> None:
        d = s.dispatcher

        def item(attempt: int, seq: int, data: bytes) -> tuple[dict[str, Any], bytes]:
            return {"kind": "item", "input_id": s.input_id, "attempt": attempt, "seq": seq}, data

        await s.deliver(s.b, [item(2, 0, b"b0")])
        await s.deliver(s.a, [item(1, 1, b"stale a1"), item(1, 2, b"stale a2")])
        await s.deliver(s.b, [item(2, 1, b"b1"), item(2, 2, b"b2")])
        assert d.stats["stale_refused"] == 2
        events = await s.store.events_since(s.input_id, -1)
        assert [e.data for e in events] == [b"b0", b"b1", b"b2"]

    run(tmp_path, body)
