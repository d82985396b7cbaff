"""One HTTP/1.1 connection from the web gateway to a container, parsed with httptools' C parser:
responses are buffered chunk by chunk for the gateway to relay, reading pauses above a high-water
mark (backpressure from a slow client), and writes wait while the container's socket is full."""

from __future__ import annotations

import asyncio

import httptools

READ_HIGH_WATER = 256 << 10        # pause reading the container above this much unsent response


class Upstream(asyncio.Protocol):
    """One HTTP/1.1 connection to a container, parsed with httptools."""

    def __init__(self, key: str) -> None:
        self.key = key                                   # the container id
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._event: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused_reading = False
        self.reset(False)

    def reset(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.done = False
        self.keep_alive = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received = False
        self.client_gone = False
        self.error: Exception | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = exc
            self.abort()
        if self.buffered > READ_HIGH_WATER and not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- httptools callbacks --------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only:
            self.done = True         # a HEAD response has no body, whatever Content-Length says
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        if not self.head_only:
            self.chunks.append(body)
            self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.done = True

    # -- used by the proxy ------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._event is not None and not self._event.done():
            self._event.set_result(None)

    async def wait(self) -> None:
        """Until more of the response arrived or the connection closed."""
        self._event = asyncio.get_running_loop().create_future()
        try:
            await self._event
        finally:
            self._event = None

    def take(self) -> bytes:
        out = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = []
        self.buffered = 0
        if self._paused_reading and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()
        return out

    async def drain(self) -> None:
        if self._writable is not None:
            await self._writable

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        return not self.closed and self.done and self.keep_alive and self.error is None
