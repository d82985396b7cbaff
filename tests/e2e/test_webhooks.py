"""Job webhooks end to end: signed deliveries to a receiver on 127.0.0.1, retries with backoff, the
outbox surviving a control-plane restart, and the SSRF guard refusing private targets.

Deliveries to 127.0.0.1 need a server started with ``--allow-private-webhooks`` (this module starts
its own, with a 50 ms backoff so retries are quick); the refusals are checked on the shared server,
which keeps the default guard.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from surge.core.webhooks import verify_signature
from surge.sdk import context, embedded
from surge.sdk.client import Client

APP = "e2e-hooks"


class Receiver:
    """A tiny webhook receiver: records every request, answers with the next scripted status."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self.arrived = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.arrived:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    outer.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def wait_for(self, n: int, limit: float = 30.0) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= n, timeout=limit), self.requests
            return list(self.requests)

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def start_server(home: Path) -> embedded.ServerInfo:
    return embedded.start(home, gpus="A100-80GB:1", extra_args=[
        "--kill-grace", "1", "--lease-ttl", "2", "--log-level", "warning", "--allow-private-webhooks",
        "--webhook-backoff", "0.05"])


class Hooks:
    def __init__(self, info: embedded.ServerInfo) -> None:
        self.info = info
        self.http = httpx.Client(base_url=info.url, headers={"Authorization": f"Bearer {info.token}"}, timeout=60)

    def submit(self, fn: str, body: dict[str, Any]) -> str:
        r = self.http.post(f"/v1/apps/{APP}/functions/{fn}/jobs", json=body)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/jobs/{job_id}").json())

    def until(self, job_id: str, cond: Callable[[dict[str, Any]], bool], limit: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            job = self.job(job_id)
            if cond(job):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.02)


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory, apps_path: Any) -> Iterator[Hooks]:
    import jobs_app

    home = tmp_path_factory.mktemp("surge-hooks")
    info = start_server(home)
    client = Client(info.url, info.token)
    old = context.set_client(client)
    try:
        jobs_app.app.deploy(name=APP)
        h = Hooks(info)
        h.home = home  # type: ignore[attr-defined]
        yield h
        h.http.close()
    finally:
        context.set_client(old)
        client.close()
        info.stop()


def test_delivery_is_signed_and_recorded(hooks: Hooks, receiver: Receiver) -> None:
    job_id = hooks.submit("echo", {"input": {"text": "hook"}, "webhook": receiver.url})
    (headers, body), = receiver.wait_for(1)
    secret = hooks.http.get("/v1/webhooks/secret").json()["secret"]
    assert secret.startswith("whsec_")
    assert verify_signature(secret, body, headers["x-surge-signature"], now=time.time())
    assert not verify_signature(secret, body + b" ", headers["x-surge-signature"], now=time.time())
    assert not verify_signature("whsec_wrong", body, headers["x-surge-signature"], now=time.time())
    assert not verify_signature(secret, body, headers["x-surge-signature"], now=time.time() + 3600)   # replay
    assert headers["content-type"] == "application/json" and headers["x-surge-event"] == "job.finished"
    assert headers["x-surge-delivery"] == job_id and headers["x-surge-attempt"] == "1"
    payload = json.loads(body)
    assert payload["event"] == "job.finished" and payload["id"] == job_id
    assert payload["status"] == "SUCCEEDED" and payload["output"]["text"] == "hook"
    job = hooks.until(job_id, lambda j: j["webhook"]["state"] == "DELIVERED")
    assert job["webhook"]["url"] == receiver.url and job["webhook"]["attempts"] == 1
    (d,) = job["webhook"]["deliveries"]
    assert d["n"] == 1 and d["status_code"] == 200 and d["error"] is None
    assert hooks.http.get(f"/v1/jobs/{job_id}/deliveries").json() == job["webhook"]["deliveries"]


def test_the_documented_python_recipe_verifies_a_delivery(hooks: Hooks, receiver: Receiver) -> None:
    """docs/jobs.md's receiver-side check, taken from the page and run on a real delivery."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "jobs.md").read_text()
    recipe = next(b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "def verify(" in b)
    scope: dict[str, Any] = {}
    exec(recipe, scope)
    hooks.submit("echo", {"input": {"text": "doc"}, "webhook": receiver.url})
    (headers, body), = receiver.wait_for(1)
    secret = hooks.http.get("/v1/webhooks/secret").json()["secret"]
    assert scope["verify"](secret, body, headers["x-surge-signature"])
    assert not scope["verify"](secret, body.replace(b"doc", b"dog"), headers["x-surge-signature"])


def test_failed_deliveries_are_retried_with_backoff(hooks: Hooks) -> None:
    receiver = Receiver([500, 503])            # fails twice, then answers 200
    try:
        job_id = hooks.submit("echo", {"input": {"text": "retry"}, "webhook": receiver.url})
        got = receiver.wait_for(3)
        assert [h["x-surge-attempt"] for h, _ in got] == ["1", "2", "3"]
        assert len({h["x-surge-delivery"] for h, _ in got}) == 1
        job = hooks.until(job_id, lambda j: j["webhook"]["state"] == "DELIVERED")
        deliveries = job["webhook"]["deliveries"]
        assert [d["status_code"] for d in deliveries] == [500, 503, 200]
        assert deliveries[0]["error"].startswith("HTTP 500") and deliveries[2]["error"] is None
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(deliveries)]
        assert gaps[0] >= 0.05 and gaps[1] >= 0.1          # backoff doubles from the configured 0.05 s
    finally:
        receiver.close()


def test_a_failed_job_is_delivered_too(hooks: Hooks, receiver: Receiver, tmp_path: Path) -> None:
    job_id = hooks.submit("add", {"input": {"nope": 1}, "webhook": receiver.url})
    (_, body), = receiver.wait_for(1)
    payload = json.loads(body)
    assert payload["id"] == job_id and payload["status"] == "FAILED"
    assert payload["error"]["reason"] == "USER_EXCEPTION"


def test_unreachable_receiver_records_connection_errors(hooks: Hooks) -> None:
    receiver = Receiver()
    url = receiver.url
    receiver.close()                             # nothing listens there any more
    job_id = hooks.submit("echo", {"input": {"text": "x"}, "webhook": url})
    job = hooks.until(job_id, lambda j: j["webhook"]["attempts"] >= 2)
    first = job["webhook"]["deliveries"][0]
    assert first["status_code"] is None and "ConnectError" in first["error"]
    assert job["webhook"]["state"] == "PENDING" and job["webhook"]["next_at"] is not None


def test_outbox_survives_a_control_plane_restart(tmp_path: Path, apps_path: Any) -> None:
    import jobs_app

    receiver = Receiver([500] * 1000)             # down until we say so
    home = tmp_path / "home"
    info = start_server(home)
    client = Client(info.url, info.token)
    old = context.set_client(client)
    try:
        jobs_app.app.deploy(name=APP)
        first = Hooks(info)
        job_id = first.submit("echo", {"input": {"text": "durable"}, "webhook": receiver.url})
        receiver.wait_for(2)
        first.http.close()
    finally:
        context.set_client(old)
        client.close()
        info.stop()
    before = len(receiver.requests)
    receiver.statuses.clear()                     # the receiver is back
    info = start_server(home)
    try:
        h = Hooks(info)
        job = h.until(job_id, lambda j: j["webhook"]["state"] == "DELIVERED")
        codes = [d["status_code"] for d in job["webhook"]["deliveries"]]
        assert codes[-1] == 200 and set(codes[:-1]) == {500} and len(codes) >= 3
        assert len(receiver.requests) > before
        h.http.close()
    finally:
        info.stop()
        receiver.close()


# -- SSRF: the shared server keeps the default guard ------------------------------------------------

@pytest.fixture(scope="module")
def guarded(server: Any, apps_path: Any) -> Iterator[httpx.Client]:
    import jobs_app

    client = Client(server.url, server.token)      # the shared server, whatever the SDK points at now
    old = context.set_client(client)
    try:
        jobs_app.app.deploy(name="e2e-ssrf")
    finally:
        context.set_client(old)
        client.close()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as api:
        yield api
        api.post("/v1/apps/e2e-ssrf/stop")


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1.2.3", "10.0.0.8", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:a9fe:a9fe]", "[fd00:ec2::254]", "[fe80::1]",
    "localhost", "app.localhost", "2130706433", "0x7f.0.0.1", "017700000001", "224.0.0.1",
])
def test_private_webhook_targets_are_refused(guarded: httpx.Client, host: str) -> None:
    canary = Receiver()           # listens on 127.0.0.1: the refused URLs point at it where they can
    try:
        port = canary.http.server_address[1]
        r = guarded.post("/v1/apps/e2e-ssrf/functions/echo/jobs",
                         json={"input": {"text": "x"}, "webhook": f"http://{host}:{port}/hook"})
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "webhooks may only reach public addresses" in message and "--allow-private-webhooks" in message
        assert canary.requests == []
    finally:
        canary.close()
