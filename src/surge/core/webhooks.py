"""Webhook deliveries: when to try again, and how a delivery is signed.

**Schedule.** Attempt 1 is made when the job ends. After failed attempt ``n`` the next waits
``base * 2 ** (n - 1)`` seconds, capped at ``cap``; no attempt is scheduled later than ``window``
after the first (24 h by default), so a receiver that is down for a day stops being retried.

>>> policy = Backoff(base=5.0, cap=3600.0, window=86_400.0)
>>> [policy.delay(n) for n in (1, 2, 3, 12, 13)]
[5.0, 10.0, 20.0, 3600.0, 3600.0]
>>> next_attempt_at(policy, attempts=3, first_at=1000.0, now=1035.0)
1055.0
>>> next_attempt_at(policy, attempts=40, first_at=0.0, now=86_000.0) is None
True

**Signature.** ``X-Surge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``
(the scheme Stripe uses): the timestamp is signed with the body, so a receiver that rejects old
timestamps (``tolerance``) also rejects replays.

>>> header = signature_header("whsec_test", b'{"id": "fc-1"}', timestamp=1700000000)
>>> header.startswith("t=1700000000,v1=")
True
>>> verify_signature("whsec_test", b'{"id": "fc-1"}', header, now=1700000010)
True
>>> verify_signature("whsec_test", b'{"id": "fc-2"}', header, now=1700000010)
False
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from surge.errors import InvalidError

SIGNATURE_HEADER = "X-Surge-Signature"
DEFAULT_TOLERANCE = 300.0          # seconds a receiver should accept a timestamp either side of now
_SECRET_LABEL = b"surge webhook signing secret v1"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between webhook attempts."""

    base: float = 5.0                  # seconds before the second attempt
    cap: float = 3600.0                # longest wait between attempts
    window: float = 86_400.0           # no attempt later than this after the first

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise InvalidError(f"webhook backoff base={self.base!r} must be more than 0 and at most "
                               f"the cap ({self.cap!r} s)")
        if self.window <= 0:
            raise InvalidError(f"webhook retry window={self.window!r} must be more than 0 seconds")

    def delay(self, attempts: int) -> float:
        """Wait after the ``attempts``-th failed attempt (1-based)."""
        if attempts > 60:              # 2 ** 60 overflows nothing, but every cap is reached long before
            return self.cap
        return min(self.base * 2.0 ** (attempts - 1), self.cap)


def next_attempt_at(policy: Backoff, *, attempts: int, first_at: float, now: float) -> float | None:
    """When to try again after ``attempts`` failed attempts, the first made at ``first_at``;
    None once the next attempt would fall outside the retry window (give up)."""
    at = now + policy.delay(attempts)
    return at if at - first_at <= policy.window else None


def derive_secret(key_material: str) -> str:
    """The signing secret for one credential (today the server's token; later each API token).

    Derived, not stored: HMAC of a fixed label under the credential, so it can be recomputed from
    the credential alone and reveals nothing about it."""
    digest = hmac.new(key_material.encode(), _SECRET_LABEL, hashlib.sha256).hexdigest()
    return f"whsec_{digest}"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int) -> str:
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify_signature(secret: str, body: bytes, header: str, *, now: float,
                     tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """What a receiver does: the header parses, its timestamp is within ``tolerance`` of ``now``,
    and one of its ``v1`` signatures matches (compared in constant time)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp)
    return any(hmac.compare_digest(expected, c) for c in candidates)
