"""The schedules of a deployed app: what runs when (``surge app schedules NAME``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from surge.errors import NotFoundError
from surge.server.routes.deps import Plane, Workspace

router = APIRouter(prefix="/v1/apps", tags=["apps"])


@router.get("/{name}/schedules")
async def schedules(name: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Each scheduled function of the app's current version: its schedule, the next and the last
    fire time. A stopped app has none."""
    app = await cp.store.find_app(ws, name)
    if app is None:
        raise NotFoundError(f"no deployed app named {name!r}")
    return {"app": name, "state": app.state, "version": app.current_version,
            "schedules": await cp.cron.describe(app)}
