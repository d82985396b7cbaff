"""Pure path rules for volumes, mounts and images: no I/O, plain strings in, plain values out.

Three kinds of path, three rules:

- a **volume path** names a file inside a volume. It is split into components: ``..`` and NUL
  bytes are refused, ``.`` and empty components vanish, and a leading ``/`` means the volume's root
  (as in Modal: ``vol.listdir("/")``), never a path on the host. Symlinks are the I/O edge's
  business (``surge.server.volumes`` resolves real paths and checks them with ``contains``).
- a **mount path** is where a container sees a volume (``volumes={"/models": vol}``) or an image's
  files (``add_local_dir(..., "/app")``, ``workdir("/app")``): absolute, normalised, not the root and
  not inside the system directories the container itself needs.
- **containment** is decided on path components, never on string prefixes (``/data2`` is not
  inside ``/data``).

>>> volume_parts("/weights/./llama//model.bin")
('weights', 'llama', 'model.bin')
>>> contains("/srv/vol", "/srv/vol2/x")
False
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from surge.errors import InvalidError

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255

# Mounting over these would hide what the container's own process needs (its interpreter, its
# libraries, /proc, devices), so a mount path may be neither one of them nor inside one.
RESERVED_MOUNT_ROOTS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                        "/run", "/sbin", "/sys", "/usr", "/var")
# These may hold mounts below them (``/tmp/scratch``, ``/root/models``) but not be replaced whole.
RESERVED_MOUNT_EXACT = ("/", "/home", "/mnt", "/opt", "/root", "/srv", "/tmp")

_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_text(what: str, path: object) -> str:
    if not isinstance(path, str):
        raise InvalidError(f"{what} {path!r}: must be a string, got {type(path).__name__}")
    if "\x00" in path:
        raise InvalidError(f"{what} {path!r}: contains a NUL byte")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InvalidError(f"{what} is {len(path.encode('utf-8', 'surrogateescape'))} bytes long; "
                           f"the limit is {MAX_PATH_BYTES}")
    return path


def _parts(what: str, path: str) -> tuple[str, ...]:
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidError(f"{what} {path!r}: '..' is not allowed (paths cannot leave their root)")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise InvalidError(f"{what} {path!r}: the name {part[:40]!r}... is longer than "
                               f"{MAX_NAME_BYTES} bytes")
        parts.append(part)
    return tuple(parts)


def volume_parts(path: str) -> tuple[str, ...]:
    """The components of a path inside a volume; ``()`` is the volume's root."""
    return _parts("volume path", _check_text("volume path", path))


def volume_path(path: str) -> str:
    """The canonical form of a volume path: ``"a/b"``, or ``""`` for the root."""
    return "/".join(volume_parts(path))


def mount_path(path: str, what: str = "mount path") -> str:
    """A validated, normalised absolute container path (``"/models"``)."""
    _check_text(what, path)
    if not path.startswith("/"):
        raise InvalidError(f"{what} {path!r} must be absolute, e.g. '/{path.lstrip('./')}'")
    norm = "/" + "/".join(_parts(what, path))
    if norm in RESERVED_MOUNT_EXACT:
        raise InvalidError(f"{what} {path!r} would hide the whole of {norm}; use a directory below it "
                           f"(e.g. '{norm.rstrip('/')}/data') or a new top-level one (e.g. '/data')")
    for root in RESERVED_MOUNT_ROOTS:
        if under(norm, root):
            raise InvalidError(f"{what} {path!r} is inside {root}, which the container's own process needs; "
                               f"pick a path outside {', '.join(RESERVED_MOUNT_ROOTS)} (e.g. '/data')")
    return norm


def under(path: str, root: str) -> bool:
    """``path`` equals ``root`` or lies below it, compared by components."""
    p = [c for c in path.split("/") if c]
    r = [c for c in root.split("/") if c]
    return p[:len(r)] == r


def contains(root: str, target: str) -> bool:
    """Whether the (already resolved, absolute) ``target`` is ``root`` or inside it."""
    return under(target, root)


def overlapping(paths: Iterable[str]) -> tuple[str, str] | None:
    """The first pair of paths where one contains the other (or they are equal), else None."""
    seen: list[str] = []
    for p in paths:
        for q in seen:
            if under(p, q) or under(q, p):
                return (q, p)
        seen.append(p)
    return None


def check_mounts(mounts: Sequence[str]) -> None:
    """Mount paths of one function must not overlap (a mount inside another is ambiguous)."""
    pair = overlapping(mounts)
    if pair is not None:
        raise InvalidError(f"volumes={{...}}: mount paths {pair[0]!r} and {pair[1]!r} overlap; "
                           "mount each volume at its own directory (neither inside the other)")


def volume_name(name: object) -> str:
    """A volume's name: 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not isinstance(name, str) or not _VOLUME_NAME.fullmatch(name):
        raise InvalidError(f"volume name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                           "letter or digit")
    return name


def parse_python_version(version: object) -> tuple[int, int]:
    """``"3.12"`` → ``(3, 12)``; a patch level is accepted and ignored (``"3.12.1"``)."""
    if not isinstance(version, str) or not re.fullmatch(r"3\.\d{1,2}(\.\d{1,3})?", version):
        raise InvalidError(f"python_version={version!r}: give a version like '3.12'")
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def pick_python(wanted: tuple[int, int], found: Sequence[tuple[tuple[int, int], str]]) -> str | None:
    """The first interpreter whose ``(major, minor)`` is ``wanted`` (``found`` is in preference order)."""
    for version, path in found:
        if version == wanted:
            return path
    return None
