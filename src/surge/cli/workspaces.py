"""``surge workspace create|list``: workspaces isolate apps, calls, volumes, secrets, logs, usage
and containers; every token belongs to one."""

from __future__ import annotations

import typer

from surge.cli import output
from surge.cli.common import call, client

group = typer.Typer(help="Workspaces: what a token can see and use (admins create them).", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="machine-readable output")


@group.command("create")
def create(name: str = typer.Argument(..., help="lowercase letters, digits, '-' and '_', e.g. team-a"),
           json: bool = JSON) -> None:
    """Create a workspace (needs an admin token); give it a token with `surge token create -w NAME`."""
    data = call(client().request, "POST", "/v1/workspaces", json={"name": name})
    if json:
        return output.print_json(data)
    output.info(f"created workspace {data['name']}; give it a token with "
                f"`surge token create --workspace {data['name']} --name NAME`")


@group.command("list")
def list_workspaces(json: bool = JSON) -> None:
    """Workspaces you may see (an admin: all; a member: its own)."""
    data = call(client().request, "GET", "/v1/workspaces")
    if json:
        return output.print_json(data["workspaces"])
    output.table("Workspaces", ["name", "created"],
                 [[w["name"], output.fmt_time(w["created_at"]) if w["created_at"] else "-"]
                  for w in data["workspaces"]])
