"""The container's Outbox: every item put is sent, whoever holds the socket when it is put."""

from __future__ import annotations

import threading
from typing import Any

from surge.runtime.container import Outbox


class SlowConn:
    """Holds ``send`` (a heartbeat, say) until released, recording every frame."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.sending = threading.Event()
        self.release = threading.Event()

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self.sending.set()
        assert self.release.wait(5)
        self.frames.append(header["t"])

    def send_raw(self, data: bytes) -> None:
        self.frames.append("out")


def test_an_item_put_while_another_frame_is_being_sent_is_sent_after_it() -> None:
    conn = SlowConn()
    out = Outbox(conn)  # type: ignore[arg-type]
    heartbeat = threading.Thread(target=out.send, args=({"t": "heartbeat", "running": []},))
    heartbeat.start()
    assert conn.sending.wait(5)
    out.put({"kind": "result", "input_id": "in-1", "attempt": 1, "status": "ok"}, b"value")
    assert conn.frames == []          # the socket is busy: the result waits for the heartbeat
    conn.release.set()
    heartbeat.join(5)
    assert conn.frames == ["heartbeat", "out"]


def test_items_put_when_the_socket_is_free_go_at_once() -> None:
    conn = SlowConn()
    conn.release.set()
    out = Outbox(conn)  # type: ignore[arg-type]
    out.put({"kind": "result", "input_id": "in-1", "attempt": 1, "status": "ok"}, b"value")
    out.send({"t": "heartbeat", "running": []})
    assert conn.frames == ["out", "heartbeat"]
