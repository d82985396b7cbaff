"""Limits on a real server over loopback (issue 5): request bodies over the limit get 413 before
they are read in full, a token over its rate gets 429 with ``Retry-After``, a function whose queue
is full answers 429 instead of queueing without bound, and the SDK (``.map`` included) backs off
and finishes rather than failing. Each server here is started with low limits; the defaults are
generous enough that the rest of the suite never meets them."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from surge import errors
from surge.sdk import context, embedded, mapping, serialization
from surge.sdk.client import Client
from tests.conftest import TEST_GPUS

LIMIT = 1 << 20      # max body bytes on the "small" server
RATE = 20.0          # requests/s per token, and the burst


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.ServerInfo]:
    home = tmp_path_factory.mktemp("limits-home")
    info = embedded.start(home, gpus=TEST_GPUS, extra_args=[
        "--log-level", "warning", "--max-body-bytes", str(LIMIT), "--rate-limit", str(RATE),
        "--rate-burst", str(RATE)])
    try:
        yield info
    finally:
        info.stop()


def raw_request(info: embedded.ServerInfo, head: str, chunks: Iterator[bytes]) -> tuple[int, dict[str, Any], int]:
    """Send ``head`` then ``chunks`` over a plain socket, stopping as soon as the server answers.
    Returns (status, JSON body, bytes of body sent before the answer came)."""
    url = urlsplit(info.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode())
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0.02)[0]:
                break                              # the answer is there: stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        data = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            assert time.monotonic() < deadline, data
            part = sock.recv(65536)
            if not part:
                break
            data += part
    header, _, body = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(body[:_length(data)] or b"{}"), sent


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _head(info: embedded.ServerInfo, extra: str, token: str | None = None) -> str:
    auth = f"Authorization: Bearer {token or info.token}\r\n" if token != "" else ""
    return (f"POST /v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n"
            f"{extra}\r\n")


def _megabytes(n: int) -> Iterator[bytes]:
    for _ in range(n * 16):
        yield b" " * 65536


def test_a_declared_oversized_body_gets_413_before_it_is_sent(small: embedded.ServerInfo) -> None:
    status, body, sent = raw_request(small, _head(small, "Content-Length: 10000000000\r\n"), _megabytes(64))
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert "10,000,000,000 bytes" in body["error"]["message"] and f"{LIMIT:,}" in body["error"]["message"]
    assert sent < 64 << 20          # answered while the client was still sending


def test_a_chunked_body_is_cut_off_once_past_the_limit(small: embedded.ServerInfo) -> None:
    def chunks() -> Iterator[bytes]:
        for piece in _megabytes(64):
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    status, body, sent = raw_request(small, _head(small, "Transfer-Encoding: chunked\r\n"), chunks())
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert LIMIT < sent < 64 << 20, sent     # past the limit, but the rest was never read


def test_a_body_under_the_limit_is_served(small: embedded.ServerInfo) -> None:
    payload = json.dumps({"function_id": "fu-nope", "inputs": ["AA=="]}).encode()
    status, body, _ = raw_request(small, _head(small, f"Content-Length: {len(payload)}\r\n"), iter([payload]))
    assert status == 404 and body["error"]["code"] == "not_found", body


def test_strangers_get_401_whatever_the_size(small: embedded.ServerInfo) -> None:
    status, body, _ = raw_request(small, _head(small, "Content-Length: 10000000000\r\n", token=""), iter([b"x"]))
    assert status == 401 and body["error"]["code"] == "auth"


def test_the_sdk_reports_a_too_large_argument(small: embedded.ServerInfo) -> None:
    client = Client(small.url, small.token)
    try:
        with pytest.raises(errors.TooLargeError, match="over the limit"):
            client.submit({"function_id": "fu-nope"}, "remote", [b"x" * (2 * LIMIT)],
                          idempotency_key=uuid.uuid4().hex)
    finally:
        client.close()


def test_a_token_over_its_rate_gets_429_with_retry_after(small: embedded.ServerInfo) -> None:
    admin = Client(small.url, small.token)
    made = admin.request("POST", "/v1/tokens", json={"name": "rate"})
    import httpx

    with httpx.Client(base_url=small.url, headers={"Authorization": f"Bearer {made['token']}"}) as http:
        answers = [http.get("/v1/apps") for _ in range(int(RATE) * 2)]
        limited = [r for r in answers if r.status_code == 429]
        assert limited and all(r.status_code in (200, 429) for r in answers)
        first = limited[0]
        assert first.json()["error"]["code"] == "rate_limited"
        retry_after = int(first.headers["Retry-After"])
        assert 1 <= retry_after <= 2
        # another token has its own bucket
        assert admin.request("GET", "/v1/apps", wait_if_limited=False) is not None
        time.sleep(retry_after)
        assert http.get("/v1/apps").status_code == 200
    # the SDK waits out 429s by itself
    patient = Client(small.url, made["token"])
    try:
        assert all(patient.request("GET", "/v1/apps") is not None for _ in range(int(RATE) * 2))
        with pytest.raises(errors.RateLimitedError) as exc:
            for _ in range(int(RATE) * 2):
                patient.request("GET", "/v1/apps", wait_if_limited=False)
        assert exc.value.retry_after >= 1
    finally:
        patient.close()
        admin.close()


# -- queue admission --------------------------------------------------------------------------------

MAX_QUEUED = 8

SLOW_APP = '''
import time
import surge

app = surge.App("admission")


@app.function(max_containers=1)
def slowly(x: int) -> int:
    time.sleep(0.05)
    return x * 2
'''


@pytest.fixture(scope="module")
def queue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[embedded.ServerInfo, Any]]:
    home = tmp_path_factory.mktemp("admission-home")
    src = tmp_path_factory.mktemp("admission-src")
    (src / "admission_app.py").write_text(SLOW_APP)
    info = embedded.start(home, gpus=TEST_GPUS, extra_args=["--log-level", "warning",
                                                            "--max-queued", str(MAX_QUEUED)])
    client = Client(info.url, info.token)
    old = context.set_client(client)
    import sys
    sys.path.insert(0, str(src))
    try:
        import admission_app

        with admission_app.app.run(show_logs=False):
            yield info, admission_app
    finally:
        sys.path.remove(str(src))
        context.set_client(old)
        client.close()
        info.stop()


def test_a_full_queue_answers_429_instead_of_growing(queue_server: tuple[embedded.ServerInfo, Any]) -> None:
    _, mod = queue_server
    client = context.get_client()
    fid = mod.app._function_ids["slowly"]
    args = [serialization.serialize_args((i,), {}) for i in range(MAX_QUEUED)]
    first = client.submit({"function_id": fid}, "spawn", args, idempotency_key=uuid.uuid4().hex)
    body = {"function_id": fid, "kind": "spawn", "inputs": [serialization.b64(a) for a in args[:5]]}
    with pytest.raises(errors.RateLimitedError, match=f"its limit is {MAX_QUEUED}") as exc:
        client.request("POST", "/v1/calls", json=body, wait_if_limited=False)
    assert 1 <= exc.value.retry_after <= 60
    # the SDK's own submit waits for room and then succeeds
    second = client.submit({"function_id": fid}, "spawn", args[:5], idempotency_key=uuid.uuid4().hex)
    deadline = time.monotonic() + 60
    for call, n in ((first, MAX_QUEUED), (second, 5)):
        while (summary := client.get_call(call["call_id"]))["state"] != "SUCCEEDED":
            assert time.monotonic() < deadline, summary
            client.outputs(call["call_id"], 0, wait=1.0)
        assert summary["counts"] == {"SUCCEEDED": n}


def test_map_backs_off_on_429_and_finishes_in_order(queue_server: tuple[embedded.ServerInfo, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, mod = queue_server
    client = context.get_client()
    refused: list[float] = []
    real_add = client.add_inputs

    def counting_add(*a: Any, **kw: Any) -> None:
        try:
            real_add(*a, **kw)
        except errors.RateLimitedError as exc:
            refused.append(exc.retry_after)
            raise

    monkeypatch.setattr(mapping, "BATCH", 4)
    monkeypatch.setattr(client, "add_inputs", counting_add)
    assert list(mod.slowly.map(range(60))) == [2 * i for i in range(60)]
    assert refused, "the queue limit was never reached: the test proves nothing"
    assert all(r >= 1 for r in refused)
