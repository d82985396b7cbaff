"""Control loops: each tick reads state, asks core/ for a decision, applies it. A failing tick is
logged and counted; the loop itself never dies."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

from surge.store.errors import StoreUnavailable

log = logging.getLogger("surge.loops")

errors: collections.Counter[str] = collections.Counter()
ticks: collections.Counter[str] = collections.Counter()


async def run_forever(name: str, interval: float, step: Callable[[float], Awaitable[object]]) -> None:
    while True:
        try:
            await step(time.time())
            ticks[name] += 1
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:
            # expected while the database is away (and reported by /health): one line, no traceback
            errors[name] += 1
            log.warning("loop %s: %s", name, exc.message)
        except Exception:
            errors[name] += 1
            log.exception("loop %s failed (error #%d); continuing", name, errors[name])
        await asyncio.sleep(interval)
