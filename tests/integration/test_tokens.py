"""The token registry on a real store (SQLite and PostgreSQL): hashes only, the bootstrap admin
token, and revocation by another process seen within the refresh interval (a fake clock moves it)."""

from __future__ import annotations

import hashlib

import pytest

from surge.errors import ConflictError, NotFoundError
from surge.server.tokens import (
    ADMIN,
    BOOTSTRAP_NAME,
    MEMBER,
    TokenRegistry,
    check_workspace_name,
    hash_secret,
)
from surge.store import Store
from surge.testing import FakeClock
from tests.integration import test_store

store = test_store.store            # the SQLite + PostgreSQL fixture, used by name
store_test = test_store.store_test

BOOT = "sg-bootstrap-secret-for-tests"


async def started(s: Store, clock: FakeClock | None = None) -> TokenRegistry:
    reg = TokenRegistry(s, clock=clock or FakeClock(100.0))
    await reg.start(BOOT)
    return reg


@store_test
async def test_bootstrap_token_is_the_default_admin_and_stored_hashed(store: Store) -> None:
    reg = await started(store)
    p = await reg.resolve(BOOT)
    assert p is not None and (p.workspace, p.role, p.is_admin) == ("default", ADMIN, True)
    rows = await store.list_tokens()
    assert [(t.name, t.role, t.token_hash) for t in rows] == [
        (BOOTSTRAP_NAME, ADMIN, hashlib.sha256(BOOT.encode()).hexdigest())]
    assert BOOT not in repr(rows)
    await (await started(store)).close()          # a restart does not add a second row
    assert len(await store.list_tokens()) == 1
    await reg.close()


@store_test
async def test_created_tokens_resolve_and_their_secret_is_not_stored(store: Store) -> None:
    reg = await started(store)
    await store.create_workspace("team-a", 1.0)
    row, secret = await reg.create("team-a", "ci", MEMBER)
    assert secret.startswith("sg-") and len(secret) >= 40 and row.hint == secret[:7]
    p = await reg.resolve(secret)
    assert p is not None and (p.token_id, p.workspace, p.role) == (row.id, "team-a", MEMBER)
    assert all(secret not in repr(t) for t in await store.list_tokens())
    assert await reg.resolve(secret + "x") is None
    assert await reg.resolve("") is None
    with pytest.raises(NotFoundError, match="no workspace 'nowhere'"):
        await reg.create("nowhere", "x", MEMBER)
    await reg.close()


@store_test
async def test_last_used_is_recorded_and_written_back(store: Store) -> None:
    reg = await started(store)
    _, secret = await reg.create("default", "x", MEMBER)
    assert await reg.resolve(secret) is not None
    shown = {t.name: t.last_used_at for t in await reg.rows()}
    assert shown["x"] is not None and shown[BOOTSTRAP_NAME] is None
    await reg.close()                                         # flushes
    assert {t.name: t.last_used_at for t in await store.list_tokens()}["x"] == shown["x"]


@store_test
async def test_a_token_revoked_by_another_process_is_refused_after_the_refresh(store: Store) -> None:
    clock = FakeClock(100.0)
    reg = await started(store, clock)
    row, secret = await reg.create("default", "x", MEMBER)
    assert await reg.resolve(secret) is not None
    await store.revoke_token(row.id, 5.0)          # as another control plane on the same database would
    clock.advance(0.5)
    assert await reg.resolve(secret) is not None   # within the refresh interval: the cached answer
    clock.advance(0.6)                              # 1.1 s after the last read: stale
    await reg.resolve(secret)                       # starts the refresh in the background ...
    assert reg._refreshing is not None
    await reg._refreshing
    assert await reg.resolve(secret) is None        # ... after which the token is refused
    await reg.close()


@store_test
async def test_a_token_created_by_another_process_is_found_at_once_when_stale(store: Store) -> None:
    clock = FakeClock(100.0)
    reg = await started(store, clock)
    other = await started(store, clock)
    _, secret = await other.create("default", "elsewhere", MEMBER)
    assert await reg.resolve(secret) is None        # fresh table: an unknown token is just wrong
    clock.advance(1.5)
    p = await reg.resolve(secret)                   # stale: an unknown token waits for the re-read
    assert p is not None and p.workspace == "default"
    await reg.close()
    await other.close()


@store_test
async def test_revoke_here_is_immediate_and_the_last_admin_stays(store: Store) -> None:
    reg = await started(store)
    row, secret = await reg.create("default", "x", MEMBER)
    revoked = await reg.revoke(row.id)
    assert revoked.revoked_at is not None and await reg.resolve(secret) is None
    assert (await reg.revoke(row.id)).revoked_at == revoked.revoked_at      # idempotent
    boot = next(t for t in await reg.rows() if t.name == BOOTSTRAP_NAME)
    with pytest.raises(ConflictError, match="last admin token"):
        await reg.revoke(boot.id)
    second, _ = await reg.create("default", "admin 2", ADMIN)
    assert (await reg.revoke(boot.id)).revoked_at is not None
    assert await reg.resolve(BOOT) is None
    with pytest.raises(NotFoundError, match="no token 'tk-nope'"):
        await reg.revoke("tk-nope")
    assert second.role == ADMIN
    await reg.close()


@store_test
async def test_container_tokens_live_in_memory_only(store: Store) -> None:
    reg = await started(store)
    secret = reg.container_token("team-a")
    assert reg.container_token("team-a") == secret != reg.container_token("team-b")
    p = await reg.resolve(secret)
    assert p is not None and (p.workspace, p.role, p.container) == ("team-a", MEMBER, True)
    assert all(t.token_hash != hash_secret(secret) for t in await store.list_tokens())
    await reg.close()


@pytest.mark.parametrize("name", ["a", "team-a", "ml_research", "x" * 63, "0day"])
def test_good_workspace_names(name: str) -> None:
    assert check_workspace_name(name) == name


@pytest.mark.parametrize("name", ["", "Team", "-a", "a b", "x" * 64, "../etc", "a/b", "é"])
def test_bad_workspace_names(name: str) -> None:
    with pytest.raises(Exception, match="workspace name"):
        check_workspace_name(name)
