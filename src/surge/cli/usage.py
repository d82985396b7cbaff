"""``surge usage``: per-second metering, split into inference, cold start and keep-warm."""

from __future__ import annotations

import time
from typing import Any

import typer

from surge.cli import output
from surge.cli.common import call, client


def usage(hours: float = typer.Option(24.0, help="look back this many hours"),
          app: str = typer.Option(None, help="only this app"),
          json: bool = typer.Option(False, "--json")) -> None:
    """GPU/CPU/memory seconds and cost per function over a window."""
    params: dict[str, object] = {"since": time.time() - hours * 3600}
    if app:
        params["app"] = app
    data = call(client().request, "GET", "/v1/usage", params=params)
    if json:
        return output.print_json(data)

    def row(name: str, r: dict[str, Any]) -> list[object]:
        ph = r["phases"]
        secs = {k: ph.get(k, {}).get("seconds", 0.0) for k in ("busy", "cold_start", "idle")}
        costs = {k: ph.get(k, {}).get("cost", 0.0) for k in ("busy", "cold_start", "idle")}
        return [name, r["containers"], f"{secs['busy']:.1f}", f"{secs['cold_start']:.1f}", f"{secs['idle']:.1f}",
                f"{r['total']['gpu_seconds']:.1f}", f"${costs['busy']:.4f}", f"${costs['cold_start']:.4f}",
                f"${costs['idle']:.4f}", f"${r['total']['cost']:.4f}"]

    rows = [row(k, v) for k, v in data["by_function"].items()] + [row("total", data)]
    output.table(f"Usage, last {hours:g} h", ["function", "containers", "busy s", "cold s", "idle s", "GPU s",
                                             "inference $", "cold start $", "keep-warm $", "total $"], rows)
    starts = [[kind, c["count"], output.fmt_duration(c["mean_seconds"]), f"{c['seconds']:.2f}"]
              for kind, c in (data.get("cold_starts") or {}).items() if c["count"]]
    if starts:
        output.table("Cold starts by how they started", ["start", "containers", "mean to ready", "seconds"],
                     starts)
