"""``surge.Image``: a content-hashed Python environment for a function's containers.

An image is an immutable list of build steps; every method returns a new ``Image``:

>>> image = (surge.Image.debian_slim(python_version="3.12")
...          .pip_install("numpy==2.1.3")
...          .env({"HF_HOME": "/models/hf"})
...          .add_local_python_source("mylib"))
>>> @app.function(image=image)
... def f(): ...

``Image.from_current()`` (the default) is the environment surge itself runs in: nothing is built.
Any other image is built by the server, with ``uv``, into a virtualenv named by the hash of its
steps and of the local files they reference (``SURGE_HOME/images/<hash>``), once per node: a second
deploy of the same image is a cache hit. ``debian_slim`` keeps Modal's name for portability; it means
"a fresh Python environment" (there is no Debian in it: containers are processes on the node).

Local files (``add_local_dir``, ``add_local_python_source``, requirement files, local wheels or
package directories given to ``pip_install``) are packed deterministically and uploaded with the
app, so a remote server builds exactly what the client has.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surge.core.paths import mount_path, parse_python_version
from surge.errors import InvalidError

SPEC_VERSION = 1
MAX_LOCAL_BYTES = 64 << 20        # one packed local directory (the server's blob limit)
DEFAULT_IGNORE = ("__pycache__", "*.pyc", "*.pyo", ".git", ".hg", ".venv", ".mypy_cache", ".pytest_cache",
                  ".ruff_cache", ".DS_Store")
_PIP_FLAGS = ("index_url", "extra_index_url", "find_links", "pre", "extra_options")


@dataclass(frozen=True)
class _Local:
    """A local file or directory an image step refers to; packed and hashed at deploy time."""

    path: str
    kind: str                       # "file" | "dir" | "module"
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class Blob:
    """Packed local content, ready to upload: ``sha256(data)``."""

    sha: str
    data: bytes


class Image:
    """A Python environment for containers (see the module docstring)."""

    def __init__(self, python: str | None, steps: tuple[dict[str, Any], ...], *, current: bool = False) -> None:
        self._python = python
        self._steps = steps
        self._current = current

    def __repr__(self) -> str:
        if self._current:
            return "surge.Image.from_current()"
        ops = ", ".join(str(s["op"]) for s in self._steps)
        return f"surge.Image(python={self._python or 'current'}, steps=[{ops}])"

    # -- bases -----------------------------------------------------------------------------------
    @classmethod
    def from_current(cls) -> Image:
        """The environment surge runs in (the default): no build, containers use this interpreter."""
        return cls(None, (), current=True)

    @classmethod
    def debian_slim(cls, python_version: str | None = None) -> Image:
        """A fresh, empty Python environment (a virtualenv). ``python_version`` (``"3.12"``) picks an
        interpreter installed on the node; by default, the one surge runs on."""
        if python_version is not None:
            major, minor = parse_python_version(python_version)
            if (major, minor) < (3, 11):
                raise InvalidError(f"python_version={python_version!r}: surge's container runtime needs "
                                   "Python 3.11 or newer")
            python_version = f"{major}.{minor}"
        return cls(python_version, ())

    @property
    def is_current(self) -> bool:
        return self._current

    def _inert(self) -> bool:
        """Inside a container an image is never built (the container already runs in it): its
        methods do nothing, so local paths that exist only on the client need not exist here."""
        return os.environ.get("SURGE_CONTAINER_ID") is not None

    def _add(self, step: dict[str, Any]) -> Image:
        if self._current:
            raise InvalidError(
                f"Image.from_current() is the environment surge runs in and cannot be extended with "
                f"{step['op']!r} steps; start from surge.Image.debian_slim() instead")
        return Image(self._python, (*self._steps, step))

    # -- packages ----------------------------------------------------------------------------------
    def pip_install(self, *packages: str | Sequence[str], index_url: str | None = None,
                    extra_index_url: str | None = None, find_links: str | None = None, pre: bool = False,
                    extra_options: str = "") -> Image:
        """Install packages (requirement strings like ``"numpy>=2"``, or paths to local wheels or
        package directories). Installed with uv's pip-compatible installer."""
        return self._pip("pip_install", packages, locals())

    def uv_pip_install(self, *packages: str | Sequence[str], index_url: str | None = None,
                       extra_index_url: str | None = None, find_links: str | None = None, pre: bool = False,
                       extra_options: str = "") -> Image:
        """Same as ``pip_install`` (both use uv); kept for Modal compatibility."""
        return self._pip("uv_pip_install", packages, locals())

    def _pip(self, method: str, packages: Sequence[str | Sequence[str]], kw: Mapping[str, Any]) -> Image:
        if self._inert():
            return self
        flat = _flatten(method, packages)
        if not flat:
            return self
        items: list[Any] = []
        for p in flat:
            local = _local_package(method, p)
            items.append(local if local is not None else p)
        return self._add({"op": "pip", "packages": items, "flags": _pip_flags(method, kw)})

    def pip_install_from_requirements(self, requirements_txt: str | os.PathLike[str], *,
                                      index_url: str | None = None, extra_index_url: str | None = None,
                                      find_links: str | None = None, pre: bool = False,
                                      extra_options: str = "") -> Image:
        """Install from a requirements file (its content is part of the image's hash)."""
        if self._inert():
            return self
        path = Path(requirements_txt).expanduser()
        if not path.is_file():
            raise InvalidError(f"pip_install_from_requirements({str(requirements_txt)!r}): no such file")
        flags = _pip_flags("pip_install_from_requirements", {
            "index_url": index_url, "extra_index_url": extra_index_url, "find_links": find_links,
            "pre": pre, "extra_options": extra_options})
        return self._add({"op": "requirements", "file": _Local(str(path.resolve()), "file"), "flags": flags})

    # -- environment -------------------------------------------------------------------------------
    def env(self, vars: Mapping[str, str]) -> Image:
        """Environment variables for later build steps and for the containers."""
        from surge.sdk.options import validate_options

        if not isinstance(vars, Mapping):
            raise InvalidError(f"Image.env({vars!r}): give a dict of names to string values")
        return self._add({"op": "env", "vars": dict(sorted(validate_options(env=vars).env.items()))})

    def run_commands(self, *commands: str | Sequence[str]) -> Image:
        """Shell commands run at build time (``sh -c``) with the image's ``python``/``pip`` first on
        ``PATH`` and ``$VIRTUAL_ENV`` set; a failing command fails the build and shows its output."""
        flat = _flatten("run_commands", commands)
        return self._add({"op": "run", "commands": flat}) if flat else self

    def workdir(self, path: str) -> Image:
        """The containers' working directory (absolute; created if missing)."""
        return self._add({"op": "workdir", "path": mount_path(path, "workdir")})

    # -- local files -------------------------------------------------------------------------------
    def add_local_dir(self, local_path: str | os.PathLike[str], remote_path: str, *,
                      ignore: Sequence[str] = ()) -> Image:
        """Copy a local directory into the image; containers see it at ``remote_path``."""
        if self._inert():
            return self
        path = Path(local_path).expanduser()
        if not path.is_dir():
            raise InvalidError(f"add_local_dir({str(local_path)!r}, ...): no such directory")
        if isinstance(ignore, str) or not all(isinstance(p, str) for p in ignore):
            raise InvalidError(f"add_local_dir(ignore={ignore!r}): give a list of glob patterns")
        remote = mount_path(remote_path, "add_local_dir remote path")
        return self._add({"op": "dir", "dir": _Local(str(path.resolve()), "dir", tuple(ignore)),
                          "remote": remote})

    def add_local_python_source(self, *modules: str, ignore: Sequence[str] = ()) -> Image:
        """Make local modules or packages (found by name, as ``import`` would find them) importable in
        the image, without installing them as distributions."""
        if self._inert():
            return self
        if not modules:
            raise InvalidError("add_local_python_source() needs at least one module name")
        found: list[_Local] = []
        for name in modules:
            if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")) or "." in name:
                raise InvalidError(f"add_local_python_source({name!r}): give a top-level module or package "
                                   "name, like 'mylib'")
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin in (None, "built-in", "frozen"):
                raise InvalidError(f"add_local_python_source({name!r}): no such module on the local sys.path")
            origin = Path(spec.origin)
            if spec.submodule_search_locations:
                found.append(_Local(str(origin.parent.resolve()), "dir", tuple(ignore)))
            elif origin.suffix == ".py":
                found.append(_Local(str(origin.resolve()), "file"))
            else:
                raise InvalidError(f"add_local_python_source({name!r}): {origin} is not Python source")
        return self._add({"op": "python_source", "modules": list(modules), "sources": found})

    # -- the spec ----------------------------------------------------------------------------------
    def resolve(self) -> tuple[dict[str, Any], list[Blob]]:
        """The JSON spec (local content replaced by content hashes) and the blobs to upload."""
        if self._current:
            raise InvalidError("Image.from_current() has no build spec")
        blobs: dict[str, Blob] = {}

        def pack(local: _Local) -> dict[str, Any]:
            blob = _pack(local)
            blobs[blob.sha] = blob
            return {"blob": blob.sha, "name": Path(local.path).name, "kind": local.kind}

        steps = []
        for step in self._steps:
            out: dict[str, Any] = {}
            for key, value in step.items():
                if isinstance(value, _Local):
                    out[key] = pack(value)
                elif isinstance(value, list):
                    out[key] = [pack(v) if isinstance(v, _Local) else v for v in value]
                else:
                    out[key] = value
            steps.append(out)
        return {"v": SPEC_VERSION, "python": self._python, "steps": steps}, list(blobs.values())

    def hash(self) -> str:
        """The content hash naming the built environment (changes with any step or local file)."""
        return spec_hash(self.resolve()[0])


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_image(value: object, where: str) -> Image | None:
    """``image=`` of App / @app.function / @app.cls: an Image or None (validated at the decorator)."""
    if value is None or isinstance(value, Image):
        return value
    hint = " (did you forget the parentheses: surge.Image.debian_slim()?)" if callable(value) else ""
    raise InvalidError(f"{where}: image={value!r} is not a surge.Image{hint}")


# -- helpers ---------------------------------------------------------------------------------------

def _flatten(method: str, items: Iterable[str | Sequence[str]]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            values: Iterable[Any] = [item]
        elif isinstance(item, (list, tuple)):
            values = item
        else:
            raise InvalidError(f"{method}({item!r}): give strings (or lists of strings), got {type(item).__name__}")
        for v in values:
            if not isinstance(v, str) or not v.strip():
                raise InvalidError(f"{method}({v!r}): each argument must be a non-empty string")
            if "\x00" in v:
                raise InvalidError(f"{method}({v!r}): contains a NUL byte")
            out.append(v.strip())
    return out


def _local_package(method: str, spec: str) -> _Local | None:
    """A local wheel/sdist/package directory given to pip_install, else None (a requirement string)."""
    looks_local = spec.startswith((".", "/", "~")) or spec.endswith((".whl", ".tar.gz", ".zip"))
    if not looks_local:
        return None
    path = Path(spec).expanduser()
    if path.is_file():
        return _Local(str(path.resolve()), "file")
    if path.is_dir():
        if not any((path / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
            raise InvalidError(f"{method}({spec!r}): the directory has no pyproject.toml or setup.py")
        return _Local(str(path.resolve()), "dir")
    raise InvalidError(f"{method}({spec!r}): looks like a local path, but there is no such file or directory")


def _pip_flags(method: str, kw: Mapping[str, Any]) -> list[str]:
    flags: list[str] = []
    for key in ("index_url", "extra_index_url", "find_links"):
        value = kw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value or value.startswith("-"):
            raise InvalidError(f"{method}({key}={value!r}): give a URL or path string")
        flags += [f"--{key.replace('_', '-')}", value]
    if not isinstance(kw.get("pre", False), bool):
        raise InvalidError(f"{method}(pre={kw.get('pre')!r}): must be True or False")
    if kw.get("pre"):
        flags.append("--prerelease=allow")
    extra = kw.get("extra_options") or ""
    if not isinstance(extra, str):
        raise InvalidError(f"{method}(extra_options={extra!r}): give a string of extra installer flags")
    flags += extra.split()
    return flags


def _ignored(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    return any(fnmatch.fnmatch(p, pat) for pat in patterns for p in parts) or any(
        fnmatch.fnmatch(rel, pat) for pat in patterns)


def _pack(local: _Local) -> Blob:
    """A deterministic gzip'd tar of a directory, or a file's bytes; named by sha256."""
    path = Path(local.path)
    if local.kind == "file":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidError(f"image file {path}: {exc}") from None
        if len(data) > MAX_LOCAL_BYTES:
            raise InvalidError(f"image file {path} is {len(data):,} bytes; the limit is {MAX_LOCAL_BYTES:,} "
                               "(put large files in a Volume)")
        return Blob(hashlib.sha256(data).hexdigest(), data)
    if not path.is_dir():
        raise InvalidError(f"image directory {path} is gone")
    patterns = (*DEFAULT_IGNORE, *local.ignore)
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6) as tar:
        for dirpath, dirnames, filenames in os.walk(path):
            rel_dir = os.path.relpath(dirpath, path)
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames[:] = sorted(d for d in dirnames if not _ignored(os.path.join(rel_dir, d), patterns))
            for name in sorted(filenames):
                rel = os.path.join(rel_dir, name)
                full = Path(dirpath) / name
                if _ignored(rel, patterns) or not full.is_file():
                    continue
                data = full.read_bytes()
                total += len(data)
                if total > MAX_LOCAL_BYTES:
                    raise InvalidError(f"image directory {path} holds more than {MAX_LOCAL_BYTES >> 20} MiB; "
                                       "put large files in a Volume (or narrow it with ignore=[...])")
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                info.mode = 0o755 if os.access(full, os.X_OK) else 0o644
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    raw = raw[:4] + b"\x00\x00\x00\x00" + raw[8:]   # zero gzip's timestamp: equal trees, equal hashes
    return Blob(hashlib.sha256(raw).hexdigest(), raw)


def _print_event(event: Mapping[str, Any]) -> None:
    """Build output without the CLI: step headers and log lines on stderr (cache hits are silent)."""
    if event.get("t") == "step":
        sys.stderr.write(f"[image] step {event['index']}/{int(event['total']) - 1}: {event['desc']}\n")
    elif event.get("t") == "log":
        sys.stderr.write(f"[image]   {event['line']}\n")


# Set by the CLI to render build output (a progress display); called with each build event:
# {"t": "start", "hash"}, {"t": "step", "index", "total", "desc"}, {"t": "log", "line"},
# {"t": "done", "hash", "cached", "seconds"}, {"t": "image", ...}.
build_output_hook: Callable[[Mapping[str, Any]], None] | None = None


def build(client: Any, image: Image) -> dict[str, Any]:
    """Upload the image's local files and have the server build it, streaming its output to
    ``build_output_hook``; returns ``{"hash", "spec"}`` for the function spec. A failed build
    raises ``InvalidError`` with the failing step's output."""
    spec, blobs = image.resolve()
    for blob in blobs:
        client.put_blob(blob.sha, blob.data)
    image_hash = spec_hash(spec)
    show = build_output_hook or _print_event
    show({"t": "start", "hash": image_hash})
    buf = b""
    for chunk in client.stream("POST", "/v1/images", params={"stream": "true"},
                               json={"hash": image_hash, "spec": spec}, timeout=None):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("t") == "error":
                raise InvalidError(str(event.get("message")))
            show(event)
    return {"hash": image_hash, "spec": spec}


def attach_images(client: Any, functions: list[dict[str, Any]], images: Mapping[str, Image]) -> list[dict[str, Any]]:
    """Build each distinct image once and name it (``"image": {"hash", "spec"}``) in its functions' specs."""
    built: dict[int, dict[str, Any]] = {}
    for f in functions:
        image = images.get(str(f.get("tag")))
        if image is None:
            continue
        if id(image) not in built:
            built[id(image)] = build(client, image)
        f["image"] = built[id(image)]
    return functions
