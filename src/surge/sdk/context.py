"""The process-wide connection the SDK uses, found in this order:

1. one set explicitly (``surge run`` and ``App.run()`` set the one they started or found),
2. ``SURGE_SERVER_URL`` (containers get it from their agent),
3. a server already running on ``SURGE_HOME`` (its ``server.json``),
4. otherwise a new embedded control plane, started for this process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from surge.config import Settings

if TYPE_CHECKING:   # httpx costs ~0.25 s to import: containers that never call out don't pay it
    from surge.sdk.client import Client

_lock = threading.Lock()
_client: Client | None = None

# Set by the CLI to show a progress bar for .map(); called as hook(total_or_None) -> (advance, close).
map_progress_hook: Callable[[int | None], tuple[Callable[[int], None], Callable[[], None]]] | None = None


def set_client(client: Client | None) -> Client | None:
    global _client
    with _lock:
        old, _client = _client, client
    return old


def get_client() -> Client:
    global _client
    with _lock:
        if _client is not None:
            return _client
        from surge.sdk.client import Client

        settings = Settings.from_env()
        if settings.server_url:
            _client = Client(settings.server_url, settings.read_token())
            return _client
    from surge.sdk import embedded
    from surge.sdk.client import Client

    server = embedded.ensure_server(settings)
    with _lock:
        if _client is None:
            _client = Client(server.url, server.token)
        return _client
