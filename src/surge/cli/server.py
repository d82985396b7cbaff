"""``surge server``: run the control plane and a local node agent in the foreground."""

from __future__ import annotations

import typer


def server(host: str = typer.Option("127.0.0.1", help="address to listen on"),
           port: int = typer.Option(8765, help="port (0 picks a free one)"),
           gpus: str = typer.Option(None, help='declared GPU inventory, e.g. "A100-80GB:2,H100:1" '
                                    "(default: NVML detection, or SURGE_GPUS)"),
           home: str = typer.Option(None, help="state directory (default SURGE_HOME or ~/.surge)"),
           database_url: str = typer.Option(None, help="sqlite:///path or postgresql://... (default: "
                                            "SQLite in the home)"),
           log_level: str = typer.Option("info")) -> None:
    """Serve the surge API; point clients at it with SURGE_SERVER_URL=http://HOST:PORT."""
    from surge.server.__main__ import main

    argv = ["--host", host, "--port", str(port), "--log-level", log_level]
    for flag, value in (("--gpus", gpus), ("--home", home), ("--database-url", database_url)):
        if value:
            argv += [flag, value]
    main(argv)
