from __future__ import annotations

import doctest

import pytest

import surge.core.retries
from surge.core.models import TerminalReason
from surge.core.retries import (
    FINAL_OUTCOMES,
    INFRA_FAILURES,
    USER_FAILURES,
    Retries,
    RetryDecision,
    decide_retry,
    normalize_retries,
)
from surge.errors import InvalidError

R = TerminalReason


# --- Retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": 0},
        {"max_retries": 10},
        {"max_retries": 3, "backoff_coefficient": 1.0},
        {"max_retries": 3, "backoff_coefficient": 10},
        {"max_retries": 3, "initial_delay": 0},
        {"max_retries": 3, "initial_delay": 60.0},
        {"max_retries": 3, "max_delay": 1},
        {"max_retries": 3, "max_delay": 60.0},
    ],
)
def test_retries_accepts_range_edges(kwargs: dict[str, float]) -> None:
    assert Retries(**kwargs).max_retries == kwargs["max_retries"]  # type: ignore[arg-type]


def test_retries_defaults() -> None:
    assert Retries(3) == Retries(max_retries=3, backoff_coefficient=2.0, initial_delay=1.0, max_delay=60.0)


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"max_retries": -1}, ["max_retries=-1", "between 0 and 10"]),
        ({"max_retries": 11}, ["max_retries=11", "between 0 and 10"]),
        ({"max_retries": 2.0}, ["max_retries=2.0", "whole number between 0 and 10", "got float"]),
        ({"max_retries": True}, ["max_retries=True", "got bool"]),
        ({"max_retries": "3"}, ["max_retries='3'", "got str"]),
        ({"max_retries": 1, "backoff_coefficient": 0.5}, ["backoff_coefficient=0.5", "between 1 and 10"]),
        ({"max_retries": 1, "backoff_coefficient": 11}, ["backoff_coefficient=11", "between 1 and 10"]),
        ({"max_retries": 1, "backoff_coefficient": float("nan")}, ["backoff_coefficient=nan", "between 1 and 10"]),
        ({"max_retries": 1, "initial_delay": -0.1}, ["initial_delay=-0.1", "between 0 and 60 seconds"]),
        ({"max_retries": 1, "initial_delay": 61}, ["initial_delay=61", "between 0 and 60 seconds"]),
        ({"max_retries": 1, "max_delay": 0.5}, ["max_delay=0.5", "between 1 and 60 seconds"]),
        ({"max_retries": 1, "max_delay": 61}, ["max_delay=61", "between 1 and 60 seconds"]),
        ({"max_retries": 1, "max_delay": "5"}, ["max_delay='5'", "must be a number", "got str"]),
        ({"max_retries": 1, "initial_delay": False}, ["initial_delay=False", "got bool"]),
    ],
)
def test_retries_rejects(kwargs: dict[str, object], fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        Retries(**kwargs)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("policy", "n", "expected"),
    [
        (Retries(5), 1, 1.0),
        (Retries(5), 2, 2.0),
        (Retries(5), 3, 4.0),
        (Retries(5, backoff_coefficient=3.0, initial_delay=0.5), 3, 4.5),
        (Retries(5, max_delay=10.0), 4, 8.0),
        (Retries(5, max_delay=10.0), 5, 10.0),
        (Retries(5, backoff_coefficient=1.0, initial_delay=7.0), 9, 7.0),
        (Retries(5, initial_delay=0.0), 4, 0.0),
        (Retries(5, backoff_coefficient=10.0), 10_000, 60.0),  # 10^9999 overflows a float
        (Retries(5, initial_delay=0.0, backoff_coefficient=10.0), 10_000, 0.0),
    ],
)
def test_delay_for(policy: Retries, n: int, expected: float) -> None:
    assert policy.delay_for(n) == expected


@pytest.mark.parametrize("n", [0, -1])
def test_delay_for_is_one_based(n: int) -> None:
    with pytest.raises(InvalidError, match=rf"retry_number={n} is out of range: retries are numbered from 1"):
        Retries(3).delay_for(n)


# --- normalize_retries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Retries(0, backoff_coefficient=1.0, initial_delay=1.0)),
        (0, Retries(0, backoff_coefficient=1.0, initial_delay=1.0)),
        (2, Retries(2, backoff_coefficient=1.0, initial_delay=1.0)),
        (10, Retries(10, backoff_coefficient=1.0, initial_delay=1.0)),
        (Retries(4, backoff_coefficient=3.0), Retries(4, backoff_coefficient=3.0)),
    ],
)
def test_normalize_retries(value: int | Retries | None, expected: Retries) -> None:
    assert normalize_retries(value) == expected


def test_int_retries_are_one_second_apart() -> None:
    policy = normalize_retries(3)
    assert [policy.delay_for(n) for n in (1, 2, 3)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        (-1, ["retries=-1 is out of range", "between 0 and 10"]),
        (11, ["retries=11 is out of range", "between 0 and 10"]),
        (True, ["retries=True", "got bool", "0..10", "surge.Retries"]),
        (False, ["retries=False", "got bool"]),
        (2.0, ["retries=2.0", "got float"]),
        ("3", ["retries='3'", "got str"]),
    ],
)
def test_normalize_retries_rejects(value: object, fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        normalize_retries(value)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)


# --- decide_retry --------------------------------------------------------------------------------


def test_reason_kinds_partition_the_enum() -> None:
    assert USER_FAILURES | INFRA_FAILURES | FINAL_OUTCOMES == set(TerminalReason)
    assert not USER_FAILURES & INFRA_FAILURES
    assert not USER_FAILURES & FINAL_OUTCOMES
    assert not INFRA_FAILURES & FINAL_OUTCOMES


BACKOFF = Retries(3, backoff_coefficient=2.0, initial_delay=1.0, max_delay=3.0)


@pytest.mark.parametrize("reason", sorted(USER_FAILURES))
@pytest.mark.parametrize(
    ("user_failures", "expected"),
    [
        (0, RetryDecision(True, 1.0, True)),
        (1, RetryDecision(True, 2.0, True)),
        (2, RetryDecision(True, 3.0, True)),  # 4.0 capped at max_delay
        (3, RetryDecision(False, 0.0, True)),
        (7, RetryDecision(False, 0.0, True)),
    ],
)
def test_user_failures_use_up_retries(reason: TerminalReason, user_failures: int, expected: RetryDecision) -> None:
    assert decide_retry(BACKOFF, reason, user_failures=user_failures, infra_failures=5) == expected


def test_no_retries_means_no_retry() -> None:
    assert decide_retry(normalize_retries(None), R.USER_EXCEPTION, user_failures=0,
                        infra_failures=0) == RetryDecision(False, 0.0, True)


@pytest.mark.parametrize(
    ("infra_failures", "max_infra", "expected"),
    [
        (0, 8, RetryDecision(True, 0.0, False)),
        (1, 8, RetryDecision(True, 0.5, False)),
        (2, 8, RetryDecision(True, 1.0, False)),
        (3, 8, RetryDecision(True, 2.0, False)),
        (4, 8, RetryDecision(True, 4.0, False)),
        (5, 8, RetryDecision(True, 8.0, False)),
        (6, 8, RetryDecision(True, 10.0, False)),
        (7, 8, RetryDecision(True, 10.0, False)),
        (8, 8, RetryDecision(False, 0.0, False)),
        (999, 10_000, RetryDecision(True, 10.0, False)),
        (0, 0, RetryDecision(False, 0.0, False)),
    ],
)
def test_worker_lost_is_infrastructure(infra_failures: int, max_infra: int, expected: RetryDecision) -> None:
    # The user's budget is spent, yet infrastructure failures are still retried.
    decision = decide_retry(Retries(0), R.WORKER_LOST, user_failures=0, infra_failures=infra_failures,
                            max_infra_retries=max_infra)
    assert decision == expected


@pytest.mark.parametrize("reason", sorted(FINAL_OUTCOMES))
def test_final_outcomes_never_retry(reason: TerminalReason) -> None:
    assert decide_retry(Retries(10), reason, user_failures=0, infra_failures=0) == RetryDecision(False, 0.0, False)


@pytest.mark.parametrize(("user", "infra"), [(-1, 0), (0, -1)])
def test_decide_retry_rejects_negative_counts(user: int, infra: int) -> None:
    with pytest.raises(InvalidError, match="failure counts must be at least 0"):
        decide_retry(Retries(1), R.USER_EXCEPTION, user_failures=user, infra_failures=infra)


def test_docstring_examples() -> None:
    assert doctest.testmod(surge.core.retries).failed == 0
