"""``/v1/images``: build an image on this node (streaming its output), list and inspect built ones."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from surge.agent.images import BuildError
from surge.errors import Error, InvalidError, NotFoundError
from surge.sdk.image import spec_hash
from surge.server.routes.deps import Plane, Workspace

router = APIRouter(prefix="/v1/images", tags=["images"])


class BuildImage(BaseModel):
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    spec: dict[str, Any]


@router.post("")
async def build(body: BuildImage, cp: Plane, ws: Workspace, stream: bool = False) -> Any:
    """Build (or find in the cache) the image ``spec`` whose content hash is ``hash``. With
    ``?stream=true`` the answer is NDJSON events as the build runs: ``{"t": "step"|"log"|"done"|"error"}``;
    otherwise one JSON object when it is done (a failed build is a 400 with the failing step's output)."""
    await cp.images.check(ws, body.spec)
    if image_hash_mismatch := _mismatch(body.hash, body.spec):
        raise InvalidError(image_hash_mismatch)
    if not stream:
        image = await cp.images.build(ws, body.hash, body.spec)
        return cp.images.info(image)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def run() -> None:
        try:
            image = await cp.images.build(ws, body.hash, body.spec, queue.put_nowait)
            queue.put_nowait({"t": "image", **cp.images.info(image)})
        except BuildError as exc:
            queue.put_nowait({"t": "error", "code": exc.code, "message": exc.message, "step": exc.step,
                              "output": exc.output})
        except Error as exc:
            queue.put_nowait({"t": "error", "code": exc.code, "message": exc.message})
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())     # not cancelled if the client goes: others may wait for it

    async def events() -> AsyncIterator[bytes]:
        while (event := await queue.get()) is not None:
            yield (json.dumps(event) + "\n").encode()
        await task

    return StreamingResponse(events(), media_type="application/x-ndjson")


@router.get("")
async def list_images(cp: Plane, ws: Workspace) -> dict[str, Any]:
    images = await asyncio.to_thread(cp.images.builder.list_built)
    return {"images": [cp.images.info(i) for i in images]}


@router.get("/{image_hash}")
async def get_image(image_hash: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    image = cp.images.builder.get(image_hash) if re.fullmatch(r"[0-9a-f]{64}", image_hash) else None
    if image is None:
        raise NotFoundError(f"image {image_hash} is not built on this node")
    log = (image.root / "build.log").read_text(errors="replace") if (image.root / "build.log").exists() else ""
    return {**cp.images.info(image), "log": log[-20000:]}


def _mismatch(image_hash: str, spec: dict[str, Any]) -> str | None:
    actual = spec_hash(spec)
    return None if actual == image_hash else f"image spec hashes to {actual}, not {image_hash}"
