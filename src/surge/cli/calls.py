"""``surge call list|show|cancel``."""

from __future__ import annotations

import typer

from surge.cli import output
from surge.cli.common import call, client

group = typer.Typer(help="Calls (one .remote, .map, .spawn or HTTP job each) and their inputs.",
                    no_args_is_help=True)


@group.command("list")
def list_calls(app: str = typer.Option(None, help="only calls to this deployed app"),
               limit: int = typer.Option(50, min=1, max=1000),
               json: bool = typer.Option(False, "--json")) -> None:
    """Recent calls, newest first."""
    params: dict[str, object] = {"limit": limit}
    if app:
        params["app"] = app
    data = call(client().request, "GET", "/v1/calls", params=params)
    if json:
        return output.print_json(data["calls"])
    output.table("Calls", ["call id", "app", "function", "kind", "state", "inputs", "created"],
                 [[c["call_id"], c["app"], c["function"], c["kind"], c["state"],
                   " ".join(f"{k.lower()}={v}" for k, v in sorted(c["counts"].items())),
                   output.fmt_time(c["created_at"])] for c in data["calls"]])


@group.command("show")
def show(call_id: str, json: bool = typer.Option(False, "--json")) -> None:
    """One call with each input's state, attempts and reason."""
    data = call(client().request, "GET", f"/v1/calls/{call_id}")
    if json:
        return output.print_json(data)
    output.info(f"{data['call_id']}  {data['app']}::{data['function']}  {data['kind']}  {data['state']}")
    output.table("Inputs", ["#", "input id", "state", "attempt", "reason", "took", "message"],
                 [[i["idx"], i["input_id"], i["state"], i["attempt"], i["reason"],
                   output.fmt_duration(i["finished_at"] - i["started_at"])
                   if i["finished_at"] and i["started_at"] else None,
                   (i["message"] or "").splitlines()[0][:80] if i["message"] else None]
                  for i in data["input_list"]])


@group.command("cancel")
def cancel(call_id: str) -> None:
    """Cancel a call: queued inputs never start, running ones are killed."""
    data = call(client().request, "POST", f"/v1/calls/{call_id}/cancel")
    output.info(f"cancelled {data['cancelled']} input(s) of {call_id}")
