"""Web endpoints for benchmarks/web_endpoint.py: no-op endpoints, so what is measured is the path
to them (the gateway, the proxy hop, the container's server).

``raw_noop`` is also the bare-uvicorn ceiling (``uvicorn web_bench_app:raw_noop``).
``cold_0`` ... ``cold_{COLD-1}`` are identical endpoints, each requested once, so each request
finds zero containers.
"""

from __future__ import annotations

from typing import Any

import surge

app = surge.App("web-bench")
COLD = 12

_BODY = b'{"ok":true}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def raw_noop(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI app: answers every request with the same body."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


@app.function(max_containers=1, scaledown_window=300)
@surge.concurrent(max_inputs=64)
@surge.fastapi_endpoint()
async def noop() -> dict[str, bool]:
    return {"ok": True}


@app.function(max_containers=1, scaledown_window=300)
@surge.concurrent(max_inputs=64)
@surge.asgi_app(label="raw")
def raw() -> Any:
    return raw_noop


def _cold(i: int) -> Any:
    async def cold() -> dict[str, bool]:
        return {"ok": True}

    cold.__name__ = cold.__qualname__ = f"cold_{i}"
    return app.function(scaledown_window=300)(surge.fastapi_endpoint()(cold))


for _i in range(COLD):
    globals()[f"cold_{_i}"] = _cold(_i)
