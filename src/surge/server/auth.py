"""Bearer-token auth: every route but ``/health`` requires ``Authorization: Bearer <token>``.

Two layers. ``TokenGate`` wraps the whole app and refuses a request without the token before
routing and body parsing, so a route added without the dependency is still protected and nothing
(not even "JSON decode error" or "Not Found") is told to a caller without the token. The
``require_token`` dependency gives routes the caller's workspace.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from surge.errors import AuthError
from surge.server.http_errors import error_response
from surge.store.base import DEFAULT_WORKSPACE

PUBLIC_PATHS = frozenset({"/health"})


def check_authorization(header: str, expected: str) -> str:
    """The caller's workspace for an ``Authorization`` header value, or AuthError (401)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing token: send 'Authorization: Bearer <token>' (the token is in "
                        "SURGE_HOME/token; `surge token show` prints it)")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError("invalid token")
    return DEFAULT_WORKSPACE


async def require_token(request: Request) -> str:  # async: no thread-pool hop per request
    """FastAPI dependency: the caller's workspace, or AuthError (401)."""
    return check_authorization(request.headers.get("authorization", ""), request.app.state.token)


class TokenGate:
    """ASGI middleware: HTTP requests to anything but ``PUBLIC_PATHS`` need the token."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS:
            header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
            try:
                check_authorization(header, self.token)
            except AuthError as exc:
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
