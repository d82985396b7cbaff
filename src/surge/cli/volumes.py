"""``surge volume create|list|ls|put|get|rm|delete``: named volumes and their files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from surge.cli import output
from surge.cli.common import call, client

group = typer.Typer(help="Volumes: named, persistent directories that containers mount.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="machine-readable output")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@group.command("create")
def create(name: str) -> None:
    """Create a volume."""
    data = call(client().request, "POST", "/v1/volumes", json={"name": name})
    output.info(f"created volume {data['name']}")


@group.command("list")
def list_volumes(json: bool = JSON) -> None:
    """List the workspace's volumes."""
    data = call(client().request, "GET", "/v1/volumes")
    if json:
        return output.print_json(data["volumes"])
    output.table("Volumes", ["name", "version", "files", "size", "committed", "created"],
                 [[v["name"], v["version"], v["files"], _size(v["size_bytes"]), output.fmt_time(v["committed_at"]),
                   output.fmt_time(v["created_at"])] for v in data["volumes"]])


@group.command("ls")
def ls(name: str, path: str = typer.Argument("/", help="directory (or file) inside the volume"),
       recursive: bool = typer.Option(False, "--recursive", "-r"), json: bool = JSON) -> None:
    """List files of a volume's committed version."""
    data = call(client().request, "GET", f"/v1/volumes/{name}/ls", params={"path": path, "recursive": recursive})
    if json:
        return output.print_json(data["entries"])
    output.table(f"{name}:{path}", ["path", "type", "size", "modified"],
                 [[e["path"] + ("/" if e["type"] == "dir" else ""), e["type"],
                   _size(e["size"]) if e["type"] == "file" else "", output.fmt_time(e["mtime"])]
                  for e in data["entries"]])


@group.command("put")
def put(name: str, local_path: Path = typer.Argument(..., help="local file or directory"),
        remote_path: str = typer.Argument("/", help="where in the volume (a directory ending in '/', or a file)"),
        force: bool = typer.Option(False, "--force", "-f", help="overwrite existing files")) -> None:
    """Upload a file or a directory (one commit)."""
    from surge.sdk import context
    from surge.sdk.volume import Volume

    c = client()
    context.set_client(c)
    vol = Volume(name)
    if not local_path.exists():
        output.error(f"no such file or directory: {local_path}")
        raise typer.Exit(2)
    target = remote_path
    if local_path.is_file() and (remote_path.endswith("/") or remote_path in ("", "/")):
        target = remote_path.rstrip("/") + "/" + local_path.name

    def upload() -> None:
        with vol.batch_upload(force=force) as batch:
            if local_path.is_dir():
                batch.put_directory(local_path, remote_path)
            else:
                batch.put_file(local_path, target)

    call(upload)
    output.info(f"uploaded {local_path} to {name}:{target if local_path.is_file() else remote_path}")


@group.command("get")
def get(name: str, remote_path: str, local_path: str = typer.Argument(".", help="local file or directory; "
                                                                        "'-' writes to stdout"),
        force: bool = typer.Option(False, "--force", "-f", help="overwrite a local file")) -> None:
    """Download a file from a volume."""
    c = client()
    if local_path == "-":
        for chunk in call(lambda: list(c.stream("GET", f"/v1/volumes/{name}/files", params={"path": remote_path}))):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return
    dest = Path(local_path)
    if dest.is_dir():
        dest = dest / os.path.basename(remote_path.rstrip("/"))
    if dest.exists() and not force:
        output.error(f"{dest} exists; pass --force to overwrite it")
        raise typer.Exit(1)
    tmp = dest.with_name(f".{dest.name}.part")

    def download() -> int:
        n = 0
        with open(tmp, "wb") as f:
            for chunk in c.stream("GET", f"/v1/volumes/{name}/files", params={"path": remote_path}):
                f.write(chunk)
                n += len(chunk)
        return n

    try:
        n = call(download)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    output.info(f"downloaded {name}:{remote_path} to {dest} ({_size(n)})")


@group.command("rm")
def rm(name: str, remote_path: str, recursive: bool = typer.Option(False, "--recursive", "-r")) -> None:
    """Remove a file (or a directory with -r) from a volume."""
    call(client().request, "DELETE", f"/v1/volumes/{name}/files", params={"path": remote_path, "recursive": recursive})
    output.info(f"removed {name}:{remote_path}")


@group.command("delete")
def delete(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="don't ask")) -> None:
    """Delete a volume and all its files."""
    if not yes and sys.stdin.isatty() and not typer.confirm(f"delete volume {name!r} and all its files?"):
        raise typer.Exit(1)
    call(client().request, "DELETE", f"/v1/volumes/{name}")
    output.info(f"deleted volume {name}")
