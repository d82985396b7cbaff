"""Bearer-token auth: every route but ``/health`` requires ``Authorization: Bearer <token>``."""

from __future__ import annotations

import hmac

from fastapi import Request

from surge.errors import AuthError
from surge.store.base import DEFAULT_WORKSPACE


def require_token(request: Request) -> str:
    """FastAPI dependency: the caller's workspace, or AuthError (401)."""
    expected: str = request.app.state.token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("missing token: send 'Authorization: Bearer <token>' (the token is in "
                        "SURGE_HOME/token; `surge token show` prints it)")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError("invalid token")
    return DEFAULT_WORKSPACE
