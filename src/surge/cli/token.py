"""``surge token show``."""

from __future__ import annotations

import typer

from surge.cli import output
from surge.config import Settings

group = typer.Typer(help="The API token SDK and CLI send to the control plane.", no_args_is_help=True)


@group.command("show")
def show() -> None:
    """Print the token (from SURGE_TOKEN or SURGE_HOME/token)."""
    settings = Settings.from_env()
    token = settings.read_token()
    if not token:
        output.error(f"no token yet: it is created at {settings.token_path} when a server first starts")
        raise typer.Exit(1)
    print(token)
