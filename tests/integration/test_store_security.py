"""Workspaces, tokens, blob ownership and workspace-scoped logs in the store, on SQLite and
PostgreSQL alike (the ``store`` fixture and ``@store_test`` come from ``test_store``)."""

from __future__ import annotations

import pytest

from surge.errors import NotFoundError
from surge.store import LogLine, Store
from surge.store.base import TokenRow, WorkspaceRow
from tests.integration import test_store

store = test_store.store            # the SQLite + PostgreSQL fixture, used by name
store_test = test_store.store_test


def token(tid: str, workspace: str = "default", *, at: float = 10.0, role: str = "member") -> TokenRow:
    return TokenRow(id=tid, workspace=workspace, name=f"name-{tid}", role=role, token_hash=f"hash-{tid}",
                    hint="sg-abc", created_at=at)


@store_test
async def test_the_default_workspace_exists_after_migration(store: Store) -> None:
    assert await store.list_workspaces() == [WorkspaceRow("default", 0.0)]


@store_test
async def test_workspaces_are_created_once(store: Store) -> None:
    assert await store.create_workspace("team-a", 5.0)
    assert not await store.create_workspace("team-a", 6.0)
    assert await store.create_workspace("b", 7.0)
    assert [w.name for w in await store.list_workspaces()] == ["b", "default", "team-a"]
    assert [w.created_at for w in await store.list_workspaces()] == [7.0, 0.0, 5.0]


@store_test
async def test_tokens_round_trip_and_filter_by_workspace(store: Store) -> None:
    await store.create_workspace("team-a", 1.0)
    await store.create_token(token("tk-1", at=10.0, role="admin"))
    await store.create_token(token("tk-2", "team-a", at=11.0))
    await store.create_token(token("tk-3", at=12.0))
    assert [t.id for t in await store.list_tokens()] == ["tk-1", "tk-2", "tk-3"]
    assert [t.id for t in await store.list_tokens("default")] == ["tk-1", "tk-3"]
    assert await store.list_tokens("team-a") == [token("tk-2", "team-a", at=11.0)]
    assert await store.list_tokens("nobody") == []


@store_test
async def test_a_token_needs_an_existing_workspace_and_a_unique_hash(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no workspace 'ghost'"):
        await store.create_token(token("tk-1", "ghost"))
    await store.create_token(token("tk-1"))
    duplicate = token("tk-2")
    duplicate.token_hash = "hash-tk-1"
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await store.create_token(duplicate)
    assert [t.id for t in await store.list_tokens()] == ["tk-1"]


@store_test
async def test_revoking_is_once_and_touching_only_moves_forward(store: Store) -> None:
    await store.create_token(token("tk-1"))
    await store.create_token(token("tk-2"))
    assert await store.revoke_token("tk-1", 20.0)
    assert not await store.revoke_token("tk-1", 30.0)
    assert not await store.revoke_token("tk-unknown", 30.0)
    await store.touch_tokens([("tk-2", 50.0)])
    await store.touch_tokens([("tk-2", 40.0), ("tk-unknown", 1.0)])
    await store.touch_tokens([])
    rows = {t.id: t for t in await store.list_tokens()}
    assert (rows["tk-1"].revoked_at, rows["tk-1"].last_used_at) == (20.0, None)
    assert (rows["tk-2"].revoked_at, rows["tk-2"].last_used_at) == (None, 50.0)


@store_test
async def test_blob_ownership_is_per_workspace(store: Store) -> None:
    sha = "a" * 64
    assert not await store.blob_owned("default", sha)
    await store.add_blob_owner("default", sha, 1.0)
    await store.add_blob_owner("default", sha, 2.0)      # idempotent
    assert await store.blob_owned("default", sha)
    assert not await store.blob_owned("team-a", sha)


@store_test
async def test_logs_filter_by_the_workspace_of_their_app(store: Store) -> None:
    a, _, _ = await store.create_version("default", "x", deployed=True, source_hash="h", module="m",
                                         spec={}, functions=[("f", {})], now=1.0)
    b, _, _ = await store.create_version("team-b", "x", deployed=True, source_hash="h", module="m",
                                         spec={}, functions=[("f", {})], now=1.0)
    await store.append_logs([LogLine(a.id, "f", "co-1", "stdout", "mine", 1.0),
                             LogLine(b.id, "f", "co-2", "stdout", "theirs", 1.0),
                             LogLine(a.id, "f", "co-1", "stdout", "mine too", 1.0)])
    assert [x.text for x in await store.logs_since(workspace="default")] == ["mine", "mine too"]
    assert [x.text for x in await store.logs_since(workspace="team-b")] == ["theirs"]
    assert [x.text for x in await store.logs_since(workspace="team-b", app_id=a.id)] == []
    assert len(await store.logs_since()) == 3
