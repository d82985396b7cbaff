"""HTTP jobs: the job API's operations on top of the one job model.

A job is a call (kind ``http``) with one input whose args are the JSON ``input`` as sent, marked
``codec = "json"`` so the container runtime decodes it (``surge.core.jsonargs``) and encodes the
result as JSON; the control plane only ever parses that JSON, it never unpickles. The job row
(policy, names, ``retry_of``) and its webhook are committed with the call in one transaction:
``202 Accepted`` means durable, and so does the webhook.

Beyond what every call gets (retries, timeouts, cancellation, retention), a job has a ``priority``
(queue order, see ``surge.core.priority``), an ``execution_timeout`` (its own, at most the
function's ``timeout``), a ``ttl`` (``surge.core.ttl``: still queued after it → ``EXPIRED``, never
run) and a webhook (``surge.server.webhooks``).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.core import ttl as ttl_rules
from surge.core.models import CallKind, InputState
from surge.core.progress import PROGRESS_SEQ_BASE, PROGRESS_SEQ_END, report_view
from surge.core.webhooks import Backoff, derive_secret
from surge.ids import new_id
from surge.server import loops
from surge.server.dispatcher import TRACEBACK_MARK
from surge.server.limits import check_admission
from surge.server.net import RefusedURL, check_url
from surge.server.pools import Waiters, Work, spawn
from surge.server.webhooks import WebhookSender
from surge.store.base import CallRow, InputRow, JobRow, NewInput, WebhookRow

if TYPE_CHECKING:
    from surge.server.controlplane import ControlPlane

log = logging.getLogger("surge.jobs")

CODEC = "json"
KEEPALIVE_SECONDS = 15.0       # an SSE comment line this often keeps proxies from closing the stream
DISCONNECT_POLL = 0.25         # how often an idle stream checks whether its reader is gone
MAX_WEBHOOK_OUTPUT = 1 << 20   # larger outputs are left out of the webhook body (fetch the job)


class InvalidPolicy(errors.InvalidError):
    """A policy value out of the range this function allows (answered 422, like body validation)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(slots=True)
class JobRequest:
    """A validated ``POST .../jobs`` body (see ``surge.server.routes.jobs.JobSubmit``)."""

    input: Any
    webhook: str | None = None
    execution_timeout: float | None = None
    ttl: float | None = None
    priority: int = 0
    idempotency_key: str | None = None


class JobService:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.store = cp.store
        self.dispatcher = cp.dispatcher
        config = cp.config
        self.allow_private = config.allow_private_webhooks
        self.webhooks = WebhookSender(
            self.store, render=self.webhook_body, secret_for=self.signing_secret,
            backoff=Backoff(base=config.webhook_backoff, cap=max(config.webhook_backoff, config.webhook_backoff_cap),
                            window=config.webhook_window),
            allow_private=config.allow_private_webhooks, timeout=config.webhook_timeout)
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        for name, interval, step in (("job-ttl", 0.25, self.expire_step),
                                     ("webhooks", 0.2, self.webhooks.tick),
                                     ("job-retention", 60.0, self.store.purge_jobs)):
            self._tasks.append(asyncio.create_task(loops.run_forever(name, interval, step)))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.close()

    def signing_secret(self, signer: str) -> str:
        """The webhook signing secret of ``signer`` (the workspace that submitted the job), derived
        from the server's key material so it is never stored. Tenants cannot sign for each other;
        per-token secrets need only a token id as the signer."""
        return derive_secret(f"{self.cp.token}\x00{signer}")

    # -- submit ----------------------------------------------------------------------------------
    async def submit(self, workspace: str, app: str, function: str, req: JobRequest, *,
                     retry_of: str | None = None) -> tuple[JobRow, InputRow, bool]:
        """Commit a job (and its webhook); ``created`` is False when the idempotency key was used
        before for this function (the first job is returned)."""
        fn = await self.cp.resolve_function(workspace, {"app": app, "function": function})
        opts = fn.spec.get("options", {})
        limit = float(opts.get("timeout", 300))
        timeout = limit if req.execution_timeout is None else float(req.execution_timeout)
        if timeout > limit:
            raise InvalidPolicy("execution_timeout",
                                f"policy.execution_timeout={req.execution_timeout:g} is out of range for "
                                f"{app}::{function}: must be between 1 and {limit:g} seconds (the function's "
                                "timeout); raise the function's timeout= to allow longer jobs")
        if req.webhook is not None:
            try:
                await check_url(req.webhook, allow_private=self.allow_private)
            except RefusedURL as exc:
                raise InvalidPolicy("webhook", exc.message) from None
        data = json.dumps(req.input, separators=(",", ":")).encode()
        if len(data) > self.cp.config.max_input_bytes:
            raise errors.TooLargeError(f"the job input is {len(data):,} bytes of JSON, over the limit of "
                                       f"{self.cp.config.max_input_bytes:,}; pass large data through a Volume")
        pool_key = f"{fn.app_id}:v{fn.version}:{fn.spec['cls']}:-" if fn.spec.get("cls") else fn.id
        now = time.time()
        expires = now + self.cp.config.result_retention
        call = CallRow(id=new_id("fc"), workspace=workspace, function_id=fn.id, kind=CallKind.HTTP.value,
                       created_at=now, idempotency_key=req.idempotency_key or None, pool_key=pool_key,
                       input_count=1, expires_at=expires)
        new_input = NewInput(idx=0, args=data, timeout=timeout,
                             max_retries=int((opts.get("retries") or {}).get("max_retries", 0)))
        job = JobRow(id="", input_id="", workspace=workspace, app=app, function=function, execution_timeout=timeout,
                     ttl=req.ttl, priority=req.priority, created_at=now, retry_of=retry_of, expires_at=expires)
        hook = None if req.webhook is None else WebhookRow(
            job_id="", input_id="", url=req.webhook, signer=workspace, state="WAITING", attempts=0, created_at=now)
        pool = await self.cp.pool(fn, pool_key, None, workspace)
        check_admission(self.dispatcher, fn, 1, self.cp.config.max_queued)   # 429 when the queue is full
        call, row, found, created = await self.store.create_job(
            call, new_input, job, hook, priority=req.priority, codec=CODEC,
            start_by=ttl_rules.start_by(now, req.ttl), now=now)
        if not created:
            if found is None or call.function_id != fn.id:
                raise errors.ConflictError(
                    f"idempotency_key {req.idempotency_key!r} was already used for call {call.id} "
                    f"{'to another function' if found is not None else 'that is not a job'}; use a new key "
                    "for a new job")
            return found, row, False
        assert found is not None
        self.dispatcher.enqueue(pool, [Work.from_row(row, fn)], now)
        return found, row, True

    async def retry(self, workspace: str, job_id: str, idempotency_key: str | None) -> tuple[JobRow, InputRow, bool]:
        """Run a finished job again as a new job (same input, policy and webhook, ``retry_of`` set),
        against the app's current deployment. The original keeps how it ended."""
        job, row = await self.find(workspace, job_id)
        if not row.state.terminal:
            raise errors.ConflictError(f"job {job_id} is {row.state.value}; only a finished job can be retried "
                                       "(cancel it first to stop it)")
        hook = await self.store.get_webhook(job.id)
        req = JobRequest(input=json.loads(row.args), webhook=hook.url if hook else None,
                         execution_timeout=job.execution_timeout, ttl=job.ttl, priority=job.priority,
                         idempotency_key=idempotency_key)
        try:
            return await self.submit(workspace, job.app, job.function, req, retry_of=job.id)
        except InvalidPolicy as exc:
            # e.g. the redeployed function has a shorter timeout than the job asked for
            raise errors.ConflictError(f"job {job_id} cannot be retried: {exc.message}") from None

    # -- read ------------------------------------------------------------------------------------
    async def find(self, workspace: str, job_id: str) -> tuple[JobRow, InputRow]:
        job = await self.store.get_job(job_id)
        row = await self.store.get_input(job.input_id) if job is not None else None
        if job is None or row is None or job.workspace != workspace:
            days = self.cp.config.result_retention / 86400
            raise errors.NotFoundError(f"no job {job_id!r} (jobs are kept {days:g} days)")
        return job, row

    async def wait(self, workspace: str, job_id: str, seconds: float) -> tuple[JobRow, InputRow]:
        """The job once it has ended, or as it is after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            ev = self.dispatcher.calls.event(job_id)          # before the read: no wake-up is lost
            job, row = await self.find(workspace, job_id)
            left = deadline - time.monotonic()
            if row.state.terminal or left <= 0:
                return job, row
            await Waiters.wait(ev, left)

    async def view(self, job: JobRow, row: InputRow, *, deliveries: bool = True) -> dict[str, Any]:
        out = job_view(job, row, await self.progress(row.id))
        if deliveries:
            hook = await self.store.get_webhook(job.id)
            out["webhook"] = None if hook is None else {
                "url": hook.url, "state": hook.state, "attempts": hook.attempts, "next_at": hook.next_at,
                "deliveries": [attempt_view(a) for a in await self.store.webhook_attempts(job.id)]}
        return out

    async def webhook_body(self, job_id: str) -> bytes | None:
        job = await self.store.get_job(job_id)
        row = await self.store.get_input(job.input_id) if job is not None else None
        if job is None or row is None:
            return None
        body = {"event": "job.finished", **job_view(job, row, await self.progress(row.id))}
        data = json.dumps(body, separators=(",", ":")).encode()
        if len(data) > MAX_WEBHOOK_OUTPUT:
            body.update(output=None, output_omitted=True)
            data = json.dumps(body, separators=(",", ":")).encode()
        return data

    async def progress(self, input_id: str) -> dict[str, Any] | None:
        """The input's latest ``surge.progress()`` report (``surge.core.progress.report_view``)."""
        last = await self.store.last_event(input_id, min_seq=PROGRESS_SEQ_BASE)
        return None if last is None else report_view(last.seq, last.data, last.at)

    # -- cancel and ttl --------------------------------------------------------------------------
    async def cancel(self, workspace: str, job_id: str) -> tuple[JobRow, InputRow]:
        """Cancel a queued or running job (a finished one is left as it is)."""
        await self.find(workspace, job_id)
        await self.cp.cancel(workspace, job_id)
        return await self.find(workspace, job_id)

    async def expire_step(self, now: float) -> int:
        """The ttl loop: queued jobs past their ``start_by`` end EXPIRED (the dispatcher also checks
        at assignment, so none can start late between two ticks)."""
        rows = [r for r in await self.store.queued_past_start_by(now)
                if ttl_rules.expired(r.start_by, attempt=r.attempt, now=now)]
        return await self.dispatcher.expire_queued(rows) if rows else 0

    # -- streams (server-sent events) ------------------------------------------------------------
    async def stream(self, input_id: str, *, since: int, json_items: bool, render_end: Callable[[InputRow], Awaitable[Any]],
                     is_disconnected: Callable[[], Awaitable[bool]], cancel_on_disconnect: bool,
                     cancel: Callable[[], Awaitable[object]]) -> AsyncIterator[str]:
        """Server-sent events of one input: ``status`` when its state or attempt changes, ``item``
        for each generator item (``id:`` is its sequence number, for ``Last-Event-ID``), ``progress``
        for each ``surge.progress()`` report (no ``id:``: a resumed stream starts with the latest
        report), and a final ``end`` event, after which the stream closes. With
        ``cancel_on_disconnect``, a reader that goes away before the end cancels the input."""
        seen: tuple[str, int] | None = None
        ended = False
        keepalive = time.monotonic() + KEEPALIVE_SECONDS
        # reports after this seq; None: start with the latest report (a resumed stream)
        reports_since: int | None = PROGRESS_SEQ_BASE - 1 if since < 0 else None
        try:
            while True:
                ev = self.dispatcher.inputs.event(input_id)
                row = await self.store.get_input(input_id)     # state first: events before it are complete
                if row is None:
                    raise errors.NotFoundError(f"input {input_id} is gone")
                evs = await self.store.events_between(input_id, since, PROGRESS_SEQ_BASE, limit=500)
                if reports_since is None:
                    last = await self.store.last_event(input_id, min_seq=PROGRESS_SEQ_BASE)
                    reports = [] if last is None else [last]
                    reports_since = PROGRESS_SEQ_BASE - 1 if last is None else last.seq
                else:
                    reports = await self.store.events_between(input_id, reports_since, PROGRESS_SEQ_END, limit=500)
                status = (row.state.value, row.attempt)
                if status != seen and not row.state.terminal:
                    seen = status
                    yield sse("status", json.dumps({"status": row.state.value, "attempt": row.attempt}))
                # items and reports in the order they reached the control plane
                for e in heapq.merge(evs, reports, key=lambda e: e.at):   # keeps each list's own order
                    if e.kind == "progress":
                        reports_since = e.seq
                        yield sse("progress", json.dumps(report_view(e.seq, e.data, e.at), separators=(",", ":")))
                        continue
                    since = e.seq
                    data = e.data.decode() if json_items else _b64(e.data)
                    yield sse(e.kind, data, event_id=e.seq)
                if row.state.terminal and len(evs) < 500 and len(reports) < 500:
                    # the final status after every item, then the end
                    yield sse("status", json.dumps({"status": row.state.value, "attempt": row.attempt}))
                    ended = True
                    yield sse("end", json.dumps(await render_end(row), separators=(",", ":")))
                    return
                if evs or reports:
                    continue
                # wait for the next item or state change, checking on the reader meanwhile
                while not await Waiters.wait(ev, DISCONNECT_POLL):
                    if await is_disconnected():
                        return
                    if row.state == InputState.QUEUED:
                        break           # queued → running is not notified: look again
                    if time.monotonic() > keepalive:
                        keepalive = time.monotonic() + KEEPALIVE_SECONDS
                        yield ": keep-alive\n\n"
        finally:
            if cancel_on_disconnect and not ended:
                # the reader is gone (closed, or this generator was cancelled with its request)
                log.info("stream reader of %s disconnected: cancelling it", input_id)
                spawn(_quietly(cancel()))


def job_view(job: JobRow, row: InputRow, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job as the API shows it (``GET /v1/jobs/{id}``, webhook bodies, ``Prefer: wait``), with its
    latest progress report."""
    output = None
    if row.state == InputState.SUCCEEDED and row.result is not None and row.codec == CODEC:
        output = json.loads(row.result)
    error = None
    if row.state.terminal and row.state != InputState.SUCCEEDED:
        message, _, tb = (row.error_message or "").partition(TRACEBACK_MARK)
        error = {"reason": row.terminal_reason, "message": message or None, "traceback": tb or None,
                 "exit_code": row.exit_code, "signal": row.signal}
    end = row.finished_at if row.state.terminal else None
    return {
        "id": job.id, "app": job.app, "function": job.function, "status": row.state.value,
        "output": output, "error": error, "attempts": row.attempt,
        "created_at": job.created_at, "started_at": row.started_at, "finished_at": end,
        "queued_seconds": None if row.started_at is None else max(0.0, row.started_at - job.created_at),
        "run_seconds": None if row.started_at is None or end is None else max(0.0, end - row.started_at),
        "policy": {"execution_timeout": job.execution_timeout, "ttl": job.ttl, "priority": job.priority},
        "retry_of": job.retry_of, "stream_url": f"/v1/jobs/{job.id}/stream", "progress": progress,
    }


def attempt_view(a: Any) -> dict[str, Any]:
    return {"n": a.n, "at": a.at, "status_code": a.status_code, "error": a.error, "duration": a.duration}


def sse(event: str, data: str, *, event_id: int | None = None) -> str:
    """One server-sent event (``data`` must be one line: JSON or base64)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


async def _quietly(aw: Awaitable[object]) -> None:
    try:
        await aw
    except Exception:
        log.exception("cancelling after a stream disconnect failed")
