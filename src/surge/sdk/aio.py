"""``f.remote(...)`` and ``await f.remote.aio(...)`` from one definition.

The async form runs the blocking form on a worker thread: the SDK's transport is synchronous, and a
thread per outstanding call is what an event loop user would otherwise write by hand."""

from __future__ import annotations

import asyncio
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
    """Drive a blocking iterator on a thread and yield its items to the event loop."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[Any] = asyncio.Queue(maxsize=1024)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in make():
                if stop.is_set():
                    return
                asyncio.run_coroutine_threadsafe(q.put((True, item)), loop).result()
            asyncio.run_coroutine_threadsafe(q.put((False, _DONE)), loop).result()
        except BaseException as exc:  # handed to the consumer
            asyncio.run_coroutine_threadsafe(q.put((False, exc)), loop).result()

    t = threading.Thread(target=pump, name="surge-aio-iter", daemon=True)
    t.start()
    try:
        while True:
            ok, item = await q.get()
            if ok:
                yield item
            elif item is _DONE:
                return
            else:
                raise item
    finally:
        stop.set()

