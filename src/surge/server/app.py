"""The control plane's ASGI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Depends, FastAPI

from surge.config import ensure_token
from surge.core.ratelimit import RateLimit
from surge.errors import AuthError
from surge.server import http_errors
from surge.server.auth import TokenGate, bearer_secret, require_token
from surge.server.config import ServerConfig
from surge.server.controlplane import ControlPlane
from surge.server.gateway import Gateway
from surge.server.jobs import JobService
from surge.server.limits import BodyLimit, RateLimiter
from surge.server.routes import apps, blobs, calls, health, jobs, observe, tokens, usage, web, workspaces
from surge.server.routes import images as image_routes
from surge.server.routes import schedules as schedule_routes
from surge.server.routes import secrets as secret_routes
from surge.server.routes import volumes as volume_routes
from surge.server.tokens import TokenRegistry
from surge.server.vhosts import VirtualHosts


def create_app(config: ServerConfig) -> FastAPI:
    config.home.mkdir(parents=True, exist_ok=True)
    token = ensure_token(config.home)
    plane = ControlPlane(config)
    plane.token = token
    plane.url = f"http://{config.host}:{config.port}"
    registry = TokenRegistry(plane.store)
    jobs_service = JobService(plane)
    plane.container_token = registry.container_token

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.start()
        await registry.start(token)
        jobs_service.start()
        try:
            yield
        finally:
            await jobs_service.close()
            await registry.close()
            await plane.close()

    # /openapi.json is behind the token like everything else; the browser docs UIs are not served
    # (a browser cannot send the bearer token they would need to fetch the schema).
    app = FastAPI(title="surge control plane", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, responses=http_errors.ERROR_RESPONSES,
                  description="Apps, calls and containers of a surge node. Every route but /health "
                              "needs `Authorization: Bearer <token>`.")
    app.state.plane = plane
    app.state.token = token
    app.state.tokens = registry
    app.state.jobs = jobs_service
    app.state.gateway = Gateway(plane, hold_timeout=config.web_hold_timeout, authorize=_authorizer(registry),
                                web_host=config.web_host)
    http_errors.install(app)
    # outermost last: the gate resolves the token, then the rate limit, then the body size
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(RateLimiter, limit=RateLimit(config.rate_limit, config.rate_burst))
    app.add_middleware(TokenGate, registry=registry)
    app.add_middleware(VirtualHosts, web_host=config.web_host)   # {label}.{app}.{web_host} → /web/{app}/{label}
    app.include_router(health.router)
    for r in (apps.router, calls.router, blobs.router, observe.router, usage.router, tokens.router,
              workspaces.router, web.router, image_routes.router, volume_routes.router, jobs.router,
              secret_routes.router, schedule_routes.router):
        app.include_router(r, dependencies=[Depends(require_token)])
    app.router.routes[:0] = web.routes    # first: the proxied hot path matches without trying the rest
    return app


def _authorizer(registry: TokenRegistry) -> Callable[[str], Awaitable[tuple[str, bool] | None]]:
    """For web endpoints with requires_auth=True: an Authorization header → (workspace, is_admin)."""

    async def authorize(header: str) -> tuple[str, bool] | None:
        try:
            principal = await registry.resolve(bearer_secret(header))
        except AuthError:
            return None
        return None if principal is None else (principal.workspace, principal.is_admin)

    return authorize
