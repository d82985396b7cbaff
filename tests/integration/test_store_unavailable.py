"""The database unavailable (SQLite's write lock held by another connection): writes give up within
their budget with ``StoreUnavailable``, the event loop keeps serving, the API answers 503 with
``Retry-After``, ``/health`` says ``degraded``, and the dispatcher loses nothing — assignments go
back to the queue, results wait to be written, and the reaper does not take back leases that only
the store failed to renew.

The outage is real: another SQLite connection holds ``BEGIN IMMEDIATE`` on the same file. (The
chaos suite, ``tests/chaos/test_4_store_outage.py``, runs it for 10 s against a server process and
against a stopped PostgreSQL.)
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from surge.core.models import CallKind, InputState
from surge.ids import new_id
from surge.sdk.client import Client
from surge.sdk.options import validate_options
from surge.sdk.serialization import b64, serialize_args
from surge.server.dispatcher import Dispatcher
from surge.server.pools import Work
from surge.store import CallRow, NewInput, SqliteStore, open_store
from surge.store.base import DEFAULT_WORKSPACE
from surge.store.errors import StoreUnavailable
from tests.integration.conftest import InProcess
from tests.integration.test_stale_attempt import StandInAgent, StandInContainer, until

BUDGET = 0.3
LEASE = 0.6


@contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (readers go on: WAL)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def opened(tmp_path: Path) -> SqliteStore:
    store = open_store(str(tmp_path / "surge.db"))
    assert isinstance(store, SqliteStore)
    await store.open()
    store.write_budget = BUDGET
    return store


def test_a_locked_write_gives_up_within_its_budget_and_reads_go_on(tmp_path: Path) -> None:
    async def main() -> None:
        store = await opened(tmp_path)
        try:
            await store.kv_set("k", "before")
            with write_lock(tmp_path / "surge.db"):
                with pytest.raises(StoreUnavailable, match="locked by another process"):
                    await store.kv_set("k", "during")
                with pytest.raises(StoreUnavailable):
                    await store.ping()
                assert await store.kv_get("k") == "before"
            await store.ping()
            await store.kv_set("k", "after")
            assert await store.kv_get("k") == "after"
        finally:
            await store.close()

    asyncio.run(main())


def test_a_failed_write_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    """Regression: the failed write's traceback carried its cursor to the event loop, whose
    finalization waited for the connection's mutex — held by the next write's busy wait — so the
    whole control plane froze for a budget at a time. Now a read issued when the first write fails
    completes while the second write is still waiting."""

    async def main() -> None:
        store = await opened(tmp_path)
        store.write_budget = 1.0
        order: list[str] = []
        try:
            with write_lock(tmp_path / "surge.db"):
                async def first() -> None:
                    with pytest.raises(StoreUnavailable):
                        await store.kv_set("a", "1")
                    order.append("first failed")
                    await store.kv_get("a")
                    order.append("read after it")

                async def second() -> None:
                    await asyncio.sleep(0.5)
                    with pytest.raises(StoreUnavailable):
                        await store.kv_set("b", "2")
                    order.append("second failed")

                await asyncio.gather(first(), second())
        finally:
            await store.close()
        assert order == ["first failed", "read after it", "second failed"]

    asyncio.run(main())


# -- the dispatcher ---------------------------------------------------------------------------------
async def scene(tmp_path: Path) -> tuple[SqliteStore, Dispatcher, Any, StandInContainer, str, Work]:
    store = await opened(tmp_path)
    now = time.time()
    spec = {"tag": "f", "module": "m", "options": validate_options().to_json()}
    app, _, (fn,) = await store.create_version(DEFAULT_WORKSPACE, "outage", deployed=True, source_hash="0" * 64,
                                              module="m", spec={}, functions=[("f", spec)], now=now)
    call = CallRow(id=new_id("fc"), workspace=DEFAULT_WORKSPACE, function_id=fn.id, kind=CallKind.SPAWN.value,
                   created_at=now, pool_key=fn.id, input_count=1)
    _, (row,), _ = await store.create_call(call, [NewInput(idx=0, args=b"args", timeout=60.0)], now)
    d = Dispatcher(store, StandInAgent(), lease_ttl=LEASE)  # type: ignore[arg-type]
    pool = d.pool_for(fn.id, fn, DEFAULT_WORKSPACE, app.id, None)
    c = StandInContainer("ct-a", SimpleNamespace(pool_key=pool.key))
    pool.containers[c.id] = c                                          # type: ignore[assignment]
    return store, d, pool, c, row.id, Work.from_row(row, fn)


def test_assignment_during_an_outage_goes_back_to_the_queue_and_runs_after(tmp_path: Path) -> None:
    async def main() -> None:
        store, d, pool, c, iid, work = await scene(tmp_path)
        try:
            with write_lock(tmp_path / "surge.db"):
                d.enqueue(pool, [work])
                await until("the assignment to fail", lambda: _stat(d, "assign_store_unavailable"), timeout=5)
                assert [w.id for w in pool.queue] == [iid]          # not lost from memory
                assert (await store.get_input(iid)).state == InputState.QUEUED  # type: ignore[union-attr]
            await until("the retried assignment", lambda: _running(store, iid), timeout=5)
            assert {i: f.attempt for i, f in c.inflight.items()} == {iid: 1}
        finally:
            await store.close()

    asyncio.run(main())


def test_results_wait_out_an_outage_and_the_reaper_holds_off(tmp_path: Path) -> None:
    async def main() -> None:
        store, d, pool, c, iid, work = await scene(tmp_path)
        try:
            d.enqueue(pool, [work])
            await until("attempt 1 running", lambda: _running(store, iid), timeout=5)
            with write_lock(tmp_path / "surge.db"):
                # the worker is alive and says so, but its lease cannot be renewed
                await d.on_heartbeat(c, [(iid, 1)])                 # type: ignore[arg-type]
                assert d.renew_failed_at > 0
                await asyncio.sleep(0.4)              # the lease (granted at assignment) has run out
                assert await store.expired_leases(time.time())
                assert await d.reap_expired(time.time()) == 0       # not taken back: only the store failed
                meta = {"kind": "result", "input_id": iid, "attempt": 1, "status": "ok"}
                await d.on_outputs(c, [(meta, b"result")])          # type: ignore[arg-type]
                await until("the write to be retried", lambda: _stat(d, "output_store_unavailable"), timeout=5)
            flusher = getattr(d, "_flusher", None)
            if flusher is not None:
                await flusher
            row = await store.get_input(iid)
            assert row is not None
            assert (row.state, row.attempt, row.result) == (InputState.SUCCEEDED, 1, b"result")
        finally:
            await store.close()

    asyncio.run(main())


async def _stat(d: Dispatcher, key: str) -> bool:
    return d.stats[key] > 0


async def _running(store: SqliteStore, iid: str) -> bool:
    row = await store.get_input(iid)
    return row is not None and row.state == InputState.RUNNING


# -- the HTTP API -----------------------------------------------------------------------------------
def test_the_api_answers_503_with_retry_after_and_health_is_degraded(in_process: InProcess, sdk: Client,
                                                                     integration_apps: Path) -> None:
    import integ_app

    store = in_process.app.state.plane.store
    assert isinstance(store, SqliteStore)
    old, store.write_budget = store.write_budget, BUDGET
    try:
        with integ_app.app.run(show_logs=False):
            body = {"function_id": integ_app.echo._ref()["function_id"], "kind": "spawn",
                    "inputs": [b64(serialize_args((1,), {}))], "idempotency_key": "outage-1"}
            assert in_process.http.get("/health").json()["status"] == "ok"
            with write_lock(in_process.home / "surge.db"):
                r = in_process.http.post("/v1/calls", json=body, headers=in_process.auth())
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == "1"
                assert r.json()["error"]["code"] == "unavailable"
                health = in_process.http.get("/health").json()
                assert health["status"] == "degraded"
                assert health["store"]["ok"] is False and "locked" in health["store"]["error"]
                assert in_process.http.get("/v1/calls", headers=in_process.auth()).status_code == 200  # reads go on
            health = in_process.http.get("/health").json()
            assert (health["status"], health["store"]["ok"]) == ("ok", True)
            # the refused submission created nothing: the same key now makes the call, once
            r = in_process.http.post("/v1/calls", json=body, headers=in_process.auth())
            assert r.status_code == 201 and r.json()["created"] is True
    finally:
        store.write_budget = old
