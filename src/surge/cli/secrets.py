"""``surge secret create|list|delete``: named secrets, injected as environment variables into the
containers of functions that use ``surge.Secret.from_name(NAME)``."""

from __future__ import annotations

from pathlib import Path

import typer

from surge.cli import output
from surge.cli.common import call, client
from surge.sdk.secret import parse_dotenv

group = typer.Typer(help="Named secrets (encrypted at rest; values are never shown).", no_args_is_help=True)


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments (the value may contain ``=``). A bad one is reported by position:
    echoing it could print a value."""
    env: dict[str, str] = {}
    for i, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            output.error(f"argument {i} is not KEY=VALUE")
            raise typer.Exit(2)
        env[key] = value
    return env


@group.command("create")
def create(name: str = typer.Argument(..., help="the secret's name, used by surge.Secret.from_name"),
           pairs: list[str] = typer.Argument(None, metavar="KEY=VALUE...", help="variables to store"),
           from_dotenv: Path = typer.Option(None, "--from-dotenv", help="read KEY=VALUE lines from a file "
                                            "(keeps values out of your shell history)"),
           force: bool = typer.Option(False, "--force", help="replace the secret if it exists")) -> None:
    """Create a secret from KEY=VALUE pairs (the values are encrypted before they are stored)."""
    env = parse_dotenv(from_dotenv.read_text()) if from_dotenv else {}
    env.update(parse_pairs(pairs or []))
    if not env:
        output.error("give at least one KEY=VALUE (or --from-dotenv FILE)")
        raise typer.Exit(2)
    data = call(client(start_embedded=True).request, "POST", "/v1/secrets",
                json={"name": name, "env": env, "overwrite": force})
    verb = "created" if data["created"] else "replaced"
    output.info(f"{verb} secret {data['name']} with key(s) {', '.join(data['keys'])}")


@group.command("list")
def list_secrets(json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Secrets of your workspace: names, keys and times (never values)."""
    data = call(client().request, "GET", "/v1/secrets")
    if json:
        return output.print_json(data["secrets"])
    output.table("Secrets", ["name", "keys", "created", "updated"],
                 [[s["name"], ", ".join(s["keys"]), output.fmt_time(s["created_at"]),
                   output.fmt_time(s["updated_at"])] for s in data["secrets"]])


@group.command("delete")
def delete(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Delete a secret. Running containers keep their environment; new ones of a function that
    names it fail to start until it is created again."""
    if not yes and not typer.confirm(f"delete secret {name!r}?"):
        raise typer.Exit(1)
    call(client().request, "DELETE", f"/v1/secrets/{name}")
    output.info(f"deleted secret {name}")
