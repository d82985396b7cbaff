"""Shared route dependencies: the control plane and the caller's workspace."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from surge.server.auth import require_token
from surge.server.controlplane import ControlPlane

# the largest cursor (event/output/log sequence number) a query accepts: stores keep 64-bit integers
CURSOR_MAX = 2**62


async def plane(request: Request) -> ControlPlane:
    # async: a sync dependency would run on the thread pool, a thread hop on every request
    cp: ControlPlane = request.app.state.plane
    return cp


Plane = Annotated[ControlPlane, Depends(plane)]
Workspace = Annotated[str, Depends(require_token)]
