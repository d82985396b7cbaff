"""API tokens: who a request is (its workspace and role), resolved from memory on every request.

A token is ``sg-`` + 43 random URL-safe characters (256 bits). Only its SHA-256 is stored (a
fast hash is enough for a secret of that entropy: there is nothing to brute-force), with a name,
a short hint, created / last-used times and ``revoked_at``; the secret is shown once, when created.

Roles (the minimum a shared server needs):

- ``admin``: everything a member can do, plus create workspaces and create, list and revoke any
  token of any workspace. ``SURGE_HOME/token``, created when a server first starts, is the
  bootstrap admin token of the ``default`` workspace, so a single-user install works unchanged.
- ``member``: apps, calls, volumes, secrets, logs, usage and containers of its own workspace, and
  its workspace's member tokens (list, create, revoke).

Containers get an in-memory ``member`` token of their app's workspace (not stored, gone when the
control plane stops, as its containers are), which cannot manage tokens.

The registry keeps every token in memory by hash. Creating or revoking through this process
updates it at once; the table is re-read at most once a second (in the background when the
token was found, first when it was not), so a token revoked by another process sharing the
database is refused within about a second, and a burst of wrong tokens costs one read a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from surge import errors
from surge.ids import new_id
from surge.store.base import DEFAULT_WORKSPACE, Store, TokenRow

log = logging.getLogger("surge.tokens")

ADMIN, MEMBER = "admin", "member"
ROLES = (ADMIN, MEMBER)
TOKEN_PREFIX = "sg-"
BOOTSTRAP_NAME = "bootstrap (SURGE_HOME/token)"
WORKSPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
REFRESH_SECONDS = 1.0        # how stale the in-memory table may get
TOUCH_SECONDS = 10.0         # how often last-used times are written back


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved once per request by the auth gate."""

    token_id: str
    workspace: str
    role: str
    container: bool = False      # a container's in-memory token: no token management

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_workspace_name(name: str) -> str:
    if not WORKSPACE_NAME.match(name):
        raise errors.InvalidError(f"workspace name {name!r} is not allowed: use 1-63 lowercase letters, digits, "
                                  "'-' or '_', starting with a letter or digit (e.g. 'team-a')")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise errors.InvalidError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


class TokenRegistry:
    """Tokens by hash, in memory, refreshed from the store."""

    def __init__(self, store: Store, *, refresh: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.refresh_seconds = refresh
        self._clock = clock
        self._by_hash: dict[str, TokenRow] = {}
        self._ephemeral: dict[str, Principal] = {}        # container tokens, by hash
        self._container_secrets: dict[str, str] = {}      # workspace -> secret
        self._loaded_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None
        self._used: dict[str, float] = {}                 # token id -> last use (wall clock)
        self._written: dict[str, float] = {}
        self._touched_at = float("-inf")

    # -- start-up ------------------------------------------------------------------------------
    async def start(self, bootstrap_secret: str) -> None:
        """Make sure the default workspace and the bootstrap admin token exist, then load."""
        now = time.time()
        await self.store.create_workspace(DEFAULT_WORKSPACE, now)
        digest = hash_secret(bootstrap_secret)
        if not any(t.token_hash == digest for t in await self.store.list_tokens(DEFAULT_WORKSPACE)):
            await self.store.create_token(TokenRow(new_id("tk"), DEFAULT_WORKSPACE, BOOTSTRAP_NAME, ADMIN, digest,
                                                   bootstrap_secret[:7], now))
        await self._load()

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refreshing
        with contextlib.suppress(Exception):
            await self._write_usage(force=True)

    # -- the request path ------------------------------------------------------------------------
    async def resolve(self, secret: str) -> Principal | None:
        """The principal for a bearer secret, or None (unknown or revoked)."""
        digest = hash_secret(secret)
        ephemeral = self._ephemeral.get(digest)
        if ephemeral is not None:
            return ephemeral
        row = self._by_hash.get(digest)
        stale = self._clock() - self._loaded_at > self.refresh_seconds
        if stale:
            task = self._refresh_in_background()
            if row is None:   # perhaps created by another process since the last read
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
                row = self._by_hash.get(digest)
        if row is None or row.revoked_at is not None:
            return None
        self._used[row.id] = time.time()
        return Principal(row.id, row.workspace, row.role)

    def _refresh_in_background(self) -> asyncio.Task[None]:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh())
        return self._refreshing

    async def _refresh(self) -> None:
        try:
            await self._load()
            await self._write_usage()
        except Exception as exc:    # the store is down: keep answering from what we know
            log.warning("could not refresh API tokens (%s); using the table read %.0f s ago",
                        exc, self._clock() - self._loaded_at)

    async def _load(self) -> None:
        rows = await self.store.list_tokens()
        self._by_hash = {t.token_hash: t for t in rows}
        self._loaded_at = self._clock()

    async def _write_usage(self, *, force: bool = False) -> None:
        if not force and self._clock() - self._touched_at < TOUCH_SECONDS:
            return
        changed = [(tid, at) for tid, at in self._used.items() if self._written.get(tid) != at]
        if changed:
            await self.store.touch_tokens(changed)
            self._written.update(changed)
        self._touched_at = self._clock()

    # -- management (routes/tokens.py, routes/workspaces.py) ----------------------------------
    async def create(self, workspace: str, name: str, role: str) -> tuple[TokenRow, str]:
        """A new token; the secret is returned once and never stored."""
        check_role(role)
        secret = new_secret()
        row = TokenRow(new_id("tk"), workspace, name, role, hash_secret(secret), secret[:7], time.time())
        await self.store.create_token(row)
        self._by_hash[row.token_hash] = row
        return row, secret

    async def get(self, token_id: str) -> TokenRow | None:
        return next((t for t in await self.rows() if t.id == token_id), None)

    async def rows(self, workspace: str | None = None) -> list[TokenRow]:
        """Stored tokens with last-used times as this process saw them (written back lazily)."""
        rows = await self.store.list_tokens(workspace)
        return [replace(t, last_used_at=max(t.last_used_at or 0.0, self._used[t.id])) if t.id in self._used
                else t for t in rows]

    async def revoke(self, token_id: str) -> TokenRow:
        row = await self.get(token_id)
        if row is None:
            raise errors.NotFoundError(f"no token {token_id!r}; `surge token list` shows the ids")
        if row.revoked_at is not None:
            return row
        if row.role == ADMIN:
            admins = [t for t in await self.rows() if t.role == ADMIN and t.revoked_at is None]
            if len(admins) <= 1:
                raise errors.ConflictError(f"token {token_id} is the last admin token: revoking it would leave "
                                           "nobody able to manage workspaces and tokens. Create another with "
                                           "`surge token create --role admin` first")
        now = time.time()
        await self.store.revoke_token(token_id, now)
        revoked = replace(row, revoked_at=now)
        self._by_hash[row.token_hash] = revoked     # refused from the next request on
        return revoked

    def container_token(self, workspace: str) -> str:
        """The in-memory member token a workspace's containers use to call back."""
        secret = self._container_secrets.get(workspace)
        if secret is None:
            secret = self._container_secrets[workspace] = new_secret()
            self._ephemeral[hash_secret(secret)] = Principal(f"containers:{workspace}", workspace, MEMBER,
                                                             container=True)
        return secret


def token_json(t: TokenRow) -> dict[str, Any]:
    return {"token_id": t.id, "workspace": t.workspace, "name": t.name, "role": t.role, "hint": t.hint + "…",
            "created_at": t.created_at, "last_used_at": t.last_used_at, "revoked_at": t.revoked_at,
            "active": t.revoked_at is None}
