"""``surge``: the command line. One module per command group, assembled here."""

from __future__ import annotations

import typer

from surge.cli import (
    apps,
    calls,
    containers,
    deploy,
    doctor,
    logs,
    run,
    secrets,
    server,
    token,
    usage,
    volumes,
    workspaces,
)

cli = typer.Typer(name="surge", no_args_is_help=True, add_completion=False,
                  help="surge: serverless GPU functions on your own machines.")
cli.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(run.run)
cli.command("deploy")(deploy.deploy)
cli.command("server")(server.server)
cli.command("logs")(logs.logs)
cli.command("usage")(usage.usage)
cli.command("doctor")(doctor.doctor)
cli.add_typer(apps.group, name="app")
cli.add_typer(calls.group, name="call")
cli.add_typer(containers.group, name="container")
cli.add_typer(token.group, name="token")
cli.add_typer(secrets.group, name="secret")
cli.add_typer(workspaces.group, name="workspace")
cli.add_typer(volumes.group, name="volume")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
