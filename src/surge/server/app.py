"""The control plane's ASGI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from surge.config import ensure_token
from surge.server import http_errors
from surge.server.auth import TokenGate, require_token
from surge.server.config import ServerConfig
from surge.server.controlplane import ControlPlane
from surge.server.routes import apps, blobs, calls, health, observe, usage


def create_app(config: ServerConfig) -> FastAPI:
    config.home.mkdir(parents=True, exist_ok=True)
    token = ensure_token(config.home)
    plane = ControlPlane(config)
    plane.token = token
    plane.url = f"http://{config.host}:{config.port}"

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.start()
        try:
            yield
        finally:
            await plane.close()

    # /openapi.json is behind the token like everything else; the browser docs UIs are not served
    # (a browser cannot send the bearer token they would need to fetch the schema).
    app = FastAPI(title="surge control plane", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Apps, calls and containers of a surge node. Every route but /health "
                              "needs `Authorization: Bearer <token>`.")
    app.state.plane = plane
    app.state.token = token
    http_errors.install(app)
    app.add_middleware(TokenGate, token=token)
    app.include_router(health.router)
    for r in (apps.router, calls.router, blobs.router, observe.router, usage.router):
        app.include_router(r, dependencies=[Depends(require_token)])
    return app
