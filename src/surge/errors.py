"""The one error tree shared by the SDK, the CLI and the control plane.

```
Error                         base of everything surge raises
├── InvalidError              bad option, bad argument, bad request body        (HTTP 400/422)
├── AuthError                 missing or wrong token                            (HTTP 401)
├── ForbiddenError            the token's role does not allow it                 (HTTP 403)
├── NotFoundError             unknown app, function, call, container            (HTTP 404)
├── ConflictError             state does not allow it (e.g. no previous version) (HTTP 409)
├── TooLargeError             a payload or result over its limit                 (HTTP 413)
├── RateLimitedError          too many requests, or the function's queue is full (HTTP 429)
├── UnavailableError          server starting, store busy, no capacity          (HTTP 503)
├── TimeoutError              a wait ran out (FunctionCall.get(timeout=))        (HTTP 504)
├── RemoteError               the function raised; carries the remote traceback
│   └── (the original exception type is re-raised instead when it can be imported)
├── ExecutionError            the input ended without a result: crash, OOM, timeout, cancel
│   ├── FunctionTimeoutError  attempt ran past ``timeout``                      (TIMED_OUT)
│   ├── InputCancelledError   the call was cancelled                             (CANCELLED)
│   └── OutputExpiredError    the result passed its retention                    (EXPIRED, HTTP 410)
└── ConnectionError           the control plane could not be reached
```

``STATUS_FOR`` / ``ERROR_FOR_STATUS`` map error types to HTTP status codes and back, so the
server raises ``NotFoundError`` and the SDK re-raises ``NotFoundError`` from the 404.
"""

from __future__ import annotations

from typing import Any


class Error(Exception):
    """Base of every error surge raises."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidError(Error):
    code = "invalid"


class AuthError(Error):
    code = "auth"


class ForbiddenError(Error):
    """The token is valid but its role may not do this (e.g. a member creating a workspace)."""

    code = "forbidden"


class NotFoundError(Error):
    code = "not_found"


class ConflictError(Error):
    code = "conflict"


class TooLargeError(Error):
    code = "too_large"


class RateLimitedError(Error):
    """Too many requests for the token, or too many queued inputs for the function; retry after
    ``retry_after`` seconds (the ``Retry-After`` header)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class UnavailableError(Error):
    code = "unavailable"


class TimeoutError(Error):
    code = "timeout"


class ConnectionError(Error):
    code = "connection"


class RemoteError(Error):
    """The remote function raised and its exception type could not be rebuilt here."""

    code = "remote"

    def __init__(self, message: str, *, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message, remote_type=remote_type)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        head = f"{self.remote_type}: {self.message}" if self.remote_type else self.message
        if self.remote_traceback:
            return f"{head}\n\nRemote traceback:\n{self.remote_traceback}"
        return head


class ExecutionError(Error):
    """An input ended without a result (crash, OOM kill, lost worker, init failure)."""

    code = "execution"

    def __init__(self, message: str, *, reason: str = "", exit_code: int | None = None,
                 signal: int | None = None) -> None:
        super().__init__(message, reason=reason, exit_code=exit_code, signal=signal)
        self.reason = reason
        self.exit_code = exit_code
        self.signal = signal


class FunctionTimeoutError(ExecutionError):
    code = "function_timeout"


class InputCancelledError(ExecutionError):
    code = "cancelled"


class OutputExpiredError(ExecutionError):
    code = "expired"


STATUS_FOR: dict[type[Error], int] = {
    InvalidError: 400,
    AuthError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    TooLargeError: 413,
    RateLimitedError: 429,
    UnavailableError: 503,
    TimeoutError: 504,
    OutputExpiredError: 410,
}

ERROR_FOR_CODE: dict[str, type[Error]] = {
    cls.code: cls
    for cls in (InvalidError, AuthError, ForbiddenError, NotFoundError, ConflictError, TooLargeError,
                RateLimitedError, UnavailableError, TimeoutError, OutputExpiredError)
}


def status_for(exc: Error) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_FOR:
            return STATUS_FOR[cls]
    return 500


def error_from_body(status: int, body: dict[str, Any]) -> Error:
    """Rebuild the error the server raised from its JSON body ``{"error": {"code", "message"}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        cls = ERROR_FOR_CODE.get(str(err.get("code")), Error)
        return cls(str(err.get("message", "")))
    for cls, code in STATUS_FOR.items():
        if code == status:
            return cls(f"HTTP {status}: {body}")
    return Error(f"HTTP {status}: {body}")
