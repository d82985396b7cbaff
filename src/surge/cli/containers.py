"""``surge container list`` and ``surge container stop``."""

from __future__ import annotations

import time
from typing import Any

import typer

from surge.cli import output
from surge.cli.common import call, client

group = typer.Typer(help="Containers (worker processes) on this control plane's nodes.", no_args_is_help=True)


def _start(c: dict[str, Any]) -> str | None:
    """How it started, with the reason when a snapshot was wanted but not used."""
    kind = c.get("start")
    if c.get("fallback"):
        return f"{kind or '?'} (no snapshot: {c['fallback']})"
    return kind


@group.command("list")
def list_containers(all: bool = typer.Option(False, "--all", help="include stopped containers"),
                    json: bool = typer.Option(False, "--json")) -> None:
    """Containers with their GPUs, state, how they started, start-up time and inputs served.

    "start" is fresh (a new interpreter), template (a fork of a process that imported the runtime),
    snapshot (a fork of the function's memory snapshot) or zygote (the snapshot process itself);
    ``--json`` adds each start-up phase in seconds."""
    data = call(client().request, "GET", "/v1/containers", params={"all": all})
    if json:
        return output.print_json(data["containers"])
    now = time.time()
    output.table("Containers", ["container id", "app", "function", "state", "start", "gpu", "pid", "up",
                                "cold start", "inputs"],
                 [[c["container_id"], c["app"], c["function"], c["state"], _start(c),
                   f"{c['gpu']}[{','.join(map(str, c['gpu_indices']))}]" if c["gpu"] else None, c["pid"],
                   output.fmt_duration((c["stopped_at"] or now) - c["created_at"]),
                   output.fmt_duration(c["ready_at"] - c["created_at"]) if c["ready_at"] else None,
                   c["inputs_done"]] for c in data["containers"]])


@group.command("stop")
def stop(container_id: str = typer.Argument(..., help="the id `surge container list` shows"),
         wait: float = typer.Option(30.0, help="seconds to wait for it to exit")) -> None:
    """Stop a running container: it finishes the inputs it holds, runs its exit hooks and exits.
    The autoscaler starts a new one if there is work (or min_containers asks for one)."""
    data = call(client().request, "POST", f"/v1/containers/{container_id}/stop", params={"wait": wait})
    if data["stopped"]:
        output.info(f"stopped container {container_id}")
    else:
        output.info(f"container {container_id} is {data['state']}; it exits when its inputs finish")
