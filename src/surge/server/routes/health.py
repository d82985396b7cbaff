from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from surge.server.routes.deps import Plane

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(cp: Plane) -> dict[str, Any]:
    """Liveness and a summary of the node; the only route that needs no token."""
    return cp.health()
