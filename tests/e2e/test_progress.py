"""Progress reports end to end: ``surge.progress()`` in real containers, seen as ``event: progress``
on a job's SSE stream, as ``progress`` in ``GET /v1/jobs/{id}`` and through
``FunctionCall.get_progress()``; coalesced in the container; refused outside an input.
Also ``.remote_gen.aio()``: closing or abandoning it cancels the generator."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import surge
from surge.sdk import context

APP = "e2e-progress-jobs"
CANCEL_WITHIN = 2.0        # the promise: a reader that goes away stops its generator within 2 s
SLACK = 2.0                # a loaded 2-core test machine


@pytest.fixture(scope="module")
def progress_app(server: Any, apps_path: Any) -> Iterator[Any]:
    import progress_app

    progress_app.app.deploy(name=APP)
    with progress_app.app.run(show_logs=False):        # also an ephemeral run, for the SDK
        yield progress_app
    context.get_client().request("POST", f"/v1/apps/{APP}/stop")


@pytest.fixture
def api(server: Any, progress_app: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                      timeout=60) as http:
        yield http


def submit(api: httpx.Client, fn: str, body: dict[str, Any]) -> str:
    r = api.post(f"/v1/apps/{APP}/functions/{fn}/jobs", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def sse(api: httpx.Client, job: str, **params: Any) -> list[tuple[str, Any]]:
    """Every (event, JSON data) of a job's stream, read to its end."""
    out: list[tuple[str, Any]] = []
    event, data = "message", ""
    with api.stream("GET", f"/v1/jobs/{job}/stream", params=params) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if not line:
                if data:
                    out.append((event, json.loads(data)))
                event, data = "message", ""
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
    return out


def until(cond: Callable[[], Any], what: str, limit: float) -> float:
    """Seconds until ``cond()`` is true (polled), failing past ``limit``."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - t0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- HTTP jobs --------------------------------------------------------------------------------------

def test_job_progress_streams_in_order_before_the_end(api: httpx.Client) -> None:
    job = submit(api, "steps", {"input": {"n": 5}})
    events = sse(api, job)
    kinds = [e for e, _ in events]
    reports = [d for e, d in events if e == "progress"]
    assert [r["fraction"] for r in reports] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert [r["message"] for r in reports] == [f"step {i}" for i in range(1, 6)]
    assert [r["data"] for r in reports] == [{"i": i} for i in range(5)]
    assert all(r["attempt"] == 1 for r in reports)
    assert [r["at"] for r in reports] == sorted(r["at"] for r in reports)
    # every report before the final status and the end, which carries the result and the last report
    assert kinds[-2:] == ["status", "end"] and max(i for i, k in enumerate(kinds) if k == "progress") < len(kinds) - 2
    end = events[-1][1]
    assert end["status"] == "SUCCEEDED" and end["output"] == {"done": 5}
    assert end["progress"]["fraction"] == 1.0 and end["progress"]["message"] == "step 5"
    view = api.get(f"/v1/jobs/{job}").json()
    assert view["progress"] == reports[-1]
    # a resumed stream starts with the latest report, not the whole history
    resumed = [d for e, d in sse(api, job, since=0) if e == "progress"]
    assert resumed == [reports[-1]]


def test_job_progress_is_visible_while_it_runs(api: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job = submit(api, "waits_at_half", {"input": {"gate": str(gate)}})
    until(lambda: api.get(f"/v1/jobs/{job}").json()["progress"] is not None, "the first report", 30)
    running = api.get(f"/v1/jobs/{job}").json()
    assert running["status"] == "RUNNING"
    assert (running["progress"]["fraction"], running["progress"]["message"]) == (0.5, "half")
    gate.write_text("open")
    done = api.get(f"/v1/jobs/{job}", params={"wait": 30}).json()
    assert done["status"] == "SUCCEEDED" and done["progress"]["message"] == "done"


def test_a_tight_loop_of_reports_is_coalesced(api: httpx.Client) -> None:
    job = submit(api, "flood", {"input": {"n": 100_000}})
    events = sse(api, job)
    reports = [d for e, d in events if e == "progress"]
    seconds = events[-1][1]["output"]["seconds"]
    # at most one report per 50 ms (plus the first, sent at once, and the last, sent before the result)
    assert 1 <= len(reports) <= seconds * 20 + 2, (len(reports), seconds)
    assert reports[-1]["fraction"] == 1.0                        # the latest always wins
    fractions = [r["fraction"] for r in reports]
    assert fractions == sorted(fractions)
    print(f"100,000 reports in {seconds:.2f} s → {len(reports)} events")


def test_progress_from_a_thread_needs_the_inputs_context(api: httpx.Client) -> None:
    job = submit(api, "from_threads", {"input": {}})
    view = api.get(f"/v1/jobs/{job}", params={"wait": 30}).json()
    assert view["status"] == "SUCCEEDED", view
    assert "no input is running here" in view["output"] and "copy_context" in view["output"]
    assert (view["progress"]["fraction"], view["progress"]["message"]) == (0.75, "from a thread")


def test_generator_job_streams_items_and_reports(api: httpx.Client) -> None:
    job = submit(api, "counted", {"input": {"n": 3}})
    events = sse(api, job)
    assert [d for e, d in events if e == "item"] == [{"i": 0}, {"i": 1}, {"i": 2}]
    reports = [d["message"] for e, d in events if e == "progress"]
    assert reports == ["item 0", "item 1", "item 2", "all items"]
    kinds = [e for e, _ in events]
    assert kinds.index("progress") < kinds.index("end") and kinds[-1] == "end"


# -- the SDK ------------------------------------------------------------------------------------------

def test_function_call_get_progress(progress_app: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    call = progress_app.waits_at_half.spawn(str(gate))
    until(lambda: call.get_progress() is not None, "the first report", 30)
    p = call.get_progress()
    assert isinstance(p, surge.Progress)
    assert (p.fraction, p.message, p.data, p.attempt) == (0.5, "half", None, 1) and p.at > 0
    gate.write_text("open")
    assert call.get(timeout=30) == "ok"
    after = surge.FunctionCall.from_id(call.object_id).get_progress()
    assert after is not None and (after.fraction, after.message) == (1.0, "done")
    with pytest.raises(surge.NotFoundError, match="has no input #3"):
        call.get_progress(index=3)


def test_a_report_in_a_batch_goes_to_each_input(progress_app: Any) -> None:
    calls = [progress_app.batch_reports.spawn(x) for x in (1, 2, 3)]
    assert [c.get(timeout=30) for c in calls] == [2, 4, 6]
    for c in calls:
        p = c.get_progress()
        assert p is not None and p.message == "batch of 3" and p.data == [1, 2, 3]


# -- .remote_gen.aio(): closing or abandoning it cancels the generator -------------------------------------

def test_remote_gen_aio_closed_cancels_the_generator(progress_app: Any, tmp_path: Path) -> None:
    async def first_then_close() -> dict[str, Any]:
        agen = progress_app.quiet_after_first.remote_gen.aio(str(tmp_path / "ticks"))
        first: dict[str, Any] = await agen.__anext__()
        await agen.aclose()          # the worker thread is blocked waiting for an item that never comes
        return first

    first = asyncio.run(first_then_close())
    client = context.get_client()
    took = until(lambda: client.get_call(first["call_id"])["state"] == "CANCELLED", "cancel",
                 CANCEL_WITHIN + SLACK)
    until(lambda: not pid_alive(first["pid"]), "the container to stop", CANCEL_WITHIN + SLACK)
    print(f".remote_gen.aio() closed → CANCELLED in {took:.3f} s")


def test_remote_gen_aio_abandoned_cancels_the_generator(progress_app: Any, tmp_path: Path) -> None:
    async def first_then_leave() -> dict[str, Any]:
        async for first in progress_app.quiet_after_first.remote_gen.aio(str(tmp_path / "ticks")):
            return dict(first)       # the loop finalizes the abandoned iterator
        raise AssertionError("no item")

    first = asyncio.run(first_then_leave())
    client = context.get_client()
    took = until(lambda: client.get_call(first["call_id"])["state"] == "CANCELLED", "cancel",
                 CANCEL_WITHIN + SLACK)
    until(lambda: not pid_alive(first["pid"]), "the container to stop", CANCEL_WITHIN + SLACK)
    print(f".remote_gen.aio() abandoned → CANCELLED in {took:.3f} s")


def test_remote_gen_aio_read_to_the_end(progress_app: Any) -> None:
    async def read_all() -> list[int]:
        return [x async for x in progress_app.three.remote_gen.aio()]

    assert asyncio.run(read_all()) == [0, 1, 2]
    calls = context.get_client().request("GET", "/v1/calls", params={"limit": 5})["calls"]
    newest = next(c for c in calls if c["function"] == "three")
    assert newest["state"] == "SUCCEEDED" and not newest["cancelled"]
