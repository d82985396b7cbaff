"""``surge logs APP[::function] [-f]``."""

from __future__ import annotations

import typer

from surge.cli import output
from surge.cli.common import call, client


def logs(ref: str = typer.Argument(..., help="APP or APP::function"),
         follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
         json: bool = typer.Option(False, "--json", help="one JSON object per line")) -> None:
    """Print the container output of a deployed app."""
    import json as _json

    app, _, function = ref.partition("::")
    c = client()
    since = 0
    try:
        while True:
            page = call(c.logs, app=app, function=function or None, since=since, wait=10.0 if follow else 0.0)
            for line in page["lines"]:
                if json:
                    print(_json.dumps(line), flush=True)
                else:
                    print(f"{output.fmt_time(line['at'])} [{line['function']} {line['container_id'][-6:]}] "
                          f"{line['text']}", flush=True)
            if not follow and not page["lines"]:
                if since == 0 and not json:
                    output.info(f"no output from {ref} yet")
                return
            since = page["cursor"]
    except KeyboardInterrupt:
        return
