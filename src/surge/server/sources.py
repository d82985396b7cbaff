"""App source archives unpacked once per content hash, for containers to import from."""

from __future__ import annotations

import asyncio
import io
import shutil
import tarfile
import tempfile
from pathlib import Path

from surge.store.blobs import BlobStore


class SourceCache:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root
        self.blobs = blobs
        root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, sha: str) -> Path:
        dest = self.root / sha
        if dest.is_dir():
            return dest
        lock = self._locks.setdefault(sha, asyncio.Lock())
        async with lock:
            if not dest.is_dir():
                await asyncio.to_thread(self._extract, sha, dest)
        return dest

    def _extract(self, sha: str, dest: Path) -> None:
        data = self.blobs.get(sha)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")   # refuses absolute paths, .., links out of tmp
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if not dest.is_dir():
                raise
