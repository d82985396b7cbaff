"""``surge deploy app.py``: publish a new immutable version of an app."""

from __future__ import annotations

import typer

from surge import errors
from surge.cli import output


def deploy(ref: str = typer.Argument(..., help="path/to/app.py"),
           name: str = typer.Option(None, help="deploy under this name instead of the App's"),
           json: bool = typer.Option(False, "--json")) -> None:
    """Upload the app's source (content-addressed) and create a new version; the previous
    version's containers finish their inputs and stop."""
    from surge.cli.loader import import_app_file
    from surge.config import Settings
    from surge.sdk import image

    image.build_output_hook = output.image_build_display()
    try:
        app, _ = import_app_file(ref)
        embedded = not Settings.from_env().server_url
        result = app.deploy(name=name)
    except errors.Error as exc:
        output.error(str(exc))
        raise typer.Exit(1) from None
    from surge.sdk.web import endpoint_urls

    result["web_endpoints"] = endpoint_urls(app, deployed_as=result["name"])
    if json:
        return output.print_json(result)
    output.info(f"deployed {result['name']} v{result['version']} ({len(result['functions'])} functions: "
                f"{', '.join(sorted(result['functions']))})")
    for tag, url in sorted(result["web_endpoints"].items()):
        output.info(f"  web endpoint {tag}: {url}")
    if embedded:
        output.info("note: no SURGE_SERVER_URL is set, so this went to the local state in SURGE_HOME; "
                    "`surge server` serves it")
