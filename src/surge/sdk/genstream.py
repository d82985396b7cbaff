"""The items of a generator call (``.remote_gen()``), read from one server-sent event stream.

An ``ItemStream`` iterates, closes and drops like a generator: closing or dropping it closes the
connection, and the server cancels the call (the reader owns it). ``abort()`` does the same from
*another* thread, for the async form (``.remote_gen.aio()``), whose items are read on a worker
thread that may be blocked waiting for the next one: it shuts the socket down under that read, or,
with a transport that has no socket, asks the server to cancel the call.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.sdk import serialization
from surge.sdk.call import value_or_raise
from surge.sdk.serialization import unb64

if TYPE_CHECKING:
    import httpx

    from surge.sdk.client import Client

log = logging.getLogger("surge.sdk")


class _Connection:
    """What ``abort`` needs, kept apart from the generator so dropping the stream frees it at once
    (no reference cycle waiting for the garbage collector)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.response: httpx.Response | None = None
        self.aborted = False
        self.finished = False

    def opened(self, response: httpx.Response) -> None:
        with self.lock:
            self.response = response
            aborted = self.aborted
        if aborted:
            _shutdown(response)


class ItemStream:
    def __init__(self, client: Client, call_id: str, input_id: str, tag: str) -> None:
        self._client = client
        self._call_id = call_id
        self._conn = _Connection()
        self._gen = _items(client, input_id, tag, self._conn)

    def __iter__(self) -> ItemStream:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        """Stop reading (from the thread that iterates): the server cancels the call."""
        self._gen.close()

    def abort(self) -> None:
        """Stop reading from any thread, even while another is blocked waiting for an item: the
        connection drops at once and the server cancels the call. Idempotent."""
        conn = self._conn
        with conn.lock:
            if conn.aborted or conn.finished:
                return
            conn.aborted = True
            response = conn.response
        if response is not None and _shutdown(response):
            return
        # not connected yet, or no socket to shut (an in-process transport): cancel it directly
        threading.Thread(target=self._cancel, name="surge-gen-cancel", daemon=True).start()

    def _cancel(self) -> None:
        try:
            self._client.cancel(self._call_id)
        except Exception:
            log.warning("cancelling generator call %s after its reader stopped failed", self._call_id,
                        exc_info=True)


def _items(client: Client, input_id: str, tag: str, conn: _Connection) -> Generator[Any, None, None]:
    events = client.stream_events(input_id, on_response=conn.opened)
    try:
        for event, data in events:
            if event == "item":
                yield serialization.loads(unb64(data) or b"")
            elif event == "end":
                conn.finished = True
                value_or_raise(json.loads(data))
                return
    finally:
        events.close()
    raise errors.ConnectionError(f"the stream of {tag}'s items ended before the generator did")


def _shutdown(response: httpx.Response) -> bool:
    """Shut down the socket under a streaming response (a blocked read returns at once); False when
    the transport has no socket."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if not isinstance(sock, socket.socket):
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass        # already closed: the reader is gone either way
    return True
