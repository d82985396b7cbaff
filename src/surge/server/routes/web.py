"""Web endpoints: ``/web/{app}/{label}/...`` (any method; proxied by ``surge.server.gateway``) and
``GET /v1/web/endpoints`` (the endpoints of a deployed app, with their paths; needs the token),
``GET /v1/web/config`` (the virtual-host base, if any). With ``surge server --web-host H``, hosts
``{label}.{app}.H`` reach the same endpoints (``vhosts.VirtualHosts``).

The ``/web/`` routes are public at the auth gate (``server/auth.py``): the gateway itself demands
the token for endpoints declared with ``requires_auth=True``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from surge.errors import NotFoundError
from surge.server.gateway import Gateway
from surge.server.routes.deps import Plane, Workspace
from surge.store.base import DEFAULT_WORKSPACE

router = APIRouter(prefix="/v1/web", tags=["web"])


@router.get("/endpoints")
async def endpoints(app: str, request: Request, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """The web endpoints of a deployed app: function, label, kind, method, requires_auth and the
    path (``/web/{app}/{label}``) under this server's URL."""
    row, fns = await cp.deployed_functions(ws, app)
    if row is None or row.state != "deployed":
        raise NotFoundError(f"no deployed app named {app!r}")
    ref = app if ws == DEFAULT_WORKSPACE else f"{ws}--{app}"
    gateway: Gateway = request.app.state.gateway
    return {"app": app, "version": row.current_version,
            "functions": sorted(str(f.spec.get("tag")) for f in fns),
            "endpoints": gateway.endpoints_json(ref, row.id, fns), "web_host": gateway.web_host}


@router.get("/config")
async def config(request: Request, ws: Workspace) -> dict[str, Any]:
    """How this server serves endpoints: ``web_host`` is the base of their virtual hosts
    (``{label}.{app}.{web_host}``; ``surge server --web-host``), or null when only paths serve them."""
    gateway: Gateway = request.app.state.gateway
    return {"web_host": gateway.web_host}


class _Proxy:
    """The ASGI endpoint of the ``/web/`` routes (an object, so Starlette passes it the raw
    request instead of wrapping it as a request-response function)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["app"].state.gateway(scope, receive, send)


_proxy = _Proxy()
# every method; the gateway answers for the container
routes = [Route("/web/{app}/{label}", _proxy), Route("/web/{app}/{label}/{path:path}", _proxy)]
