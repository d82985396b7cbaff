"""``surge.weights``: a node-wide, content-addressed cache for model files.

A file is stored once per node under its sha256 (``SURGE_HOME/cache/weights/sha256/<hex>``,
read-only); every container that needs it gets a **hard link** to the same inode, not a copy,
so ten containers loading a 10 GB checkpoint share 10 GB of disk and page cache.

>>> path = surge.weights.fetch(
...     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
...     lambda tmp: urllib.request.urlretrieve(URL, tmp))     # downloads once per node
>>> surge.weights.link(sha, "/scratch/model.bin")             # a hard link to the cached file

Concurrent ``fetch`` calls of one hash (from any containers of the node) download once: the
others wait on a file lock and then find the file. A download whose content does not hash to the
requested sha256 is refused and discarded. Cached files must not be modified in place (they are
shared by every link); they are made read-only to make that mistake harder.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from surge.config import Settings
from surge.errors import InvalidError

_SHA = re.compile(r"[0-9a-f]{64}")


def cache_dir() -> Path:
    """``$SURGE_WEIGHTS_DIR`` (set in containers by their agent), else ``SURGE_HOME/cache/weights``."""
    env = os.environ.get("SURGE_WEIGHTS_DIR")
    return Path(env) if env else Settings.from_env().home / "cache" / "weights"


def _check(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA.fullmatch(sha256.lower()):
        raise InvalidError(f"{sha256!r} is not a sha256 hex digest (64 hex characters)")
    return sha256.lower()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path(sha256: str) -> Path | None:
    """The cached file for ``sha256``, or None if this node does not have it."""
    p = cache_dir() / "sha256" / _check(sha256)
    return p if p.is_file() else None


def _store(src: Path, sha: str, *, move: bool) -> Path:
    dest = cache_dir() / "sha256" / sha
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        return dest
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    os.close(fd)
    try:
        if move:
            os.replace(src, tmp)
        else:
            try:
                os.unlink(tmp)
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def put(local: str | os.PathLike[str]) -> str:
    """Add an existing file to the cache (linked if on the same file system, else copied); returns
    its sha256."""
    src = Path(local)
    if not src.is_file():
        raise InvalidError(f"weights.put({str(local)!r}): no such file")
    sha = _file_sha256(src)
    _store(src, sha, move=False)
    return sha


def fetch(sha256: str, download: Callable[[Path], object]) -> Path:
    """The cached file for ``sha256``, calling ``download(tmp_path)`` to write it first if no
    container of this node has fetched it yet (one download per node, however many ask at once)."""
    sha = _check(sha256)
    hit = path(sha)
    if hit is not None:
        return hit
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / sha, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        hit = path(sha)
        if hit is not None:
            return hit
        staging = cache_dir() / "sha256"
        staging.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(dir=staging, prefix=".download-"))
        try:
            tmp = tmpdir / "file"
            download(tmp)
            if not tmp.is_file():
                raise InvalidError(f"weights.fetch({sha[:12]}…): the download function wrote no file at {tmp}")
            actual = _file_sha256(tmp)
            if actual != sha:
                raise InvalidError(f"weights.fetch: the download hashes to {actual}, not {sha}; refused")
            return _store(tmp, sha, move=True)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def link(sha256: str, dest: str | os.PathLike[str]) -> Path:
    """Put the cached file at ``dest`` as a hard link (same inode, no copy). ``dest`` must be on the
    cache's file system (a volume mount or tmpfs is not: copy there instead)."""
    src = path(sha256)
    if src is None:
        raise InvalidError(f"weights.link: {sha256[:12]}… is not cached on this node; fetch() it first")
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError as exc:
        raise InvalidError(f"weights.link: cannot hard-link {src} at {target} ({exc.strerror}); the destination "
                           "must be on the same file system as the cache") from None
    os.replace(tmp, target)
    return target
