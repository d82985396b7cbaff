"""The control plane's side of images and container environments.

- ``ImageService.build``: checks a spec from a client (its local-file blobs must have been uploaded
  by the same workspace) and builds it on this node (``surge.agent.images``), streaming events.
- ``prepare_functions``: at app create/deploy, every function's image is built (a cache hit when the
  SDK built it just before) and its volumes are checked or created, so a deploy that cannot run
  fails now, with the reason, instead of at its first container.
- ``launch_environment``: a new container's interpreter, environment and mounts (image files,
  working directory, volumes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surge.agent.images import BuildError, BuiltImage, Emit, ImageBuilder, validate_spec
from surge.agent.mounts import Mount, MountPlan
from surge.core.paths import check_mounts, mount_path, under, volume_name
from surge.errors import InvalidError, UnavailableError
from surge.server.volumes import VolumeService
from surge.store.base import Store
from surge.store.blobs import BlobStore


@dataclass(frozen=True)
class LaunchEnvironment:
    python: str | None
    env: dict[str, str]
    mounts: MountPlan | None


def _blob_refs(spec: Mapping[str, Any]) -> list[str]:
    out = []
    for step in spec.get("steps", []):
        for value in step.values():
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, dict) and "blob" in v:
                    out.append(str(v["blob"]))
    return out


class ImageService:
    def __init__(self, home: Path, store: Store, blobs: BlobStore, volumes: VolumeService) -> None:
        self.builder = ImageBuilder(home / "images", blobs)
        self.store = store
        self.blobs = blobs
        self.volumes = volumes
        self.home = home

    async def check(self, workspace: str, spec: object) -> dict[str, Any]:
        """A valid spec whose local files this workspace uploaded (else a 400 before any build)."""
        checked = validate_spec(spec)
        for sha in _blob_refs(checked):
            if not self.blobs.exists(sha) or not await self._owned(workspace, sha):
                raise InvalidError(f"image file {sha[:12]}… was not uploaded; PUT /v1/blobs/{{sha}} first")
        return checked

    async def build(self, workspace: str, image_hash: str, spec: object, emit: Emit | None = None) -> BuiltImage:
        return await self.builder.ensure(image_hash, await self.check(workspace, spec), emit)

    async def _owned(self, workspace: str, sha: str) -> bool:
        owned = getattr(self.store, "blob_owned", None)
        return True if owned is None else bool(await owned(workspace, sha))

    def info(self, image: BuiltImage) -> dict[str, Any]:
        return {"hash": image.hash, "python": image.python_version, "built_at": image.built_at,
                "build_seconds": image.build_seconds, "cached": image.cached, "env": sorted(image.env),
                "workdir": image.workdir, "dirs": sorted(image.dirs)}

    # -- deploys -----------------------------------------------------------------------------------
    async def prepare_functions(self, workspace: str, functions: Sequence[Mapping[str, Any]]) -> None:
        """Build every function's image and resolve its volumes; raises with the reason."""
        for f in functions:
            tag = f.get("tag")
            img = f.get("image")
            if img is not None:
                if not isinstance(img, dict) or not isinstance(img.get("hash"), str):
                    raise InvalidError(f"function {tag!r}: image must be {{\"hash\": ..., \"spec\": {{...}}}}")
                try:
                    await self.build(workspace, img["hash"], img.get("spec"))
                except BuildError as exc:
                    raise BuildError(f"function {tag!r}: {exc.message}", step=exc.step, output=exc.output) from None
            vols = f.get("volumes") or {}
            if not isinstance(vols, dict):
                raise InvalidError(f"function {tag!r}: volumes must be an object {{path: {{\"name\": ...}}}}")
            paths = [mount_path(p) for p in vols]
            check_mounts(paths)
            for ref in vols.values():
                if not isinstance(ref, dict):
                    raise InvalidError(f"function {tag!r}: volumes values must be {{\"name\": ...}}")
                await self.volumes.row(workspace, volume_name(ref.get("name")),
                                       create=bool(ref.get("create_if_missing")))

    # -- containers --------------------------------------------------------------------------------
    async def launch_environment(self, container_id: str, workspace: str, fn_spec: Mapping[str, Any],
                                 protected: Sequence[str]) -> LaunchEnvironment:
        """Interpreter, environment and mounts for a new container of a function."""
        img_ref = fn_spec.get("image")
        image: BuiltImage | None = None
        if img_ref:
            image = self.builder.get(str(img_ref["hash"]))
            if image is None:   # built at deploy; gone since (SURGE_HOME cleaned): build it again
                image = await self.build(workspace, str(img_ref["hash"]), img_ref.get("spec"))
        keep = [*protected, str(self.home), os.path.dirname(sys.executable)]
        mounts: list[Mount] = []
        env: dict[str, str] = {}
        python = None
        workdir = None
        if image is not None:
            python, env, workdir = image.python, image.container_env(), image.workdir
            keep.append(str(image.root))
            for target, host in sorted(image.dirs.items()):
                mounts.append(Mount("bind", target, host, readonly=True))
        env["SURGE_WEIGHTS_DIR"] = str(self.home / "cache" / "weights")     # surge.weights
        vols = dict(fn_spec.get("volumes") or {})
        mounts += await self.volumes.mounts_for(container_id, workspace, vols, keep)
        if workdir is not None and not any(under(workdir, m.target) for m in mounts):
            mounts.append(Mount("tmpfs", workdir))      # a private, empty working directory
        if not mounts:
            return LaunchEnvironment(python, env, None)
        if not vols and await self.volumes.supported():
            raise UnavailableError("this image mounts files (add_local_dir / workdir), which needs a private mount "
                                f"namespace; this host refuses it ({await self.volumes.supported()})")
        for m in mounts:
            for p in keep:
                if under(p, m.target):
                    raise InvalidError(f"mount path {m.target!r} would hide {p}, which the container needs")
        check_mounts([m.target for m in mounts if m.kind != "tmpfs"])
        targets = [m.target for m in mounts]
        self.volumes.mountpoints.acquire(targets)
        self.volumes.mount_targets[container_id] = targets
        env["SURGE_VOLUMES"] = _volume_env(vols)
        return LaunchEnvironment(python, env, MountPlan(mounts, workdir))


def _volume_env(vols: Mapping[str, Any]) -> str:
    import json

    return json.dumps({mount_path(p): str(ref["name"]) for p, ref in vols.items()}, sort_keys=True)
