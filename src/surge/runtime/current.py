"""What the running input is, for user code: ``surge.current_input_id()``,
``surge.current_function_call_id()`` and ``surge.current_input_attempt()``."""

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


def current_input_attempt() -> int | None:
    """Which attempt of the current input this is: 1 for the first run, 2 after one retry (a user
    retry or an infrastructure one, e.g. after a lost worker); ``None`` outside an input.

    Execution is at-least-once, so a function with side effects can use
    ``(surge.current_input_id(), surge.current_input_attempt())`` to recognise a re-run.
    """
    cur = _current.get()
    return int(cur["attempt"]) if cur and cur.get("attempt") is not None else None
