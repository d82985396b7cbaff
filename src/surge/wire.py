"""Frames between a node agent and the containers it runs (over a Unix socket).

A frame is ``u32 total_len | u32 header_len | JSON header | body``. The header is a JSON object
with ``"t"`` naming the message; payloads (pickled arguments and results) travel in the body as
opaque bytes, concatenated, with their sizes listed in the header under ``"sizes"``. Nothing here
unpickles anything: the agent only moves bytes.

Messages, container → agent:
  hello      {container_id, pid}
  ready      {phases: {name: seconds}}
  init_failed {error, traceback}
  results    {items: [{input_id, attempt, status: "ok"|"error", error?, traceback?}], sizes}
  items      {items: [{input_id, attempt, seq}], sizes}          generator outputs
  heartbeat  {running: [[input_id, attempt], ...]}

Agent → container:
  init       {container_id, function: {...}, params_size}; body = pickled class parameters or empty
  inputs     {items: [{input_id, attempt, timeout}], sizes}
  shutdown   {}                                                  run exit hooks, then exit 0
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

_LEN = struct.Struct(">II")
MAX_FRAME = 1 << 31


def web_socket_path(run_dir: str, container_id: str) -> str:
    """Where a container serves its web endpoint over HTTP (``surge.runtime.web``); the gateway
    (``surge.server.gateway``) connects there."""
    return os.path.join(run_dir, f"web-{container_id}.sock")


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return _LEN.pack(len(h) + len(body), len(h)) + h + body


def encode_parts(header: dict[str, Any], parts: Sequence[bytes]) -> bytes:
    header["sizes"] = [len(p) for p in parts]
    return encode(header, b"".join(parts))


def split_body(header: dict[str, Any], body: bytes) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    for n in header.get("sizes", ()):
        out.append(body[pos:pos + n])
        pos += n
    return out


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """Read one frame; raises ``asyncio.IncompleteReadError`` at EOF."""
    total, hlen = _LEN.unpack(await reader.readexactly(_LEN.size))
    data = await reader.readexactly(total)
    return json.loads(data[:hlen]), data[hlen:]


class BlockingConn:
    """The container side: a blocking socket with a frame reader. Writes are serialised by the caller."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = sock.makefile("rb", buffering=1 << 16)

    @classmethod
    def connect(cls, path: str) -> BlockingConn:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return cls(s)

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self.sock.sendall(encode(header, body))

    def send_raw(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def recv(self) -> tuple[dict[str, Any], bytes]:
        """Blocking read of one frame; raises EOFError when the agent is gone."""
        head = self._buf.read(_LEN.size)
        if len(head) < _LEN.size:
            raise EOFError("agent connection closed")
        total, hlen = _LEN.unpack(head)
        data = self._buf.read(total)
        if len(data) < total:
            raise EOFError("agent connection closed")
        return json.loads(data[:hlen]), data[hlen:]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
