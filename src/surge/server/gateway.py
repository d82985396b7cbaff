"""The web gateway: serves ``/web/{app}/{label}/...`` by proxying each request to a container of
the endpoint's function.

Routing. ``{app}`` is a deployed app's name (default workspace), ``{workspace}--{name}`` for
another workspace, or an app's id (how ephemeral apps are reached); ``{label}`` names the
endpoint in the app. Resolutions are cached and checked against the control plane's cached app
row on every request, so a redeploy or a stop takes effect at once.

Capacity. A request takes one of the container's ``max_inputs`` slots (1 unless
``@surge.concurrent``), shared with ``.remote()`` inputs; while it runs the container is BUSY
(metered as busy time, never scaled down). With no free slot, the request is *held* (a
Knative-activator-style buffer): it waits in the pool's ``held`` queue, which the autoscaler
counts as demand like queued inputs, until a container has room, the function's container fails
to start (503 with the reason), or the hold deadline passes (503 + ``Retry-After``).

Proxying. HTTP/1.1 over a kept-alive connection pool per container (a Unix socket in the agent's
run directory; TCP to ``127.0.0.1:port`` for ``@surge.web_server``), with an ``asyncio.Protocol``
and httptools' C parser on the upstream side. Bodies stream both ways with backpressure: an
upload is written as it arrives (the socket's flow control pauses us), the response is relayed
chunk by chunk as the container produces it (SSE, chunked), and upstream reading pauses while the
client is slower than the container. A client that disconnects mid-response closes the upstream
connection, which the container's server sees as a disconnect too.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from surge.agent.agent import ContainerHandle
from surge.core.models import ContainerState
from surge.core.vhost import normalize_host, split_vhost
from surge.server.http_errors import body as error_body
from surge.server.pools import Pool
from surge.server.upstream import Upstream
from surge.server.vhosts import VHOST_KEY
from surge.store.base import DEFAULT_WORKSPACE, FunctionRow
from surge.wire import web_socket_path

log = logging.getLogger("surge.gateway")
P = TypeVar("P", bound=asyncio.BaseProtocol)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

LABEL_HEADER = b"x-surge-label"   # which endpoint of a class's container (surge.runtime.web.Mux)
# hop-by-hop headers (RFC 9110 §7.6.1) and the ones the proxy sets itself
_DROP_REQUEST = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                           b"transfer-encoding", b"upgrade", b"expect", b"content-length",
                           b"x-forwarded-prefix", LABEL_HEADER})
# an upgrade keeps Connection/Upgrade/Sec-WebSocket-*: the handshake is the container's
_DROP_UPGRADE = frozenset({b"x-forwarded-prefix", b"x-forwarded-proto", b"x-forwarded-host", LABEL_HEADER})
_DROP_RESPONSE = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                            b"transfer-encoding", b"upgrade"})
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
IDLE_CONNECTIONS = 64              # kept-alive connections kept per container
LIVE = (ContainerState.STARTING, ContainerState.IDLE, ContainerState.BUSY)


@dataclass(frozen=True)
class Endpoint:
    app_id: str
    app_ref: str                 # as it appears in the URL
    version: int
    workspace: str
    function: FunctionRow
    kind: str
    label: str
    requires_auth: bool
    port: int | None
    timeout: float               # the function's timeout: the longest wait for response headers
    pool_key: str = ""           # the function's pool, or its class's pool for the default parameters
    params: bytes | None = None  # a class's default parameters (encoded by the SDK, opaque here)

    @property
    def prefix(self) -> str:
        return f"/web/{self.app_ref}/{self.label}"

    def upstream_key(self, container_id: str) -> str:
        """Kept-alive connections are per container and per place it listens: a class's container
        serves its ASGI endpoints on one socket and each web_server method on its own port."""
        return f"{container_id}:{self.port}" if self.kind == "server" else container_id


def endpoint_pool(app_id: str, fn: FunctionRow) -> tuple[str, bytes | None]:
    """The pool a web request goes to: the function's own, or, for a method of an ``@app.cls``
    class, the pool of the class with its default parameters (the key ``.remote()`` calls of
    ``Model()`` use, so requests and calls share containers)."""
    cls = fn.spec.get("cls")
    if not cls:
        return fn.id, None
    encoded = fn.spec.get("web_params")
    params = base64.b64decode(encoded) if encoded else None
    digest = hashlib.sha256(params).hexdigest()[:16] if params else "-"
    return f"{app_id}:v{fn.version}:{cls}:{digest}", params


class WebRoute(NamedTuple):
    app_ref: str
    label: str
    target: str      # the path and query the container sees
    vhost: str       # the Host it came by, "" for /web/{app}/{label}


class Unavailable(Exception):
    """No container could take the request; ``retry_after`` seconds is a fair wait."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Gateway:
    def __init__(self, plane: Any, *, hold_timeout: float = 150.0,
                 authorize: Callable[[str], Awaitable[tuple[str, bool] | None]] | None = None,
                 web_host: str | None = None) -> None:
        self.plane = plane
        self.web_host = normalize_host(web_host)     # {label}.{app}.{web_host} (surge.core.vhost)
        self.dispatcher = plane.dispatcher
        self.agent = plane.agent
        self.hold_timeout = hold_timeout
        # an Authorization header value → (workspace, is_admin), or None if it is not a valid token
        self.authorize = authorize
        self._routes: dict[tuple[str, str], Endpoint] = {}
        self._idle: dict[str, list[Upstream]] = {}
        self.stats: collections.Counter[str] = collections.Counter()
        self.dispatcher.on_room = self.on_room

    # -- routing ---------------------------------------------------------------------------------
    async def resolve(self, app_ref: str, label: str) -> Endpoint | None:
        ep = self._routes.get((app_ref, label))
        if ep is not None:
            app = await self.plane.app_row(ep.app_id)
            if app is not None and app.state in ("deployed", "ephemeral") and app.current_version == ep.version:
                return ep
            del self._routes[(app_ref, label)]
        ep = await self._lookup(app_ref, label)
        if ep is not None:
            if len(self._routes) > 10_000:
                self._routes.clear()
            self._routes[(app_ref, label)] = ep
        return ep

    async def _lookup(self, app_ref: str, label: str) -> Endpoint | None:
        if app_ref.startswith("ap-"):
            app = await self.plane.app_row(app_ref)
            if app is None or app.state not in ("deployed", "ephemeral") or app.current_version <= 0:
                return None
            fns = await self.plane.store.list_functions(app.id, app.current_version)
        else:
            workspace, sep, name = app_ref.partition("--")
            if not sep:
                workspace, name = DEFAULT_WORKSPACE, app_ref
            app, fns = await self.plane.deployed_functions(workspace, name)
            if app is None or app.state != "deployed":
                return None
        for fn in fns:
            web = fn.spec.get("web")
            if web and web.get("label") == label:
                pool_key, params = endpoint_pool(app.id, fn)
                return Endpoint(app_id=app.id, app_ref=app_ref, version=app.current_version,
                                workspace=app.workspace, function=fn, kind=str(web["kind"]), label=label,
                                requires_auth=bool(web.get("requires_auth")), port=web.get("port"),
                                timeout=float(fn.spec.get("options", {}).get("timeout", 300)),
                                pool_key=pool_key, params=params)
        return None

    def endpoints_json(self, app_ref: str, app_id: str, fns: list[FunctionRow]) -> list[dict[str, Any]]:
        out = []
        for fn in fns:
            web = fn.spec.get("web")
            if web:
                out.append({"function": fn.spec.get("tag"), "app_id": app_id, "label": web["label"],
                            "kind": web["kind"], "method": web.get("method"),
                            "requires_auth": bool(web.get("requires_auth")),
                            "path": f"/web/{app_ref}/{web['label']}"})
        return out

    # -- capacity ----------------------------------------------------------------------------------
    @staticmethod
    def _room(h: ContainerHandle) -> int:
        if h.state not in (ContainerState.IDLE, ContainerState.BUSY) or h.writer is None:
            return 0
        return h.spec.max_inputs - len(h.inflight) - h.reserved - h.requests

    def _take(self, pool: Pool) -> ContainerHandle | None:
        """The fullest container with a free slot (most recently busy first), its slot taken."""
        best: ContainerHandle | None = None
        best_key: tuple[int, float] = (0, 0.0)
        for h in pool.containers.values():
            room = self._room(h)
            if room > 0:
                key = (room, -(h.idle_since or 0.0))
                if best is None or key < best_key:
                    best, best_key = h, key
        if best is not None:
            self._begin(best)
        return best

    def _begin(self, h: ContainerHandle) -> None:
        h.requests += 1
        if h.state == ContainerState.IDLE:
            h.state = ContainerState.BUSY
            self.agent.listener.on_state(h, "busy", time.time())

    def _end(self, h: ContainerHandle, pool: Pool) -> None:
        h.requests -= 1
        if h.requests == 0 and not h.inflight and h.state == ContainerState.BUSY:
            now = time.time()
            h.state = ContainerState.IDLE
            h.idle_since = now
            self.agent.listener.on_state(h, "idle", now)
        if pool.held:
            self.on_room(pool)

    def on_room(self, pool: Pool) -> None:
        """Hand free slots to held requests, oldest first; fail them if the pool cannot start."""
        held = pool.held
        while held:
            fut = held[0]
            if fut.done():
                held.popleft()
                continue
            h = self._take(pool)
            if h is None:
                break
            held.popleft()
            fut.set_result(h)
        if not held or any(c.state in LIVE for c in pool.containers.values()):
            return
        if pool.init_failures:
            failure = Unavailable("the endpoint's container failed to start: "
                                  f"{pool.init_error or 'it exited before it was ready'}", 5)
        elif pool.retired:
            failure = Unavailable("the app was stopped or replaced by a new version; retry", 1)
        else:
            return
        while held:
            fut = held.popleft()
            if not fut.done():
                fut.set_exception(failure)

    async def _acquire(self, pool: Pool) -> ContainerHandle:
        h = self._take(pool)
        if h is not None:
            return h
        if pool.retired:
            raise Unavailable("this version of the app is being replaced; retry", 1)
        fut: asyncio.Future[ContainerHandle] = asyncio.get_running_loop().create_future()
        pool.held.append(fut)
        self.stats["held"] += 1
        self.plane.scaler.on_demand(pool)
        wait = min(self.hold_timeout, pool.options.timeout)
        try:
            async with asyncio.timeout(wait):
                return await fut
        except TimeoutError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                return fut.result()      # granted just as the deadline passed
            self.stats["hold_expired"] += 1
            raise Unavailable(f"no container could take the request within {wait:g} s (the endpoint is at "
                              "capacity or still starting); retry later", max(1, round(wait / 10))) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._end(fut.result(), pool)    # granted, but nobody will use it
            raise
        finally:
            if not fut.done():
                fut.cancel()
                with contextlib.suppress(ValueError):
                    pool.held.remove(fut)        # no longer demand

    # -- the ASGI endpoint ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # upgrades are spliced by surge.server.tunnel before they become ASGI; this server was
            # started without it (uvicorn's ws= option)
            await send({"type": "websocket.close", "code": 1011,
                        "reason": "WebSockets need the control plane's tunnel (surge.server.tunnel)"})
            return
        if scope["type"] != "http":
            return
        parts = scope["path"].split("/", 4)      # "", "web", app, label, rest
        ep = await self.resolve(parts[2], parts[3]) if len(parts) >= 4 and parts[2] and parts[3] else None
        if ep is None:
            where = f"host {scope[VHOST_KEY]}" if scope.get(VHOST_KEY) else "/web/" + "/".join(parts[2:4])
            await _error(send, 404, "not_found", f"no web endpoint at {where}: check the app name (or id) "
                                                 "and the label (`surge app list`; Function.get_web_url())")
            return
        if ep.requires_auth:
            who = await self._caller(scope)
            if who is None:
                await _error(send, 401, "auth", "this endpoint requires a surge token: send 'Authorization: Bearer "
                                                "<token>' (requires_auth=True)", [(b"www-authenticate", b"Bearer")])
                return
            if not who[1] and who[0] != ep.workspace:
                await _error(send, 403, "forbidden", "this token's workspace cannot call this endpoint (it belongs "
                                                     "to another workspace)")
                return
        pool = await self.pool_of(ep)
        try:
            h = await self._acquire(pool)
        except Unavailable as exc:
            await _error(send, 503, "unavailable", exc.message, [(b"retry-after", str(exc.retry_after).encode())])
            return
        try:
            await self._proxy(ep, h, scope, receive, send, b"/" + parts[4].encode() if len(parts) > 4 else b"/")
        finally:
            self._end(h, pool)

    async def pool_of(self, ep: Endpoint) -> Pool:
        pool = self.dispatcher.pools.get(ep.pool_key)
        if pool is None:
            pool = await self.plane.pool(ep.function, ep.pool_key, ep.params, ep.workspace)
        assert isinstance(pool, Pool)
        return pool

    # -- WebSockets (surge.server.tunnel) -----------------------------------------------------------
    def route_of(self, target: str, headers: list[tuple[bytes, bytes]]) -> WebRoute | None:
        """Where an upgrade request goes: ``(app_ref, label, rest of the target, virtual host or
        "")``, or None if it is not for a web endpoint."""
        host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
        found = split_vhost(host, self.web_host)
        if found is not None:
            return WebRoute(found[0] or "-", found[1] or "-", target, host)
        path, q, query = target.partition("?")
        parts = path.split("/", 4)               # "", "web", app, label, rest
        if len(parts) < 4 or parts[1] != "web" or not parts[2] or not parts[3]:
            return None
        rest = "/" + (parts[4] if len(parts) > 4 else "")
        return WebRoute(parts[2], parts[3], rest + q + query, "")

    async def tunnel(self, client: Any, route: WebRoute, method: str, headers: list[tuple[bytes, bytes]],
                     client_addr: str) -> None:
        """Open a WebSocket tunnel to a container of the endpoint and keep its slot until either side
        closes; raise ``tunnel.Rejected`` to answer with an HTTP error instead."""
        from surge.server.tunnel import Rejected

        ep = await self.resolve(route.app_ref, route.label)
        if ep is None:
            where = f"host {route.vhost}" if route.vhost else f"/web/{route.app_ref}/{route.label}"
            raise Rejected(404, "not_found", f"no web endpoint at {where}")
        if ep.requires_auth:
            who = await self._caller({"headers": headers})
            if who is None:
                raise Rejected(401, "auth", "this endpoint requires a surge token: send 'Authorization: Bearer "
                                            "<token>' (requires_auth=True)", [(b"www-authenticate", b"Bearer")])
            if not who[1] and who[0] != ep.workspace:
                raise Rejected(403, "forbidden", "this token's workspace cannot call this endpoint")
        pool = await self.pool_of(ep)
        try:
            h = await self._acquire(pool)
        except Unavailable as exc:
            raise Rejected(503, "unavailable", exc.message, [(b"retry-after", str(exc.retry_after).encode())]) from None
        try:
            try:
                transport, _ = await self.open_upstream(ep, h, client.upstream)
            except OSError as exc:
                raise Rejected(502, "bad_gateway", f"cannot reach the endpoint's container: {exc}") from None
            assert isinstance(transport, asyncio.Transport)
            self.stats["websockets"] += 1
            client.attach(transport, self._upgrade_head(ep, route, method, headers, client_addr))
            await client.wait_closed()
        finally:
            self._end(h, pool)

    def _upgrade_head(self, ep: Endpoint, route: WebRoute, method: str, headers: list[tuple[bytes, bytes]],
                      client_addr: str) -> bytes:
        out = [method.encode(), b" ", route.target.encode("latin-1"), b" HTTP/1.1\r\n"]
        host, forwarded_for = _copy_headers(out, headers, _DROP_UPGRADE, ep.requires_auth)
        prefix = b"" if route.vhost else ep.prefix.encode()
        out += (b"x-forwarded-for: ", forwarded_for, client_addr.encode(), b"\r\nx-forwarded-proto: http\r\n",
                b"x-forwarded-host: ", host, b"\r\nx-forwarded-prefix: ", prefix, b"\r\n",
                LABEL_HEADER, b": ", ep.label.encode(), b"\r\n\r\n")
        return b"".join(out)

    async def _caller(self, scope: Scope) -> tuple[str, bool] | None:
        """(workspace, is_admin) of a valid token in the request, else None."""
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
        if self.authorize is None or not header:
            return None
        return await self.authorize(header)

    # -- proxying ----------------------------------------------------------------------------------
    async def _connect(self, ep: Endpoint, h: ContainerHandle) -> Upstream:
        key = ep.upstream_key(h.id)
        idle = self._idle.get(key)
        while idle:
            up = idle.pop()
            if not up.closed:
                return up
        _, up = await self.open_upstream(ep, h, lambda: Upstream(key))
        self.stats["connections"] += 1
        if len(self._idle) > 2 * len(self.agent.containers) + 8:
            for k in [k for k in self._idle if k.partition(":")[0] not in self.agent.containers]:
                for stale in self._idle.pop(k):
                    stale.abort()
        return up

    async def open_upstream(self, ep: Endpoint, h: ContainerHandle,
                            factory: Callable[[], P]) -> tuple[asyncio.BaseTransport, P]:
        """A new connection to where the container serves ``ep``."""
        loop = asyncio.get_running_loop()
        if ep.kind == "server":
            return await loop.create_connection(factory, "127.0.0.1", ep.port or 0)
        run_dir = os.path.dirname(self.agent.socket_path)
        return await loop.create_unix_connection(factory, web_socket_path(run_dir, h.id))

    def _release(self, up: Upstream) -> None:
        if up.reusable:
            idle = self._idle.setdefault(up.key, [])
            if len(idle) < IDLE_CONNECTIONS:
                idle.append(up)
                return
        up.abort()

    def _head(self, ep: Endpoint, scope: Scope, path: bytes) -> bytes:
        method = scope["method"].encode()
        target = path + b"?" + scope["query_string"] if scope["query_string"] else path
        out = [method, b" ", target, b" HTTP/1.1\r\n"]
        host, forwarded_for = _copy_headers(out, scope["headers"], _DROP_REQUEST, ep.requires_auth)
        client = scope.get("client")
        if client:
            out += (b"x-forwarded-for: ", forwarded_for, client[0].encode(), b"\r\n")
        prefix = b"" if scope.get(VHOST_KEY) else ep.prefix.encode()
        out += (b"x-forwarded-proto: ", scope.get("scheme", "http").encode(), b"\r\nx-forwarded-host: ", host,
                b"\r\nx-forwarded-prefix: ", prefix, b"\r\n", LABEL_HEADER, b": ", ep.label.encode(), b"\r\n")
        return b"".join(out)

    async def _proxy(self, ep: Endpoint, h: ContainerHandle, scope: Scope, receive: Receive, send: Send,
                     path: bytes) -> None:
        head = self._head(ep, scope, path)
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        body: bytes = msg.get("body", b"")
        streamed = bool(msg.get("more_body"))
        if streamed:
            length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            head += (b"content-length: " + length + b"\r\n\r\n") if length is not None \
                else b"transfer-encoding: chunked\r\n\r\n"
            chunked = length is None
        elif body or scope["method"].encode() in _BODY_METHODS:
            head += b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        else:
            head += b"\r\n"
        head_only = scope["method"] == "HEAD"
        try:
            up = await self._connect(ep, h)
        except OSError as exc:
            await _error(send, 502, "bad_gateway", f"cannot reach the endpoint's container: {exc}")
            return
        reused = up.received          # it served an earlier request (before this reset)
        up.reset(head_only)
        if not streamed:
            up.write(head + body)
        else:
            up.write(head)
            if body:
                up.write(_frame(body) if chunked else body)
            if not await self._upload(up, receive, chunked):
                up.abort()
                if not up.client_gone:
                    await _error(send, 502, "bad_gateway", "the endpoint's container closed the connection "
                                                           "while the request body was being sent")
                return
        try:
            async with asyncio.timeout(ep.timeout):
                while not up.headers_done:
                    if up.closed:
                        break
                    await up.wait()
        except TimeoutError:
            up.abort()
            await _error(send, 504, "timeout", f"the endpoint sent no response within its timeout of "
                                               f"{ep.timeout:g} s (the function's timeout=)")
            return
        if not up.headers_done:
            # closed before answering: a kept-alive connection the container had already dropped is
            # replayed once on a new one (only when the request body was not streamed)
            up.abort()
            if reused and not up.received and not streamed:
                self.stats["replayed"] += 1
                return await self._proxy_again(ep, h, scope, send, head + body, head_only)
            await _error(send, 502, "bad_gateway", "the endpoint's container closed the connection without "
                                                   f"answering{f' ({up.error})' if up.error else ''}")
            return
        await self._relay(up, receive, send)

    async def _proxy_again(self, ep: Endpoint, h: ContainerHandle, scope: Scope, send: Send, request: bytes,
                           head_only: bool) -> None:
        async def no_body() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        try:
            up = await self._connect(ep, h)
        except OSError as exc:
            await _error(send, 502, "bad_gateway", f"cannot reach the endpoint's container: {exc}")
            return
        up.reset(head_only)
        up.write(request)
        async with asyncio.timeout(ep.timeout):
            while not up.headers_done and not up.closed:
                await up.wait()
        if not up.headers_done:
            up.abort()
            await _error(send, 502, "bad_gateway", "the endpoint's container closed the connection without answering")
            return
        await self._relay(up, no_body, send)

    async def _upload(self, up: Upstream, receive: Receive, chunked: bool) -> bool:
        """Stream the rest of the request body; False if the client went away or the container did."""
        while True:
            await up.drain()
            if up.closed:
                return False
            msg = await receive()
            if msg["type"] == "http.disconnect":
                up.client_gone = True
                return False
            data = msg.get("body", b"")
            more = msg.get("more_body", False)
            if data:
                up.write(_frame(data) if chunked else data)
            if not more:
                if chunked:
                    up.write(b"0\r\n\r\n")
                return True

    async def _relay(self, up: Upstream, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in up.headers if k not in _DROP_RESPONSE]
        await send({"type": "http.response.start", "status": up.status, "headers": headers})
        if up.done:
            await send({"type": "http.response.body", "body": up.take(), "more_body": False})
            self._release(up)
            return
        # a streamed response: a client that goes away closes the upstream connection
        watch = asyncio.ensure_future(receive())
        watch.add_done_callback(lambda t: up.abort() if not t.cancelled() and not up.done else None)
        try:
            while True:
                if up.chunks:
                    data = up.take()
                    if up.done:
                        await send({"type": "http.response.body", "body": data, "more_body": False})
                        break
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    continue
                if up.done:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    break
                if up.closed:
                    if watch.done():
                        return       # the client left: nobody to answer
                    raise ConnectionError("the endpoint's container closed the connection mid-response")
                await up.wait()
        finally:
            watch.cancel()
        self._release(up)


def _copy_headers(out: list[bytes], headers: list[tuple[bytes, bytes]], drop: frozenset[bytes],
                  strip_auth: bool) -> tuple[bytes, bytes]:
    """Append the request's headers to ``out`` minus ``drop`` (and the surge token of a
    ``requires_auth`` endpoint); returns its Host and the X-Forwarded-For prefix to extend."""
    host = b""
    forwarded_for = b""
    for k, v in headers:
        if k in drop or (strip_auth and k == b"authorization"):
            continue
        if k == b"host":
            host = v
        elif k == b"x-forwarded-for":
            forwarded_for = v + b", "
            continue
        out += (k, b": ", v, b"\r\n")
    return host, forwarded_for


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def _error(send: Send, status: int, code: str, message: str,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    import json

    data = json.dumps(error_body(code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": data, "more_body": False})

