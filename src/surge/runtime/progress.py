"""Progress reports inside a container: from ``surge.progress()`` to the agent, rate-limited.

``surge.progress()`` finds the input it reports for in the input's context (``runtime.current``,
or the inputs of the running batch), and the container's ``Reporter`` applies the per-input gate
(``surge.core.progress.ProgressGate``): a report goes out at once through the container's outbox,
or waits for a timer thread, replaced by any newer one. ``finish`` sends what waits before the
input's result, under the same lock the timer sends with, so no report follows its result.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from surge.core.progress import MIN_INTERVAL, ProgressGate, encode_report, progress_seq
from surge.runtime.current import get_current_input

_batch: contextvars.ContextVar[Sequence[dict[str, Any]] | None] = contextvars.ContextVar(
    "surge_batch", default=None)
_reporter: Reporter | None = None

Key = tuple[str, int]      # (input_id, attempt)


class Sink(Protocol):
    def put(self, item: dict[str, Any], data: bytes, *, defer: bool = False) -> None: ...


class Reporter:
    def __init__(self, out: Sink, *, interval: float = MIN_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._gate: ProgressGate[Key, bytes] = ProgressGate(interval)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._timer: threading.Thread | None = None

    def report(self, metas: Sequence[dict[str, Any]], data: bytes) -> None:
        now = self._clock()
        with self._lock:
            waiting = False
            for meta in metas:
                key = (str(meta["input_id"]), int(meta["attempt"]))
                n = self._gate.offer(key, data, now=now)
                if n is None:
                    waiting = True
                else:
                    self._send(key, n, data)
            if waiting:
                if self._timer is None:
                    self._timer = threading.Thread(target=self._run, name="surge-progress", daemon=True)
                    self._timer.start()
                self._wake.notify()

    def finish(self, meta: dict[str, Any]) -> None:
        """The input is about to send its result: send its waiting report first, and forget it."""
        if not self._gate:          # no input has reported: the common case costs one check
            return
        key = (str(meta["input_id"]), int(meta["attempt"]))
        with self._lock:
            last = self._gate.close(key)
            if last is not None:
                self._send(key, last[0], last[1])

    def _send(self, key: Key, n: int, data: bytes) -> None:
        # under self._lock: a report and the result of its input leave in the order they were put
        self._out.put({"kind": "progress", "input_id": key[0], "attempt": key[1],
                       "seq": progress_seq(key[1], n)}, data, defer=True)

    def _run(self) -> None:
        with self._lock:
            while True:
                due = self._gate.next_due()
                if due is None:
                    self._wake.wait()
                    continue
                left = due - self._clock()
                if left > 0:
                    self._wake.wait(left)
                    continue
                for key, n, data in self._gate.due(now=self._clock()):
                    self._send(key, n, data)


def install(reporter: Reporter | None) -> None:
    """Make ``reporter`` the one ``surge.progress()`` uses in this process (the container's)."""
    global _reporter
    _reporter = reporter


def set_batch(metas: Sequence[dict[str, Any]] | None) -> contextvars.Token[Sequence[dict[str, Any]] | None]:
    """The inputs of the batch this context runs (``@surge.batched``): a report goes to each."""
    return _batch.set(metas)


def reset_batch(token: contextvars.Token[Sequence[dict[str, Any]] | None]) -> None:
    _batch.reset(token)


def report(body: dict[str, Any]) -> bool:
    """Send a checked report for the running input(s); False when no input runs in this context."""
    reporter = _reporter
    if reporter is None:
        return False
    metas = _batch.get()
    if not metas:
        current = get_current_input()
        if not current or current.get("input_id") is None:
            return False
        metas = [current]
    reporter.report(metas, encode_report(body))
    return True
