"""The durable store, one suite run against SQLite and PostgreSQL alike.

Each test is an ``async def`` taking an opened ``Store``; ``@store_test`` runs it with
``asyncio.run`` against every backend of the ``store`` fixture (PostgreSQL tests get a fresh
schema, dropped afterwards, and are marked ``postgres``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from surge.core.models import ContainerState, InputState
from surge.errors import InvalidError, NotFoundError
from surge.store import (
    CallRow,
    ContainerRow,
    FunctionRow,
    InputEvent,
    InputRow,
    LogLine,
    NewInput,
    SqliteStore,
    Store,
    Transition,
    UsageEvent,
    open_store,
)

PG_URL = os.environ.get("SURGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
Q, R, OK, FAIL = InputState.QUEUED, InputState.RUNNING, InputState.SUCCEEDED, InputState.FAILED


class Backend:
    """Makes (unopened) stores over one database; ``opened()`` yields an open one."""

    def __init__(self, make: Callable[[], Store]) -> None:
        self.make = make

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[Store]:
        store = self.make()
        await store.open()
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend(lambda: SqliteStore(tmp_path / "surge.db"))
        return
    psycopg = pytest.importorskip("psycopg")
    from surge.store.postgres import PostgresStore

    schema = f"test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable: {e}")
    try:
        yield Backend(lambda: PostgresStore(f"{PG_URL}?options=-csearch_path%3D{schema}"))
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def store_test(fn: Callable[[Store], Awaitable[None]]) -> Callable[[Backend], None]:
    """Run ``async def test_x(store: Store)`` against each backend, with a freshly opened store."""

    @functools.wraps(fn)
    def test(store: Backend) -> None:
        async def main() -> None:
            async with store.opened() as opened:
                await fn(opened)

        asyncio.run(main())

    return test


# -- helpers ---------------------------------------------------------------------------------------

async def make_function(s: Store, name: str = "demo", tag: str = "f") -> FunctionRow:
    _, _, fns = await s.create_version("default", name, deployed=True, source_hash="h", module="m",
                                       spec={}, functions=[(tag, {"gpu": None})], now=1.0)
    return fns[0]


def new_call(fn: FunctionRow, call_id: str | None = None, *, key: str | None = None, at: float = 10.0,
             workspace: str = "default", expires_at: float | None = None) -> CallRow:
    return CallRow(id=call_id or f"ca-{secrets.token_hex(6)}", workspace=workspace, function_id=fn.id,
                   kind="map", created_at=at, idempotency_key=key, pool_key=f"{fn.id}:p",
                   expires_at=expires_at)


def args(n: int, start: int = 0) -> list[NewInput]:
    return [NewInput(idx=i, args=f"args{i}".encode(), timeout=30, max_retries=2) for i in range(start, start + n)]


async def queued_inputs(s: Store, n: int, **kw: object) -> tuple[CallRow, list[InputRow]]:
    call, inputs, created = await s.create_call(new_call(await make_function(s), **kw), args(n), 20.0)  # type: ignore[arg-type]
    assert created
    return call, inputs


def start(i: InputRow, attempt: int = 1, lease: float = 100.0) -> Transition:
    return Transition(i.id, (Q,), R, expect_attempt=attempt - 1,
                      set={"attempt": attempt, "started_at": 30.0, "container_id": "co-1",
                           "lease_expires_at": lease})


def finish(i: InputRow, attempt: int = 1, state: InputState = OK, **values: object) -> Transition:
    return Transition(i.id, (R,), state, expect_attempt=attempt, set={"result": b"ok", **values})


# -- apps, versions, functions ---------------------------------------------------------------------

@store_test
async def test_deployed_versions_increment(store: Store) -> None:
    app1, v1, fns1 = await store.create_version("default", "demo", deployed=True, source_hash="h1",
                                                module="hello", spec={"client": "0.1"},
                                                functions=[("embed", {"gpu": "A100"}), ("Model.predict", {})],
                                                now=5.0)
    app2, v2, fns2 = await store.create_version("default", "demo", deployed=True, source_hash="h2",
                                                module="hello", spec={}, functions=[("embed", {})], now=6.0)
    assert app1.id == app2.id and app2.state == "deployed"
    assert (v1.version, v2.version) == (1, 2) and app2.current_version == 2
    assert (await store.get_app(app1.id)) == replace(app2, created_at=5.0)
    assert [f.tag for f in fns1] == ["embed", "Model.predict"] and fns1[0].spec == {"gpu": "A100"}
    assert len({f.id for f in fns1 + fns2}) == 3 and all(f.id.startswith("fu-") for f in fns1)
    assert app1.id.startswith("ap-") and fns2[0].version == 2
    assert await store.list_functions(app1.id, 1) == fns1
    assert await store.list_functions(app1.id, 2) == fns2
    assert await store.get_function(fns1[1].id) == fns1[1]
    assert await store.get_function("fu-missing") is None
    assert await store.list_versions(app1.id) == [v1, v2]
    assert await store.get_version(app1.id, 1) == v1 and v1.spec == {"client": "0.1"}
    assert await store.get_version(app1.id, 3) is None
    # Another workspace has its own "demo".
    other, _, _ = await store.create_version("team", "demo", deployed=True, source_hash="h", module="m",
                                             spec={}, functions=[], now=7.0)
    assert other.id != app1.id and other.current_version == 1


@store_test
async def test_ephemeral_apps_are_distinct_rows(store: Store) -> None:
    a, va, _ = await store.create_version("default", "demo", deployed=False, source_hash="h", module="m",
                                          spec={}, functions=[("f", {})], now=1.0)
    b, vb, _ = await store.create_version("default", "demo", deployed=False, source_hash="h", module="m",
                                          spec={}, functions=[("f", {})], now=2.0)
    assert a.id != b.id and a.state == b.state == "ephemeral"
    assert va.version == vb.version == 1 and a.current_version == 1
    assert await store.find_app("default", "demo") is None
    deployed, v, _ = await store.create_version("default", "demo", deployed=True, source_hash="h", module="m",
                                                spec={}, functions=[], now=3.0)
    assert deployed.id not in (a.id, b.id) and v.version == 1
    # A finished ephemeral app may be marked stopped; it still is not the named app.
    await store.set_app_state(a.id, "stopped")
    assert (await store.find_app("default", "demo")) == deployed


@store_test
async def test_deploy_revives_stopped_app(store: Store) -> None:
    app, _, _ = await store.create_version("default", "demo", deployed=True, source_hash="h", module="m",
                                           spec={}, functions=[], now=1.0)
    await store.set_app_state(app.id, "stopped")
    stopped = await store.find_app("default", "demo")
    assert stopped is not None and stopped.state == "stopped" and stopped.current_version == 1
    revived, v, _ = await store.create_version("default", "demo", deployed=True, source_hash="h", module="m",
                                               spec={}, functions=[], now=2.0)
    assert revived.id == app.id and revived.state == "deployed" and v.version == 2


@store_test
async def test_concurrent_deploys_number_versions_in_turn(store: Store) -> None:
    results = await asyncio.gather(*(
        store.create_version("default", "race", deployed=True, source_hash=f"h{n}", module="m", spec={},
                             functions=[("f", {})], now=float(n)) for n in range(10)))
    assert len({app.id for app, _, _ in results}) == 1
    assert sorted(v.version for _, v, _ in results) == list(range(1, 11))
    app = await store.find_app("default", "race")
    assert app is not None and app.current_version == 10
    assert [v.version for v in await store.list_versions(app.id)] == list(range(1, 11))


@store_test
async def test_find_list_and_set_app_state(store: Store) -> None:
    a, _, _ = await store.create_version("default", "a", deployed=True, source_hash="h", module="m",
                                         spec={}, functions=[], now=1.0)
    await store.create_version("default", "a", deployed=True, source_hash="h", module="m",
                               spec={}, functions=[], now=2.0)
    b, _, _ = await store.create_version("default", "b", deployed=True, source_hash="h", module="m",
                                         spec={}, functions=[], now=3.0)
    e, _, _ = await store.create_version("default", "e", deployed=False, source_hash="h", module="m",
                                         spec={}, functions=[], now=4.0)
    await store.create_version("elsewhere", "x", deployed=True, source_hash="h", module="m",
                               spec={}, functions=[], now=5.0)
    assert [x.id for x in await store.list_apps("default")] == [b.id, a.id]
    assert [x.id for x in await store.list_apps("default", include_ephemeral=True)] == [e.id, b.id, a.id]
    assert await store.find_app("default", "e") is None
    assert await store.find_app("default", "nope") is None
    found = await store.find_app("default", "a")
    assert found is not None and found.id == a.id and found.current_version == 2

    await store.set_app_state(a.id, "deployed", current_version=1)     # rollback
    after = await store.get_app(a.id)
    assert after is not None and (after.state, after.current_version) == ("deployed", 1)
    await store.set_app_state(a.id, "stopped")                          # version kept
    after = await store.get_app(a.id)
    assert after is not None and (after.state, after.current_version) == ("stopped", 1)
    # The next deploy numbers after the highest version, not after the current one.
    _, v, _ = await store.create_version("default", "a", deployed=True, source_hash="h", module="m",
                                         spec={}, functions=[], now=6.0)
    assert v.version == 3
    assert await store.get_app("ap-missing") is None


# -- calls and inputs --------------------------------------------------------------------------------

@store_test
async def test_create_call_inserts_call_and_queued_inputs(store: Store) -> None:
    fn = await make_function(store)
    call = replace(new_call(fn, "ca-1"), params=b"\x00\x01params")
    stored, inputs, created = await store.create_call(call, args(3), 20.0)
    assert created and stored.id == "ca-1" and stored.input_count == 3
    assert await store.get_call("ca-1") == stored
    assert await store.get_call("ca-missing") is None
    assert [i.idx for i in inputs] == [0, 1, 2] and len({i.id for i in inputs}) == 3
    first = inputs[0]
    assert first.id.startswith("in-") and first.call_id == "ca-1" and first.function_id == fn.id
    assert (first.state, first.attempt, first.next_run_at, first.created_at) == (Q, 0, 20.0, 20.0)
    assert (first.pool_key, first.args, first.timeout, first.max_retries) == (f"{fn.id}:p", b"args0", 30, 2)
    assert first.done_seq is None and first.result is None
    assert await store.list_inputs("ca-1") == inputs
    assert await store.get_input(first.id) == first
    # No inputs at all is a valid call (inputs come later with add_inputs).
    empty, none, created = await store.create_call(new_call(fn, "ca-2"), [], 21.0)
    assert created and none == [] and empty.input_count == 0


@store_test
async def test_create_call_with_known_idempotency_key_returns_existing(store: Store) -> None:
    fn = await make_function(store)
    first, inputs, created = await store.create_call(new_call(fn, "ca-1", key="k1"), args(2), 20.0)
    assert created
    again, again_inputs, created = await store.create_call(new_call(fn, "ca-2", key="k1"), args(5), 21.0)
    assert not created and again == first and again_inputs == inputs
    assert await store.get_call("ca-2") is None
    assert await store.list_inputs("ca-1") == inputs
    assert [c.id for c in await store.list_calls("default")] == ["ca-1"]
    # Keys are per workspace; calls without a key never collide.
    _, _, created = await store.create_call(new_call(fn, "ca-3", key="k1", workspace="other"), args(1), 22.0)
    assert created
    for call_id in ("ca-4", "ca-5"):
        _, _, created = await store.create_call(new_call(fn, call_id), args(1), 23.0)
        assert created


@store_test
async def test_concurrent_create_call_same_key_creates_one(store: Store) -> None:
    fn = await make_function(store)
    results = await asyncio.gather(*(store.create_call(new_call(fn, f"ca-{n}", key="same"), args(3), 20.0)
                                     for n in range(20)))
    assert sum(created for _, _, created in results) == 1
    assert len({call.id for call, _, _ in results}) == 1
    assert len({tuple(i.id for i in inputs) for _, inputs, _ in results}) == 1
    assert len(await store.list_calls("default", limit=100)) == 1


@store_test
async def test_add_inputs_appends_and_ignores_known_idx(store: Store) -> None:
    call, _ = await queued_inputs(store, 2)
    more = await store.add_inputs(call.id, args(2, start=2), 25.0)
    assert [i.idx for i in more] == [2, 3] and all(i.created_at == 25.0 and i.state is Q for i in more)
    # A retried batch: idx 3 exists, idx 4 is new; the existing row comes back in its place.
    retried = await store.add_inputs(call.id, [NewInput(3, b"other"), NewInput(4, b"new")], 26.0)
    assert retried[0] == more[1] and retried[0].args == b"args3"
    assert retried[1].idx == 4 and retried[1].args == b"new"
    assert [i.idx for i in await store.list_inputs(call.id)] == [0, 1, 2, 3, 4]
    stored = await store.get_call(call.id)
    assert stored is not None and stored.input_count == 5
    assert await store.add_inputs(call.id, [], 27.0) == []
    # Large batches (several INSERT statements on SQLite, one unnest on PostgreSQL) with overlap.
    big = await store.add_inputs(call.id, args(300, start=5), 28.0)
    again = await store.add_inputs(call.id, args(200, start=205), 29.0)
    assert again[:100] == big[200:] and [i.idx for i in again[100:]] == list(range(305, 405))
    assert [i.idx for i in await store.list_inputs(call.id)] == list(range(405))
    stored = await store.get_call(call.id)
    assert stored is not None and stored.input_count == 405
    with pytest.raises(NotFoundError):
        await store.add_inputs("ca-missing", args(1), 27.0)


@store_test
async def test_list_calls_and_cancel(store: Store) -> None:
    f1 = await make_function(store, "one")
    f2 = await make_function(store, "two")
    for n, fn in enumerate([f1, f2, f1, f2]):
        await store.create_call(new_call(fn, f"ca-{n}", at=10.0 + n), args(1), 20.0)
    await store.create_call(new_call(f1, "ca-x", workspace="other"), args(1), 20.0)
    assert [c.id for c in await store.list_calls("default")] == ["ca-3", "ca-2", "ca-1", "ca-0"]
    assert [c.id for c in await store.list_calls("default", limit=2)] == ["ca-3", "ca-2"]
    assert [c.id for c in await store.list_calls("default", function_ids=[f1.id])] == ["ca-2", "ca-0"]
    assert await store.list_calls("default", function_ids=[]) == []
    await store.set_call_cancelled("ca-2")
    cancelled = await store.get_call("ca-2")
    assert cancelled is not None and cancelled.cancelled
    assert not (await store.list_calls("default"))[0].cancelled


@store_test
async def test_input_queries(store: Store) -> None:
    call, inputs = await queued_inputs(store, 5)
    await store.transition([start(inputs[1]), start(inputs[3])], 30.0)
    await store.transition([finish(inputs[3])], 31.0)
    assert await store.call_counts(call.id) == {"QUEUED": 3, "RUNNING": 1, "SUCCEEDED": 1}
    assert await store.call_counts("ca-missing") == {}
    got = await store.get_inputs([inputs[4].id, "in-missing", inputs[0].id])
    assert [i.id for i in got] == [inputs[4].id, inputs[0].id]
    assert await store.get_inputs([]) == []
    assert await store.get_input("in-missing") is None
    assert [i.idx for i in await store.list_inputs(call.id, states=[Q])] == [0, 2, 4]
    assert [i.idx for i in await store.list_inputs(call.id, states=[Q, R], limit=2)] == [0, 1]
    assert [i.idx for i in await store.list_inputs(call.id, limit=1)] == [0]
    # Across calls, oldest first.
    later, _, _ = await store.create_call(new_call(await make_function(store, "b")), args(1), 15.0)
    queued = await store.inputs_in_state([Q])
    assert [i.call_id for i in queued] == [later.id, call.id, call.id, call.id]
    assert len(await store.inputs_in_state([Q, R], limit=2)) == 2
    assert [i.id for i in await store.inputs_in_state([OK])] == [inputs[3].id]


# -- transitions ---------------------------------------------------------------------------------------

@store_test
async def test_transition_is_conditional(store: Store) -> None:
    _, inputs = await queued_inputs(store, 1)
    i = inputs[0]
    assert await store.transition([start(i, attempt=2)], 30.0) == [False]           # expects attempt 1
    assert await store.transition([Transition(i.id, (R,), OK)], 30.0) == [False]     # it is QUEUED
    assert await store.transition([start(i)], 30.0) == [True]
    running = await store.get_input(i.id)
    assert running is not None and (running.state, running.attempt, running.container_id) == (R, 1, "co-1")
    assert (running.started_at, running.lease_expires_at, running.done_seq) == (30.0, 100.0, None)
    assert await store.transition([start(i)], 31.0) == [False]                       # already started
    assert await store.transition([finish(i, attempt=0)], 32.0) == [False]           # stale attempt
    assert await store.transition([Transition(i.id, (R,), R, set={"attempt": 2})], 32.0) == [True]
    assert await store.transition([finish(i, attempt=1)], 33.0) == [False]           # attempt 1 is stale now
    assert await store.transition([finish(i, attempt=2, state=FAIL, terminal_reason="USER_EXCEPTION",
                                          error_message="boom", exit_code=1, user_failures=1)], 34.0) == [True]
    done = await store.get_input(i.id)
    assert done is not None and (done.state, done.result, done.finished_at) == (FAIL, b"ok", 34.0)
    assert (done.terminal_reason, done.error_message, done.exit_code, done.user_failures) == (
        "USER_EXCEPTION", "boom", 1, 1)
    assert done.done_seq is not None
    assert await store.transition([finish(i, attempt=2)], 35.0) == [False]           # terminal stays
    assert await store.transition([], 35.0) == []


@store_test
async def test_terminal_transition_keeps_given_finished_at(store: Store) -> None:
    _, (i,) = await queued_inputs(store, 1)
    cancel = Transition(i.id, (Q, R), InputState.CANCELLED,
                        set={"finished_at": 12.5, "terminal_reason": "CANCELLED", "signal": 15})
    assert await store.transition([cancel], 40.0) == [True]
    row = await store.get_input(i.id)
    assert row is not None and (row.state, row.finished_at, row.signal) == (InputState.CANCELLED, 12.5, 15)
    assert row.done_seq is not None and row.attempt == 0


@store_test
async def test_transition_refuses_unknown_columns(store: Store) -> None:
    _, (i,) = await queued_inputs(store, 1)
    for bad in ({"state": "RUNNING"}, {"done_seq": 5}, {"attempt": 1, "args": b"x"}):
        with pytest.raises(ValueError, match="may not set"):
            await store.transition([start(i), Transition(i.id, (Q,), R, set=bad)], 30.0)
    row = await store.get_input(i.id)
    assert row is not None and row.state is Q and row.attempt == 0   # nothing of the batch applied


@store_test
async def test_transition_batch_reports_each(store: Store) -> None:
    _, inputs = await queued_inputs(store, 4)
    a, b, c, d = inputs
    batch = [
        start(a),
        start(b, attempt=3),                                  # refused: attempt
        finish(c),                                            # refused: state
        start(d), finish(d),                                  # both apply, in order
        Transition(a.id, (Q,), InputState.CANCELLED),         # refused: a started just before
    ]
    assert await store.transition(batch, 30.0) == [True, False, False, True, True, False]
    states = {i.id: i.state for i in await store.get_inputs([a.id, b.id, c.id, d.id])}
    assert states == {a.id: R, b.id: Q, c.id: Q, d.id: OK}


@store_test
async def test_done_seq_strictly_increases(store: Store) -> None:
    _, inputs = await queued_inputs(store, 6)
    _, others = await queued_inputs(store, 2)
    everything = inputs + others
    await store.transition([start(i) for i in everything], 30.0)
    await store.transition([finish(inputs[4]), finish(others[0]), finish(inputs[1])], 31.0)
    await store.transition([finish(inputs[0])], 32.0)
    await store.transition([finish(others[1]), finish(inputs[5])], 33.0)
    rows = await store.get_inputs([inputs[4].id, others[0].id, inputs[1].id, inputs[0].id, others[1].id,
                                   inputs[5].id])
    seqs = [r.done_seq for r in rows]
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(seqs) and len(set(seqs)) == 6


@store_test
async def test_concurrent_transitions_exactly_one_applies(store: Store) -> None:
    _, (i,) = await queued_inputs(store, 1)
    assert await store.transition([start(i)], 30.0) == [True]
    results = await asyncio.gather(*(store.transition([finish(i, result=f"r{n}".encode())], 31.0)
                                     for n in range(200)))
    assert sum(r == [True] for r in results) == 1 and all(r in ([True], [False]) for r in results)
    winner = next(n for n, r in enumerate(results) if r == [True])
    row = await store.get_input(i.id)
    assert row is not None and row.state is OK and row.result == f"r{winner}".encode()


# -- leases, outputs, purge ----------------------------------------------------------------------------

@store_test
async def test_renew_and_expired_leases(store: Store) -> None:
    _, (a, b, c) = await queued_inputs(store, 3)
    await store.transition([start(a, lease=50.0), start(b, lease=60.0), start(c, lease=70.0)], 30.0)
    assert [i.id for i in await store.expired_leases(65.0)] == [a.id, b.id]
    assert [i.id for i in await store.expired_leases(65.0, limit=1)] == [a.id]
    # Wrong attempt and unknown inputs are not renewed.
    assert await store.renew_leases([(a.id, 1), (b.id, 2), ("in-missing", 1)], 200.0) == 1
    assert [i.id for i in await store.expired_leases(65.0)] == [b.id]
    await store.transition([finish(b)], 66.0)
    assert await store.expired_leases(1000.0) == [await store.get_input(c.id), await store.get_input(a.id)]
    assert await store.renew_leases([(b.id, 1)], 300.0) == 0       # not RUNNING any more
    assert await store.renew_leases([], 300.0) == 0


@store_test
async def test_outputs_since_orders_by_completion(store: Store) -> None:
    call, inputs = await queued_inputs(store, 5)
    await store.transition([start(i) for i in inputs], 30.0)
    assert await store.outputs_since(call.id, 0) == []
    order = [3, 0, 4, 1]
    for n in order:
        await store.transition([finish(inputs[n])], 31.0)
    outputs = await store.outputs_since(call.id, 0)
    assert [o.idx for o in outputs] == order
    assert all(o.state is OK and o.result == b"ok" for o in outputs)
    page = await store.outputs_since(call.id, 0, limit=2)
    assert [o.idx for o in page] == [3, 0]
    rest = await store.outputs_since(call.id, page[-1].done_seq or 0)
    assert [o.idx for o in rest] == [4, 1]
    assert await store.outputs_since(call.id, outputs[-1].done_seq or 0) == []


@store_test
async def test_purge_expired_deletes_only_finished_expired_calls(store: Store) -> None:
    fn = await make_function(store)
    _, done_inputs, _ = await store.create_call(new_call(fn, "ca-done", expires_at=100.0), args(2), 20.0)
    _, busy_inputs, _ = await store.create_call(new_call(fn, "ca-busy", expires_at=100.0), args(2), 20.0)
    await store.create_call(new_call(fn, "ca-later", expires_at=500.0), args(1), 20.0)
    await store.create_call(new_call(fn, "ca-forever"), args(1), 20.0)
    await store.create_call(new_call(fn, "ca-empty", expires_at=100.0), [], 20.0)
    await store.transition([start(i) for i in done_inputs + busy_inputs], 30.0)
    await store.transition([finish(i) for i in [*done_inputs, busy_inputs[0]]], 31.0)
    later = await store.list_inputs("ca-later")
    await store.transition([Transition(later[0].id, (Q,), InputState.CANCELLED)], 31.0)
    await store.append_events([InputEvent(i.id, 0, "item", b"x", 31.0) for i in done_inputs + busy_inputs])

    assert await store.purge_expired(200.0) == 2          # ca-done and ca-empty
    assert await store.get_call("ca-done") is None and await store.get_call("ca-empty") is None
    assert await store.get_inputs([i.id for i in done_inputs]) == []
    assert await store.events_since(done_inputs[0].id, -1) == []
    assert await store.get_call("ca-busy") is not None      # one input still running
    assert len(await store.events_since(busy_inputs[1].id, -1)) == 1
    assert await store.get_call("ca-later") is not None and await store.get_call("ca-forever") is not None
    assert await store.purge_expired(200.0) == 0
    assert await store.purge_expired(600.0) == 1          # ca-later: its input is terminal
    assert {c.id for c in await store.list_calls("default")} == {"ca-busy", "ca-forever"}


# -- events, logs, containers, usage, kv ---------------------------------------------------------------

@store_test
async def test_events_dedupe_and_page(store: Store) -> None:
    _, (i, j) = await queued_inputs(store, 2)
    await store.append_events([InputEvent(i.id, n, "item", f"v{n}".encode(), 30.0 + n) for n in range(3)])
    await store.append_events([InputEvent(i.id, 1, "item", b"dup", 99.0), InputEvent(i.id, 3, "done", b"", 40.0),
                               InputEvent(j.id, 0, "progress", b"50%", 41.0)])
    events = await store.events_since(i.id, -1)
    assert [(e.seq, e.kind, e.data) for e in events] == [(0, "item", b"v0"), (1, "item", b"v1"),
                                                         (2, "item", b"v2"), (3, "done", b"")]
    assert events[1] == InputEvent(i.id, 1, "item", b"v1", 31.0)
    assert [e.seq for e in await store.events_since(i.id, 1)] == [2, 3]
    assert [e.seq for e in await store.events_since(i.id, -1, limit=2)] == [0, 1]
    assert [e.data for e in await store.events_since(j.id, -1)] == [b"50%"]
    await store.append_events([])


@store_test
async def test_logs_ids_increase_and_filter(store: Store) -> None:
    def line(text: str, app: str = "ap-1", tag: str = "f", input_id: str | None = None) -> LogLine:
        return LogLine(app, tag, "co-1", "stdout", text, 1.0, input_id)

    await store.append_logs([line("a"), line("b", tag="g"), line("c", app="ap-2")])
    await store.append_logs([line("d", input_id="in-1"), line("e", app="ap-2", input_id="in-1")])
    await store.append_logs([])
    every = await store.logs_since()
    assert [x.text for x in every] == ["a", "b", "c", "d", "e"]
    ids = [x.id for x in every]
    assert ids == sorted(ids) and len(set(ids)) == 5 and ids[0] > 0
    assert every[3] == LogLine("ap-1", "f", "co-1", "stdout", "d", 1.0, "in-1", ids[3])
    assert [x.text for x in await store.logs_since(app_id="ap-1")] == ["a", "b", "d"]
    assert [x.text for x in await store.logs_since(app_id="ap-1", function_tag="f")] == ["a", "d"]
    assert [x.text for x in await store.logs_since(input_id="in-1")] == ["d", "e"]
    assert [x.text for x in await store.logs_since(since_id=ids[1])] == ["c", "d", "e"]
    assert [x.text for x in await store.logs_since(since_id=ids[1], limit=1)] == ["c"]
    await store.append_logs([line("f")])
    assert [x.text for x in await store.logs_since(since_id=ids[-1])] == ["f"]


@store_test
async def test_containers_upsert_and_list(store: Store) -> None:
    def container(cid: str, at: float, state: ContainerState = ContainerState.STARTING,
                  workspace: str = "default") -> ContainerRow:
        return ContainerRow(cid, workspace, "ap-1", "fu-1", "fu-1:p", "node-1", state, at)

    first = replace(container("co-1", 1.0), pid=123, gpu_type="A100-80GB", gpu_indices=[0, 3], cpu=2.5,
                    memory=4096, phases={"import": 0.25})
    await store.upsert_container(first)
    assert await store.get_container("co-1") == first
    assert await store.get_container("co-missing") is None
    ready = replace(first, state=ContainerState.IDLE, ready_at=2.0, inputs_done=7,
                    phases={"import": 0.25, "enter": 1.5})
    await store.upsert_container(ready)
    assert await store.get_container("co-1") == ready
    await store.upsert_container(container("co-2", 2.0, ContainerState.BUSY))
    await store.upsert_container(replace(container("co-3", 3.0, ContainerState.STOPPED), stopped_at=4.0,
                                         stop_reason="idle", exit_code=0, signal=None))
    await store.upsert_container(container("co-4", 4.0, workspace="other"))
    assert [c.id for c in await store.list_containers()] == ["co-4", "co-2", "co-1"]
    assert [c.id for c in await store.list_containers("default")] == ["co-2", "co-1"]
    assert [c.id for c in await store.list_containers("default", active_only=False)] == ["co-3", "co-2", "co-1"]
    assert [c.id for c in await store.list_containers(active_only=False, limit=2)] == ["co-4", "co-3"]
    stopped = await store.get_container("co-3")
    assert stopped is not None and (stopped.stop_reason, stopped.exit_code, stopped.gpu_indices) == ("idle", 0, [])


@store_test
async def test_usage_events_filters(store: Store) -> None:
    await store.record_usage([UsageEvent("co-2", "started", 1.0), UsageEvent("co-1", "started", 2.0),
                              UsageEvent("co-1", "ready", 3.0), UsageEvent("co-2", "stopped", 5.0)])
    await store.record_usage([UsageEvent("co-1", "stopped", 4.0)])
    await store.record_usage([])
    assert [(u.container_id, u.at) for u in await store.usage_events()] == [
        ("co-1", 2.0), ("co-1", 3.0), ("co-1", 4.0), ("co-2", 1.0), ("co-2", 5.0)]
    assert await store.usage_events(container_ids=["co-2"]) == [UsageEvent("co-2", "started", 1.0),
                                                                UsageEvent("co-2", "stopped", 5.0)]
    assert [u.at for u in await store.usage_events(since=3.0, until=5.0)] == [3.0, 4.0]
    assert [u.kind for u in await store.usage_events(container_ids=["co-1"], until=3.0)] == ["started"]
    assert await store.usage_events(container_ids=[]) == []


@store_test
async def test_kv_and_ping(store: Store) -> None:
    await store.ping()
    assert await store.kv_get("k") is None
    await store.kv_set("k", "v1")
    await store.kv_set("k", "v2")
    await store.kv_set("other", "")
    assert (await store.kv_get("k"), await store.kv_get("other")) == ("v2", "")


# -- lifecycle and migrations --------------------------------------------------------------------------

def test_reopen_keeps_data_and_skips_applied_migrations(store: Backend) -> None:
    async def main() -> None:
        async with store.opened() as s:
            fn = await make_function(s)
            await s.create_call(new_call(fn, "ca-1"), args(2), 20.0)
            await s.kv_set("k", "v")
        async with store.opened() as s:     # the schema exists: re-running 0001 would fail
            assert await s.kv_get("k") == "v"
            assert len(await s.list_inputs("ca-1")) == 2

    asyncio.run(main())


def test_sqlite_migrations_are_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "surge.db"
    migrations = sorted((Path(__file__).parents[2] / "src/surge/store/migrations").glob("[0-9]*.sql"))

    def applied() -> list[tuple[int, float]]:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()

    async def reopen() -> None:
        s = SqliteStore(path, synchronous="FULL")
        await s.open()
        await s.close()

    asyncio.run(reopen())
    first = applied()
    assert [v for v, _ in first] == [int(m.name[:4]) for m in migrations] and first[0][0] == 1
    asyncio.run(reopen())
    assert applied() == first
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_memory_and_lifecycle_errors() -> None:
    async def main() -> None:
        s = SqliteStore(":memory:")
        with pytest.raises(RuntimeError, match="not open"):
            await s.ping()
        await s.open()
        with pytest.raises(RuntimeError, match="already open"):
            await s.open()
        await s.kv_set("k", "v")
        assert await s.kv_get("k") == "v"
        await s.close()
        await s.close()     # idempotent

    asyncio.run(main())
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(":memory:", synchronous="SOMETIMES")


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "x.db"
    assert isinstance(open_store(f"sqlite://{db}"), SqliteStore) and open_store(f"sqlite://{db}").path == str(db)
    assert open_store(str(db)).path == str(db)                      # type: ignore[attr-defined]
    assert open_store("sqlite://:memory:").path == ":memory:"      # type: ignore[attr-defined]
    with pytest.raises(InvalidError, match="unknown scheme"):
        open_store("mysql://localhost/db")
    with pytest.raises(InvalidError, match="no path"):
        open_store("sqlite://")
    if "psycopg" in sys.modules or _has_psycopg():
        assert type(open_store("postgresql://postgres@localhost/db")).__name__ == "PostgresStore"
    monkeypatch.setitem(sys.modules, "psycopg", None)             # as if the extra were missing
    monkeypatch.delitem(sys.modules, "surge.store.postgres", raising=False)
    with pytest.raises(InvalidError, match=r"pip install 'surge\[postgres\]'"):
        open_store("postgresql://postgres@localhost/db")


def _has_psycopg() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True
