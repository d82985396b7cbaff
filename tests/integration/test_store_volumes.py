"""Volume rows in the store, on SQLite and PostgreSQL alike (``store`` and ``@store_test`` come
from ``test_store``)."""

from __future__ import annotations

import asyncio

from surge.store import Store
from tests.integration import test_store

store = test_store.store            # the SQLite + PostgreSQL fixture, used by name
store_test = test_store.store_test


@store_test
async def test_create_is_idempotent_per_workspace_and_name(store: Store) -> None:
    row, created = await store.create_volume("default", "weights", 5.0)
    assert created and row.version == 0 and row.files == 0 and row.committed_at is None
    again, created = await store.create_volume("default", "weights", 6.0)
    assert not created and again == row
    other, created = await store.create_volume("team-a", "weights", 7.0)
    assert created and other.id != row.id
    assert await store.find_volume("default", "weights") == row
    assert await store.get_volume(other.id) == other
    assert await store.find_volume("default", "nope") is None


@store_test
async def test_list_and_delete(store: Store) -> None:
    for name in ("b", "a"):
        await store.create_volume("default", name, 1.0)
    await store.create_volume("team-a", "c", 1.0)
    assert [v.name for v in await store.list_volumes("default")] == ["a", "b"]
    assert [(v.workspace, v.name) for v in await store.list_volumes(None)] == [
        ("default", "a"), ("default", "b"), ("team-a", "c")]
    assert await store.delete_volume("default", "a")
    assert not await store.delete_volume("default", "a")
    assert [v.name for v in await store.list_volumes("default")] == ["b"]


@store_test
async def test_version_moves_by_compare_and_set(store: Store) -> None:
    row, _ = await store.create_volume("default", "v", 1.0)
    assert await store.set_volume_version(row.id, expect=0, version=1, now=2.5, size_bytes=10, files=2)
    assert not await store.set_volume_version(row.id, expect=0, version=1, now=3.0, size_bytes=99, files=9)
    got = await store.get_volume(row.id)
    assert got is not None and (got.version, got.committed_at, got.size_bytes, got.files) == (1, 2.5, 10, 2)
    await store.delete_volume("default", "v")
    assert not await store.set_volume_version(row.id, expect=1, version=2, now=4.0, size_bytes=0, files=0)


@store_test
async def test_concurrent_commits_one_wins(store: Store) -> None:
    row, _ = await store.create_volume("default", "race", 1.0)
    results = await asyncio.gather(*(store.set_volume_version(row.id, expect=0, version=1, now=2.0 + i,
                                                              size_bytes=i, files=i) for i in range(5)))
    assert sorted(results) == [False, False, False, False, True]
