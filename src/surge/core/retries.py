"""Retry policy and the decision taken when an attempt ends without a result.

Failures come in three kinds:

- **user** failures (the function raised, timed out, was OOM-killed, exited, was signalled, or its
  ``@enter`` failed) use up the user's ``retries`` and wait ``Retries.delay_for(n)``;
- **infrastructure** failures (``WORKER_LOST``: the worker's lease expired) are retried without
  counting against the user, up to ``max_infra_retries`` times, with a short backoff;
- **final** outcomes (cancelled, expired, result too large, no capacity) are never retried.

>>> policy = normalize_retries(2)
>>> decide_retry(policy, TerminalReason.USER_EXCEPTION, user_failures=0, infra_failures=0)
RetryDecision(retry=True, delay=1.0, counts_against_user=True)
>>> Retries(max_retries=5, initial_delay=2.0, max_delay=10.0).delay_for(3)
8.0
"""

from __future__ import annotations

from dataclasses import dataclass

from surge.core.models import TerminalReason
from surge.errors import InvalidError

USER_FAILURES = frozenset({
    TerminalReason.USER_EXCEPTION,
    TerminalReason.TIMEOUT,
    TerminalReason.OOM_KILLED,
    TerminalReason.EXITED,
    TerminalReason.SIGNALED,
    TerminalReason.INIT_FAILURE,
})
INFRA_FAILURES = frozenset({TerminalReason.WORKER_LOST})
FINAL_OUTCOMES = frozenset({
    TerminalReason.CANCELLED,
    TerminalReason.EXPIRED,
    TerminalReason.RESULT_TOO_LARGE,
    TerminalReason.NO_CAPACITY,
})

MAX_RETRIES = 10
_INFRA_FIRST_BACKOFF = 0.5
_INFRA_MAX_BACKOFF = 10.0



@dataclass(frozen=True, slots=True)
class Retries:
    """How often, and how long apart, an input is retried after a user failure (Modal's ranges).

    The delay before retry ``n`` (1-based) is ``initial_delay * backoff_coefficient ** (n - 1)``,
    capped at ``max_delay``.
    """

    max_retries: int
    backoff_coefficient: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise InvalidError(
                f"Retries(max_retries={self.max_retries!r}): must be a whole number between 0 and "
                f"{MAX_RETRIES}, got {type(self.max_retries).__name__}"
            )
        _check("max_retries", self.max_retries, 0, MAX_RETRIES, "")
        _check("backoff_coefficient", self.backoff_coefficient, 1.0, 10.0, "")
        _check("initial_delay", self.initial_delay, 0.0, 60.0, " seconds")
        _check("max_delay", self.max_delay, 1.0, 60.0, " seconds")

    def delay_for(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (the first retry is 1)."""
        if retry_number < 1:
            raise InvalidError(f"retry_number={retry_number} is out of range: retries are numbered from 1")
        if self.initial_delay == 0:
            return 0.0
        try:
            delay = self.initial_delay * self.backoff_coefficient ** (retry_number - 1)
        except OverflowError:
            return self.max_delay
        return min(delay, self.max_delay)


def _check(name: str, value: float, low: float, high: float, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidError(f"Retries({name}={value!r}): must be a number, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidError(f"Retries({name}={value!r}) is out of range: must be between {low:g} and {high:g}{unit}")


def normalize_retries(value: int | Retries | None) -> Retries:
    """The ``retries=`` option as a policy: ``n`` means n retries, 1 s apart (as in Modal)."""
    if value is None:
        value = 0
    if isinstance(value, Retries):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(
            f"retries={value!r}: expected a whole number of retries (0..{MAX_RETRIES}) or "
            f"surge.Retries(...), got {type(value).__name__}"
        )
    if not 0 <= value <= MAX_RETRIES:
        raise InvalidError(f"retries={value} is out of range: must be between 0 and {MAX_RETRIES}")
    return Retries(max_retries=value, backoff_coefficient=1.0, initial_delay=1.0)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """``retry``: run another attempt after ``delay`` seconds.

    ``counts_against_user``: this failure is the user's (it uses up one of their ``retries``).
    """

    retry: bool
    delay: float
    counts_against_user: bool


def decide_retry(
    policy: Retries,
    reason: TerminalReason,
    *,
    user_failures: int,
    infra_failures: int,
    max_infra_retries: int = 8,
) -> RetryDecision:
    """What to do after an attempt ended with ``reason``.

    ``user_failures`` and ``infra_failures`` count the failures *before* this one. Infrastructure
    retries wait 0 s the first time, then ``min(0.5 * 2 ** k, 10)`` s for k = 0, 1, 2, …
    """
    if user_failures < 0 or infra_failures < 0:
        raise InvalidError(
            f"failure counts must be at least 0, got user_failures={user_failures}, infra_failures={infra_failures}"
        )
    if reason in USER_FAILURES:
        if user_failures < policy.max_retries:
            return RetryDecision(True, policy.delay_for(user_failures + 1), counts_against_user=True)
        return RetryDecision(False, 0.0, counts_against_user=True)
    if reason in INFRA_FAILURES and infra_failures < max_infra_retries:
        return RetryDecision(True, _infra_delay(infra_failures), counts_against_user=False)
    return RetryDecision(False, 0.0, counts_against_user=False)


def _infra_delay(infra_failures: int) -> float:
    if infra_failures == 0:
        return 0.0
    # Past 2^5 the cap has long been reached; bounding k keeps the power small.
    k = min(infra_failures - 1, 5)
    return min(_INFRA_FIRST_BACKOFF * 2.0**k, _INFRA_MAX_BACKOFF)
