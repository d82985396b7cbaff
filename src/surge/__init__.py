"""surge: a self-hostable serverless GPU platform with a Modal-shaped Python SDK.

>>> import surge
>>> app = surge.App("demo")
>>> @app.function(gpu="A100-80GB")
... def embed(text: str) -> list[float]: ...
"""

from __future__ import annotations

from surge.core.retries import Retries
from surge.errors import (
    AuthError,
    ConflictError,
    ConnectionError,
    Error,
    ExecutionError,
    ForbiddenError,
    FunctionTimeoutError,
    InputCancelledError,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    RateLimitedError,
    RemoteError,
    TimeoutError,
    TooLargeError,
    UnavailableError,
)
from surge.runtime.current import current_function_call_id, current_input_attempt, current_input_id
from surge.sdk import weights
from surge.sdk.app import App, in_container
from surge.sdk.call import FunctionCall, gather
from surge.sdk.cls import Cls
from surge.sdk.function import Function
from surge.sdk.image import Image
from surge.sdk.partial import batched, concurrent, enter, exit, method, parameter
from surge.sdk.progress import Progress, progress
from surge.sdk.schedule import Cron, Period
from surge.sdk.secret import Secret
from surge.sdk.volume import Volume
from surge.sdk.web import asgi_app, fastapi_endpoint, web_endpoint, web_server, wsgi_app

__version__ = "0.1.0"


def is_local() -> bool:
    """True in the calling process, False inside a surge container."""
    return not in_container()


__all__ = [
    "App",
    "AuthError",
    "Cls",
    "ConflictError",
    "ConnectionError",
    "Cron",
    "Error",
    "ExecutionError",
    "ForbiddenError",
    "Function",
    "FunctionCall",
    "FunctionTimeoutError",
    "Image",
    "InputCancelledError",
    "InvalidError",
    "NotFoundError",
    "OutputExpiredError",
    "Period",
    "Progress",
    "RateLimitedError",
    "RemoteError",
    "Retries",
    "Secret",
    "TimeoutError",
    "TooLargeError",
    "UnavailableError",
    "Volume",
    "__version__",
    "asgi_app",
    "batched",
    "concurrent",
    "current_function_call_id",
    "current_input_attempt",
    "current_input_id",
    "enter",
    "exit",
    "fastapi_endpoint",
    "gather",
    "is_local",
    "method",
    "parameter",
    "progress",
    "web_endpoint",
    "web_server",
    "weights",
    "wsgi_app",
]
