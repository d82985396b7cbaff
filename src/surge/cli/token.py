"""``surge token show|current|create|list|revoke``: API tokens.

Every token belongs to a workspace and has a role (``admin`` or ``member``; see docs/security.md).
``SURGE_HOME/token`` is the bootstrap admin token of the ``default`` workspace.
"""

from __future__ import annotations

import typer

from surge.cli import output
from surge.cli.common import call, client
from surge.config import Settings

group = typer.Typer(help="API tokens: each belongs to a workspace and has a role (admin or member).",
                    no_args_is_help=True)

JSON = typer.Option(False, "--json", help="machine-readable output")


@group.command("show")
def show() -> None:
    """Print the token this machine uses (from SURGE_TOKEN or SURGE_HOME/token)."""
    settings = Settings.from_env()
    token = settings.read_token()
    if not token:
        output.error(f"no token yet: it is created at {settings.token_path} when a server first starts")
        raise typer.Exit(1)
    print(token)


@group.command("current")
def current(json: bool = JSON) -> None:
    """Which token this machine uses: its id, workspace and role."""
    data = call(client().request, "GET", "/v1/tokens/current")
    if json:
        return output.print_json(data)
    output.info(f"token {data['token_id']} — workspace {data['workspace']}, role {data['role']}")


@group.command("create")
def create(name: str = typer.Option("", "--name", help="what the token is for, e.g. 'ci'"),
           workspace: str = typer.Option(None, "--workspace", "-w",
                                         help="the token's workspace (default: your token's); other "
                                              "workspaces need an admin token"),
           role: str = typer.Option("member", "--role", help="member, or admin (admin tokens only)"),
           json: bool = JSON) -> None:
    """Create a token and print its secret — shown this once, only its hash is stored."""
    body = {"name": name, "workspace": workspace, "role": role}
    data = call(client().request, "POST", "/v1/tokens", json=body)
    if json:
        return output.print_json(data)
    output.info(f"created token {data['token_id']} ({data['name']}) in workspace {data['workspace']}, "
                f"role {data['role']}. Its secret is shown only now; use it as SURGE_TOKEN:")
    print(data["token"])


@group.command("list")
def list_tokens(workspace: str = typer.Option(None, "--workspace", "-w",
                                              help="only this workspace (admins; default: all you may see)"),
                json: bool = JSON) -> None:
    """Tokens you may see (an admin's: every workspace; a member's: its own), never their secrets."""
    data = call(client().request, "GET", "/v1/tokens", params={"workspace": workspace} if workspace else None)
    if json:
        return output.print_json(data["tokens"])
    output.table("Tokens", ["token id", "workspace", "name", "role", "secret", "created", "last used", "state"],
                 [[t["token_id"], t["workspace"], t["name"], t["role"], t["hint"], output.fmt_time(t["created_at"]),
                   output.fmt_time(t["last_used_at"]),
                   "active" if t["active"] else f"revoked {output.fmt_time(t['revoked_at'])}"]
                  for t in data["tokens"]])


@group.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="the token id (tk-…) from `surge token list`"),
           json: bool = JSON) -> None:
    """Revoke a token: the server refuses it from the next request on."""
    data = call(client().request, "POST", f"/v1/tokens/{token_id}/revoke")
    if json:
        return output.print_json(data)
    output.info(f"revoked token {data['token_id']} ({data['name']}, workspace {data['workspace']})")
