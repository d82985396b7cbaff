"""What the dispatcher holds in memory: ``Work`` (an input queued, delayed or running), ``Pool``
(the containers and queue of one function and parameter set), ``Waiters`` (wake-ups for long
polls), and ``spawn`` for background tasks that must not be garbage-collected."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

from surge.agent.agent import ContainerHandle
from surge.core.retries import Retries
from surge.sdk.options import FunctionOptions
from surge.store.base import FunctionRow, InputRow

_background: set[asyncio.Task[Any]] = set()


def spawn(coro: Any) -> asyncio.Task[Any]:
    """Run a coroutine in the background, keeping a reference so it is not garbage-collected."""
    task: asyncio.Task[Any] = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


@dataclass(eq=False)
class Work:
    """An input the dispatcher holds: queued, delayed (retry backoff) or running."""

    id: str
    call_id: str
    idx: int
    attempt: int
    args: bytes
    timeout: float | None
    user_failures: int = 0
    infra_failures: int = 0
    next_run_at: float = 0.0
    container_id: str | None = None
    method: str | None = None      # for @app.cls pools: which method this input calls
    pool_key: str = ""
    started_at: float | None = None
    priority: int = 0              # queue order, higher first (HTTP jobs)
    codec: str | None = None       # "json" for HTTP jobs: the runtime decodes args as JSON
    start_by: float | None = None  # a job's ttl: EXPIRED instead of started after this

    @classmethod
    def from_row(cls, row: InputRow, function: FunctionRow | None = None) -> Work:
        method = function.spec.get("method") if function is not None else None
        return cls(row.id, row.call_id, row.idx, row.attempt, row.args, row.timeout, row.user_failures,
                   row.infra_failures, row.next_run_at, method=str(method) if method else None,
                   priority=row.priority, codec=row.codec, start_by=row.start_by)


@dataclass(eq=False)
class Pool:
    """Containers and queued inputs of one function (and one parameter set, for classes)."""

    key: str
    function: FunctionRow
    options: FunctionOptions
    workspace: str
    app_id: str
    params: bytes
    queue: collections.deque[Work] = field(default_factory=collections.deque)
    delayed: list[tuple[float, int, Work]] = field(default_factory=list)
    containers: dict[str, ContainerHandle] = field(default_factory=dict)
    init_failures: int = 0
    start_blocked_until: float = 0.0
    retired: bool = False          # an old version or a stopped app: drain, start nothing new
    mean_runtime: float | None = None     # EWMA of input run times (drives prefetch)
    # web requests waiting for a free container (futures, see server/gateway.py): demand like queue
    held: collections.deque[asyncio.Future[Any]] = field(default_factory=collections.deque)
    init_error: str | None = None         # why the last container failed to start

    @property
    def retries(self) -> Retries:
        return self.options.retries


class Waiters:
    """Wake-ups for long polls. Take ``event(key)`` *before* reading the store, then wait on it:
    a notification between the read and the wait is not lost."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, key: str) -> None:
        ev = self._events.pop(key, None)
        if ev is not None:
            ev.set()

    def event(self, key: str) -> asyncio.Event:
        ev = self._events.get(key)
        if ev is None:
            ev = self._events[key] = asyncio.Event()
        return ev

    @staticmethod
    async def wait(ev: asyncio.Event, timeout: float) -> bool:
        if timeout <= 0:
            return ev.is_set()
        try:
            await asyncio.wait_for(ev.wait(), timeout=timeout)
            return True
        except TimeoutError:
            return False
