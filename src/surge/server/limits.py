"""Limits that keep one caller from exhausting the control plane.

- ``BodyLimit`` (ASGI): a request body over ``max_body_bytes`` gets 413 before it is read in full:
  at once from its ``Content-Length``, or, for a chunked body, as soon as the bytes counted so far
  pass the limit (the rest is never read; the connection is closed after the answer).
- ``RateLimiter`` (ASGI, inside the auth gate): a token bucket per API token
  (``surge.core.ratelimit``); over the rate, 429 with ``Retry-After``.
- ``check_admission``: a function whose queue is full answers 429 with ``Retry-After``
  (``surge.core.admission``) instead of queueing without bound.

All three are configured by ``ServerConfig`` (``surge server --max-body-bytes/--rate-limit/
--rate-burst/--max-queued``); the defaults are far above what one client does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from surge.core import admission
from surge.core.ratelimit import Bucket, RateLimit, take
from surge.errors import RateLimitedError, TooLargeError
from surge.server.auth import SCOPE_KEY
from surge.server.http_errors import error_response
from surge.server.tokens import Principal

if TYPE_CHECKING:
    from surge.server.dispatcher import Dispatcher
    from surge.store.base import FunctionRow

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _too_large(limit: int, size: str) -> TooLargeError:
    return TooLargeError(f"request body is {size}, over the limit of {limit:,} bytes; send large data "
                         "through a Volume, or raise `surge server --max-body-bytes`")


class BodyLimit:
    """ASGI middleware: 413 for request bodies over ``max_bytes``, before reading them in full."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(_too_large(self.max_bytes, f"{int(declared):,} bytes"))(scope, receive, send)
            return
        if declared is None and scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise _too_large(self.max_bytes, f"over {received:,} bytes (chunked)")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return                 # the app's answer to a cut-off body; ours follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:     # whatever the app made of the cut-off body, the answer is 413
                raise
        if over and not started:
            await error_response(_too_large(self.max_bytes, f"over {received:,} bytes"))(scope, receive, send)


class RateLimiter:
    """ASGI middleware: a token bucket per API token (the principal the auth gate resolved)."""

    def __init__(self, app: ASGIApp, *, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limit = limit
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get(SCOPE_KEY)
        if scope["type"] == "http" and isinstance(principal, Principal) and not self.limit.unlimited:
            key = principal.token_id
            decision = take(self.limit, self.buckets.get(key), self.clock())
            self.buckets[key] = decision.bucket
            if not decision.allowed:
                exc = RateLimitedError(f"rate limit: this token may make {self.limit.rate:g} requests/s "
                                       f"(bursts of {self.limit.burst:g}); retry after "
                                       f"{decision.retry_after:.2f} s", retry_after=decision.retry_after)
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def check_admission(dispatcher: Dispatcher, fn: FunctionRow, incoming: int, limit: int) -> None:
    """RateLimitedError (429) if ``fn``'s queue cannot take ``incoming`` more inputs."""
    if limit <= 0:
        return
    queued = slots = 0
    runtime: float | None = None
    for pool in dispatcher.pools.values():
        if pool.function.id == fn.id:
            queued += len(pool.queue) + len(pool.delayed)
            slots += len(pool.containers) * max(1, pool.options.max_inputs)
            runtime = pool.mean_runtime if pool.mean_runtime is not None else runtime
    decision = admission.admit(queued, incoming, limit, admission.drain_rate(slots, runtime))
    if not decision.admitted:
        raise RateLimitedError(
            f"function {fn.spec.get('tag')!r} has {queued:,} queued inputs, its limit is {limit:,}; "
            f"retry after {decision.retry_after:g} s (the SDK does this by itself)",
            retry_after=decision.retry_after)
