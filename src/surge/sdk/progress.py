"""``surge.progress()``: report how far the running input has got; ``surge.Progress``: a report as
callers read it (``FunctionCall.get_progress()``, ``GET /v1/jobs/{id}``, ``event: progress``).

>>> @app.function()
... def train(epochs: int) -> float:
...     for e in range(epochs):
...         loss = step()
...         surge.progress((e + 1) / epochs, message=f"epoch {e + 1}", data={"loss": loss})
...     return loss
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from surge.core.progress import check_report
from surge.errors import InvalidError


def progress(value: float | str | None = None, *, message: str | None = None, data: Any = None) -> None:
    """Report the progress of the input this code is running: a fraction done (0.0–1.0), a message,
    and/or any JSON ``data``. ``surge.progress("loading")`` is ``surge.progress(message="loading")``.

    Reports are cheap to make: a container sends at most 20 a second per input (a report made
    sooner waits, and a newer one replaces it), and the last one is always sent before the result.
    Callers see them as ``event: progress`` on the job's stream, as ``progress`` in
    ``GET /v1/jobs/{id}``, and through ``FunctionCall.get_progress()``. In a ``@surge.batched``
    function a report goes to every input of the batch.

    Raises ``surge.InvalidError`` for a bad value, and outside a running input (on your machine, or
    in a thread the function started without copying its context).
    """
    report = check_report(value, message, data)
    from surge.runtime import progress as runtime

    if not runtime.report(report):
        raise InvalidError(
            "surge.progress() reports the progress of the input being run, and no input is running here: "
            "call it while a function runs in a surge container (.remote, .spawn, .map, .remote_gen or an "
            "HTTP job). In a thread the function started, run the thread with the input's context "
            "(contextvars.copy_context().run) so surge knows which input it works for")


@dataclass(frozen=True)
class Progress:
    """The latest progress report of an input."""

    fraction: float | None      # 0.0–1.0, when the function gave one
    message: str | None
    data: Any                   # JSON, when the function gave some
    at: float                   # when the control plane received it (UNIX seconds)
    attempt: int                # the attempt that made it (1, then 2 after a retry, ...)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Progress:
        return cls(fraction=body.get("fraction"), message=body.get("message"), data=body.get("data"),
                   at=float(body.get("at") or 0.0), attempt=int(body.get("attempt") or 0))
