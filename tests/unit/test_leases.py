from __future__ import annotations

import doctest

import pytest

import surge.core.leases
from surge.core.leases import HEARTBEAT_INTERVAL, LEASE_TTL, expired_ids, is_expired, lease_expiry


def test_ttl_covers_at_least_three_heartbeats() -> None:
    assert LEASE_TTL >= 3 * HEARTBEAT_INTERVAL
    assert (LEASE_TTL, HEARTBEAT_INTERVAL) == (15.0, 3.0)


@pytest.mark.parametrize(
    ("now", "ttl", "expected"),
    [(0.0, LEASE_TTL, 15.0), (100.0, LEASE_TTL, 115.0), (100.0, 5.0, 105.0), (1.5, 0.0, 1.5)],
)
def test_lease_expiry(now: float, ttl: float, expected: float) -> None:
    assert lease_expiry(now, ttl) == expected


def test_lease_expiry_default_ttl() -> None:
    assert lease_expiry(10.0) == 10.0 + LEASE_TTL


@pytest.mark.parametrize(
    ("expires_at", "now", "expected"),
    [
        (None, 0.0, False),  # not leased
        (None, 1e12, False),
        (115.0, 100.0, False),
        (115.0, 114.999, False),
        (115.0, 115.0, True),  # the expiry instant is already expired
        (115.0, 115.001, True),
        (115.0, 1000.0, True),
    ],
)
def test_is_expired(expires_at: float | None, now: float, expected: bool) -> None:
    assert is_expired(expires_at, now) is expected


def test_missed_heartbeats() -> None:
    renewed = 100.0
    # a worker that misses four heartbeats in a row still holds its lease
    assert not is_expired(lease_expiry(renewed), renewed + 4 * HEARTBEAT_INTERVAL + 0.5)
    # a worker that is gone loses it one TTL after its last renewal
    assert is_expired(lease_expiry(renewed), renewed + LEASE_TTL)


@pytest.mark.parametrize(
    ("leases", "now", "expected"),
    [
        ([], 100.0, []),
        ([("a", 1, None)], 100.0, []),
        ([("a", 1, 50.0), ("b", 2, 150.0), ("c", 1, None), ("d", 3, 100.0)], 100.0, [("a", 1), ("d", 3)]),
        ([("z", 1, 1.0), ("a", 1, 2.0)], 100.0, [("z", 1), ("a", 1)]),  # order kept
        ([("a", 1, 10.0), ("a", 2, 200.0)], 100.0, [("a", 1)]),  # per attempt
    ],
)
def test_expired_ids(
    leases: list[tuple[str, int, float | None]], now: float, expected: list[tuple[str, int]]
) -> None:
    assert expired_ids(leases, now) == expected


def test_expired_ids_takes_any_iterable() -> None:
    assert expired_ids(iter([("a", 1, 0.0)]), 1.0) == [("a", 1)]


def test_doctests() -> None:
    assert doctest.testmod(surge.core.leases).failed == 0
