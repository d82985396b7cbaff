"""``FunctionCall``: a handle on a spawned call, and how outputs become values or exceptions."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.sdk import serialization
from surge.sdk.aio import synchronizer
from surge.sdk.context import get_client
from surge.sdk.serialization import unb64

if TYPE_CHECKING:
    from surge.sdk.progress import Progress

LONG_POLL = 50.0


def decode_output(out: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, value)`` for a success, ``(False, exception)`` otherwise."""
    state = out["state"]
    data = unb64(out.get("result"))
    if state == "SUCCEEDED":
        if data is None:
            return True, None
        # an HTTP job's result is JSON (the job API's codec), anything else the runtime's cloudpickle
        return True, json.loads(data) if out.get("codec") == "json" else serialization.loads(data)
    reason = out.get("reason") or ""
    message = out.get("message") or reason
    if reason in ("USER_EXCEPTION", "INIT_FAILURE") and data is not None:
        return False, serialization.deserialize_exception(data, message, out.get("traceback") or "")
    cls: type[errors.ExecutionError] = {
        "TIMED_OUT": errors.FunctionTimeoutError, "CANCELLED": errors.InputCancelledError,
        "EXPIRED": errors.OutputExpiredError}.get(state, errors.ExecutionError)
    return False, cls(message, reason=reason, exit_code=out.get("exit_code"), signal=out.get("signal"))


def value_or_raise(out: dict[str, Any]) -> Any:
    ok, value = decode_output(out)
    if not ok:
        raise value
    return value


class FunctionCall:
    """A call made with ``.spawn()``. Its id can travel to another process:

    >>> call = f.spawn(1)
    >>> surge.FunctionCall.from_id(call.object_id).get(timeout=30)
    """

    def __init__(self, call_id: str) -> None:
        self.object_id = call_id

    def __repr__(self) -> str:
        return f"FunctionCall({self.object_id!r})"

    @classmethod
    def from_id(cls, call_id: str) -> FunctionCall:
        return cls(call_id)

    @synchronizer
    def get(self, timeout: float | None = None, *, index: int = 0) -> Any:
        """Wait for the result. ``timeout=0`` polls; raises ``surge.TimeoutError`` while pending."""
        client = get_client()
        deadline = None if timeout is None else time.monotonic() + timeout
        since = 0
        while True:
            left = LONG_POLL if deadline is None else max(0.0, min(LONG_POLL, deadline - time.monotonic()))
            page = client.outputs(self.object_id, since, wait=left)
            for out in page["outputs"]:
                if out["idx"] == index:
                    return value_or_raise(out)
            since = page["cursor"]
            if page.get("done"):
                raise errors.NotFoundError(f"call {self.object_id} has no input #{index}")
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.TimeoutError(f"call {self.object_id} is not finished after {timeout} s")

    @synchronizer
    def get_progress(self, *, index: int = 0) -> Progress | None:
        """The latest ``surge.progress()`` report of the call's input (``index`` for one input of
        a map), or None before the function reports; it stays readable after the call ends.

        >>> call = train.spawn(10)
        >>> p = call.get_progress()
        >>> p and (p.fraction, p.message)
        (0.3, 'epoch 3')
        """
        from surge.sdk.progress import Progress

        body = get_client().request("GET", f"/v1/calls/{self.object_id}/progress", params={"index": index})
        return Progress.from_json(body["progress"]) if body.get("progress") else None

    @synchronizer
    def cancel(self, terminate_containers: bool = False) -> None:
        """Cancel every input of the call: queued ones never start, running ones are killed."""
        get_client().cancel(self.object_id)

    @synchronizer
    def status(self) -> dict[str, Any]:
        return get_client().get_call(self.object_id)

    @staticmethod
    def gather(*calls: FunctionCall) -> list[Any]:
        return gather(*calls)


def gather(*calls: FunctionCall) -> list[Any]:
    """Wait for every call, in order; the first failure raises."""
    return [c.get() for c in calls]
