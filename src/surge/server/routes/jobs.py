"""The HTTP job API (any language, no SDK) and server-sent event streams. See docs/jobs.md."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from surge import errors
from surge.core import priority as prio
from surge.core import ttl as ttl_rules
from surge.core.webhooks import SIGNATURE_HEADER
from surge.sdk.options import MAX_TIMEOUT
from surge.server.calls import output_json
from surge.server.jobs import InvalidPolicy, JobRequest, JobService, attempt_view
from surge.server.routes.deps import CURSOR_MAX, Plane, Workspace

router = APIRouter(prefix="/v1", tags=["jobs"])

MAX_WAIT = 300.0
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


# -- models ----------------------------------------------------------------------------------------

class JobPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    execution_timeout: float | None = Field(
        default=None, description="seconds one attempt may run, from 1 up to the function's `timeout` "
                                  "(the default)", examples=[60])
    ttl: float | None = Field(
        default=None, description=f"seconds the job may wait in the queue before its first start, "
                                  f"{ttl_rules.MIN_TTL}–{ttl_rules.MAX_TTL} (7 days); still queued "
                                  "then, it ends EXPIRED and never runs. Default: no limit", examples=[600])
    priority: int = Field(
        default=prio.DEFAULT_PRIORITY, description=f"queue order among this function's jobs, "
                                                   f"{prio.MIN_PRIORITY}–{prio.MAX_PRIORITY}, higher first; "
                                                   "equal priorities run first come, first served",
        examples=[10])

    @field_validator("execution_timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> Any:
        return _seconds("execution_timeout", v, 1, MAX_TIMEOUT, " (and at most the function's timeout)")

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, v: Any) -> Any:
        return _seconds("ttl", v, ttl_rules.MIN_TTL, ttl_rules.MAX_TTL, " (7 days)")

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"policy.priority={v!r} must be a whole number between {prio.MIN_PRIORITY} and "
                             f"{prio.MAX_PRIORITY}")
        if not prio.MIN_PRIORITY <= v <= prio.MAX_PRIORITY:
            raise ValueError(f"policy.priority={v!r} is out of range: must be between {prio.MIN_PRIORITY} "
                             f"and {prio.MAX_PRIORITY} (higher runs first)")
        return v


def _seconds(name: str, v: Any, low: int, high: int, note: str) -> Any:
    if v is None:
        return v
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"policy.{name}={v!r} must be a number of seconds between {low} and {high}")
    if not low <= v <= high:
        raise ValueError(f"policy.{name}={v!r} is out of range: must be between {low} and {high} seconds{note}")
    return v


class JobSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"input": {"text": "hello"}, "webhook": "https://example.com/hooks/surge",
         "policy": {"execution_timeout": 60, "ttl": 600, "priority": 10}, "idempotency_key": "order-1234"}]})

    input: Any = Field(default_factory=dict, description=(
        "the function's arguments as JSON: an object whose keys are its parameter names (keyword "
        "arguments), or any JSON value for a function taking one argument (see docs/jobs.md)"))
    webhook: str | None = Field(default=None, max_length=2048, description=(
        "an http(s) URL to POST the finished job to, signed (X-Surge-Signature); retried with "
        "exponential backoff for up to 24 h. Loopback, private, link-local and metadata addresses "
        "are refused unless the server allows private webhooks"))
    policy: JobPolicy = Field(default_factory=JobPolicy)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200, description=(
        "a repeated submission with the same key returns the first job instead of creating another "
        "(the `Idempotency-Key` header works too)"))


class JobRetry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class JobAccepted(BaseModel):
    id: str = Field(description="the job id (also its call id)", examples=["fc-1a2b3c"])
    status: str = Field(examples=["QUEUED"])
    created: bool = Field(description="false when the idempotency key returned an existing job")
    retry_of: str | None = None


class JobError(BaseModel):
    reason: str | None = Field(description="USER_EXCEPTION, TIMEOUT, OOM_KILLED, EXITED, SIGNALED, WORKER_LOST, "
                                           "INIT_FAILURE, CANCELLED, EXPIRED, RESULT_TOO_LARGE, NO_CAPACITY")
    message: str | None
    traceback: str | None
    exit_code: int | None
    signal: int | None


class Delivery(BaseModel):
    n: int
    at: float
    status_code: int | None
    error: str | None
    duration: float


class WebhookStatus(BaseModel):
    url: str
    state: str = Field(description="WAITING (job not finished), PENDING (to be retried at next_at), "
                                   "DELIVERED or FAILED (gave up after 24 h)")
    attempts: int
    next_at: float | None
    deliveries: list[Delivery]


class PolicyOut(BaseModel):
    execution_timeout: float
    ttl: float | None
    priority: int


class ProgressOut(BaseModel):
    fraction: float | None = Field(description="the fraction done, 0.0–1.0, when the function gave one")
    message: str | None
    data: Any = Field(description="any JSON the function attached (`surge.progress(data=...)`)")
    at: float = Field(description="when the control plane received the report (UNIX seconds)")
    attempt: int = Field(description="the attempt that made it (a retry starts reporting again)")


class Job(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "fc-1a2b3c", "app": "demo", "function": "embed", "status": "SUCCEEDED", "output": [0.1, 0.2],
        "error": None, "attempts": 1, "created_at": 1700000000.0, "started_at": 1700000000.2,
        "finished_at": 1700000001.0, "queued_seconds": 0.2, "run_seconds": 0.8,
        "policy": {"execution_timeout": 300, "ttl": None, "priority": 0}, "retry_of": None,
        "stream_url": "/v1/jobs/fc-1a2b3c/stream", "webhook": None}]})

    id: str
    app: str
    function: str
    status: str = Field(description="QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, TIMED_OUT or EXPIRED")
    output: Any = Field(description="the function's JSON return value once SUCCEEDED (null for generators: "
                                    "read their items from stream_url)")
    error: JobError | None
    attempts: int = Field(description="attempts started so far (retries included)")
    created_at: float
    started_at: float | None
    finished_at: float | None
    queued_seconds: float | None
    run_seconds: float | None
    policy: PolicyOut
    retry_of: str | None
    stream_url: str
    progress: ProgressOut | None = Field(default=None, description=(
        "the latest `surge.progress()` report (at most 20 a second are kept; the last one made before "
        "the job ended is always there)"))
    webhook: WebhookStatus | None = None


class CallProgress(BaseModel):
    call_id: str
    index: int
    input_id: str
    status: str
    progress: ProgressOut | None


class ErrorBody(BaseModel):
    error: dict[str, str] = Field(examples=[{"code": "not_found", "message": "no job 'fc-x'"}])


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown app, function or job"},
    409: {"model": ErrorBody, "description": "idempotency key used for another function; job not finished"},
    422: {"model": ErrorBody, "description": "invalid body or policy (the message gives the allowed range)"},
}
SSE_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                                  "description": "server-sent events"}}


def jobs_of(request: Request) -> JobService:
    svc: JobService = request.app.state.jobs
    return svc


def prefer_wait(header: str | None) -> float:
    """Seconds from ``Prefer: wait=N`` (RFC 7240), capped at 300; 0 without one."""
    m = _PREFER_WAIT.search(header or "")
    return min(float(m.group(1)), MAX_WAIT) if m else 0.0


# -- routes ----------------------------------------------------------------------------------------

@router.post("/apps/{app}/functions/{function}/jobs", status_code=202, response_model=JobAccepted,
             responses={200: {"model": Job, "description": "finished within `Prefer: wait=N`"}, **ERRORS})
async def submit_job(app: str, function: str, body: JobSubmit, request: Request, ws: Workspace,
                     prefer: Annotated[str | None, Header(description="`wait=N`: wait up to N s (≤ 300) and "
                                                                        "answer 200 with the finished job")] = None,
                     idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Any:
    """Submit a job to a deployed function. Answers ``202 {id, status}`` once the job is committed
    (durable); with ``Prefer: wait=N`` it waits up to N seconds and answers ``200`` with the finished
    job, or ``202`` if it is still going."""
    svc = jobs_of(request)
    req = JobRequest(input=body.input, webhook=body.webhook, execution_timeout=body.policy.execution_timeout,
                     ttl=body.policy.ttl, priority=body.policy.priority,
                     idempotency_key=body.idempotency_key or idempotency_key)
    try:
        job, row, created = await svc.submit(ws, app, function, req)
    except InvalidPolicy as exc:
        where = ("body", "webhook") if exc.field == "webhook" else ("body", "policy", exc.field)
        raise RequestValidationError([{"loc": where, "msg": exc.message, "type": "value_error"}]) from None
    return await _answer(svc, ws, job.id, row.state.value, created, prefer_wait(prefer), None)


@router.get("/jobs/{job_id}", response_model=Job, responses=ERRORS)
async def get_job(job_id: str, request: Request, ws: Workspace,
                  wait: float = Query(0.0, ge=0, le=MAX_WAIT, description="long-poll: seconds to wait for "
                                                                          "the job to finish")) -> Any:
    """A job's status, output (JSON), error with its reason, timings, attempts and webhook deliveries."""
    svc = jobs_of(request)
    job, row = await (svc.wait(ws, job_id, wait) if wait > 0 else svc.find(ws, job_id))
    return await svc.view(job, row)


@router.get("/jobs/{job_id}/deliveries", response_model=list[Delivery], responses=ERRORS)
async def deliveries(job_id: str, request: Request, ws: Workspace) -> Any:
    """Every delivery attempt of the job's webhook, oldest first."""
    svc = jobs_of(request)
    job, _ = await svc.find(ws, job_id)
    return [attempt_view(a) for a in await svc.store.webhook_attempts(job.id)]


@router.post("/jobs/{job_id}/cancel", response_model=Job, responses=ERRORS)
async def cancel_job(job_id: str, request: Request, ws: Workspace) -> Any:
    """Cancel a queued or running job (a running one is stopped within about a second). Cancelling
    a finished job changes nothing and answers it as it is."""
    svc = jobs_of(request)
    job, row = await svc.cancel(ws, job_id)
    return await svc.view(job, row)


@router.post("/jobs/{job_id}/retry", status_code=202, response_model=JobAccepted,
             responses={200: {"model": Job, "description": "finished within `Prefer: wait=N`"}, **ERRORS})
async def retry_job(job_id: str, request: Request, ws: Workspace, body: JobRetry | None = None,
                    prefer: Annotated[str | None, Header()] = None,
                    idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Any:
    """Run a finished job again as a **new job** (same input, policy and webhook; ``retry_of`` names
    the original) on the app's current deployment. The original keeps the state it ended in."""
    svc = jobs_of(request)
    key = (body.idempotency_key if body else None) or idempotency_key
    job, row, created = await svc.retry(ws, job_id, key)
    return await _answer(svc, ws, job.id, row.state.value, created, prefer_wait(prefer), job_id)


@router.get("/jobs/{job_id}/stream", response_class=StreamingResponse, responses={**SSE_DOC, **ERRORS})
async def stream_job(job_id: str, request: Request, ws: Workspace,
                     since: int = Query(-1, ge=-1, le=CURSOR_MAX, description="resume after this item id"),
                     cancel_on_disconnect: bool = Query(False, description=(
                         "cancel the job when this reader disconnects before the end (for a stream "
                         "whose reader is its only consumer)")),
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """Server-sent events of a job: ``status`` (state and attempt, as they change), ``item`` (each
    item a generator function yields, as JSON, in order; ``id:`` is its index), ``progress`` (each
    ``surge.progress()`` report, at most 20 a second) and a final ``end`` event carrying the job as
    ``GET /v1/jobs/{id}`` shows it. ``Last-Event-ID`` resumes (with the latest report first)."""
    svc = jobs_of(request)
    job, _ = await svc.find(ws, job_id)
    start = _resume(since, last_event_id)

    async def end(row: Any) -> Any:
        return await svc.view(job, row, deliveries=False)

    cp = svc.cp
    events = svc.stream(job.input_id, since=start, json_items=True, render_end=end,
                        is_disconnected=request.is_disconnected, cancel_on_disconnect=cancel_on_disconnect,
                        cancel=lambda: cp.cancel(ws, job.id))
    return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)


@router.get("/inputs/{input_id}/stream", response_class=StreamingResponse, tags=["calls"],
            responses={**SSE_DOC, **ERRORS})
async def stream_input(input_id: str, request: Request, cp: Plane, ws: Workspace,
                       since: int = Query(-1, ge=-1, le=CURSOR_MAX),
                       cancel_on_disconnect: bool = Query(True, description="cancel the input's call when "
                                                                            "this reader disconnects early"),
                       last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """Server-sent events of any input (what ``.remote_gen()`` reads): ``item`` events carry the
    base64 of each opaque item, the ``end`` event the input's output. By default a reader that
    disconnects before the end cancels the call (the generator stops within about a second)."""
    row = await cp.store.get_input(input_id)
    call = await cp.store.get_call(row.call_id) if row is not None else None
    if row is None or call is None or call.workspace != ws:    # another workspace's: not even its call id
        raise errors.NotFoundError(f"no input {input_id!r}")
    svc = jobs_of(request)

    async def end(r: Any) -> Any:
        return output_json(r)

    events = svc.stream(input_id, since=_resume(since, last_event_id), json_items=False, render_end=end,
                        is_disconnected=request.is_disconnected, cancel_on_disconnect=cancel_on_disconnect,
                        cancel=lambda: cp.cancel(ws, row.call_id))
    return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)


@router.get("/calls/{call_id}/progress", response_model=CallProgress, tags=["calls"], responses=ERRORS)
async def call_progress(call_id: str, request: Request, cp: Plane, ws: Workspace,
                        index: int = Query(0, ge=0, le=2**31 - 1, description="which input of the call (0 "
                                                                             "for .spawn, .remote and jobs)")) -> Any:
    """The latest ``surge.progress()`` report of one input of a call (what
    ``FunctionCall.get_progress()`` reads); ``progress`` is null until the function reports."""
    await cp.get_call_row(ws, call_id)
    row = next((r for r in await cp.store.list_inputs(call_id, limit=index + 1) if r.idx == index), None)
    if row is None:
        raise errors.NotFoundError(f"call {call_id} has no input #{index}")
    return {"call_id": call_id, "index": index, "input_id": row.id, "status": row.state.value,
            "progress": await jobs_of(request).progress(row.id)}


@router.get("/webhooks/secret")
async def webhook_secret(request: Request, ws: Workspace) -> dict[str, str]:
    """The secret that signs this workspace's webhook deliveries, and how to check a signature."""
    return {"secret": jobs_of(request).signing_secret(ws), "header": SIGNATURE_HEADER,
            "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, '<t>.' + raw body)>; reject t more than "
                      "300 s from now"}


# -- helpers -----------------------------------------------------------------------------------------

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _resume(since: int, last_event_id: str | None) -> int:
    if last_event_id and last_event_id.strip().lstrip("-").isdigit():
        return min(CURSOR_MAX, max(since, int(last_event_id.strip())))
    return since


async def _answer(svc: JobService, ws: str, job_id: str, status: str, created: bool, wait: float,
                  retry_of: str | None) -> JSONResponse:
    if wait > 0:
        job, row = await svc.wait(ws, job_id, wait)
        if row.state.terminal:
            return JSONResponse(await svc.view(job, row), status_code=200,
                                headers={"Preference-Applied": f"wait={wait:g}"})
        status = row.state.value
    return JSONResponse({"id": job_id, "status": status, "created": created, "retry_of": retry_of},
                        status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})

