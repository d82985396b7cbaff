"""``f.remote(...)`` and ``await f.remote.aio(...)`` from one definition.

The async form runs the blocking form on a worker thread: the SDK's transport is synchronous, and a
thread per outstanding call is what an event loop user would otherwise write by hand."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class _Bound:
    __slots__ = ("_fn", "_obj")

    def __init__(self, obj: Any, fn: Callable[..., Any]) -> None:
        self._obj = obj
        self._fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(self._obj, *args, **kwargs)

    async def _aio(self, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._fn, self._obj, *args, **kwargs)

    @property
    def aio(self) -> Callable[..., Any]:
        return self._aio


class _BoundGen(_Bound):
    @property
    def aio(self) -> Callable[..., AsyncIterator[Any]]:
        def start(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            return iterate_in_thread(lambda: self._fn(self._obj, *args, **kwargs))
        return start


class synchronizer(Generic[T]):
    """Method decorator: the method gains an ``.aio`` coroutine form."""

    def __init__(self, fn: Callable[..., T]) -> None:
        self._fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return _Bound(obj, self._fn)


class gen_synchronizer(synchronizer[T]):
    """Like ``synchronizer`` for methods returning iterators: ``.aio`` gives an async iterator."""

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return _BoundGen(obj, self._fn)


async def iterate_in_thread(make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Drive a blocking iterator on a thread and yield its items to the event loop.

    Closing (or dropping) the async iterator early stops the thread: an iterator with an
    ``abort()`` method (``.remote_gen()``'s ``ItemStream``) is told at once, so a read blocked
    waiting for the next item returns now rather than when that item arrives; a thread waiting for
    room in the queue gives up within ``_POLL`` seconds; the iterator is then closed on its own thread.
    """
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[Any] = asyncio.Queue(maxsize=1024)
    stop = threading.Event()
    made: list[Iterator[T]] = []

    def put(entry: tuple[bool, Any]) -> bool:
        """Hand ``entry`` to the consumer; False once it has stopped listening."""
        try:
            fut = asyncio.run_coroutine_threadsafe(q.put(entry), loop)
        except RuntimeError:          # the event loop is closed
            return False
        while True:
            try:
                fut.result(timeout=_POLL)
                return True
            except concurrent.futures.TimeoutError:
                if stop.is_set():
                    fut.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False

    def pump() -> None:
        it: Iterator[T] | None = None
        ended = False                 # the iterator ran out or raised: nothing to abort
        try:
            it = make()
            made.append(it)
            if stop.is_set():         # stopped before it existed: the reader could not abort it
                return
            for item in it:
                if stop.is_set() or not put((True, item)):
                    return
            ended = True
            put((False, _DONE))
        except BaseException as exc:  # handed to the consumer, unless it has gone
            ended = True
            if not stop.is_set():
                put((False, exc))
        finally:
            if stop.is_set() and not ended:
                _abort(it)            # the consumer may have stopped before `it` existed
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:     # the consumer is gone; nobody to tell
                    pass

    t = threading.Thread(target=pump, name="surge-aio-iter", daemon=True)
    t.start()
    finished = False
    try:
        while True:
            ok, item = await q.get()
            if ok:
                yield item
            elif item is _DONE:
                finished = True
                return
            else:
                finished = True
                raise item
    finally:
        stop.set()
        if not finished and made:
            _abort(made[0])


_POLL = 0.1


def _abort(it: Any) -> None:
    abort = getattr(it, "abort", None)
    if abort is not None:
        abort()
