"""Packaging an app's source directory: a deterministic archive named by its content hash, so a
deploy of unchanged code uploads nothing and every container of a version imports the same bytes."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

from surge.errors import InvalidError

MAX_SOURCE_BYTES = 64 * 1024 * 1024
_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".venv", "venv", "env", "node_modules", ".mypy_cache",
              ".pytest_cache", ".ruff_cache", "build", "dist", ".tox", ".surge"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".so.tmp")


def module_file_info(module_name: str) -> tuple[Path, str]:
    """``(source_root, importable_name)`` for a loaded module. ``__main__`` becomes its file's stem."""
    mod = sys.modules.get(module_name)
    file = getattr(mod, "__file__", None)
    if not file:
        raise InvalidError(f"module {module_name!r} has no source file; define functions in a .py file")
    path = Path(file).resolve()
    if module_name == "__main__":
        spec = getattr(mod, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            module_name = spec.name   # python -m pkg.app
        else:
            return path.parent, path.stem
    root = path.parent
    depth = module_name.count(".") + (1 if path.name == "__init__.py" else 0)
    for _ in range(depth):
        root = root.parent
    return root, module_name


def package(root: Path) -> tuple[bytes, str]:
    """A gzip'd tar of the directory (deterministic: sorted, zeroed times and owners) and its sha256."""
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                if name.endswith(_SKIP_SUFFIXES) or name.startswith("."):
                    continue
                full = Path(dirpath) / name
                if full.is_symlink() or not full.is_file():
                    continue
                data = full.read_bytes()
                total += len(data)
                if total > MAX_SOURCE_BYTES:
                    raise InvalidError(
                        f"the app's source directory {root} holds more than {MAX_SOURCE_BYTES >> 20} MiB; "
                        "run the app from a directory holding just its code (model weights belong in a "
                        "Volume, not the source tree)")
                info = tarfile.TarInfo(str(full.relative_to(root)))
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    # gzip stores a timestamp in its header: zero it so equal trees give equal hashes
    raw = raw[:4] + b"\x00\x00\x00\x00" + raw[8:]
    return raw, hashlib.sha256(raw).hexdigest()
