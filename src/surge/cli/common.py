"""What every CLI command needs: a client for the configured (or running embedded) server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from surge import errors
from surge.cli import output
from surge.config import Settings

if TYPE_CHECKING:   # httpx is slow to import; `surge --help` and `surge token show` don't need it
    from surge.sdk.client import Client


def client(*, start_embedded: bool = False) -> Client:
    """A client for SURGE_SERVER_URL, or the server already running on SURGE_HOME. Read-only
    commands don't start a server just to find it empty."""
    from surge.sdk import context, embedded
    from surge.sdk.client import Client

    settings = Settings.from_env()
    if settings.server_url:
        return Client(settings.server_url, settings.read_token(), connect_retries=3.0)
    running = embedded.read_running(settings.home)
    if running is not None:
        return Client(running.url, running.token, connect_retries=3.0)
    if start_embedded:
        return context.get_client()
    output.error(f"no surge server is running (SURGE_SERVER_URL is unset and none runs on {settings.home}); "
                 "start one with `surge server`")
    raise typer.Exit(2)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a client call, turning surge errors into a one-line message and exit code 1."""
    try:
        return fn(*args, **kwargs)
    except errors.Error as exc:
        output.error(str(exc))
        raise typer.Exit(1) from None
