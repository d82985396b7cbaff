"""The client side of ``.map``: stream inputs in batches, keep a bounded number in flight, and
yield outputs (in order, or as they complete)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.core.models import CallKind
from surge.sdk import context, serialization
from surge.sdk.call import decode_output

if TYPE_CHECKING:
    from surge.sdk.function import Function

BATCH = 2000          # inputs per request
MAX_IN_FLIGHT = 20000  # inputs submitted but not yet yielded: bounds memory on both sides


def run_map(fn: Function, arg_tuples: Iterator[tuple[Any, ...]], kwargs: dict[str, Any], *,
            order_outputs: bool, return_exceptions: bool, total: int | None = None) -> Iterator[Any]:
    client = context.get_client()
    advance, close = (context.map_progress_hook(total) if context.map_progress_hook else (None, None))
    call_id: str | None = None
    submitted = 0
    yielded = 0
    exhausted = False
    cursor = 0
    buffered: dict[int, dict[str, Any]] = {}
    next_idx = 0
    pending: list[bytes] = []     # a batch the server's full queue refused (429): sent again at retry_at
    retry_at = 0.0
    try:
        while True:
            # 1. top up inputs while under the in-flight bound (and past any Retry-After)
            if (pending and time.monotonic() >= retry_at) or (
                    not pending and not exhausted and submitted - yielded < MAX_IN_FLIGHT):
                batch = pending
                if not batch:
                    room = min(BATCH, MAX_IN_FLIGHT - (submitted - yielded))
                    batch = [serialization.serialize_args(a, kwargs) for a in itertools.islice(arg_tuples, room)]
                    if len(batch) < room:
                        exhausted = True
                pending = []
                if batch:
                    if call_id is None:     # the client itself waits out a 429 here: nothing to collect yet
                        resp = client.submit(fn._ref(), CallKind.MAP.value, batch,
                                             idempotency_key=uuid.uuid4().hex, params=fn._params, wait=0.0)
                        call_id = resp["call_id"]
                        submitted += len(batch)
                    else:
                        try:
                            client.add_inputs(call_id, submitted, batch, wait_if_limited=False)
                            submitted += len(batch)
                        except errors.RateLimitedError as exc:
                            # the function's queue is full: collect outputs meanwhile, then resend
                            pending, retry_at = batch, time.monotonic() + exc.retry_after
            if call_id is None or (exhausted and not pending and yielded >= submitted):
                return
            # 2. collect outputs; wait only when there is nothing more to send right now
            can_send = not pending and not exhausted and submitted - yielded < MAX_IN_FLIGHT
            wait = max(0.0, retry_at - time.monotonic()) if pending else (0.0 if can_send else 30.0)
            page = client.outputs(call_id, cursor, wait=wait)
            cursor = page["cursor"]
            for out in page["outputs"]:
                if order_outputs:
                    buffered[out["idx"]] = out
                else:
                    yielded += 1
                    if advance:
                        advance(1)
                    yield _value(out, return_exceptions)
            while order_outputs and next_idx in buffered:
                out = buffered.pop(next_idx)
                next_idx += 1
                yielded += 1
                if advance:
                    advance(1)
                yield _value(out, return_exceptions)
    finally:
        if close:
            close()
        if call_id is not None and yielded < submitted:
            # the consumer stopped early (break, exception): don't leave work running
            try:
                client.cancel(call_id)
            except Exception:
                pass


def _value(out: dict[str, Any], return_exceptions: bool) -> Any:
    ok, value = decode_output(out)
    if ok or return_exceptions:
        return value
    raise value
