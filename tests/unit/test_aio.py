"""``iterate_in_thread`` (the ``.aio`` form of iterating methods): stopping early stops the worker
thread — an abortable iterator is told at once even while it blocks, a thread waiting for room in
the queue gives up, and the iterator is closed; reading to the end aborts nothing."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator

from surge.sdk.aio import iterate_in_thread

BOUND = 10.0        # a liveness bound, not a measurement: the events below fire at once when it works


class Blocking:
    """Yields one item, then blocks (like a stream waiting for an item that never comes) until aborted."""

    def __init__(self) -> None:
        self.sent = False
        self.aborted = threading.Event()
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if not self.sent:
            self.sent = True
            return 1
        self.aborted.wait()
        raise ConnectionError("aborted under the read")

    def abort(self) -> None:
        self.aborted.set()

    def close(self) -> None:
        self.closed.set()


def test_closing_early_aborts_a_blocked_iterator_and_closes_it() -> None:
    it = Blocking()

    async def main() -> None:
        agen = iterate_in_thread(lambda: it)
        assert await agen.__anext__() == 1
        await agen.aclose()

    asyncio.run(main())
    assert it.aborted.wait(BOUND) and it.closed.wait(BOUND)


def test_a_thread_waiting_for_room_gives_up_when_the_reader_stops() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            yield from itertools.count()
        finally:
            closed.set()

    async def main() -> None:
        agen = iterate_in_thread(endless)
        assert await agen.__anext__() == 0
        await asyncio.sleep(0)          # let the thread fill the queue
        await agen.aclose()

    asyncio.run(main())
    assert closed.wait(BOUND)


def test_reading_to_the_end_aborts_nothing_and_errors_reach_the_reader() -> None:
    class Finite(Blocking):
        def __next__(self) -> int:
            if not self.sent:
                self.sent = True
                return 7
            raise StopIteration

    it = Finite()

    async def read_all() -> list[int]:
        return [x async for x in iterate_in_thread(lambda: it)]

    assert asyncio.run(read_all()) == [7]
    assert it.closed.wait(BOUND) and not it.aborted.is_set()

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("from the thread")

    async def read_failing() -> list[int]:
        return [x async for x in iterate_in_thread(failing)]

    try:
        asyncio.run(read_failing())
    except ValueError as exc:
        assert str(exc) == "from the thread"
    else:
        raise AssertionError("the error did not reach the reader")
