"""The SDK client's retries of a submission: on connection errors and 503 the same body — the same
idempotency key — is sent again, with bounded waits, so a retried submission can never make a second
call. (The chaos suite checks the same against a real control plane that is killed or whose database
is locked: ``tests/chaos/test_2_*`` and ``test_4_*``.)"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from surge import errors
from surge.sdk.client import Client


class Flaky:
    """Answers the first ``failures`` requests with ``fail`` (a status, or an exception to raise)."""

    def __init__(self, failures: int, fail: int | type[Exception], retry_after: str | None = "0.01") -> None:
        self.failures = failures
        self.fail = fail
        self.retry_after = retry_after
        self.bodies: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        if len(self.bodies) <= self.failures:
            if isinstance(self.fail, int):
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return httpx.Response(self.fail, headers=headers,
                                      json={"error": {"code": "unavailable", "message": "store locked"}})
            raise self.fail("connection refused", request=request)
        return httpx.Response(201, json={"call_id": "fc-1", "input_ids": ["in-1"], "created": True})


def submit(client: Client) -> dict[str, object]:
    return client.submit({"function_id": "fn-1"}, "spawn", [b"x"], idempotency_key="key-1")


@pytest.mark.parametrize("fail", [503, httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError])
def test_a_submission_is_retried_with_the_same_idempotency_key(fail: int | type[Exception]) -> None:
    server = Flaky(3, fail)
    client = Client("http://surge.test", "tok", transport=httpx.MockTransport(server), connect_retries=30)
    assert submit(client)["call_id"] == "fc-1"
    assert len(server.bodies) == 4
    assert {b["idempotency_key"] for b in server.bodies} == {"key-1"}
    assert all(b == server.bodies[0] for b in server.bodies)


def test_503_retries_stop_at_the_deadline_and_raise_unavailable() -> None:
    server = Flaky(10**6, 503, retry_after="30")        # asks for 30 s; the budget is 0.3 s
    client = Client("http://surge.test", "tok", transport=httpx.MockTransport(server), connect_retries=0.3)
    t0 = time.monotonic()
    with pytest.raises(errors.UnavailableError, match="store locked"):
        submit(client)
    assert time.monotonic() - t0 < 5.0                   # bounded by the budget, not Retry-After
    assert len(server.bodies) >= 2


def test_an_http_date_retry_after_is_waited_as_a_second() -> None:
    server = Flaky(1, 503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    client = Client("http://surge.test", "tok", transport=httpx.MockTransport(server), connect_retries=30)
    assert submit(client)["created"] is True
    assert len(server.bodies) == 2
