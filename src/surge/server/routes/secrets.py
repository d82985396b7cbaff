"""Named secrets of the caller's workspace: create (or replace), list, delete. Values are
write-only: no route returns one (a listing shows names, keys and times)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from surge.server.routes.deps import Plane, Workspace

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])


class CreateSecret(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="letters, digits, '.', '_' or '-'")
    env: dict[str, str] = Field(min_length=1, max_length=1000,
                                description="environment variable names and values (stored encrypted)")
    overwrite: bool = Field(default=False, description="replace an existing secret of this name")


class SecretOut(BaseModel):
    name: str
    keys: list[str]
    created_at: float
    updated_at: float


class CreatedSecret(SecretOut):
    created: bool = Field(description="false when an existing secret was replaced")


class SecretList(BaseModel):
    secrets: list[SecretOut]


@router.post("", status_code=201, response_model=CreatedSecret)
async def create_secret(body: CreateSecret, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Create a secret (409 if the name exists, unless ``overwrite``). The values are encrypted
    before they are stored and are never returned."""
    return await cp.secrets.create(ws, body.name, body.env, overwrite=body.overwrite)


@router.get("", response_model=SecretList)
async def list_secrets(cp: Plane, ws: Workspace) -> dict[str, Any]:
    return {"secrets": await cp.secrets.listing(ws)}


@router.delete("/{name}")
async def delete_secret(name: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Delete a secret. Containers already running keep their environment; new ones of a
    function that names it fail to start (``INIT_FAILURE``, naming the secret)."""
    await cp.secrets.delete(ws, name)
    return {"name": name, "deleted": True}
