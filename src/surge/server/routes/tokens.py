"""API tokens: list, create (the secret is shown once), revoke. Who may do what: see
``surge.server.tokens`` (admins: any workspace; members: their workspace's member tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from surge.errors import ForbiddenError, NotFoundError
from surge.server.auth import require_principal
from surge.server.tokens import ADMIN, MEMBER, Principal, TokenRegistry, token_json

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

Caller = Annotated[Principal, Depends(require_principal)]


async def registry(request: Request) -> TokenRegistry:
    reg: TokenRegistry = request.app.state.tokens
    return reg

Registry = Annotated[TokenRegistry, Depends(registry)]


class TokenOut(BaseModel):
    token_id: str
    workspace: str
    name: str
    role: str
    hint: str = Field(description="the secret's first characters")
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    active: bool


class TokenList(BaseModel):
    tokens: list[TokenOut]


class NewToken(TokenOut):
    token: str = Field(description="the secret: shown this once, only its SHA-256 is stored")


class CreateToken(BaseModel):
    name: str = Field(default="", max_length=200)
    workspace: str | None = Field(default=None, max_length=63, description="default: the caller's")
    role: str = Field(default=MEMBER, pattern=f"^({ADMIN}|{MEMBER})$")


class Current(BaseModel):
    token_id: str
    workspace: str
    role: str


def _may_manage(caller: Principal, workspace: str) -> None:
    """Admins manage every workspace's tokens; members their own; containers none."""
    if caller.container:
        raise ForbiddenError("a container's token cannot manage tokens")
    if not caller.is_admin and workspace != caller.workspace:
        raise NotFoundError(f"no workspace {workspace!r}")


@router.get("/current")
async def current(caller: Caller) -> Current:
    """The calling token: its id, workspace and role."""
    return Current(token_id=caller.token_id, workspace=caller.workspace, role=caller.role)


@router.get("")
async def list_tokens(caller: Caller, reg: Registry,
                      workspace: str | None = Query(None, max_length=63,
                                                    description="admins: one workspace (default: all)")
                      ) -> TokenList:
    """Tokens (never their secrets): an admin's of every workspace, a member's of its own."""
    if workspace is not None:
        _may_manage(caller, workspace)
    elif caller.container:
        _may_manage(caller, caller.workspace)
    scope = workspace if workspace is not None else (None if caller.is_admin else caller.workspace)
    return TokenList(tokens=[TokenOut(**token_json(t)) for t in await reg.rows(scope)])


@router.post("", status_code=201)
async def create_token(body: CreateToken, caller: Caller, reg: Registry) -> NewToken:
    """A new token; the response carries its secret, which is not shown again."""
    workspace = body.workspace or caller.workspace
    _may_manage(caller, workspace)
    if body.role == ADMIN and not caller.is_admin:
        raise ForbiddenError("only an admin token may create admin tokens")
    if not any(w.name == workspace for w in await reg.store.list_workspaces()):
        raise NotFoundError(f"no workspace {workspace!r}; an admin creates it with `surge workspace create`")
    row, secret = await reg.create(workspace, body.name or f"token {len(await reg.rows(workspace)) + 1}", body.role)
    return NewToken(**token_json(row), token=secret)


@router.post("/{token_id}/revoke")
async def revoke_token(token_id: str, caller: Caller, reg: Registry) -> TokenOut:
    """Revoke a token: it is refused from the next request on."""
    row = await reg.get(token_id)
    if row is None or (not caller.is_admin and row.workspace != caller.workspace):
        raise NotFoundError(f"no token {token_id!r}; `surge token list` shows the ids")
    _may_manage(caller, row.workspace)
    if row.role == ADMIN and not caller.is_admin:
        raise ForbiddenError("only an admin token may revoke an admin token")
    return TokenOut(**token_json(await reg.revoke(token_id)))
