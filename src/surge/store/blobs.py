"""Content-addressed files (app source archives): ``blobs/<sha[:2]>/<sha>``, written atomically."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from surge.errors import InvalidError, NotFoundError

_SHA = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        if not _SHA.match(sha):
            raise InvalidError(f"{sha!r} is not a sha256 hex digest (64 lowercase hex characters)")
        return self.root / sha[:2] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, sha: str, data: bytes) -> None:
        dest = self.path(sha)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise InvalidError(f"blob content hashes to {actual}, not {sha}: the upload was corrupted")
        if dest.is_file():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, sha: str) -> bytes:
        try:
            return self.path(sha).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {sha} is not stored on this server") from None
