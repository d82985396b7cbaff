"""``surge.Volume``: a named, persistent directory tree that containers mount.

>>> vol = surge.Volume.from_name("weights", create_if_missing=True)
>>> @app.function(volumes={"/models": vol})
... def train():
...     open("/models/checkpoint.bin", "wb").write(b"...")
...     vol.commit()                       # now visible to containers that reload()
>>> with vol.batch_upload() as batch:     # from anywhere: one commit for many files
...     batch.put_file("config.json", "/config.json")
>>> [e.path for e in vol.listdir("/")]
['checkpoint.bin', 'config.json']

Semantics (as Modal's): a container sees the volume as committed when it started (or at its last
``reload()``); its own writes are private until ``commit()``, and are committed again when the
container stops cleanly. ``reload()`` commits pending changes and switches to the newest version;
it refuses ("volume busy") while the container has files open under the mount. Concurrent commits
of different files merge; of the same file, the last writer wins. Paths inside a volume are
volume-rooted (``"/a/b"`` and ``"a/b"`` name the same file); ``..`` is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from surge import errors
from surge.core.paths import check_mounts, mount_path, under, volume_name, volume_path
from surge.sdk.context import get_client


@dataclass(frozen=True)
class FileEntry:
    """One entry of ``Volume.listdir``: ``type`` is ``"file"``, ``"dir"`` or ``"link"``."""

    path: str
    type: str
    mtime: float
    size: int


class Volume:
    """A named volume of the caller's workspace (see the module docstring)."""

    def __init__(self, name: str, *, create_if_missing: bool = False) -> None:
        self.name = volume_name(name)
        if not isinstance(create_if_missing, bool):
            raise errors.InvalidError(f"create_if_missing={create_if_missing!r}: must be True or False")
        self.create_if_missing = create_if_missing
        self._checked = False

    def __repr__(self) -> str:
        return f"surge.Volume({self.name!r})"

    @classmethod
    def from_name(cls, name: str, *, create_if_missing: bool = False, environment_name: str | None = None,
                  version: int | None = None) -> Volume:
        """A lazy reference: nothing is contacted until it is used (or an app using it is deployed,
        which creates it when ``create_if_missing``). ``environment_name`` and ``version`` are
        accepted for Modal compatibility; surge has one environment and one volume format."""
        return cls(name, create_if_missing=create_if_missing)

    def ref(self) -> dict[str, Any]:
        """How a function spec names this volume."""
        return {"name": self.name, "create_if_missing": self.create_if_missing}

    def _path(self, suffix: str = "") -> str:
        return f"/v1/volumes/{self.name}{suffix}"

    def hydrate(self) -> dict[str, Any]:
        """Look the volume up (creating it with ``create_if_missing``); returns its description."""
        client = get_client()
        if self.create_if_missing and not self._checked:
            info: dict[str, Any] = client.request("POST", "/v1/volumes", json={"name": self.name, "exist_ok": True})
        else:
            info = client.request("GET", self._path())
        self._checked = True
        return info

    # -- inside a container ------------------------------------------------------------------------
    def _mounted_here(self) -> bool:
        mounts = json.loads(os.environ.get("SURGE_VOLUMES") or "{}")
        return os.environ.get("SURGE_CONTAINER_ID") is not None and self.name in mounts.values()

    def commit(self) -> None:
        """Make this container's changes to the volume visible to containers that ``reload()``
        (or start) after it. Outside a container there is nothing to commit (uploads commit
        themselves)."""
        if not self._mounted_here():
            return
        get_client().request("POST", self._path("/commit"),
                             json={"container_id": os.environ["SURGE_CONTAINER_ID"]})

    def reload(self) -> None:
        """Commit this container's pending changes, then see the newest committed version. Refused
        while files under the mount are open ("volume busy": close them first)."""
        if not self._mounted_here():
            return
        mounts = json.loads(os.environ["SURGE_VOLUMES"])
        targets = [t for t, n in mounts.items() if n == self.name]
        busy = [p for t in targets for p in _open_files_under(t)]
        if busy:
            raise errors.ConflictError(f"volume busy: {len(busy)} file(s) under the mount are open "
                                       f"({', '.join(busy[:3])}); close them before reload()")
        resp = get_client().request("POST", self._path("/reload"),
                                    json={"container_id": os.environ["SURGE_CONTAINER_ID"]})
        from surge.agent.mounts import mount_overlay, umount

        for m in resp["mounts"]:
            umount(m["target"])
            mount_overlay(m["target"], m["lower"], m["upper"], m["work"])

    # -- files (the committed version, from anywhere) ----------------------------------------------
    def listdir(self, path: str = "/", *, recursive: bool = False) -> list[FileEntry]:
        """Entries under ``path`` in the committed version."""
        self._ensure()
        data = get_client().request("GET", self._path("/ls"),
                                    params={"path": volume_path(path) or "/", "recursive": recursive})
        return [FileEntry(e["path"], e["type"], e["mtime"], e["size"]) for e in data["entries"]]

    def iterdir(self, path: str = "/", *, recursive: bool = False) -> Iterator[FileEntry]:
        yield from self.listdir(path, recursive=recursive)

    def read_file(self, path: str) -> Iterator[bytes]:
        """The committed content of a file, in chunks."""
        self._ensure()
        p = volume_path(path)
        yield from get_client().stream("GET", self._path("/files"), params={"path": p})

    def read_file_into_fileobj(self, path: str, fileobj: IO[bytes]) -> int:
        n = 0
        for chunk in self.read_file(path):
            fileobj.write(chunk)
            n += len(chunk)
        return n

    def remove_file(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file (or a directory with ``recursive=True``); committed at once."""
        self._ensure()
        get_client().request("DELETE", self._path("/files"),
                             params={"path": volume_path(path), "recursive": recursive})

    def put_file(self, local: str | os.PathLike[str] | IO[bytes], remote_path: str, *, force: bool = False) -> None:
        """Upload one file; committed at once."""
        self._ensure()
        remote = volume_path(remote_path)
        if not remote:
            raise errors.InvalidError("put_file: give a path inside the volume, not its root")
        with _open(local) as f:
            get_client().request("PUT", self._path("/files"), params={"path": remote, "force": force},
                                 content=f.read())

    @contextlib.contextmanager
    def batch_upload(self, *, force: bool = False) -> Iterator[BatchUpload]:
        """Collect files and upload them as one commit when the block ends."""
        self._ensure()
        batch = BatchUpload(self, force)
        yield batch
        batch._send()

    def _ensure(self) -> None:
        if not self._checked:
            self.hydrate()


class BatchUpload:
    """``with vol.batch_upload() as batch: batch.put_file(...); batch.put_directory(...)``."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self.volume = volume
        self.force = force
        self._files: list[tuple[str | os.PathLike[str] | IO[bytes], str]] = []

    def put_file(self, local: str | os.PathLike[str] | IO[bytes], remote_path: str) -> None:
        remote = volume_path(remote_path)
        if not remote:
            raise errors.InvalidError("put_file: give a path inside the volume, not its root")
        if isinstance(local, (str, os.PathLike)) and not Path(local).is_file():
            raise errors.InvalidError(f"put_file({str(local)!r}): no such file")
        self._files.append((local, remote))

    def put_directory(self, local_path: str | os.PathLike[str], remote_path: str) -> None:
        base = Path(local_path)
        if not base.is_dir():
            raise errors.InvalidError(f"put_directory({str(local_path)!r}): no such directory")
        remote = volume_path(remote_path)
        for dirpath, _, filenames in os.walk(base):
            for n in sorted(filenames):
                full = Path(dirpath) / n
                rel = full.relative_to(base).as_posix()
                self._files.append((full, f"{remote}/{rel}" if remote else rel))

    def _send(self) -> None:
        if not self._files:
            return
        with tempfile.TemporaryFile() as spool:
            with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for local, remote in self._files:
                    with _open(local) as f:
                        data = f.read()
                    info = tarfile.TarInfo(remote)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            spool.seek(0)
            get_client().request("PUT", self.volume._path("/batch"), params={"force": self.force},
                                 content=spool.read())


@contextlib.contextmanager
def _open(local: str | os.PathLike[str] | IO[bytes]) -> Iterator[IO[bytes]]:
    if not isinstance(local, (str, os.PathLike)):
        yield local
        return
    try:
        with open(local, "rb") as f:
            yield f
    except FileNotFoundError:
        raise errors.InvalidError(f"no such local file: {local!s}") from None


def _open_files_under(target: str) -> list[str]:
    out = []
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                p = os.readlink(f"/proc/self/fd/{fd}")
                if under(p, target):
                    out.append(p)
    return out


def check_volumes(volumes: object, where: str) -> dict[str, Volume]:
    """``volumes=`` of ``@app.function`` / ``@app.cls``, validated at the decorator line."""
    if volumes is None:
        return {}
    if not isinstance(volumes, Mapping):
        raise errors.InvalidError(f"{where}: volumes={volumes!r} must be a dict of mount paths to surge.Volume "
                                  "objects, e.g. volumes={'/models': surge.Volume.from_name('weights')}")
    out: dict[str, Volume] = {}
    for path, vol in volumes.items():
        if not isinstance(vol, Volume):
            hint = " (did you mean surge.Volume.from_name(...)?)" if isinstance(vol, str) else ""
            raise errors.InvalidError(f"{where}: volumes[{path!r}]={vol!r} is not a surge.Volume{hint}")
        out[mount_path(path, f"{where}: volumes mount path")] = vol
    check_mounts(list(out))
    return out
