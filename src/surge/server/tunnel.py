"""WebSocket upgrades to web endpoints, spliced as bytes.

The control plane's uvicorn hands a connection that asks to upgrade to the class named by its
``ws=`` option, with the request head it read; ``WebSocketTunnel`` is that class. For a web endpoint
(``/web/{app}/{label}/...`` or a virtual host, ``surge.core.vhost``) it asks the gateway for a
container slot (held like any request while a container starts), opens a connection to the
container, writes the request head (with the ``X-Forwarded-*`` headers and the endpoint's label),
and from then on copies bytes both ways: the container's 101 (or its refusal), then frames, pings
and the close handshake, untouched, until either side closes. Flow control is end to end: a side
that cannot keep up pauses reading on the other. The slot stays taken (the container BUSY) while
the tunnel is open.

Any other upgrade (a route of the control plane itself) goes to uvicorn's own WebSocket protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from surge.server.http_errors import body as error_body

REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 502: "Bad Gateway",
           503: "Service Unavailable"}


class Rejected(Exception):
    """The tunnel cannot open: answer the client with this HTTP status instead of a 101."""

    def __init__(self, status: int, code: str, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or []


def parse_head(data: bytes) -> tuple[str, str, list[tuple[bytes, bytes]]]:
    """``(method, target, headers)`` of the request head uvicorn rebuilt (names lowercased)."""
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].decode("latin-1").split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    return method, target, headers


class _Upstream(asyncio.Protocol):
    """The container's side of a tunnel."""

    def __init__(self, tunnel: WebSocketTunnel) -> None:
        self.tunnel = tunnel

    def data_received(self, data: bytes) -> None:
        client = self.tunnel.transport
        if client is not None and not client.is_closing():
            client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.finish()

    def pause_writing(self) -> None:       # the container reads slower than the client sends
        if self.tunnel.transport is not None:
            self.tunnel.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.tunnel.transport is not None and not self.tunnel.transport.is_closing():
            self.tunnel.transport.resume_reading()


class WebSocketTunnel(asyncio.Protocol):
    """uvicorn's ``ws=`` protocol class for the control plane (see the module docstring)."""

    def __init__(self, config: Any, server_state: Any, app_state: Any = None, **_: Any) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None
        self.fallback: asyncio.Protocol | None = None
        self.pending = bytearray()
        self.task: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.fallback is not None:
            self.fallback.data_received(data)
        elif self.peer is not None:
            self.peer.write(data)
        elif self.task is not None:
            self.pending += data             # frames sent before the container answered
        else:
            self._start(data)

    def eof_received(self) -> bool | None:
        if self.fallback is not None:
            return self.fallback.eof_received()
        if self.peer is not None and self.peer.can_write_eof():
            self.peer.write_eof()
            return True                      # half-closed: the container may still answer
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.fallback is not None:
            self.fallback.connection_lost(exc)
            return
        self.finish()
        if self.task is not None and not self.task.done() and self.peer is None:
            self.task.cancel()               # gave up while held: no longer demand

    def pause_writing(self) -> None:         # the client reads slower than the container sends
        if self.fallback is not None:
            self.fallback.pause_writing()
        elif self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.fallback is not None:
            self.fallback.resume_writing()
        elif self.peer is not None and not self.peer.is_closing():
            self.peer.resume_reading()

    # -- uvicorn's graceful shutdown ----------------------------------------------------------------
    def shutdown(self) -> None:
        if self.fallback is not None:
            getattr(self.fallback, "shutdown", lambda: None)()
        else:
            self.finish()

    # -- the tunnel -----------------------------------------------------------------------------------
    def _start(self, head: bytes) -> None:
        assert self.transport is not None
        gateway = getattr(getattr(self.config.app, "state", None), "gateway", None)
        method, target, headers = parse_head(head)
        route = gateway.route_of(target, headers) if gateway is not None else None
        if gateway is None or route is None:
            self._fall_back(head)
            return
        self.server_state.connections.add(self)
        peer = self.transport.get_extra_info("peername")
        client = peer[0] if isinstance(peer, tuple) and peer else ""
        self.task = asyncio.ensure_future(gateway.tunnel(self, route, method, headers, client))
        self.server_state.tasks.add(self.task)
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.server_state.tasks.discard(task)
        self.server_state.connections.discard(self)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, Rejected):
                self.reject(exc)
            else:
                self.reject(Rejected(502, "bad_gateway", f"the WebSocket tunnel failed: {exc}"))
        self.finish()

    def _fall_back(self, head: bytes) -> None:
        from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

        assert self.transport is not None
        if AutoWebSocketsProtocol is None:
            self.reject(Rejected(400, "invalid", "WebSockets are not supported on this route"))
            self.finish()
            return
        self.fallback = AutoWebSocketsProtocol(config=self.config, server_state=self.server_state,
                                               app_state=self.app_state)
        self.fallback.connection_made(self.transport)
        self.fallback.data_received(head)

    def attach(self, peer: asyncio.Transport, head: bytes) -> None:
        """Connected to the container: send it the request head and what the client sent since."""
        self.peer = peer
        peer.write(head + bytes(self.pending))
        self.pending.clear()

    async def wait_closed(self) -> None:
        assert self.closed is not None
        await asyncio.shield(self.closed)

    def finish(self) -> None:
        """Either side closed (or the tunnel could not open): close both, once."""
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()           # after what is buffered for the client
        if self.peer is not None and not self.peer.is_closing():
            self.peer.close()

    def reject(self, exc: Rejected) -> None:
        """Answer the upgrade request with an HTTP error instead of a 101."""
        if self.transport is None or self.transport.is_closing() or self.peer is not None:
            return
        data = json.dumps(error_body(exc.code, exc.message)).encode()
        lines = [f"HTTP/1.1 {exc.status} {REASONS.get(exc.status, 'Error')}".encode(),
                 b"content-type: application/json", b"content-length: " + str(len(data)).encode(),
                 b"connection: close", *(k + b": " + v for k, v in exc.extra)]
        with contextlib.suppress(OSError):
            self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + data)

    def upstream(self) -> _Upstream:
        return _Upstream(self)
