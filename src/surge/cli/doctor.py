"""``surge doctor``: what this host gives surge — which sandbox protections are active (cgroups,
namespaces, an unprivileged user, overlayfs, rlimits), GPUs, the store, uv, free disk — each with
ok / warn / missing and a one-line fix.

The probes are the agent's own (``surge.agent.hostcheck``), so what doctor says is what a server
started here will do. Run it as the user the server runs as (normally root).
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import typer

from surge.cli import output
from surge.config import Settings


def _store_check(home: Path) -> Any:
    from surge.agent.hostcheck import Check

    url = os.environ.get("SURGE_DATABASE_URL") or f"sqlite:///{home / 'surge.db'}"
    parsed = urlparse(url)
    if parsed.scheme.startswith("postgres"):
        host, port = parsed.hostname or "localhost", parsed.port or 5432
        try:
            with socket.create_connection((host, port), timeout=3.0):
                pass
        except OSError as exc:
            return Check("store", "missing", f"PostgreSQL at {host}:{port} is unreachable: {exc}",
                         "start PostgreSQL or fix SURGE_DATABASE_URL")
        return Check("store", "ok", f"PostgreSQL at {host}:{port} accepts connections; keep it unreachable "
                     "from containers (they share the host network)")
    path = Path(url.removeprefix("sqlite:///"))
    where = path if path.exists() else path.parent
    if not where.exists():
        return Check("store", "ok", f"SQLite at {path} (created on first start)")
    if not os.access(where, os.W_OK):
        return Check("store", "missing", f"SQLite at {path} is not writable by uid {os.geteuid()}",
                     f"run as the server's user or fix the permissions of {where}")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0
    if mode & 0o004:
        return Check("store", "warn", f"SQLite at {path} is world-readable ({mode:o})",
                     f"chmod 600 {path} (at --sandbox strict containers cannot see it; other host users can)")
    return Check("store", "ok", f"SQLite at {path}")


def _server_check(home: Path) -> Any:
    from surge.agent.hostcheck import Check
    from surge.sdk import embedded

    settings = Settings.from_env()
    url = settings.server_url
    if url is None:
        running = embedded.read_running(home)
        url = running.url if running is not None else None
    if url is None:
        return Check("server", "warn", f"no server runs on {home}", "start one with `surge server`"), None
    import httpx

    try:
        health = httpx.get(f"{url}/health", timeout=3.0).json()
    except Exception as exc:
        return Check("server", "missing", f"{url} does not answer: {exc}", "check the server's log"), None
    sandbox = (health.get("node") or {}).get("sandbox") or {}
    status = "ok" if health.get("status") == "ok" else "warn"
    level = sandbox.get("level", "unknown")
    detail = f"{url}: {health.get('status')}, sandbox {level}"
    fix = "" if level == "strict" else "restart it with `surge server --sandbox strict` (see the rows above)"
    return Check("server", status if level == "strict" else "warn", detail, fix), sandbox


def checks(home: Path) -> tuple[list[Any], dict[str, Any] | None]:
    from surge.agent import hostcheck

    probed = asyncio.run(hostcheck.probe_async())
    rows = hostcheck.sandbox_checks(probed)
    rows += [hostcheck.gpu_check(), _store_check(home), hostcheck.uv_check(), hostcheck.disk_check(home)]
    server, sandbox = _server_check(home)
    rows.append(server)
    return rows, sandbox


def doctor(json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Check this host: sandbox protections, GPUs, store, uv, disk (each with a fix)."""
    from surge.agent.hostcheck import as_dicts

    home = Settings.from_env().home
    rows, sandbox = checks(home)
    if json:
        output.print_json({"home": str(home), "checks": as_dicts(rows), "server_sandbox": sandbox})
        return
    output.table(f"surge doctor ({home})", ["check", "status", "detail", "fix"],
                 [[c.name, c.status, c.detail, c.fix or "-"] for c in rows])
    if sandbox and sandbox.get("gaps"):
        output.info("what the running server's sandbox does not cover: " + "; ".join(sandbox["gaps"]))
    missing = [c.name for c in rows if c.status == "missing"]
    if missing:
        output.info(f"missing: {', '.join(missing)} (see the fix column); docs/reliability.md#threat-model")
