"""Polling for the tests: wait until a condition holds, or fail saying what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, *, step: float = 0.05) -> Any:
    """``check()``'s first truthy value, polled every ``step`` seconds; an AssertionError naming
    ``what`` if none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"gave up after {timeout} s waiting for {what}"
        time.sleep(step)
    return value
