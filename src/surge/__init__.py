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
    FunctionTimeoutError,
    InputCancelledError,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    RemoteError,
    TimeoutError,
    TooLargeError,
    UnavailableError,
)
from surge.runtime.current import current_function_call_id, current_input_id
from surge.sdk.app import App, in_container
from surge.sdk.call import FunctionCall, gather
from surge.sdk.cls import Cls
from surge.sdk.function import Function
from surge.sdk.partial import batched, concurrent, enter, exit, method, parameter
from surge.sdk.secret import Secret

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
    "Error",
    "ExecutionError",
    "Function",
    "FunctionCall",
    "FunctionTimeoutError",
    "InputCancelledError",
    "InvalidError",
    "NotFoundError",
    "OutputExpiredError",
    "RemoteError",
    "Retries",
    "Secret",
    "TimeoutError",
    "TooLargeError",
    "UnavailableError",
    "__version__",
    "batched",
    "concurrent",
    "current_function_call_id",
    "current_input_id",
    "enter",
    "exit",
    "gather",
    "is_local",
    "method",
    "parameter",
]
