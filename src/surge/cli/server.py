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
           allow_private_webhooks: bool = typer.Option(
               False, "--allow-private-webhooks",
               help="let job webhooks reach loopback and private addresses (default: refused; "
                    "or SURGE_ALLOW_PRIVATE_WEBHOOKS=1)"),
           max_body_bytes: int = typer.Option(None, help="request bodies over this get 413 (default 256 MiB; "
                                              "0: no limit)"),
           rate_limit: float = typer.Option(None, help="requests/s per API token, 429 beyond (default 5000; "
                                            "0: no limit)"),
           rate_burst: float = typer.Option(None, help="requests a token may burst (default 10000)"),
           max_queued: int = typer.Option(None, help="queued inputs per function, 429 beyond (default 100000; "
                                          "0: no limit)"),
           web_hold_timeout: float = typer.Option(None, help="seconds a web request waits for a free "
                                                  "container before a 503 (default 150)"),
           web_host: str = typer.Option(None, help="serve web endpoints also at {label}.{app}.WEB_HOST "
                                        "(e.g. surge.localhost; point *.*.WEB_HOST's DNS here)"),
           sandbox: str = typer.Option(None, help="container isolation: strict | basic | off (default: strict "
                                       "where the host allows it; see `surge doctor`)"),
           sandbox_user: str = typer.Option(None, help="run every container as this account (default: an "
                                            "unprivileged uid per workspace)"),
           log_level: str = typer.Option("info")) -> None:
    """Serve the surge API; point clients at it with SURGE_SERVER_URL=http://HOST:PORT."""
    from surge.server.__main__ import main

    argv = ["--host", host, "--port", str(port), "--log-level", log_level]
    for flag, value in (("--gpus", gpus), ("--home", home), ("--database-url", database_url),
                        ("--sandbox", sandbox), ("--sandbox-user", sandbox_user), ("--web-host", web_host)):
        if value:
            argv += [flag, value]
    for flag, number in (("--max-body-bytes", max_body_bytes), ("--rate-limit", rate_limit),
                         ("--rate-burst", rate_burst), ("--max-queued", max_queued),
                         ("--web-hold-timeout", web_hold_timeout)):
        if number is not None:
            argv += [flag, str(number)]
    if allow_private_webhooks:
        argv.append("--allow-private-webhooks")
    main(argv)
