"""HTTP jobs and the webhook outbox in the store, on SQLite and PostgreSQL alike (the ``store``
fixture and ``@store_test`` come from ``test_store``)."""

from __future__ import annotations

from surge.core.models import InputState
from surge.store import CallRow, NewInput, Store, Transition
from surge.store.base import JobRow, WebhookAttempt, WebhookRow
from tests.integration import test_store

store = test_store.store            # the SQLite + PostgreSQL fixture, used by name
store_test = test_store.store_test
Q, R = InputState.QUEUED, InputState.RUNNING


async def create(s: Store, *, key: str | None = None, webhook: str | None = "https://hooks.example/in",
                 priority: int = 0, start_by: float | None = None, tag: str = "f",
                 at: float = 10.0) -> tuple[CallRow, JobRow]:
    fn = await test_store.make_function(s, tag=tag)
    call = CallRow(id=f"fc-{tag}-{key or at}", workspace="default", function_id=fn.id, kind="http", created_at=at,
                   idempotency_key=key, pool_key=fn.id, expires_at=at + 100)
    job = JobRow(id="", input_id="", workspace="default", app="demo", function=tag, execution_timeout=30.0,
                 ttl=None if start_by is None else start_by - at, priority=priority, created_at=at,
                 expires_at=at + 100)
    hook = None if webhook is None else WebhookRow(job_id="", input_id="", url=webhook, signer="server",
                                                   state="WAITING", attempts=0, created_at=at)
    call, row, found, created = await s.create_job(call, NewInput(0, b'{"text":"hi"}', 30.0, 1), job, hook,
                                                   priority=priority, codec="json", start_by=start_by, now=at)
    assert created and found is not None
    assert (row.priority, row.codec, row.start_by) == (priority, "json", start_by)
    return call, found


@store_test
async def test_job_call_input_and_webhook_commit_together(store: Store) -> None:
    call, job = await create(store, priority=7, start_by=70.0)
    assert job.id == call.id and job.input_id
    assert await store.get_job(call.id) == job
    row = await store.get_input(job.input_id)
    assert row is not None and row.args == b'{"text":"hi"}' and row.timeout == 30.0 and row.max_retries == 1
    assert (row.priority, row.codec, row.start_by, row.state) == (7, "json", 70.0, Q)
    hook = await store.get_webhook(call.id)
    assert hook == WebhookRow(job_id=call.id, input_id=job.input_id, url="https://hooks.example/in",
                              signer="server", state="WAITING", attempts=0, created_at=10.0)
    assert await store.webhook_attempts(call.id) == []
    # SDK inputs keep the defaults
    _, inputs = await test_store.queued_inputs(store, 1)
    assert (inputs[0].priority, inputs[0].codec, inputs[0].start_by) == (0, None, None)
    assert await store.get_job("fc-none") is None and await store.get_webhook("fc-none") is None


@store_test
async def test_idempotent_job_returns_the_first(store: Store) -> None:
    call, job = await create(store, key="k1")
    fn = await store.get_function(call.function_id)
    assert fn is not None
    again = CallRow(id="fc-other", workspace="default", function_id=fn.id, kind="http", created_at=11.0,
                    idempotency_key="k1", pool_key=fn.id)
    got_call, row, found, created = await store.create_job(again, NewInput(0, b"{}", 30.0), job, None, priority=0,
                                                           codec="json", start_by=None, now=11.0)
    assert not created and got_call.id == call.id and found == job and row.id == job.input_id
    assert await store.get_job("fc-other") is None


@store_test
async def test_an_sdk_call_holding_the_key_has_no_job(store: Store) -> None:
    fn = await test_store.make_function(store)
    await store.create_call(test_store.new_call(fn, "fc-sdk", key="shared"), test_store.args(1), 10.0)
    call = CallRow(id="fc-job", workspace="default", function_id=fn.id, kind="http", created_at=11.0,
                   idempotency_key="shared", pool_key=fn.id)
    job = JobRow(id="", input_id="", workspace="default", app="demo", function="f", execution_timeout=1.0,
                 ttl=None, priority=0, created_at=11.0)
    got, _, found, created = await store.create_job(call, NewInput(0, b"{}"), job, None, priority=0, codec="json",
                                                    start_by=None, now=11.0)
    assert not created and got.id == "fc-sdk" and found is None


@store_test
async def test_queued_past_start_by(store: Store) -> None:
    _, soon = await create(store, start_by=20.0, tag="a")
    _, later = await create(store, start_by=50.0, tag="b")
    _, never = await create(store, start_by=None, tag="c")
    _, started = await create(store, start_by=15.0, tag="d")
    row = await store.get_input(started.input_id)
    assert row is not None
    await store.transition([test_store.start(row)], 16.0)
    assert [r.id for r in await store.queued_past_start_by(19.9)] == []
    assert [r.id for r in await store.queued_past_start_by(20.0)] == [soon.input_id]
    assert [r.id for r in await store.queued_past_start_by(99.0)] == [soon.input_id, later.input_id]
    assert [r.id for r in await store.queued_past_start_by(99.0, limit=1)] == [soon.input_id]
    # once EXPIRED it is no longer queued
    await store.transition([Transition(soon.input_id, (Q,), InputState.EXPIRED, 0,
                                       {"terminal_reason": "EXPIRED"})], 21.0)
    assert [r.id for r in await store.queued_past_start_by(99.0)] == [later.input_id]
    assert never.input_id not in {r.id for r in await store.queued_past_start_by(1e12)}


@store_test
async def test_webhooks_become_due_when_their_job_ends(store: Store) -> None:
    _, done = await create(store, tag="a")
    _, busy = await create(store, tag="b")
    _, quiet = await create(store, tag="c", webhook=None)
    assert await store.webhooks_due(1000.0) == []
    for job in (done, busy, quiet):
        row = await store.get_input(job.input_id)
        assert row is not None
        await store.transition([test_store.start(row)], 20.0)
    await store.transition([test_store.finish(row) for row in [await store.get_input(done.input_id),
                                                                await store.get_input(quiet.input_id)]
                            if row is not None], 30.0)
    assert [w.job_id for w in await store.webhooks_due(1000.0)] == [done.id]


@store_test
async def test_attempts_are_recorded_and_schedule_the_next(store: Store) -> None:
    call, job = await create(store)
    row = await store.get_input(job.input_id)
    assert row is not None
    await store.transition([test_store.start(row)], 20.0)
    await store.transition([test_store.finish(row)], 30.0)
    await store.record_webhook_attempt(WebhookAttempt(call.id, 1, 31.0, 0.5, 500, "HTTP 500"), state="PENDING",
                                       next_at=36.0, first_at=31.0)
    hook = await store.get_webhook(call.id)
    assert hook is not None and (hook.state, hook.attempts, hook.next_at, hook.first_at) == ("PENDING", 1, 36.0, 31.0)
    assert await store.webhooks_due(35.9) == []                      # not WAITING any more, and not due yet
    assert [w.job_id for w in await store.webhooks_due(36.0)] == [call.id]
    await store.record_webhook_attempt(WebhookAttempt(call.id, 2, 36.0, 0.1, None, "ConnectError"), state="PENDING",
                                       next_at=46.0, first_at=31.0)
    await store.record_webhook_attempt(WebhookAttempt(call.id, 3, 46.0, 0.2, 200), state="DELIVERED", next_at=None,
                                       first_at=31.0)
    assert await store.webhooks_due(1e12) == []
    assert await store.webhook_attempts(call.id) == [
        WebhookAttempt(call.id, 1, 31.0, 0.5, 500, "HTTP 500"), WebhookAttempt(call.id, 2, 36.0, 0.1, None, "ConnectError"),
        WebhookAttempt(call.id, 3, 46.0, 0.2, 200, None)]
    # recording the same attempt twice (a crash between send and record) keeps the first
    await store.record_webhook_attempt(WebhookAttempt(call.id, 3, 47.0, 0.2, 200), state="DELIVERED", next_at=None,
                                       first_at=31.0)
    assert len(await store.webhook_attempts(call.id)) == 3
    try:
        await store.record_webhook_attempt(WebhookAttempt(call.id, 4, 48.0, 0.1), state="LOST", next_at=None,
                                           first_at=31.0)
    except ValueError as exc:
        assert "webhook state 'LOST'" in str(exc)
    else:
        raise AssertionError("an unknown state was stored")


@store_test
async def test_purge_removes_jobs_whose_call_is_gone(store: Store) -> None:
    call, job = await create(store)
    row = await store.get_input(job.input_id)
    assert row is not None
    await store.record_webhook_attempt(WebhookAttempt(call.id, 1, 31.0, 0.5, 200), state="DELIVERED", next_at=None,
                                       first_at=31.0)
    assert await store.purge_jobs(1000.0) == 0          # its call still exists (not finished)
    await store.transition([test_store.start(row)], 20.0)
    await store.transition([test_store.finish(row)], 30.0)
    assert await store.purge_jobs(50.0) == 0             # not expired yet
    assert await store.purge_expired(1000.0) == 1        # the call goes (kept until expires_at = 110)
    assert await store.purge_jobs(1000.0) == 1
    assert await store.get_job(call.id) is None and await store.get_webhook(call.id) is None
    assert await store.webhook_attempts(call.id) == []
