"""What the running input is, for user code: ``surge.current_input_id()``."""

from __future__ import annotations

import contextvars
from typing import Any

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("surge_input", default=None)


def get_current_input() -> dict[str, Any] | None:
    return _current.get()


def set_current_input(value: dict[str, Any] | None) -> contextvars.Token[dict[str, Any] | None]:
    return _current.set(value)


def current_input_id() -> str | None:
    cur = _current.get()
    return cur["input_id"] if cur else None


def current_function_call_id() -> str | None:
    cur = _current.get()
    return cur.get("call_id") if cur else None
