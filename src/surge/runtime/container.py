"""The process a node agent starts for a container: connect, load, serve inputs until told to stop.

Threads: the main thread (or an event loop, for ``async def``) runs inputs; a reader thread takes
frames from the agent; a heartbeat thread renews leases. Results and generator items go out through
one ``Outbox`` so their order per input is kept and bursts leave as one frame.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from surge import wire
from surge.core.jsonargs import bind_json
from surge.core.progress import PROGRESS_SEQ_BASE
from surge.runtime import progress as progress_rt
from surge.runtime.current import set_current_input
from surge.runtime.service import Service, Target
from surge.sdk import serialization

_STOP = object()


class Outbox:
    """Whoever finds the socket free sends everything queued so far (flat combining).

    ``put(..., defer=True)`` (used while more inputs wait in this container) leaves the item for a
    flusher that sends at most ``DEFER_SECONDS`` later, so a burst of short inputs leaves as one
    frame instead of one frame per result; anything not deferred flushes at once, taking the
    deferred items with it."""

    DEFER_SECONDS = 0.002

    def __init__(self, conn: wire.BlockingConn) -> None:
        self.conn = conn
        self._mu = threading.Lock()
        self._send = threading.Lock()
        self._items: list[dict[str, Any]] = []
        self._parts: list[bytes] = []
        self._deferred = threading.Event()
        threading.Thread(target=self._flusher, name="surge-outbox", daemon=True).start()

    def put(self, item: dict[str, Any], data: bytes, *, defer: bool = False) -> None:
        with self._mu:
            self._items.append(item)
            self._parts.append(data)
        if defer:
            self._deferred.set()
        else:
            self.flush()

    def _flusher(self) -> None:
        while True:
            self._deferred.wait()
            time.sleep(self.DEFER_SECONDS)
            self._deferred.clear()
            try:
                self.flush()
            except OSError:
                return

    def flush(self) -> None:
        while True:
            if not self._send.acquire(blocking=False):
                return
            try:
                with self._mu:
                    items, parts = self._items, self._parts
                    self._items, self._parts = [], []
                if items:
                    self.conn.send_raw(wire.encode_parts({"t": "out", "items": items}, parts))
            finally:
                self._send.release()
            with self._mu:
                if not self._items:
                    return

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        with self._send:
            self.conn.send(header, body)
        # a put() that found the socket busy with this frame left its items to whoever held it
        with self._mu:
            pending = bool(self._items)
        if pending:
            self.flush()


class Container:
    def __init__(self, conn: wire.BlockingConn, service: Service, max_result_bytes: int) -> None:
        self.conn = conn
        self.out = Outbox(conn)
        self.progress = progress_rt.Reporter(self.out)     # surge.progress() reports, rate-limited
        progress_rt.install(self.progress)
        self.service = service
        self.max_result_bytes = max_result_bytes
        self.running: dict[str, int] = {}
        self._running_mu = threading.Lock()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down = threading.Event()

    # -- executing one input ---------------------------------------------------------------------
    def _begin(self, meta: dict[str, Any]) -> None:
        with self._running_mu:
            self.running[meta["input_id"]] = meta["attempt"]
        if meta.get("notify_start"):
            # it waited in our queue: the agent starts its timeout now (within DEFER_SECONDS)
            self.out.put({"kind": "started", "input_id": meta["input_id"], "attempt": meta["attempt"]}, b"",
                         defer=True)

    def _end(self, meta: dict[str, Any]) -> None:
        with self._running_mu:
            self.running.pop(meta["input_id"], None)

    def _more_queued(self) -> bool:
        return not self.inbox.empty()

    def _result(self, meta: dict[str, Any], value: Any) -> None:
        self.progress.finish(meta)      # a report still waiting goes out before the result
        base = {"kind": "result", "input_id": meta["input_id"], "attempt": meta["attempt"],
                "took": meta.get("took", 0.0)}
        try:
            data = _encode(meta, value, "return value")
        except Exception as exc:
            if meta.get("codec") == "json":
                self._error(meta, exc)       # _encode's message says what JSON allows
                return
            self._error(meta, TypeError(f"the return value of type {type(value).__name__} cannot be "
                                        f"serialized ({type(exc).__name__}: {exc}); return plain data"))
            return
        if len(data) > self.max_result_bytes:
            self.out.put({**base, "status": "too_large",
                          "error": f"result is {len(data):,} bytes, over the limit of "
                                   f"{self.max_result_bytes:,}; write large outputs to a Volume"}, b"")
            return
        self.out.put({**base, "status": "ok"}, data, defer=self._more_queued())

    def _error(self, meta: dict[str, Any], exc: BaseException) -> None:
        self.progress.finish(meta)
        data, summary, tb = serialization.serialize_exception(exc)
        self.out.put({"kind": "result", "input_id": meta["input_id"], "attempt": meta["attempt"],
                      "status": "error", "error": summary, "traceback": tb}, data)

    def _item(self, meta: dict[str, Any], seq: int, value: Any) -> None:
        if seq >= PROGRESS_SEQ_BASE:
            raise ValueError(f"a generator may yield at most {PROGRESS_SEQ_BASE:,} items per input")
        self.out.put({"kind": "item", "input_id": meta["input_id"], "attempt": meta["attempt"],
                      "seq": seq}, _encode(meta, value, "yielded item"))

    def run_sync(self, meta: dict[str, Any], payload: bytes) -> None:
        token = set_current_input(meta)
        self._begin(meta)
        try:
            target = self.service.target(meta.get("method"))
            args, kwargs = _decode(meta, payload, target)
            t0 = time.perf_counter()
            if target.is_generator:
                for seq, item in enumerate(target.fn(*args, **kwargs)):
                    self._item(meta, seq, item)
                value = None
            else:
                value = target.fn(*args, **kwargs)
            meta["took"] = time.perf_counter() - t0
            self._result(meta, value)
        except BaseException as exc:
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                raise
            self._error(meta, exc)
        finally:
            self._end(meta)
            from surge.runtime.current import _current
            _current.reset(token)

    async def run_async(self, meta: dict[str, Any], payload: bytes) -> None:
        set_current_input(meta)
        self._begin(meta)
        try:
            target: Target = self.service.target(meta.get("method"))
            args, kwargs = _decode(meta, payload, target)
            if not target.is_async:
                loop = asyncio.get_running_loop()
                # sync code in an async container runs on a thread; the result is sent from there
                await loop.run_in_executor(None, self.run_sync, meta, payload)
                return
            t0 = time.perf_counter()
            if target.is_generator:
                seq = 0
                async for item in target.fn(*args, **kwargs):
                    self._item(meta, seq, item)
                    seq += 1
                value = None
            else:
                value = await target.fn(*args, **kwargs)
            meta["took"] = time.perf_counter() - t0
            self._result(meta, value)
        except Exception as exc:
            self._error(meta, exc)
        finally:
            self._end(meta)

    # -- frames from the agent -----------------------------------------------------------------
    def reader(self) -> None:
        try:
            while True:
                header, body = self.conn.recv()
                t = header["t"]
                if t == "inputs":
                    for meta, payload in zip(header["items"], wire.split_body(header, body), strict=True):
                        self._dispatch(meta, payload)
                elif t == "shutdown":
                    self._dispatch(None, _STOP)
                    return
        except (EOFError, OSError):
            # the agent is gone: nobody can receive our results, so stop now
            os._exit(0)

    def _dispatch(self, meta: dict[str, Any] | None, payload: Any) -> None:
        if self.loop is not None:
            if payload is _STOP:
                self.loop.call_soon_threadsafe(self.shutting_down.set)
            else:
                asyncio.run_coroutine_threadsafe(self.run_async(meta or {}, payload), self.loop)
        else:
            self.inbox.put((meta, payload))

    def heartbeat(self) -> None:
        interval = float(os.environ.get("SURGE_HEARTBEAT_INTERVAL", "3"))
        while not self.shutting_down.wait(interval):
            with self._running_mu:
                running = [[k, v] for k, v in self.running.items()]
            try:
                self.out.send({"t": "heartbeat", "running": running})
            except OSError:
                return

    # -- batches (@surge.batched) ---------------------------------------------------------------
    def serve_batches(self, max_size: int, wait: float) -> None:
        """Collect up to ``max_size`` inputs, or what arrived within ``wait`` of the first, and run
        them as one call."""
        stop = False
        while not stop:
            meta, payload = self.inbox.get()
            if payload is _STOP:
                return
            batch = [(meta, payload)]
            deadline = time.monotonic() + wait
            while len(batch) < max_size:
                left = deadline - time.monotonic()
                try:
                    item = self.inbox.get(timeout=left) if left > 0 else self.inbox.get_nowait()
                except queue.Empty:
                    break
                if item[1] is _STOP:
                    stop = True
                    break
                batch.append(item)
            self.run_batch(batch)

    def run_batch(self, batch: list[tuple[dict[str, Any], bytes]]) -> None:
        metas = [m for m, _ in batch]
        for m in metas:
            self._begin(m)
        try:
            target = self.service.target(metas[0].get("method"))
            rows = self._bind_batch(target, batch)
            if rows:
                token = progress_rt.set_batch([m for m, _ in rows])   # surge.progress() reports to each
                try:
                    self._call_batch(target, rows)
                finally:
                    progress_rt.reset_batch(token)
        except Exception as exc:
            for m in metas:
                self._error(m, exc)
        finally:
            for m in metas:
                self._end(m)

    def _bind_batch(self, target: Target, batch: list[tuple[dict[str, Any], bytes]]
                    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Each input's arguments by parameter name (defaults filled in), however it passed them:
        positionally or by keyword (SDK calls), or as a JSON job's input. An input whose
        arguments do not fit the signature fails alone; the rest of the batch runs."""
        sig = inspect.signature(target.fn)
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for m, p in batch:
            try:
                args, kwargs = _decode(m, p, target)
                bound = sig.bind(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, TypeError):
                    exc = TypeError(f"{getattr(target.fn, '__name__', 'the function')}{sig}: {exc} (call a "
                                    "batched function with one value per parameter; it receives a list of "
                                    "them)")
                self._error(m, exc)
                continue
            bound.apply_defaults()
            rows.append((m, bound.arguments))
        return rows

    def _call_batch(self, target: Target, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """One call with a list per parameter, then one result (or exception instance) per input."""
        metas = [m for m, _ in rows]
        try:
            columns: list[list[Any]] = []
            kw_columns: dict[str, list[Any]] = {}
            for param in inspect.signature(target.fn).parameters.values():
                column = [arguments[param.name] for _, arguments in rows]
                if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                    columns.append(column)
                elif param.kind == param.KEYWORD_ONLY:
                    kw_columns[param.name] = column
                else:
                    raise TypeError(f"a batched function cannot take *{param.name} or **{param.name}: declare "
                                    "one parameter per argument")
            t0 = time.perf_counter()
            out = target.fn(*columns, **kw_columns)
            if target.is_async:
                out = asyncio.run(out)
            took = (time.perf_counter() - t0) / len(rows)
            if not isinstance(out, list | tuple) or len(out) != len(rows):
                got = f"{len(out)} results" if isinstance(out, list | tuple) else f"a {type(out).__name__}"
                raise ValueError(f"the batched function returned {got} for a batch of {len(rows)} inputs; "
                                 "it must return a list with one result per input, in order")
        except Exception as exc:
            for m in metas:
                self._error(m, exc)
        else:
            for m, value in zip(metas, out, strict=True):
                m["took"] = took
                if isinstance(value, BaseException):
                    self._error(m, value)    # one item failed, the others succeeded
                else:
                    self._result(m, value)

    # -- main loops ----------------------------------------------------------------------------
    def serve_sync(self) -> None:
        n = self.service.max_inputs
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="surge-input") if n > 1 else None
        slots = threading.Semaphore(n)

        def run_and_release(meta: dict[str, Any], payload: bytes) -> None:
            try:
                self.run_sync(meta, payload)
            finally:
                slots.release()

        while True:
            meta, payload = self.inbox.get()
            if payload is _STOP:
                break
            if pool is None:
                self.run_sync(meta, payload)
                continue
            slots.acquire()
            pool.submit(run_and_release, meta, payload)
        if pool is not None:
            pool.shutdown(wait=True)

    async def serve_async(self) -> None:
        self.loop = asyncio.get_running_loop()
        started.set()
        while not self.shutting_down.is_set():
            await asyncio.sleep(0.05)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _encode(meta: dict[str, Any], value: Any, what: str) -> bytes:
    """A result or generator item as bytes: JSON for HTTP jobs (``codec: "json"``), else cloudpickle."""
    if meta.get("codec") != "json":
        return serialization.dumps(value)
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the {what} of type {type(value).__name__} is not JSON-serializable ({exc}); a "
                       "function called through the HTTP job API must return JSON data: dict, list, str, "
                       "int, float (not NaN or infinity), bool or None") from None


def _decode(meta: dict[str, Any], payload: bytes, target: Target) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments: an HTTP job's JSON input bound to the signature (``surge.core.jsonargs``),
    or the SDK's pickled ``(args, kwargs)``."""
    if meta.get("codec") != "json":
        return serialization.deserialize_args(payload)
    return bind_json(inspect.signature(target.fn), json.loads(payload))


started = threading.Event()


def _spawn(target: Callable[[], None], name: str) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()


def main(preloaded: Service | None = None) -> None:
    """Serve inputs until told to stop. ``preloaded``: the service a zygote prepared before it
    forked this process (its module imported, its ``@enter(snap=True)`` hooks run)."""
    cid = os.environ["SURGE_CONTAINER_ID"]
    spawned_at = float(os.environ.get("SURGE_SPAWNED_AT", time.time()))
    phases = {"process": max(0.0, time.time() - spawned_at)}
    conn = wire.BlockingConn.connect(os.environ["SURGE_AGENT_SOCK"])
    conn.send({"t": "hello", "container_id": cid, "pid": os.getpid()})
    header, body = conn.recv()
    assert header["t"] == "init", header
    try:
        if preloaded is None:
            service = Service.load(header["function"], body)
        else:
            service = preloaded
            service.phases = {}      # the zygote's import and snap-hook times are its own
            service.enter()
        if service.web is not None or service.web_methods:   # serve HTTP before saying ready (runtime/web.py)
            from surge.runtime import web

            service.phases.update(web.serve_service(service, run_dir=os.path.dirname(os.environ["SURGE_AGENT_SOCK"]),
                                                    container_id=cid))
    except BaseException as exc:
        data, summary, tb = serialization.serialize_exception(exc)
        conn.send({"t": "init_failed", "error": summary, "traceback": tb}, data)
        conn.close()
        os._exit(3)
    phases.update(service.phases)
    c = Container(conn, service, int(header.get("max_result_bytes", 256 << 20)))
    if service.batch is not None:
        _spawn(c.reader, "surge-reader")
        _spawn(c.heartbeat, "surge-heartbeat")
        c.out.send({"t": "ready", "phases": phases})
        c.serve_batches(*service.batch)
    elif service.any_async:
        _spawn(c.reader, "surge-reader")
        _spawn(c.heartbeat, "surge-heartbeat")

        async def run() -> None:
            serve = asyncio.ensure_future(c.serve_async())
            await asyncio.to_thread(started.wait)
            c.out.send({"t": "ready", "phases": phases})
            await serve

        asyncio.run(run())
    else:
        _spawn(c.reader, "surge-reader")
        _spawn(c.heartbeat, "surge-heartbeat")
        c.out.send({"t": "ready", "phases": phases})
        c.serve_sync()
    c.shutting_down.set()
    try:
        service.close()
    finally:
        conn.close()
        os._exit(0)
