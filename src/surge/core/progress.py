"""Progress reports (``surge.progress``): their checks, their place in an input's event log, and how a
container coalesces them.

A report is ``{"fraction", "message", "data"}`` as JSON. It travels on the input's append-only event
log beside generator items, but in a sequence range of its own: items keep ``seq`` = their index
(so a retried generator's repeated items are dropped as duplicates, and ``Last-Event-ID`` counts
items), and report ``n`` of attempt ``a`` is stored at ``PROGRESS_SEQ_BASE + a * ATTEMPT_STRIDE + n``.
Ordering by ``seq`` therefore gives the reports in the order they were made, the latest attempt's
last; the newest report is the one with the largest ``seq``.

A container sends at most one report per input every ``MIN_INTERVAL`` seconds (``ProgressGate``):
a report made sooner waits, and a newer one replaces it (the latest wins); whatever waits when the
input ends is sent before its result.

>>> progress_seq(1, 0) - PROGRESS_SEQ_BASE == ATTEMPT_STRIDE
True
>>> attempt_of(progress_seq(3, 7)), is_progress_seq(progress_seq(3, 7)), is_progress_seq(12)
(3, True, False)
>>> check_report(0.5, None, None)
{'fraction': 0.5, 'message': None, 'data': None}
>>> check_report("loading weights", None, None)["message"]
'loading weights'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from surge.errors import InvalidError

MIN_INTERVAL = 0.05                 # at most 20 reports a second per input; the latest wins
PROGRESS_SEQ_BASE = 1 << 30         # items use 0 .. BASE-1, reports BASE .. 2**31-1 (PostgreSQL INTEGER)
ATTEMPT_STRIDE = 1 << 24            # 16.7 M reports per attempt: 9.7 days at the maximum rate
PROGRESS_SEQ_END = 1 << 31          # one past the last report seq
MAX_ATTEMPT = (1 << 30) // ATTEMPT_STRIDE - 1     # 63; later attempts share the last range
MAX_MESSAGE = 4096                  # characters
MAX_DATA = 64 << 10                 # bytes of JSON


def progress_seq(attempt: int, n: int) -> int:
    """Where report ``n`` (0, 1, ...) of ``attempt`` (1, 2, ...) goes in the event log. Beyond the
    range of its attempt, reports reuse its last ``seq`` (a duplicate the store ignores)."""
    a = min(max(attempt, 0), MAX_ATTEMPT)
    return PROGRESS_SEQ_BASE + a * ATTEMPT_STRIDE + min(max(n, 0), ATTEMPT_STRIDE - 1)


def is_progress_seq(seq: int) -> bool:
    return seq >= PROGRESS_SEQ_BASE


def attempt_of(seq: int) -> int:
    """The attempt that made the report stored at ``seq``."""
    return (seq - PROGRESS_SEQ_BASE) // ATTEMPT_STRIDE


def check_report(value: Any, message: Any, data: Any) -> dict[str, Any]:
    """The report ``surge.progress(value, message=, data=)`` makes, or ``InvalidError`` saying what
    is wrong and how to write it. ``value`` is a fraction (0.0–1.0) or, as a string, the message."""
    fraction: float | None = None
    if isinstance(value, str):
        if message is not None:
            raise InvalidError(f"surge.progress({value!r}, message={message!r}): give the message once, either "
                               "as the first argument or as message=")
        message = value
    elif isinstance(value, bool) or (value is not None and not isinstance(value, int | float)):
        raise InvalidError(f"surge.progress({value!r}): the first argument is a fraction done (a number from "
                           f"0.0 to 1.0) or a message (str), got {type(value).__name__}; pass other JSON "
                           "as data=")
    elif value is not None:
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            hint = f"; for {value:g} % pass {value / 100:g}" if math.isfinite(value) and 1 < value <= 100 else ""
            raise InvalidError(f"surge.progress({value!r}): the fraction done must be between 0.0 and 1.0{hint}")
        fraction = float(value)
    if message is not None:
        if not isinstance(message, str):
            raise InvalidError(f"surge.progress(message={message!r}): the message must be a str, got "
                               f"{type(message).__name__}")
        if len(message) > MAX_MESSAGE:
            raise InvalidError(f"surge.progress(message=...): the message is {len(message):,} characters, over "
                               f"the limit of {MAX_MESSAGE:,}; put details in data= or the logs")
    if data is not None:
        try:
            size = len(json.dumps(data, allow_nan=False, separators=(",", ":")))
        except (TypeError, ValueError) as exc:
            raise InvalidError(f"surge.progress(data=...): data must be JSON (dict, list, str, int, float but "
                               f"not NaN or infinity, bool, None), got {type(data).__name__} ({exc})") from None
        if size > MAX_DATA:
            raise InvalidError(f"surge.progress(data=...): data is {size:,} bytes of JSON, over the limit of "
                               f"{MAX_DATA:,}; report a summary and write large outputs to a Volume")
    if fraction is None and message is None and data is None:
        raise InvalidError("surge.progress() needs something to report: a fraction done (0.0–1.0), a message "
                           "or data=, e.g. surge.progress(0.5, message=\"half way\")")
    return {"fraction": fraction, "message": message, "data": data}


def encode_report(report: dict[str, Any]) -> bytes:
    return json.dumps(report, allow_nan=False, separators=(",", ":")).encode()


def report_view(seq: int, data: bytes, at: float) -> dict[str, Any]:
    """A stored report as the API shows it: the report, when it reached the control plane, and
    which attempt made it. Bytes that are not a report (a container may send anything) show as
    empty rather than failing the read."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    return {"fraction": body.get("fraction"), "message": body.get("message"), "data": body.get("data"),
            "at": at, "attempt": attempt_of(seq)}


K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class _Slot(Generic[V]):
    sent: int = 0                 # reports sent so far (the next one's n)
    next_at: float = 0.0          # the earliest time the next may be sent
    waiting: V | None = None      # the latest report not sent yet
    has_waiting: bool = False


class ProgressGate(Generic[K, V]):
    """Per-input rate limit with coalescing: at most one report per ``interval``; one made sooner
    waits, and a newer one replaces it. The clock is a parameter.

    >>> g: ProgressGate[str, str] = ProgressGate(0.05)
    >>> g.offer("in-1", "10%", now=0.0), g.offer("in-1", "11%", now=0.01), g.offer("in-1", "12%", now=0.02)
    (0, None, None)
    >>> g.next_due(), g.due(now=0.05)
    (0.05, [('in-1', 1, '12%')])
    >>> g.offer("in-1", "50%", now=0.06), g.close("in-1"), g.close("in-1")
    (None, (2, '50%'), None)
    """

    def __init__(self, interval: float = MIN_INTERVAL) -> None:
        self.interval = interval
        self._slots: dict[K, _Slot[V]] = {}

    def __bool__(self) -> bool:
        return bool(self._slots)

    def offer(self, key: K, value: V, *, now: float) -> int | None:
        """The number to send ``value`` under now, or None: it waits for ``due`` (replacing any
        report already waiting)."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if now >= slot.next_at and not slot.has_waiting:
            return self._take(slot, now)
        slot.waiting, slot.has_waiting = value, True
        return None

    def next_due(self) -> float | None:
        """When the earliest waiting report may be sent (None: nothing waits)."""
        return min((s.next_at for s in self._slots.values() if s.has_waiting), default=None)

    def due(self, *, now: float) -> list[tuple[K, int, V]]:
        """The waiting reports whose time has come, as ``(key, n, report)``."""
        out: list[tuple[K, int, V]] = []
        for key, slot in self._slots.items():
            if slot.has_waiting and now >= slot.next_at:
                value = slot.waiting
                slot.waiting, slot.has_waiting = None, False
                out.append((key, self._take(slot, now), value))   # type: ignore[arg-type]
        return out

    def close(self, key: K) -> tuple[int, V] | None:
        """The input ended: forget it, returning its waiting report (to send now, before its result)."""
        slot = self._slots.pop(key, None)
        if slot is None or not slot.has_waiting:
            return None
        return slot.sent, slot.waiting   # type: ignore[return-value]

    def _take(self, slot: _Slot[V], now: float) -> int:
        n = slot.sent
        slot.sent += 1
        slot.next_at = now + self.interval
        return n
