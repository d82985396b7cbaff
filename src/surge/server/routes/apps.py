from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from surge.errors import InvalidError, NotFoundError
from surge.server.routes.deps import Plane, Workspace

router = APIRouter(prefix="/v1/apps", tags=["apps"])


class CreateApp(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    deployed: bool = False
    source_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    module: str = Field(min_length=1)
    functions: list[dict[str, Any]] = Field(min_length=1)
    client: str | None = None


class Rollback(BaseModel):
    version: int | None = Field(default=None, ge=1)


@router.post("", status_code=201)
async def create_app(body: CreateApp, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Create an ephemeral app (``surge run``) or a new immutable version of a deployed one."""
    if not await cp.store.blob_owned(ws, body.source_hash):
        raise InvalidError(f"source archive {body.source_hash} was not uploaded; PUT /v1/blobs/{{sha}} first")
    return await cp.create_app(ws, body.model_dump())


@router.get("")
async def list_apps(cp: Plane, ws: Workspace, all: bool = False) -> dict[str, Any]:
    apps = await cp.store.list_apps(ws, include_ephemeral=all)
    out = []
    for a in apps:
        versions = await cp.store.list_versions(a.id)
        out.append({"app_id": a.id, "name": a.name, "state": a.state, "version": a.current_version,
                    "versions": len(versions), "created_at": a.created_at,
                    "deployed_at": versions[-1].created_at if versions else None})
    return {"apps": out}


async def _find(cp: Plane, ws: str, name: str) -> Any:
    app = await cp.store.find_app(ws, name)
    if app is None:
        raise NotFoundError(f"no deployed app named {name!r}")
    return app


@router.get("/{name}/history")
async def history(name: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    app = await _find(cp, ws, name)
    versions = await cp.store.list_versions(app.id)
    out = []
    for v in reversed(versions):
        fns = await cp.store.list_functions(app.id, v.version)
        out.append({"version": v.version, "created_at": v.created_at, "source_hash": v.source_hash,
                    "current": v.version == app.current_version, "rollback_of": v.spec.get("rollback_of"),
                    "functions": sorted(str(f.spec.get("tag")) for f in fns)})
    return {"app": name, "state": app.state, "versions": out}


@router.get("/{name}/functions")
async def functions(name: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    app = await _find(cp, ws, name)
    fns = await cp.store.list_functions(app.id, app.current_version)
    return {"app": name, "version": app.current_version,
            "functions": [{"function_id": f.id, "tag": f.spec.get("tag"), "options": f.spec.get("options"),
                           "is_generator": f.spec.get("is_generator", False)} for f in fns]}


@router.post("/{app_ref}/stop")
async def stop(app_ref: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Stop an app (by id or name): queued and running inputs are cancelled, containers stop."""
    return await cp.stop_app(ws, app_ref)


@router.post("/{name}/rollback")
async def rollback(name: str, cp: Plane, ws: Workspace, body: Rollback | None = None) -> dict[str, Any]:
    """Publish a new version identical to an earlier one (the previous one by default)."""
    return await cp.rollback(ws, name, body.version if body else None)
