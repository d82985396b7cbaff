"""Store operations for schedules (at-most-once fire records) and secrets, on SQLite and PostgreSQL
(the ``store`` fixture of ``test_store.py``)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path

import pytest

from surge.errors import ConflictError
from surge.store import SqliteStore, Store
from surge.store.base import ScheduleFire, SecretRow
from tests.integration import test_store
from tests.integration.test_store import args, make_function, new_call

store = test_store.store            # the SQLite + PostgreSQL fixture, used by name
store_test = test_store.store_test


def fire(key: str, at: float, ws: str = "default") -> ScheduleFire:
    return ScheduleFire(schedule_key=key, fire_at=at, call_id="", workspace=ws, fired_at=at + 0.5)


@store_test
async def test_a_fire_time_starts_one_call_only(store: Store) -> None:
    fn = await make_function(store)
    first = await store.create_scheduled_call(fire("ap/f", 1000.25), new_call(fn, unique()), args(1), 1000.5)
    assert first is not None
    call, inputs = first
    assert len(inputs) == 1 and inputs[0].call_id == call.id
    # the same fire time again (a restarted control plane deciding again): nothing is inserted
    again = await store.create_scheduled_call(fire("ap/f", 1000.25), new_call(fn, unique()), args(1), 1001.0)
    assert again is None
    assert len(await store.list_calls("default")) == 1
    # another time, or another schedule, is a new fire
    assert await store.create_scheduled_call(fire("ap/f", 1010.25), new_call(fn, unique()), args(1), 1010.5)
    assert await store.create_scheduled_call(fire("ap/g", 1000.25), new_call(fn, unique()), args(1), 1000.5)
    fires = await store.schedule_fires("ap/f")
    assert [(f.fire_at, f.workspace) for f in fires] == [(1010.25, "default"), (1000.25, "default")]
    assert fires[1].call_id == call.id and fires[1].fired_at == 1000.75
    assert await store.last_schedule_fire("ap/f") == 1010.25
    assert await store.last_schedule_fire("nope") is None


@store_test
async def test_concurrent_fires_of_one_time_make_one_call(store: Store) -> None:
    fn = await make_function(store)
    results = await asyncio.gather(*[
        store.create_scheduled_call(fire("ap/f", 2000.0), new_call(fn, unique()), args(1), 2000.0)
        for _ in range(8)])
    assert sum(r is not None for r in results) == 1
    assert len(await store.list_calls("default")) == 1


@store_test
async def test_purge_keeps_each_schedules_latest_fire(store: Store) -> None:
    fn = await make_function(store)
    for key, times in (("ap/a", [10.0, 20.0, 30.0]), ("ap/b", [5.0])):
        for t in times:
            assert await store.create_scheduled_call(fire(key, t), new_call(fn, unique()), args(1), t)
    assert await store.purge_schedule_fires(before=100.0) == 2
    assert [f.fire_at for f in await store.schedule_fires("ap/a")] == [30.0]
    assert [f.fire_at for f in await store.schedule_fires("ap/b")] == [5.0]
    assert await store.purge_schedule_fires(before=100.0) == 0


def secret(name: str, ws: str = "default", blob: bytes = b"\x01sealed", at: float = 1.0) -> SecretRow:
    return SecretRow(workspace=ws, name=name, key_names=["A", "B"], ciphertext=blob, created_at=at, updated_at=at)


@store_test
async def test_secrets_put_get_list_delete(store: Store) -> None:
    assert await store.put_secret(secret("hf"), overwrite=False) is True
    assert await store.put_secret(secret("aws", at=2.0), overwrite=False) is True
    assert await store.put_secret(secret("hf", ws="other"), overwrite=False) is True
    with pytest.raises(ConflictError, match="'hf' already exists"):
        await store.put_secret(secret("hf", blob=b"new"), overwrite=False)
    replaced = SecretRow("default", "hf", ["C"], b"\x02new", created_at=9.0, updated_at=9.0)
    assert await store.put_secret(replaced, overwrite=True) is False
    (hf,) = await store.get_secrets("default", ["hf"])
    assert (hf.key_names, hf.ciphertext, hf.created_at, hf.updated_at) == (["C"], b"\x02new", 1.0, 9.0)
    assert isinstance(hf.ciphertext, bytes)
    assert [s.name for s in await store.list_secrets("default")] == ["aws", "hf"]
    assert {s.name for s in await store.get_secrets("default", ["hf", "aws", "missing"])} == {"hf", "aws"}
    assert await store.get_secrets("default", []) == []
    # workspaces do not see each other's secrets
    (other,) = await store.get_secrets("other", ["hf"])
    assert other.ciphertext == b"\x01sealed"
    assert await store.delete_secret("default", "hf") is True
    assert await store.delete_secret("default", "hf") is False
    assert [s.name for s in await store.list_secrets("default")] == ["aws"]
    assert [s.name for s in await store.list_secrets("other")] == ["hf"]


def test_migration_creates_the_tables_on_sqlite(tmp_path: Path) -> None:
    async def main() -> None:
        s = SqliteStore(tmp_path / "surge.db")
        await s.open()
        await s.close()

    asyncio.run(main())
    with sqlite3.connect(tmp_path / "surge.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"schedule_fires", "secrets"} <= tables
        assert 4 in {r[0] for r in db.execute("SELECT version FROM schema_migrations")}


def unique() -> str:
    return f"fc-{secrets.token_hex(6)}"
