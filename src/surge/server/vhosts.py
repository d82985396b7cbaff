"""Virtual hosts for web endpoints: ``{label}.{app}.{web_host}`` → ``/web/{app}/{label}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from surge.core.vhost import normalize_host, split_vhost

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

VHOST_KEY = "surge.vhost"          # set in the scope of a request that came by virtual host


class VirtualHosts:
    """ASGI middleware (outermost): a request whose ``Host`` is ``{label}.{app}.{web_host}`` is
    served as ``/web/{app}/{label}{path}``, before the auth gate and the rate and body limits, so it
    meets exactly what the path form meets. The app sees an empty ``root_path``: it is at the root of
    its host."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, web_host: str | None) -> None:
        self.app = app
        self.web_host = normalize_host(web_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.web_host is not None and scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            found = split_vhost(host, self.web_host)
            if found is not None:
                app_ref, label = found
                path = f"/web/{app_ref or '-'}/{label or '-'}{scope['path']}"
                scope = {**scope, "path": path, "raw_path": path.encode(), VHOST_KEY: host}
        await self.app(scope, receive, send)
