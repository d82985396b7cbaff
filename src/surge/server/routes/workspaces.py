"""Workspaces: created by admins; every token, app, call, volume, secret, log line, container and
usage record belongs to one, and a token sees only its own workspace's."""

from __future__ import annotations

import time

from fastapi import APIRouter
from pydantic import BaseModel, Field

from surge.errors import ConflictError, ForbiddenError
from surge.server.routes.tokens import Caller, Registry
from surge.server.tokens import WORKSPACE_NAME, check_workspace_name

router = APIRouter(prefix="/v1/workspaces", tags=["workspaces"])


class WorkspaceOut(BaseModel):
    name: str
    created_at: float


class WorkspaceList(BaseModel):
    workspaces: list[WorkspaceOut]


class CreateWorkspace(BaseModel):
    name: str = Field(min_length=1, max_length=63, pattern=WORKSPACE_NAME.pattern)


@router.get("")
async def list_workspaces(caller: Caller, reg: Registry) -> WorkspaceList:
    """Every workspace for an admin; a member sees its own."""
    rows = await reg.store.list_workspaces()
    return WorkspaceList(workspaces=[WorkspaceOut(name=w.name, created_at=w.created_at) for w in rows
                                     if caller.is_admin or w.name == caller.workspace])


@router.post("", status_code=201)
async def create_workspace(body: CreateWorkspace, caller: Caller, reg: Registry) -> WorkspaceOut:
    """Create a workspace (admins only); then `surge token create --workspace NAME` gives it a token."""
    if not caller.is_admin:
        raise ForbiddenError("only an admin token may create workspaces")
    name = check_workspace_name(body.name)
    now = time.time()
    if not await reg.store.create_workspace(name, now):
        raise ConflictError(f"workspace {name!r} already exists")
    return WorkspaceOut(name=name, created_at=now)
