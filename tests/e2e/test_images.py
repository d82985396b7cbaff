"""Images end to end: built by the real server with uv (offline: a local wheel), cached by content
hash, a failed build leaving nothing behind, and a function running in the built environment."""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

import surge
from surge.sdk import context, embedded
from surge.sdk import image as image_mod
from surge.sdk.image import spec_hash


def make_wheel(directory: Path, name: str = "tinypkg", value: int = 42) -> Path:
    """A minimal pure-Python wheel (no build backend, no network)."""
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n".encode(),
        f"{name}-0.1.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n".encode(),
        f"{name}-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: surge-tests\nRoot-Is-Purelib: true\n"
                                       b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-0.1.dist-info/RECORD,,")
    files[f"{name}-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return wheel


class Events:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: Any) -> None:
        self.events.append(dict(event))

    def of(self, t: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["t"] == t]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    ev = Events()
    monkeypatch.setattr(image_mod, "build_output_hook", ev)
    return ev


def images_dir(server: embedded.ServerInfo) -> Path:
    return Path(server.home) / "images"  # type: ignore[attr-defined]


def test_second_build_is_a_cache_hit(server: embedded.ServerInfo, tmp_path: Path, events: Events) -> None:
    marker = tmp_path / "marker"
    img = surge.Image.debian_slim().run_commands(f"echo built >> {marker}; echo building-now")
    first = image_mod.build(context.get_client(), img)
    assert [e["cached"] for e in events.of("done")] == [False]
    assert any(e["line"] == "building-now" for e in events.of("log"))
    built = images_dir(server) / first["hash"]
    assert (built / "image.json").is_file() and (built / "venv" / "bin" / "python").exists()
    meta = (built / "image.json").read_text()

    second = image_mod.build(context.get_client(), img)
    assert second["hash"] == first["hash"]
    assert [e["cached"] for e in events.of("done")] == [False, True]
    assert marker.read_text() == "built\n"                     # the step ran once
    assert (built / "image.json").read_text() == meta           # nothing was rebuilt


def test_failing_run_commands_leaves_nothing_and_shows_the_output(server: embedded.ServerInfo,
                                                                  events: Events) -> None:
    img = surge.Image.debian_slim().env({"X": "1"}).run_commands("echo the-step-said-this; exit 7")
    with pytest.raises(surge.InvalidError) as exc:
        image_mod.build(context.get_client(), img)
    message = str(exc.value)
    assert "step 2" in message and "exit code 7" in message and "the-step-said-this" in message
    h = img.hash()
    assert not (images_dir(server) / h).exists()
    assert not [p for p in images_dir(server).iterdir() if p.name.startswith(".build-")]


def test_bad_package_fails_the_build_cleanly(server: embedded.ServerInfo, tmp_path: Path, events: Events) -> None:
    bogus = tmp_path / "broken-0.1-py3-none-any.whl"
    bogus.write_bytes(b"this is not a zip file")
    img = surge.Image.debian_slim().pip_install(str(bogus))
    with pytest.raises(surge.InvalidError, match=r"step 1 \(pip install broken-0\.1-py3-none-any\.whl\)"):
        image_mod.build(context.get_client(), img)
    assert not (images_dir(server) / img.hash()).exists()


def test_unknown_python_version_lists_what_is_available(server: embedded.ServerInfo, events: Events) -> None:
    img = surge.Image.debian_slim(python_version="3.99").run_commands("true")
    with pytest.raises(surge.InvalidError, match=r"python_version='3\.99' is not installed on this node "
                                                 r"\(available: .*3\.11"):
        image_mod.build(context.get_client(), img)


def test_function_runs_in_the_built_image(server: embedded.ServerInfo, apps_path: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, events: Events) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "data.txt").write_text("baked into the image")
    monkeypatch.setenv("SURGE_TEST_WHEEL", str(make_wheel(tmp_path)))
    monkeypatch.setenv("SURGE_TEST_IMAGE_DIR", str(files))
    sys.modules.pop("images_app", None)
    mod = importlib.import_module("images_app")
    with pytest.raises(ImportError):
        importlib.import_module("tinypkg")                        # not in the client's environment
    with mod.app.run(show_logs=False):
        out = mod.probe.remote()
        plain_prefix = mod.plain.remote()
    image_hash = spec_hash(mod.image.resolve()[0])
    root = images_dir(server) / image_hash
    assert out["value"] == 42
    assert Path(out["prefix"]) == root / "venv"
    assert out["greeting"] == "hello from the image"
    assert out["cwd"] == "/srv/surge-test-files" and out["files"] == ["data.txt"]
    assert out["data"] == "baked into the image"
    assert plain_prefix == sys.prefix                            # no image: surge's own environment
    assert not os.path.exists("/srv/surge-test-files")           # mounted privately, removed after


def test_image_spec_is_checked_by_the_server(server: embedded.ServerInfo) -> None:
    client = context.get_client()
    spec = {"v": 1, "python": None, "steps": [{"op": "dir", "dir": {"blob": "0" * 64, "name": "x", "kind": "dir"},
                                                "remote": "/srv/x"}]}
    with pytest.raises(surge.InvalidError, match="was not uploaded"):
        client.request("POST", "/v1/images", json={"hash": spec_hash(spec), "spec": spec})
    bad = {"v": 1, "python": None, "steps": [{"op": "workdir", "path": "relative"}]}
    with pytest.raises(surge.InvalidError, match="must be absolute"):
        client.request("POST", "/v1/images", json={"hash": spec_hash(bad), "spec": bad})
    with pytest.raises(surge.InvalidError, match="hashes to"):
        client.request("POST", "/v1/images", json={"hash": "1" * 64, "spec": {"v": 1, "python": None, "steps": []}})
