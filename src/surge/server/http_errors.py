"""surge.Error → JSON responses with the status from ``surge.errors.STATUS_FOR``."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from surge.errors import Error, status_for

log = logging.getLogger("surge.http")


def body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(exc: Error) -> JSONResponse:
    status = status_for(exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 429:
        headers = {"Retry-After": str(max(1, math.ceil(float(exc.details.get("retry_after") or 1))))}
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body(exc.code, exc.message), status_code=status, headers=headers)


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

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(body("internal", f"internal server error ({type(exc).__name__}); see the server log"),
                            status_code=500)
