"""surge.Error → JSON responses with the status from ``surge.errors.STATUS_FOR``."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from surge.errors import Error, status_for

log = logging.getLogger("surge.http")


def body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no call 'fc-x'"])


class ErrorBody(BaseModel):
    """What every error answers (``surge.errors`` rebuilds the error type from ``code``)."""

    error: ErrorDetail


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# Documented on every operation (the OpenAPI schema is what API fuzzing checks answers against).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("invalid request"),
    401: _doc("missing, unknown or revoked token"),
    403: _doc("the token's role does not allow it"),
    404: _doc("not found in the caller's workspace"),
    409: _doc("the current state does not allow it"),
    413: _doc("request body or payload over its limit"),
    422: _doc("invalid body or parameters (the message says which and why)"),
    429: _doc("rate limit, or the function's queue is full: retry after `Retry-After` seconds"),
    503: _doc("temporarily unavailable: retry after `Retry-After` seconds"),
}


def error_response(exc: Error) -> JSONResponse:
    status = status_for(exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 429:
        headers = {"Retry-After": str(max(1, math.ceil(float(exc.details.get("retry_after") or 1))))}
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body(exc.code, exc.message), status_code=status, headers=headers)


_HTTP_CODES = {401: "auth", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
               413: "too_large", 429: "rate_limited", 503: "unavailable"}


def install(app: FastAPI) -> None:
    @app.exception_handler(Error)
    async def _surge_error(request: Request, exc: Error) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            if e.get("type") == "json_invalid":
                parts.append(f"the body is not valid JSON ({(e.get('ctx') or {}).get('error', 'cannot parse it')})")
                continue
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where or 'body'}: {e.get('msg')}")
        return JSONResponse(body("invalid", "invalid request: " + "; ".join(parts)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (an unparsable body, an unknown path or method) in our format
        code = _HTTP_CODES.get(exc.status_code, "invalid" if exc.status_code < 500 else "internal")
        return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(body("internal", f"internal server error ({type(exc).__name__}); see the server log"),
                            status_code=500)
