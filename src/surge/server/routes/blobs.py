from __future__ import annotations

import time

from fastapi import APIRouter, Request

from surge.errors import TooLargeError
from surge.server.routes.deps import Plane, Workspace

router = APIRouter(prefix="/v1/blobs", tags=["blobs"])

MAX_BLOB = 64 << 20


@router.get("/{sha}/exists")
async def blob_exists(sha: str, cp: Plane, ws: Workspace) -> dict[str, bool]:
    """Whether this workspace uploaded the blob (blobs are stored once, but a workspace may use only
    the ones it uploaded: uploading proves it has the bytes)."""
    return {"exists": cp.blobs.exists(sha) and await cp.store.blob_owned(ws, sha)}


@router.put("/{sha}", status_code=201)
async def put_blob(sha: str, request: Request, cp: Plane, ws: Workspace) -> dict[str, str]:
    """Upload content-addressed bytes (an app's source archive). The sha256 is checked."""
    cp.blobs.path(sha)     # InvalidError for a name that is not a sha256, before reading the body
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_BLOB:
        raise TooLargeError(f"blob is {declared:,} bytes; the limit is {MAX_BLOB:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BLOB:
            raise TooLargeError(f"blob is over the limit of {MAX_BLOB:,} bytes")
        chunks.append(chunk)
    cp.blobs.put(sha, b"".join(chunks))
    await cp.store.add_blob_owner(ws, sha, time.time())
    return {"sha256": sha}
