"""The HTTP job API over real HTTP on 127.0.0.1: a deployed app, real workers, plain httpx (no SDK)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import surge

APP = "e2e-jobs"


@pytest.fixture(scope="module")
def api(server: Any, apps_path: Any) -> Iterator[httpx.Client]:
    import jobs_app

    jobs_app.app.deploy(name=APP)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                      timeout=60) as http:
        yield http
        http.post(f"/v1/apps/{APP}/stop")


def submit(api: httpx.Client, fn: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return api.post(f"/v1/apps/{APP}/functions/{fn}/jobs", json=body or {}, headers=headers)


def finished(api: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}", params={"wait": 60}).json()
    assert job["status"] not in ("QUEUED", "RUNNING"), job
    return job


def until(cond: Callable[[], Any], what: str, limit: float = 30.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/v1/jobs/{job_id}").json()["status"])


# -- submit, wait, read ----------------------------------------------------------------------------

def test_job_happy_path(api: httpx.Client) -> None:
    r = submit(api, "echo", {"input": {"text": "hi", "n": 3}})
    assert r.status_code == 202
    accepted = r.json()
    assert accepted["status"] == "QUEUED" and accepted["id"].startswith("fc-") and accepted["created"] is True
    assert r.headers["location"] == f"/v1/jobs/{accepted['id']}"
    job = finished(api, accepted["id"])
    assert job["status"] == "SUCCEEDED" and job["error"] is None
    assert job["output"]["text"] == "hihihi"
    assert job["attempts"] == 1 and job["app"] == APP and job["function"] == "echo"
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert job["queued_seconds"] >= 0 and job["run_seconds"] >= 0
    assert job["policy"] == {"execution_timeout": 300.0, "ttl": None, "priority": 0}
    # a job is a call: it shows up in the call listing like any other
    calls = api.get("/v1/calls", params={"app": APP}).json()["calls"]
    assert any(c["call_id"] == accepted["id"] and c["kind"] == "http" for c in calls)
    # ... and the SDK reads its JSON result like a spawned call's
    assert surge.FunctionCall.from_id(accepted["id"]).get(timeout=30)["text"] == "hihihi"


def test_prefer_wait_answers_inline(api: httpx.Client, tmp_path: Path) -> None:
    r = submit(api, "echo", {"input": {"text": "ok"}}, Prefer="wait=30")
    assert r.status_code == 200
    assert r.headers["preference-applied"] == "wait=30"
    assert r.json()["status"] == "SUCCEEDED" and r.json()["output"]["text"] == "ok"
    # not done within the wait: 202 with the current status, and the job carries on
    gate = tmp_path / "gate"
    r = submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "m")}}, Prefer="wait=0.2")
    assert r.status_code == 202 and r.json()["status"] in ("QUEUED", "RUNNING")
    gate.write_text("open")
    assert finished(api, r.json()["id"])["status"] == "SUCCEEDED"


def test_json_object_as_keyword_arguments_or_one_dict(api: httpx.Client) -> None:
    # keys that bind to the parameters: keyword arguments
    assert finished(api, submit(api, "echo", {"input": {"text": "a", "n": 2}}).json()["id"])["output"]["text"] == "aa"
    assert finished(api, submit(api, "handler", {"input": {"event": {"k": 1}}}).json()["id"])["output"] == {
        "got": {"k": 1}, "type": "dict"}
    # keys that do not bind, one-parameter function: the whole object is its argument
    assert finished(api, submit(api, "handler", {"input": {"prompt": "x", "n": 2}}).json()["id"])["output"] == {
        "got": {"prompt": "x", "n": 2}, "type": "dict"}
    # any other JSON value goes whole to a one-parameter function
    assert finished(api, submit(api, "handler", {"input": [1, 2]}).json()["id"])["output"]["got"] == [1, 2]
    # fits neither way: a clear FAILED, not a 500
    job = finished(api, submit(api, "add", {"input": {"x": 1}}).json()["id"])
    assert job["status"] == "FAILED" and job["error"]["reason"] == "USER_EXCEPTION"
    assert "does not fit the function's parameters (a, b)" in job["error"]["message"]


def test_non_json_result_is_a_clear_failure(api: httpx.Client) -> None:
    for fn, why in (("not_json", "Object of type set is not JSON serializable"),
                    ("nan", "Out of range float values are not JSON compliant")):
        job = finished(api, submit(api, fn).json()["id"])
        assert job["status"] == "FAILED", job
        assert job["error"]["reason"] == "USER_EXCEPTION"
        assert "is not JSON-serializable" in job["error"]["message"] and why in job["error"]["message"]
        assert job["output"] is None


# -- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "needle"), [
    ({"policy": {"priority": 101}}, "policy.priority=101 is out of range: must be between -100 and 100"),
    ({"policy": {"priority": 1.5}}, "policy.priority=1.5 must be a whole number between -100 and 100"),
    ({"policy": {"ttl": 0}}, "policy.ttl=0 is out of range: must be between 1 and 604800 seconds"),
    ({"policy": {"execution_timeout": 0.5}}, "policy.execution_timeout=0.5 is out of range: must be between 1"),
    ({"policy": {"execution_timeout": 301}},
     "policy.execution_timeout=301 is out of range for e2e-jobs::echo: must be between 1 and 300 seconds"),
    ({"policy": {"retries": 3}}, "policy.retries: Extra inputs are not permitted"),
    ({"inputs": {}}, "inputs: Extra inputs are not permitted"),
    ({"webhook": "ftp://example.com/x"}, "scheme 'ftp' is not allowed"),
    ({"idempotency_key": ""}, "idempotency_key"),
])
def test_bad_bodies_are_422_with_the_allowed_range(api: httpx.Client, body: dict[str, Any], needle: str) -> None:
    r = submit(api, "echo", {"input": {"text": "x"}, **body})
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]["message"]


def test_not_json_and_unknown_names(api: httpx.Client) -> None:
    r = api.post(f"/v1/apps/{APP}/functions/echo/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "the body is not valid JSON" in r.json()["error"]["message"]
    r = submit(api, "nope")
    assert r.status_code == 404 and "has no function 'nope' (functions: add, echo" in r.json()["error"]["message"]
    r = api.post("/v1/apps/no-such-app/functions/echo/jobs", json={})
    assert r.status_code == 404 and "no deployed app named 'no-such-app'" in r.json()["error"]["message"]
    for path in ("/v1/jobs/fc-missing", "/v1/jobs/fc-missing/stream", "/v1/jobs/fc-missing/deliveries"):
        assert api.get(path).status_code == 404
    assert api.post("/v1/jobs/fc-missing/cancel").status_code == 404
    assert api.post("/v1/jobs/fc-missing/retry").status_code == 404


def test_openapi_documents_the_job_api(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    post = spec["paths"]["/v1/apps/{app}/functions/{function}/jobs"]["post"]
    assert set(post["responses"]) >= {"200", "202", "404", "409", "422"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobSubmit")
    schemas = spec["components"]["schemas"]
    assert {"JobSubmit", "JobPolicy", "Job", "JobAccepted", "JobError", "WebhookStatus"} <= set(schemas)
    assert schemas["JobSubmit"]["examples"][0]["policy"]["priority"] == 10
    assert "Prefer" in {p["name"] for p in post["parameters"]} or "prefer" in {p["name"] for p in post["parameters"]}
    for path in ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/stream", "/v1/jobs/{job_id}/cancel",
                 "/v1/jobs/{job_id}/retry", "/v1/jobs/{job_id}/deliveries", "/v1/inputs/{input_id}/stream"):
        assert path in spec["paths"], path
    assert "text/event-stream" in spec["paths"]["/v1/jobs/{job_id}/stream"]["get"]["responses"]["200"]["content"]


# -- idempotency -------------------------------------------------------------------------------------

def test_idempotency_key_reuse(api: httpx.Client) -> None:
    key = f"order-{uuid.uuid4().hex}"
    first = submit(api, "echo", {"input": {"text": "once"}, "idempotency_key": key})
    again = submit(api, "echo", {"input": {"text": "once"}, "idempotency_key": key})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["created"] is True and again.json()["created"] is False
    # the header form names the same key
    assert submit(api, "echo", {"input": {"text": "once"}}, **{"Idempotency-Key": key}).json()["id"] == first.json()["id"]
    other = submit(api, "handler", {"input": {}, "idempotency_key": key})
    assert other.status_code == 409
    assert "was already used for call" in other.json()["error"]["message"] and "another function" in other.json()["error"]["message"]


# -- policy: ttl, priority, execution_timeout --------------------------------------------------------

def test_ttl_expired_job_never_runs(api: httpx.Client, tmp_path: Path) -> None:
    # fast runs first: the dispatcher now lets the container prefetch, which a job with a ttl must
    # not be (inside a busy container it would outlive its ttl)
    warm = tmp_path / "open"
    warm.write_text("open")
    for i in range(3):
        finished(api, submit(api, "gated", {"input": {"gate": str(warm), "marker": str(tmp_path / f"w{i}")}}).json()["id"])
    gate = tmp_path / "gate"
    # the function has max_containers=1: this job holds its only container until the gate opens
    blocker = submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "blocker")}}).json()["id"]
    until(lambda: status(api, blocker) == "RUNNING", "the blocker to start")
    late = submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "late")},
                                 "policy": {"ttl": 1}}).json()["id"]
    job = finished(api, late)
    assert job["status"] == "EXPIRED" and job["error"]["reason"] == "EXPIRED"
    assert "ttl" in job["error"]["message"]
    assert job["attempts"] == 0 and job["started_at"] is None and job["policy"]["ttl"] == 1
    gate.write_text("open")
    assert finished(api, blocker)["status"] == "SUCCEEDED"
    # the container was free after the blocker: had the expired job been kept, it would run now
    follow = finished(api, submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "after")}}).json()["id"])
    assert follow["status"] == "SUCCEEDED" and (tmp_path / "after").exists()
    assert not (tmp_path / "late").exists()


def test_priority_orders_the_queue(api: httpx.Client, tmp_path: Path) -> None:
    gate, log = tmp_path / "gate", tmp_path / "order.log"

    def job(name: str, priority: int) -> str:
        body = {"input": {"gate": str(gate), "marker": str(tmp_path / name), "log": str(log)},
                "policy": {"priority": priority}}
        return str(submit(api, "ordered", body).json()["id"])

    first = job("first", 0)
    until(lambda: status(api, first) == "RUNNING", "the first job to start")
    ids = [job("low-1", 0), job("low-2", 0), job("high", 50), job("lowest", -5), job("mid", 10)]
    gate.write_text("open")
    for i in [first, *ids]:
        assert finished(api, i)["status"] == "SUCCEEDED"
    assert log.read_text().split() == ["first", "high", "mid", "low-1", "low-2", "lowest"]


def test_execution_timeout_overrides_the_function_timeout(api: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "slept"
    job = finished(api, submit(api, "sleeper", {"input": {"seconds": 30, "marker": str(marker)},
                                                "policy": {"execution_timeout": 1}}).json()["id"])
    assert marker.exists()                       # it did start
    assert job["status"] == "TIMED_OUT" and job["error"]["reason"] == "TIMEOUT"
    assert "timeout of 1.0 s" in job["error"]["message"]
    assert job["policy"]["execution_timeout"] == 1 and job["run_seconds"] < 20


# -- cancel and retry --------------------------------------------------------------------------------

def test_cancel_running_and_queued_jobs(api: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "never-opened"
    running = submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "r")}}).json()["id"]
    until(lambda: status(api, running) == "RUNNING", "the job to start")
    queued = submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "q")}}).json()["id"]
    # queued on the server, or prefetched by the busy container (RUNNING there, not started)
    assert status(api, queued) in ("QUEUED", "RUNNING")
    for job_id in (queued, running):
        r = api.post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
        assert r.json()["error"]["reason"] == "CANCELLED"
        again = api.post(f"/v1/jobs/{job_id}/cancel")      # a no-op on a finished job
        assert again.status_code == 200 and again.json()["status"] == "CANCELLED"
    assert not (tmp_path / "q").exists()
    # the function's container was stopped; the next job gets a new one and runs
    gate.write_text("open")
    assert finished(api, submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "n")}}
                                ).json()["id"])["status"] == "SUCCEEDED"


def test_retry_runs_a_finished_job_again_as_a_new_job(api: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    original = submit(api, "fail_once", {"input": {"marker": str(marker)}, "policy": {"priority": 3}}).json()["id"]
    failed = finished(api, original)
    assert failed["status"] == "FAILED" and "first run fails" in failed["error"]["message"]
    r = api.post(f"/v1/jobs/{original}/retry", headers={"Prefer": "wait=30"})
    assert r.status_code == 200, r.text
    retried = r.json()
    assert retried["id"] != original and retried["retry_of"] == original
    assert retried["status"] == "SUCCEEDED" and retried["output"] == "second run works"
    assert retried["policy"]["priority"] == 3
    assert finished(api, original)["status"] == "FAILED"        # the original keeps how it ended
    # a job that has not finished cannot be retried
    gate = tmp_path / "gate"
    busy = submit(api, "gated", {"input": {"gate": str(gate), "marker": str(tmp_path / "b")}}).json()["id"]
    r = api.post(f"/v1/jobs/{busy}/retry")
    assert r.status_code == 409 and "only a finished job can be retried" in r.json()["error"]["message"]
    gate.write_text("open")
    finished(api, busy)
    # an idempotency key makes a retried retry return the same new job
    key = uuid.uuid4().hex
    a = api.post(f"/v1/jobs/{original}/retry", json={"idempotency_key": key}).json()
    b = api.post(f"/v1/jobs/{original}/retry", json={"idempotency_key": key}).json()
    assert a["id"] == b["id"] and a["created"] and not b["created"]
