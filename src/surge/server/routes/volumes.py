"""``/v1/volumes``: named volumes of the caller's workspace, their files, and container commits."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from surge.core.paths import volume_name, volume_parts
from surge.errors import ConflictError, InvalidError
from surge.server.routes.deps import Plane, Workspace
from surge.store.base import VolumeRow

router = APIRouter(prefix="/v1/volumes", tags=["volumes"])


class CreateVolume(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    exist_ok: bool = False


class ContainerRef(BaseModel):
    container_id: str = Field(min_length=1, max_length=128)


def _row(v: VolumeRow) -> dict[str, Any]:
    return {"volume_id": v.id, "name": v.name, "version": v.version, "created_at": v.created_at,
            "committed_at": v.committed_at, "size_bytes": v.size_bytes, "files": v.files}


@router.post("", status_code=201)
async def create(body: CreateVolume, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Create a volume (``exist_ok``: return the existing one instead of a 409)."""
    volume_name(body.name)
    row, created = await cp.store.create_volume(ws, body.name, time.time())
    if not created and not body.exist_ok:
        raise ConflictError(f"volume {body.name!r} already exists")
    return {**_row(row), "created": created}


@router.get("")
async def list_volumes(cp: Plane, ws: Workspace) -> dict[str, Any]:
    return {"volumes": [_row(v) for v in await cp.store.list_volumes(ws)]}


@router.get("/{name}")
async def get(name: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    return _row(await cp.volumes.row(ws, name))


@router.delete("/{name}")
async def delete(name: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Delete a volume and its files (refused while a running container mounts it)."""
    await cp.volumes.delete(ws, name)
    return {"name": name, "deleted": True}


@router.get("/{name}/ls")
async def listdir(name: str, cp: Plane, ws: Workspace, path: str = "/", recursive: bool = False) -> dict[str, Any]:
    """Entries of the committed version under ``path`` (a directory, or one file)."""
    return {"name": name, "path": path, "entries": await cp.volumes.listdir(ws, name, path, recursive)}


@router.get("/{name}/files")
async def read_file(name: str, cp: Plane, ws: Workspace, path: str = "") -> FileResponse:
    """A file's bytes, as committed."""
    full = await cp.volumes.file(ws, name, path)
    return FileResponse(full, media_type="application/octet-stream", filename=os.path.basename(full))


async def _spool(request: Request, directory: Path) -> Path:
    """The request body, streamed to a temporary file in ``directory`` (same file system as the volume)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


@router.put("/{name}/files", status_code=201)
async def put_file(name: str, request: Request, cp: Plane, ws: Workspace, path: str = "",
                   force: bool = False) -> dict[str, Any]:
    """Write one file (the raw body) and commit it as a new version."""
    row = await cp.volumes.row(ws, name)
    if not volume_parts(path):
        raise InvalidError("a file needs a path inside the volume (?path=...), not its root")
    tmp = await _spool(request, cp.volumes.scratch(row))
    try:
        committed = await cp.volumes.put(ws, name, [(path, tmp)], force=force)
    finally:
        tmp.unlink(missing_ok=True)
    return {**_row(committed), "path": path}


@router.put("/{name}/batch", status_code=201)
async def put_batch(name: str, request: Request, cp: Plane, ws: Workspace, force: bool = False) -> dict[str, Any]:
    """Write many files as ONE commit: the body is a tar archive (member names are volume paths;
    absolute names, ``..`` and links are refused)."""
    row = await cp.volumes.row(ws, name)
    base = cp.volumes.scratch(row)
    tmp = await _spool(request, base)
    staging = Path(tempfile.mkdtemp(dir=base, prefix=".batch-"))
    try:
        files: list[tuple[str, Path]] = []
        try:
            with tarfile.open(tmp, mode="r:*") as tar:
                for m in tar.getmembers():
                    if not m.isfile():
                        if m.isdir():
                            continue
                        raise InvalidError(f"batch upload: {m.name!r} is not a regular file")
                    parts = volume_parts(m.name)
                    if not parts:
                        raise InvalidError(f"batch upload: bad member name {m.name!r}")
                    dest = staging / f"{len(files)}"
                    src = tar.extractfile(m)
                    assert src is not None
                    with open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
                    files.append(("/".join(parts), dest))
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidError(f"batch upload: the body is not a tar archive ({exc})") from None
        committed = await cp.volumes.put(ws, name, files, force=force)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return {**_row(committed), "files_written": len(files)}


@router.delete("/{name}/files")
async def remove_file(name: str, cp: Plane, ws: Workspace, path: str = "", recursive: bool = False) -> dict[str, Any]:
    """Remove a file (or, with ``recursive``, a directory) as a new version."""
    return {**_row(await cp.volumes.remove(ws, name, path, recursive=recursive)), "removed": path}


@router.post("/{name}/commit")
async def commit(name: str, body: ContainerRef, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Commit a running container's changes to its mount of the volume."""
    rows = await cp.volumes.commit_container(body.container_id, ws, name)
    return {"name": name, "version": max(r.version for r in rows)}


@router.post("/{name}/reload")
async def reload(name: str, body: ContainerRef, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Commit a container's pending changes and hand it fresh layers over the newest version
    (the container remounts them itself, in its own mount namespace)."""
    return {"name": name, "mounts": await cp.volumes.reload_container(body.container_id, ws, name)}
