"""The call operations the HTTP routes expose: submit (accepted = committed), add inputs, read
outputs and events by cursor with long polls, cancel, summaries. A mixin of ``ControlPlane``, which
supplies the store, the dispatcher, the config and the function/pool lookups."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.core.models import CallKind, InputState
from surge.core.progress import PROGRESS_SEQ_BASE
from surge.ids import created_at, new_id
from surge.server.config import ServerConfig
from surge.server.dispatcher import TRACEBACK_MARK, Dispatcher
from surge.server.limits import check_admission
from surge.server.pools import Pool, Waiters, Work
from surge.store.base import CallRow, FunctionRow, InputRow, NewInput, Store
from surge.store.errors import StoreUnavailable


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def output_json(row: InputRow) -> dict[str, Any]:
    message, _, tb = (row.error_message or "").partition(TRACEBACK_MARK)
    return {"idx": row.idx, "input_id": row.id, "state": row.state.value, "result": b64(row.result),
            "reason": row.terminal_reason if row.state != InputState.SUCCEEDED else None,
            "message": message or None, "traceback": tb or None, "exit_code": row.exit_code,
            "signal": row.signal, "attempt": row.attempt,
            "started_at": row.started_at, "finished_at": row.finished_at, "codec": row.codec}


class CallOps:
    store: Store
    dispatcher: Dispatcher
    config: ServerConfig

    if TYPE_CHECKING:   # provided by ControlPlane
        async def resolve_function(self, workspace: str, body: dict[str, Any]) -> FunctionRow: ...
        async def pool(self, fn: FunctionRow, pool_key: str, params: bytes | None, workspace: str) -> Pool: ...
        async def function_row(self, function_id: str) -> FunctionRow | None: ...
        async def app_name(self, app_id: str) -> str: ...

    async def submit(self, workspace: str, body: dict[str, Any]) -> dict[str, Any]:
        fn = await self.resolve_function(workspace, body)
        kind = str(body.get("kind") or CallKind.REMOTE.value)
        try:
            CallKind(kind)
        except ValueError:
            raise errors.InvalidError(f"kind={kind!r}; expected one of "
                                      f"{', '.join(k.value for k in CallKind)}") from None
        is_gen = bool(fn.spec.get("is_generator"))
        if is_gen and kind != CallKind.GENERATOR.value:
            raise errors.InvalidError(f"{fn.spec.get('tag')} is a generator function: call it with .remote_gen()")
        if kind == CallKind.GENERATOR.value and not is_gen:
            raise errors.InvalidError(f"{fn.spec.get('tag')} is not a generator function: use .remote()")
        params = base64.b64decode(body["params"]) if body.get("params") else None
        inputs = self._decode_inputs(body.get("inputs") or [], 0, fn)
        if not inputs:
            raise errors.InvalidError("a call needs at least one input")
        if fn.spec.get("cls"):
            digest = hashlib.sha256(params).hexdigest()[:16] if params else "-"
            pool_key = f"{fn.app_id}:v{fn.version}:{fn.spec['cls']}:{digest}"
        else:
            pool_key = fn.id
        now = time.time()
        retention = self.config.result_retention if kind in ("spawn", "generator") else self.config.call_retention
        call = CallRow(id=new_id("fc"), workspace=workspace, function_id=fn.id, kind=kind, created_at=now,
                       idempotency_key=body.get("idempotency_key") or None, params=params, pool_key=pool_key,
                       input_count=len(inputs), expires_at=now + retention)
        pool = await self.pool(fn, pool_key, params, workspace)
        wait = min(float(body.get("wait") or 0.0), 300.0)
        if wait > 0:
            self.dispatcher.watched.setdefault(call.id, [])
        new_id_ = call.id
        check_admission(self.dispatcher, fn, len(inputs), self.config.max_queued)   # 429 when full
        try:
            call, rows, created = await self.store.create_call(call, inputs, now)
        except StoreUnavailable:
            self.dispatcher.watched.pop(new_id_, None)     # not accepted: the client retries (503)
            raise
        if not created:
            self.dispatcher.watched.pop(new_id_, None)   # a replay: the first submission's call answers
            if call.function_id != fn.id:
                raise errors.ConflictError(
                    f"idempotency_key {call.idempotency_key!r} was already used for call {call.id} to another "
                    "function; use a new key for a new call")
        if created:
            self.dispatcher.enqueue(pool, [Work.from_row(r, fn) for r in rows], now)
        result: dict[str, Any] = {"call_id": call.id, "input_ids": [r.id for r in rows], "created": created}
        if wait > 0:
            result["outputs"] = await self._wait_all(call.id, len(rows), wait)
        return result

    def _decode_inputs(self, raw: list[Any], start: int, fn: FunctionRow) -> list[NewInput]:
        opts = fn.spec.get("options", {})
        timeout = float(opts.get("timeout", 300))
        max_retries = int((opts.get("retries") or {}).get("max_retries", 0))
        out = []
        for i, item in enumerate(raw):
            try:
                data = base64.b64decode(item, validate=True)
            except (ValueError, TypeError):
                raise errors.InvalidError(f"input #{start + i} is not base64-encoded bytes") from None
            if len(data) > self.config.max_input_bytes:
                raise errors.TooLargeError(f"input #{start + i} is {len(data):,} bytes, over the limit of "
                                           f"{self.config.max_input_bytes:,}; pass large data through a Volume")
            out.append(NewInput(idx=start + i, args=data, timeout=timeout, max_retries=max_retries))
        return out

    async def _wait_all(self, call_id: str, count: int, wait: float) -> list[dict[str, Any]]:
        """Outputs of a call's ``count`` inputs, waiting up to ``wait`` s. Completions written by the
        dispatcher land in ``watched`` as well, so the usual case never reads the store back; other
        endings (cancel, init failure, no capacity) wake us too, and then the store is read."""
        deadline = time.monotonic() + wait
        box = self.dispatcher.watched.get(call_id)
        try:
            read_store = box is None
            while True:
                ev = self.dispatcher.calls.event(call_id)
                if box is not None and len(box) >= count:
                    return [output_json(r) for r in box]
                left = deadline - time.monotonic()
                if read_store or left <= 0:
                    rows = await self.store.outputs_since(call_id, 0, limit=count)
                    if len(rows) >= count or left <= 0:
                        return [output_json(r) for r in rows]
                read_store = True
                await Waiters.wait(ev, left)
        finally:
            self.dispatcher.watched.pop(call_id, None)

    async def get_call_row(self, workspace: str, call_id: str) -> CallRow:
        call = await self.store.get_call(call_id)
        if call is None or call.workspace != workspace:
            made = created_at(call_id)
            if call is None and made is not None and time.time() - made > self.config.call_retention:
                raise errors.OutputExpiredError(
                    f"call {call_id!r} is gone: its results passed their retention (spawned calls "
                    f"{self.config.result_retention / 86400:g} days, others "
                    f"{self.config.call_retention / 86400:g} days)", reason="EXPIRED")
            raise errors.NotFoundError(f"no call {call_id!r} (results are kept "
                                       f"{self.config.result_retention / 86400:g} days after a spawn)")
        return call

    async def add_inputs(self, workspace: str, call_id: str, body: dict[str, Any]) -> dict[str, Any]:
        call = await self.get_call_row(workspace, call_id)
        if call.cancelled:
            raise errors.ConflictError(f"call {call_id} was cancelled")
        fn = await self.function_row(call.function_id)
        assert fn is not None
        start = int(body.get("start_idx", 0))
        inputs = self._decode_inputs(body.get("inputs") or [], start, fn)
        now = time.time()
        check_admission(self.dispatcher, fn, len(inputs), self.config.max_queued)   # 429 when full
        rows = await self.store.add_inputs(call_id, inputs, now)
        pool = await self.pool(fn, call.pool_key, call.params, workspace)
        # a retried batch returns rows that already exist: only the ones inserted now are new work
        held = self.dispatcher.running.keys() | {w.id for w in pool.queue} | {w.id for _, _, w in pool.delayed}
        fresh = [r for r in rows if r.state == InputState.QUEUED and r.attempt == 0 and r.id not in held]
        self.dispatcher.enqueue(pool, [Work.from_row(r, fn) for r in fresh], now)
        return {"input_ids": [r.id for r in rows]}

    async def outputs(self, workspace: str, call_id: str, since: int, wait: float) -> dict[str, Any]:
        await self.get_call_row(workspace, call_id)
        deadline = time.monotonic() + min(wait, 300.0)
        while True:
            ev = self.dispatcher.calls.event(call_id)
            rows = await self.store.outputs_since(call_id, since, limit=5000)
            left = deadline - time.monotonic()
            if rows or left <= 0:
                break
            counts = await self.store.call_counts(call_id)
            if not counts.get("QUEUED") and not counts.get("RUNNING"):
                # everything ended — possibly just now, after the read above: read once more
                rows = await self.store.outputs_since(call_id, since, limit=5000)
                if not rows:
                    return {"outputs": [], "cursor": since, "done": True}
                break
            await Waiters.wait(ev, left)
        cursor = max([since] + [r.done_seq or 0 for r in rows])
        return {"outputs": [output_json(r) for r in rows], "cursor": cursor, "done": False}

    async def events(self, workspace: str, input_id: str, since: int, wait: float) -> dict[str, Any]:
        deadline = time.monotonic() + min(wait, 300.0)
        while True:
            ev = self.dispatcher.inputs.event(input_id)
            row = await self.store.get_input(input_id)     # state first: events before it are complete
            if row is None:
                raise errors.NotFoundError(f"no input {input_id!r}")
            call = await self.store.get_call(row.call_id)
            if call is None or call.workspace != workspace:
                raise errors.NotFoundError(f"no input {input_id!r}")
            evs = await self.store.events_between(input_id, since, PROGRESS_SEQ_BASE, limit=1000)   # items
            terminal = row.state.terminal
            left = deadline - time.monotonic()
            if evs or terminal or left <= 0:
                return {"events": [{"seq": e.seq, "kind": e.kind, "data": b64(e.data)} for e in evs],
                        "output": output_json(row) if terminal else None, "more": len(evs) >= 1000}
            await Waiters.wait(ev, left)

    async def cancel(self, workspace: str, call_id: str) -> dict[str, Any]:
        await self.get_call_row(workspace, call_id)
        await self.store.set_call_cancelled(call_id)
        rows = await self.store.list_inputs(call_id, states=[InputState.QUEUED, InputState.RUNNING])
        n = await self.dispatcher.cancel_inputs(rows)
        return {"call_id": call_id, "cancelled": n}

    async def call_summary(self, call: CallRow) -> dict[str, Any]:
        counts = await self.store.call_counts(call.id)
        fn = await self.function_row(call.function_id)
        app_name = await self.app_name(fn.app_id) if fn else "?"
        pending = counts.get("QUEUED", 0) + counts.get("RUNNING", 0)
        state = "RUNNING" if counts.get("RUNNING") else ("QUEUED" if pending else _overall(counts))
        return {"call_id": call.id, "kind": call.kind, "app": app_name,
                "function": fn.spec.get("tag") if fn else "?", "version": fn.version if fn else None,
                "created_at": call.created_at, "inputs": call.input_count or sum(counts.values()),
                "counts": counts, "state": state, "cancelled": call.cancelled, "expires_at": call.expires_at}


def _overall(counts: dict[str, int]) -> str:
    for s in ("FAILED", "TIMED_OUT", "CANCELLED", "EXPIRED"):
        if counts.get(s):
            return s
    return "SUCCEEDED" if counts else "QUEUED"


