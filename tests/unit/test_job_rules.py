"""Pure rules of the job API: ttl, queue priority, JSON arguments, webhook backoff and signatures."""

from __future__ import annotations

import doctest
import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import surge.core.jsonargs
import surge.core.priority
import surge.core.ttl
import surge.core.webhooks
from surge.core.jsonargs import bind_json
from surge.core.priority import insert_position
from surge.core.ttl import expired, start_by
from surge.core.webhooks import (
    Backoff,
    derive_secret,
    next_attempt_at,
    signature_header,
    verify_signature,
)
from surge.errors import InvalidError


@pytest.mark.parametrize("module", [surge.core.ttl, surge.core.priority, surge.core.jsonargs, surge.core.webhooks])
def test_doctests(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


# -- ttl ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("created", "ttl", "want"), [(100.0, None, None), (100.0, 1.0, 101.0), (0.0, 604800, 604800.0)])
def test_start_by(created: float, ttl: float | None, want: float | None) -> None:
    assert start_by(created, ttl) == want


@pytest.mark.parametrize(("deadline", "attempt", "now", "want"), [
    (None, 0, 1e12, False),       # no ttl: never expires
    (10.0, 0, 9.99, False),       # before the deadline
    (10.0, 0, 10.0, True),        # at it
    (10.0, 0, 11.0, True),        # after it
    (10.0, 1, 11.0, False),       # it has started once: a queued retry is not expired
    (10.0, 3, 99.0, False),
])
def test_expired(deadline: float | None, attempt: int, now: float, want: bool) -> None:
    assert expired(deadline, attempt=attempt, now=now) is want


# -- priority ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("queue", "priority", "want"), [
    ([], 0, 0),
    ([0, 0, 0], 0, 3),            # equal: behind everyone (FIFO), without a search
    ([0, 0, 0], -1, 3),
    ([0, 0, 0], 1, 0),            # higher: in front
    ([9, 5, 5, 0], 5, 3),         # behind its equals, in front of lower
    ([9, 5, 5, 0], 7, 1),
    ([9, 5, 5, 0], 100, 0),
    ([9, 5, 5, 0], 1, 3),
])
def test_insert_position(queue: list[int], priority: int, want: int) -> None:
    assert insert_position(queue, priority, priority_of=int) == want


@given(st.lists(st.tuples(st.integers(-100, 100), st.integers())))
def test_inserting_one_by_one_sorts_stably_by_priority(items: list[tuple[int, int]]) -> None:
    queue: list[tuple[int, int, int]] = []
    for seq, (priority, payload) in enumerate(items):
        queue.insert(insert_position(queue, priority, priority_of=lambda x: x[0]), (priority, seq, payload))
    # higher priority first; first come first served within a priority
    assert queue == sorted(queue, key=lambda x: (-x[0], x[1]))


# -- JSON arguments ----------------------------------------------------------------------------------

def one(event): ...                                      # type: ignore[no-untyped-def]
def two(a, b=2): ...                                     # type: ignore[no-untyped-def]
def needs_two(a, b): ...                                 # type: ignore[no-untyped-def]
def anything(**kw): ...                                  # type: ignore[no-untyped-def]
def nothing(): ...                                       # type: ignore[no-untyped-def]
def star(*args): ...                                     # type: ignore[no-untyped-def]


@pytest.mark.parametrize(("fn", "value", "want"), [
    (one, {"event": 1}, ((), {"event": 1})),                       # keys bind: keywords
    (one, {"prompt": "x", "n": 2}, (({"prompt": "x", "n": 2},), {})),   # they don't: the whole object
    (one, {}, (({},), {})),                                         # missing the parameter: whole
    (one, [1, 2], (([1, 2],), {})),                                 # not an object: whole
    (one, None, ((None,), {})),
    (one, "text", (("text",), {})),
    (two, {"a": 1}, ((), {"a": 1})),
    (two, {"a": 1, "b": 3}, ((), {"a": 1, "b": 3})),
    (two, {"x": 1}, (({"x": 1},), {})),                             # two with a default: one argument works
    (anything, {"x": 1, "y-z": 2}, ((), {"x": 1, "y-z": 2})),
    (nothing, {}, ((), {})),
    (star, [1], (([1],), {})),
])
def test_bind_json(fn: Any, value: object, want: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
    assert bind_json(inspect.signature(fn), value) == want


@pytest.mark.parametrize(("fn", "value", "needle"), [
    (needs_two, {"x": 1}, "(a, b): missing a required argument: 'a'"),
    (needs_two, [1, 2], "(a, b): missing a required argument: 'b'"),
    (nothing, {"x": 1}, "(): got an unexpected keyword argument 'x'"),
    (nothing, 5, "(): too many positional arguments"),
    (anything, [1], "(**kw): too many positional arguments"),
])
def test_bind_json_refuses_what_fits_neither_way(fn: Any, value: object, needle: str) -> None:
    with pytest.raises(TypeError, match="does not fit the function's parameters") as info:
        bind_json(inspect.signature(fn), value)
    assert needle in str(info.value) and "Send a JSON object" in str(info.value)


# -- webhook backoff ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("attempts", "want"), [(1, 5.0), (2, 10.0), (3, 20.0), (10, 2560.0), (11, 3600.0),
                                                (60, 3600.0), (61, 3600.0), (10_000, 3600.0)])
def test_backoff_doubles_up_to_the_cap(attempts: int, want: float) -> None:
    assert Backoff().delay(attempts) == want


@pytest.mark.parametrize(("attempts", "first", "now", "want"), [
    (1, 0.0, 0.0, 5.0),
    (3, 100.0, 130.0, 150.0),
    (20, 0.0, 82_800.0, 86_400.0),          # exactly at the end of the window: still tried
    (20, 0.0, 82_801.0, None),              # past it: give up
    (30, 0.0, 90_000.0, None),
])
def test_next_attempt_within_the_window(attempts: int, first: float, now: float, want: float | None) -> None:
    assert next_attempt_at(Backoff(), attempts=attempts, first_at=first, now=now) == want


def test_full_schedule_spans_24_hours() -> None:
    policy, t, n, times = Backoff(), 0.0, 0, [0.0]
    while True:
        n += 1
        nxt = next_attempt_at(policy, attempts=n, first_at=0.0, now=t)
        if nxt is None:
            break
        t = nxt
        times.append(t)
    assert times[:4] == [0.0, 5.0, 15.0, 35.0]
    assert 80_000 < times[-1] <= 86_400 and 25 <= len(times) <= 40


@pytest.mark.parametrize(("kw", "needle"), [({"base": 0}, "base=0"), ({"base": 10, "cap": 5}, "at most the cap"),
                                            ({"window": 0}, "window=0")])
def test_backoff_validation(kw: dict[str, float], needle: str) -> None:
    with pytest.raises(InvalidError, match=needle):
        Backoff(**kw)


# -- signatures --------------------------------------------------------------------------------------

def test_secret_is_derived_per_credential() -> None:
    a, b = derive_secret("token-a"), derive_secret("token-b")
    assert a.startswith("whsec_") and len(a) == 6 + 64 and a != b
    assert derive_secret("token-a") == a and "token-a" not in a


@pytest.mark.parametrize(("header", "now", "want"), [
    (None, 1000, True),                                  # the real header
    (None, 1300, True),                                  # at the tolerance
    (None, 1301, False),                                 # too old: a replay
    (None, 699, False),                                  # from the future
    ("v1=deadbeef", 1000, False),                        # no timestamp
    ("t=abc,v1=00", 1000, False),                        # bad timestamp
    ("t=1000", 1000, False),                             # no signature
    ("t=1000,v1=00", 1000, False),                       # wrong signature
])
def test_verify_signature(header: str | None, now: float, want: bool) -> None:
    body = b'{"id":"fc-1"}'
    real = signature_header("whsec_x", body, timestamp=1000)
    assert verify_signature("whsec_x", body, header or real, now=now) is want


def test_any_v1_signature_may_match() -> None:
    """Several v1 values are allowed (a receiver checking during a secret rotation)."""
    body = b"{}"
    good = signature_header("whsec_new", body, timestamp=5).split(",")[1]
    assert verify_signature("whsec_new", body, f"t=5,v1=00,{good}", now=5)


@given(st.binary(max_size=256), st.integers(0, 2**40))
def test_signature_round_trip(body: bytes, t: int) -> None:
    header = signature_header("whsec_h", body, timestamp=t)
    assert verify_signature("whsec_h", body, header, now=t)
    assert not verify_signature("whsec_h", body + b"x", header, now=t)
