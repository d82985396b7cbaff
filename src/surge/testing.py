"""Test helpers shipped with surge, for unit-testing pure logic (integration tests use the real
store and real processes).

>>> clock = FakeClock(100.0)
>>> clock.advance(5); clock()
105.0
"""

from __future__ import annotations

from surge.store import open_store
from surge.store.base import Store


class FakeClock:
    """A clock you move by hand; pass ``clock()`` as ``now`` to the functions in ``surge.core``."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds


def memory_store() -> Store:
    """An in-memory store (SQLite ``:memory:``, the same code as the real one). ``await store.open()``
    before use."""
    return open_store("sqlite://:memory:")
