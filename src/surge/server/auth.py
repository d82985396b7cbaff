"""Bearer-token auth: every route but ``/health`` (and public web endpoints under ``/web/``)
requires ``Authorization: Bearer <token>``; the token decides the caller's workspace and role.

Two layers. ``TokenGate`` wraps the whole app and resolves the token once per request (from the
in-memory ``TokenRegistry``), before routing and body parsing, so a route added without the
dependency is still protected and nothing (not even "JSON decode error" or "Not Found") is told to
a caller without a valid token. It leaves the ``Principal`` in the ASGI scope, where the
``require_principal`` / ``require_token`` dependencies give it (or its workspace) to routes.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from surge.errors import AuthError
from surge.server.http_errors import error_response
from surge.server.tokens import Principal, TokenRegistry

PUBLIC_PATHS = frozenset({"/health"})
PUBLIC_PREFIXES: tuple[str, ...] = ("/web/",)    # web endpoints decide their own access
SCOPE_KEY = "surge.principal"


def bearer_secret(header: str) -> str:
    """The secret of an ``Authorization`` header value, or AuthError (401)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing token: send 'Authorization: Bearer <token>' (the admin token is in "
                        "SURGE_HOME/token; `surge token show` prints it, `surge token create` makes more)")
    return token.strip()


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def require_principal(request: Request) -> Principal:  # async: no thread-pool hop per request
    """FastAPI dependency: who is calling (resolved by the gate), or AuthError (401)."""
    principal = request.scope.get(SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise AuthError("missing token: send 'Authorization: Bearer <token>'")
    return principal


async def require_token(request: Request) -> str:
    """FastAPI dependency: the caller's workspace, or AuthError (401)."""
    return (await require_principal(request)).workspace


class TokenGate:
    """ASGI middleware: HTTP requests to anything not public need a valid, unrevoked token."""

    def __init__(self, app: ASGIApp, *, registry: TokenRegistry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_public(scope["path"]):
            header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
            try:
                principal = await self.registry.resolve(bearer_secret(header))
                if principal is None:
                    raise AuthError("invalid token (unknown or revoked)")
            except AuthError as exc:
                await error_response(exc)(scope, receive, send)
                return
            scope[SCOPE_KEY] = principal
        await self.app(scope, receive, send)
