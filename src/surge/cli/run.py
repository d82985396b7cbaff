"""``surge run app.py[::name]``: run an app ephemerally (embedded control plane unless configured)."""

from __future__ import annotations

import sys
import traceback

import typer

from surge import errors
from surge.cli import output


def run(ctx: typer.Context, ref: str = typer.Argument(..., help="path/to/app.py[::entrypoint_or_function]"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="don't stream container logs"),
        gpus: str = typer.Option(None, "--gpus", help="declared GPU inventory for the embedded server, "
                                 "e.g. A100-80GB:2,H100:1")) -> None:
    """Run a local entrypoint (or a single function) against surge. Extra --flags become the
    entrypoint's parameters."""
    from surge.cli.loader import import_app_file, parse_flags, pick_target
    from surge.sdk import context

    if gpus:
        _declare_gpus(gpus)
    try:
        app, name = import_app_file(ref)
        kind, target = pick_target(app, name)
        args, kwargs = parse_flags(target.info.raw if kind == "function" else target, list(ctx.args))
    except errors.Error as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    context.map_progress_hook = output.map_progress
    from surge.sdk import image

    image.build_output_hook = output.image_build_display()
    try:
        with app.run(show_logs=not quiet):
            from surge.sdk.web import endpoint_urls

            for tag, url in sorted(endpoint_urls(app).items()):
                output.info(f"web endpoint {tag}: {url}")
            result = target.remote(*args, **kwargs) if kind == "function" else target(*args, **kwargs)
            if kind == "function" and result is not None:
                print(result)
    except errors.Error as exc:
        output.error(str(exc))
        raise typer.Exit(1) from None
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        raise typer.Exit(1) from None


def _declare_gpus(gpus: str) -> None:
    """Hand ``--gpus`` to the embedded server this run will start (it inherits SURGE_GPUS). A server
    that is already configured or running keeps its own inventory: say so rather than ignore it."""
    import os

    from surge.config import Settings
    from surge.sdk import embedded

    settings = Settings.from_env()
    if settings.server_url:
        output.info(f"warning: --gpus is ignored: SURGE_SERVER_URL points at {settings.server_url}, "
                    "whose GPUs were set when it started (`surge server --gpus ...`)")
    elif embedded.read_running(settings.home) is not None:
        output.info(f"warning: --gpus is ignored: a surge server already runs on {settings.home} with its "
                    "own GPUs; stop it, or use another SURGE_HOME")
    os.environ["SURGE_GPUS"] = gpus
