from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter

from surge.errors import Error
from surge.server.routes.deps import Plane

router = APIRouter(tags=["health"])

# /health answers within this even when the database hangs
STORE_PROBE_TIMEOUT = 1.0


@router.get("/health")
async def health(cp: Plane) -> dict[str, Any]:
    """Liveness and a summary of the node; the only route that needs no token.

    Always 200 while the process serves; ``status`` is ``degraded`` when the store cannot take a
    write (``store.error`` says why): calls are then refused with 503 and ``Retry-After``."""
    out = cp.health()
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(cp.store.ping(), timeout=STORE_PROBE_TIMEOUT)
    except (Error, TimeoutError, OSError) as exc:
        message = getattr(exc, "message", "") or f"no answer within {STORE_PROBE_TIMEOUT:g} s"
        out["store"] = {"ok": False, "error": message}
        out["status"] = "degraded"
    else:
        out["store"] = {"ok": True, "latency_ms": round((time.monotonic() - t0) * 1000, 2)}
    return out
