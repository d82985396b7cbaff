"""Streaming over HTTP: server-sent events of jobs and inputs, and cancellation when the reader goes
away (an SSE client that closes, a ``.remote_gen()`` iterator closed or dropped)."""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from surge.sdk import context

APP = "e2e-jobs-streams"
CANCEL_WITHIN = 2.0        # the promise: a disconnected reader's generator stops within 2 s
SLACK = 2.0                # a loaded 2-core test machine


@pytest.fixture(scope="module")
def jobs_app(server: Any, apps_path: Any) -> Iterator[Any]:
    import jobs_app

    jobs_app.app.deploy(name=APP)
    with jobs_app.app.run(show_logs=False):        # also an ephemeral run, for .remote_gen()
        yield jobs_app
    context.get_client().request("POST", f"/v1/apps/{APP}/stop")


@pytest.fixture
def api(server: Any, jobs_app: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                      timeout=60) as http:
        yield http


def events(resp: httpx.Response) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) of a text/event-stream."""
    event, data, event_id = "message", "", None
    for line in resp.iter_lines():
        if not line:
            if data:
                yield event, data, event_id
            event, data, event_id = "message", "", None
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(": ")
            if name == "event":
                event = value
            elif name == "data":
                data = value
            elif name == "id":
                event_id = value


def start(api: httpx.Client, fn: str, body: dict[str, Any]) -> str:
    r = api.post(f"/v1/apps/{APP}/functions/{fn}/jobs", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone_within(check: Any, limit: float) -> float:
    """Seconds until ``check()`` is true (polled), failing past ``limit``."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > limit:
            raise AssertionError(f"not done within {limit} s")
        time.sleep(0.01)
    return time.monotonic() - t0


def test_job_stream_order_and_first_item_before_the_generator_finishes(api: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job = start(api, "items", {"input": {"n": 4, "gate": str(gate)}})
    seen: list[tuple[str, Any, str | None]] = []
    with api.stream("GET", f"/v1/jobs/{job}/stream") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for event, data, event_id in events(resp):
            seen.append((event, json.loads(data), event_id))
            if event == "item" and json.loads(data) == {"i": 0}:
                # the generator is blocked on the gate until now: it cannot have finished
                assert not gate.exists()
                assert api.get(f"/v1/jobs/{job}").json()["status"] == "RUNNING"
                gate.write_text("open")
    kinds = [e for e, _, _ in seen]
    assert kinds[-2:] == ["status", "end"] and seen[-2][1] == {"status": "SUCCEEDED", "attempt": 1}
    assert [d for e, d, _ in seen if e == "item"] == [{"i": i} for i in range(4)]
    assert [i for e, _, i in seen if e == "item"] == ["0", "1", "2", "3"]
    statuses = [d["status"] for e, d, _ in seen if e == "status"]
    assert statuses[-2:] == ["RUNNING", "SUCCEEDED"] and set(statuses) <= {"QUEUED", "RUNNING", "SUCCEEDED"}
    assert kinds.index("item") > statuses.index("RUNNING")
    end = seen[-1][1]
    assert end["id"] == job and end["status"] == "SUCCEEDED" and end["output"] is None


def test_job_stream_resumes_after_last_event_id(api: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("open")
    job = start(api, "items", {"input": {"n": 5, "gate": str(gate)}})
    api.get(f"/v1/jobs/{job}", params={"wait": 30})
    with api.stream("GET", f"/v1/jobs/{job}/stream", headers={"Last-Event-ID": "2"}) as resp:
        items = [json.loads(d)["i"] for e, d, _ in events(resp) if e == "item"]
    assert items == [3, 4]


def test_sse_reader_disconnect_cancels_the_generator(api: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "ticks"
    job = start(api, "ticker", {"input": {"marker": str(marker)}})
    with api.stream("GET", f"/v1/jobs/{job}/stream", params={"cancel_on_disconnect": "true"}) as resp:
        first = next(json.loads(d) for e, d, _ in events(resp) if e == "item")
    closed = time.monotonic()      # leaving the block closed the connection
    took = gone_within(lambda: api.get(f"/v1/jobs/{job}").json()["status"] == "CANCELLED", CANCEL_WITHIN + SLACK)
    gone_within(lambda: not pid_alive(first["pid"]), CANCEL_WITHIN + SLACK)
    stopped = time.monotonic() - closed
    ticks = marker.read_text().split()
    job_view = api.get(f"/v1/jobs/{job}").json()
    assert job_view["error"]["reason"] == "CANCELLED"
    # nothing ticks once the process is gone
    assert marker.read_text().split() == ticks
    print(f"SSE disconnect → CANCELLED in {took:.3f} s, generator process gone in {stopped:.3f} s")


def test_sse_reader_without_cancel_on_disconnect_leaves_the_job_running(api: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "ticks"
    job = start(api, "ticker", {"input": {"marker": str(marker)}})
    with api.stream("GET", f"/v1/jobs/{job}/stream") as resp:
        next(e for e, _, _ in events(resp) if e == "item")
    # a durable job outlives its watchers: a second reader picks up where the ticks are now
    with api.stream("GET", f"/v1/jobs/{job}/stream", params={"since": 5}) as resp:
        later = next(json.loads(d)["n"] for e, d, _ in events(resp) if e == "item")
    assert later == 6 and api.get(f"/v1/jobs/{job}").json()["status"] == "RUNNING"
    assert api.post(f"/v1/jobs/{job}/cancel").json()["status"] == "CANCELLED"


def test_input_stream_serves_sdk_calls(jobs_app: Any, server: Any, tmp_path: Path) -> None:
    """``/v1/inputs/{id}/stream`` is what .remote_gen() reads: items are the opaque (pickled) bytes."""
    gate = tmp_path / "gate"
    gate.write_text("open")
    assert list(jobs_app.items.remote_gen(3, str(gate))) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_remote_gen_closed_cancels_the_generator(jobs_app: Any, tmp_path: Path) -> None:
    client = context.get_client()
    it = jobs_app.ticker.remote_gen(str(tmp_path / "ticks"))
    first = next(it)
    assert client.get_call(first["call_id"])["state"] == "RUNNING"
    it.close()
    took = gone_within(lambda: client.get_call(first["call_id"])["state"] == "CANCELLED", CANCEL_WITHIN + SLACK)
    gone_within(lambda: not pid_alive(first["pid"]), CANCEL_WITHIN + SLACK)
    print(f".remote_gen() closed → CANCELLED in {took:.3f} s")


def test_remote_gen_dropped_cancels_the_generator(jobs_app: Any, tmp_path: Path) -> None:
    client = context.get_client()
    it = jobs_app.ticker.remote_gen(str(tmp_path / "ticks"))
    first = next(it)
    del it
    gc.collect()
    took = gone_within(lambda: client.get_call(first["call_id"])["state"] == "CANCELLED", CANCEL_WITHIN + SLACK)
    gone_within(lambda: not pid_alive(first["pid"]), CANCEL_WITHIN + SLACK)
    print(f".remote_gen() dropped → CANCELLED in {took:.3f} s")


def test_remote_gen_read_to_the_end_is_not_cancelled(jobs_app: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("open")
    it = jobs_app.items.remote_gen(2, str(gate))
    assert list(it) == [{"i": 0}, {"i": 1}]
    calls = context.get_client().request("GET", "/v1/calls", params={"limit": 5})["calls"]
    newest = next(c for c in calls if c["function"] == "items")
    assert newest["state"] == "SUCCEEDED" and not newest["cancelled"]
