"""Progress reports: checks, event-log ranges, the per-input gate, and the container's reporter."""

from __future__ import annotations

import doctest
import json
import math
from typing import Any

import pytest

import surge
import surge.core.progress
from surge.core.progress import (
    ATTEMPT_STRIDE,
    MAX_ATTEMPT,
    MAX_DATA,
    MAX_MESSAGE,
    PROGRESS_SEQ_BASE,
    PROGRESS_SEQ_END,
    ProgressGate,
    attempt_of,
    check_report,
    encode_report,
    is_progress_seq,
    progress_seq,
    report_view,
)
from surge.runtime import progress as runtime_progress
from surge.runtime.current import set_current_input


def test_doctests() -> None:
    assert doctest.testmod(surge.core.progress).failed == 0


# -- checks ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message", "data", "want"), [
    (0.0, None, None, {"fraction": 0.0, "message": None, "data": None}),
    (1, None, None, {"fraction": 1.0, "message": None, "data": None}),
    (0.25, "loading", {"step": 3}, {"fraction": 0.25, "message": "loading", "data": {"step": 3}}),
    ("half way", None, None, {"fraction": None, "message": "half way", "data": None}),
    (None, "only a message", None, {"fraction": None, "message": "only a message", "data": None}),
    (None, None, [1, "two", None], {"fraction": None, "message": None, "data": [1, "two", None]}),
    (None, None, "Update 1/3", {"fraction": None, "message": None, "data": "Update 1/3"}),   # RunPod's shape
    (None, "x" * MAX_MESSAGE, None, {"fraction": None, "message": "x" * MAX_MESSAGE, "data": None}),
])
def test_valid_reports(value: Any, message: Any, data: Any, want: dict[str, Any]) -> None:
    assert check_report(value, message, data) == want


@pytest.mark.parametrize(("value", "message", "data", "match"), [
    (None, None, None, r"needs something to report"),
    (50, None, None, r"between 0.0 and 1.0; for 50 % pass 0.5"),
    (-0.1, None, None, r"between 0.0 and 1.0$"),
    (1000, None, None, r"between 0.0 and 1.0$"),
    (math.nan, None, None, r"between 0.0 and 1.0$"),
    (math.inf, None, None, r"between 0.0 and 1.0$"),
    (True, None, None, r"got bool"),
    ([0.5], None, None, r"got list; pass other JSON as data="),
    ("a", "b", None, r"give the message once"),
    (None, 42, None, r"message must be a str, got int"),
    (None, "x" * (MAX_MESSAGE + 1), None, r"4,097 characters, over the limit of 4,096"),
    (None, None, {1, 2}, r"data must be JSON .* got set"),
    (None, None, {"loss": math.nan}, r"data must be JSON"),
    (None, None, "x" * MAX_DATA, r"over the limit of 65,536"),
])
def test_invalid_reports(value: Any, message: Any, data: Any, match: str) -> None:
    with pytest.raises(surge.InvalidError, match=match):
        check_report(value, message, data)


# -- where reports go in the event log ------------------------------------------------------------

@pytest.mark.parametrize(("attempt", "n", "want"), [
    (1, 0, PROGRESS_SEQ_BASE + ATTEMPT_STRIDE),
    (2, 5, PROGRESS_SEQ_BASE + 2 * ATTEMPT_STRIDE + 5),
    (1, ATTEMPT_STRIDE + 9, PROGRESS_SEQ_BASE + 2 * ATTEMPT_STRIDE - 1),    # past its range: its last seq
    (MAX_ATTEMPT + 5, 0, PROGRESS_SEQ_BASE + MAX_ATTEMPT * ATTEMPT_STRIDE),  # late attempts share the last
    (0, -1, PROGRESS_SEQ_BASE),
])
def test_progress_seq(attempt: int, n: int, want: int) -> None:
    seq = progress_seq(attempt, n)
    assert seq == want
    assert is_progress_seq(seq) and PROGRESS_SEQ_BASE <= seq < PROGRESS_SEQ_END <= 2**31
    assert attempt_of(seq) == min(max(attempt, 0), MAX_ATTEMPT)


def test_later_reports_and_later_attempts_sort_after_earlier_ones() -> None:
    order = [progress_seq(1, 0), progress_seq(1, 1), progress_seq(1, 500), progress_seq(2, 0), progress_seq(3, 0)]
    assert order == sorted(order)
    assert not is_progress_seq(PROGRESS_SEQ_BASE - 1)     # the last possible item index


@pytest.mark.parametrize(("data", "want"), [
    (encode_report({"fraction": 0.5, "message": "m", "data": {"k": 1}}),
     {"fraction": 0.5, "message": "m", "data": {"k": 1}, "at": 7.0, "attempt": 2}),
    (b"not json", {"fraction": None, "message": None, "data": None, "at": 7.0, "attempt": 2}),
    (b"[1, 2]", {"fraction": None, "message": None, "data": None, "at": 7.0, "attempt": 2}),
])
def test_report_view(data: bytes, want: dict[str, Any]) -> None:
    assert report_view(progress_seq(2, 3), data, 7.0) == want


# -- the gate: at most one report per interval per input, the latest wins -----------------------------

def test_gate_sends_at_once_then_coalesces_to_the_latest() -> None:
    g: ProgressGate[str, int] = ProgressGate(0.05)
    assert not g
    assert g.offer("a", 1, now=0.0) == 0
    assert g and g.next_due() is None
    assert [g.offer("a", v, now=0.001 * v) for v in range(2, 40)] == [None] * 38    # all wait; 39 wins
    assert g.offer("b", 100, now=0.01) == 0                                          # inputs are independent
    assert g.next_due() == 0.05
    assert g.due(now=0.049) == []
    assert g.due(now=0.05) == [("a", 1, 39)]
    assert g.next_due() is None
    assert g.offer("a", 40, now=0.2) == 2          # long after: at once again
    assert g.close("a") is None                    # nothing waits
    assert g.close("a") is None                    # already forgotten
    assert g.close("b") is None
    assert not g


def test_gate_close_returns_the_waiting_report() -> None:
    g: ProgressGate[str, str] = ProgressGate(1.0)
    g.offer("a", "first", now=0.0)
    g.offer("a", "second", now=0.5)
    g.offer("a", "third", now=0.6)
    assert g.close("a") == (1, "third")
    assert g.next_due() is None


def test_gate_bounds_a_tight_loop() -> None:
    """10,000 reports over 1 s of (fake) time leave as at most 1 s / interval + 1 events."""
    g: ProgressGate[str, int] = ProgressGate(0.05)
    sent: list[tuple[int, int]] = []
    for i in range(10_000):
        now = i / 10_000
        for _, n, v in g.due(now=now):
            sent.append((n, v))
        n0 = g.offer("a", i, now=now)
        if n0 is not None:
            sent.append((n0, i))
    last = g.close("a")
    if last is not None:
        sent.append(last)
    assert len(sent) <= 1.0 / 0.05 + 2
    assert [n for n, _ in sent] == list(range(len(sent)))      # numbered without gaps
    assert sent[-1][1] == 9_999                                 # the latest report is never lost


# -- the container's reporter --------------------------------------------------------------------------

class FakeOutbox:
    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], bytes]] = []

    def put(self, item: dict[str, Any], data: bytes, *, defer: bool = False) -> None:
        self.items.append((item, data))


def test_reporter_sends_reports_as_progress_events_and_the_last_before_finishing() -> None:
    out = FakeOutbox()
    reporter = runtime_progress.Reporter(out, interval=10.0, clock=lambda: 0.0)
    meta = {"input_id": "in-1", "attempt": 2}
    reporter.report([meta], b'{"fraction":0.1}')
    reporter.report([meta], b'{"fraction":0.2}')      # waits (10 s interval) ...
    reporter.report([meta], b'{"fraction":0.3}')      # ... and is replaced
    assert out.items == [({"kind": "progress", "input_id": "in-1", "attempt": 2, "seq": progress_seq(2, 0)},
                           b'{"fraction":0.1}')]
    reporter.finish(meta)
    assert out.items[1] == ({"kind": "progress", "input_id": "in-1", "attempt": 2, "seq": progress_seq(2, 1)},
                            b'{"fraction":0.3}')
    reporter.finish(meta)                              # nothing more
    reporter.finish({"input_id": "other", "attempt": 1})
    assert len(out.items) == 2


def test_report_outside_an_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(surge.InvalidError, match="no input is running here"):
        surge.progress(0.5)
    with pytest.raises(surge.InvalidError, match=r"between 0\.0 and 1\.0"):
        surge.progress(2.0)          # checked first: a bad value is a bad value anywhere


def test_report_reaches_the_installed_reporter_of_the_running_input() -> None:
    out = FakeOutbox()
    runtime_progress.install(runtime_progress.Reporter(out, interval=0.0))
    try:
        assert not runtime_progress.report({"fraction": 0.5})          # no input in this context
        token = set_current_input({"input_id": "in-9", "attempt": 1})
        try:
            surge.progress(0.5, message="half", data={"k": 1})
        finally:
            set_current_input(None)
            del token
        batch = runtime_progress.set_batch([{"input_id": "b-1", "attempt": 1}, {"input_id": "b-2", "attempt": 3}])
        try:
            surge.progress("batch step")
        finally:
            runtime_progress.reset_batch(batch)
    finally:
        runtime_progress.install(None)
    assert [(i["input_id"], json.loads(d)) for i, d in out.items] == [
        ("in-9", {"fraction": 0.5, "message": "half", "data": {"k": 1}}),
        ("b-1", {"fraction": None, "message": "batch step", "data": None}),
        ("b-2", {"fraction": None, "message": "batch step", "data": None})]
