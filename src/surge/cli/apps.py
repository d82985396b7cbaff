"""``surge app list|history|schedules|stop|rollback``."""

from __future__ import annotations

import typer

from surge.cli import output
from surge.cli.common import call, client

group = typer.Typer(help="Deployed apps and their versions.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="machine-readable output")


@group.command("list")
def list_apps(all: bool = typer.Option(False, "--all", help="include ephemeral (surge run) apps"),
              json: bool = JSON) -> None:
    """List apps."""
    c = client()
    data = call(c.request, "GET", "/v1/apps", params={"all": all})
    if json:
        return output.print_json(data["apps"])
    output.table("Apps", ["name", "state", "version", "versions", "deployed", "app id"],
                 [[a["name"], a["state"], a["version"], a["versions"], output.fmt_time(a["deployed_at"]),
                   a["app_id"]] for a in data["apps"]])


@group.command("history")
def history(name: str, json: bool = JSON) -> None:
    """The versions of a deployed app, newest first."""
    data = call(client().request, "GET", f"/v1/apps/{name}/history")
    if json:
        return output.print_json(data)
    output.table(f"{name} ({data['state']})", ["version", "deployed", "current", "functions", "source", "note"],
                 [[v["version"], output.fmt_time(v["created_at"]), "✓" if v["current"] else "",
                   ", ".join(v["functions"]), v["source_hash"][:12],
                   f"rollback to v{v['rollback_of']}" if v.get("rollback_of") else ""] for v in data["versions"]])


@group.command("schedules")
def schedules(name: str, json: bool = JSON) -> None:
    """The scheduled functions of a deployed app, with their next and last runs."""
    data = call(client().request, "GET", f"/v1/apps/{name}/schedules")
    if json:
        return output.print_json(data["schedules"])
    output.table(f"{name} schedules (v{data['version']}, {data['state']})",
                 ["function", "schedule", "next run", "last run", "missed"],
                 [[s["function"], s["schedule"], output.fmt_time(s["next_at"]), output.fmt_time(s["last_fired"]),
                   s["missed"]] for s in data["schedules"]])


@group.command("stop")
def stop(name: str) -> None:
    """Stop an app: cancel its queued and running inputs and stop its containers."""
    data = call(client().request, "POST", f"/v1/apps/{name}/stop")
    output.info(f"stopped {data['name']} ({data['cancelled']} inputs cancelled)")


@group.command("rollback")
def rollback(name: str, version: int = typer.Argument(None, help="version to return to (default: previous)")) -> None:
    """Publish a new version identical to an earlier one."""
    body = {"version": version} if version is not None else None
    data = call(client().request, "POST", f"/v1/apps/{name}/rollback", json=body)
    output.info(f"{name} is now v{data['version']} (same code as v{data['rolled_back_to']})")
