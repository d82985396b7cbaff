"""``surge container list``."""

from __future__ import annotations

import time

import typer

from surge.cli import output
from surge.cli.common import call, client

group = typer.Typer(help="Containers (worker processes) on this control plane's nodes.", no_args_is_help=True)


@group.command("list")
def list_containers(all: bool = typer.Option(False, "--all", help="include stopped containers"),
                    json: bool = typer.Option(False, "--json")) -> None:
    """Containers with their GPUs, state, start-up phases and inputs served."""
    data = call(client().request, "GET", "/v1/containers", params={"all": all})
    if json:
        return output.print_json(data["containers"])
    now = time.time()
    output.table("Containers", ["container id", "app", "function", "state", "gpu", "pid", "up", "cold start",
                                "inputs"],
                 [[c["container_id"], c["app"], c["function"], c["state"],
                   f"{c['gpu']}[{','.join(map(str, c['gpu_indices']))}]" if c["gpu"] else None, c["pid"],
                   output.fmt_duration((c["stopped_at"] or now) - c["created_at"]),
                   output.fmt_duration(c["ready_at"] - c["created_at"]) if c["ready_at"] else None,
                   c["inputs_done"]] for c in data["containers"]])
