"""Volumes end to end: real containers with private mount namespaces and overlays on the real
server; commit/reload visibility between two containers, path escapes refused at the API, the
weights cache sharing one inode between containers, and the CLI round trip."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import surge
from surge.sdk import embedded


@pytest.fixture
def volumes_app(server: embedded.ServerInfo, apps_path: Path, monkeypatch: pytest.MonkeyPatch,
                request: pytest.FixtureRequest) -> ModuleType:
    monkeypatch.setenv("SURGE_TEST_VOLUME", f"vol-{request.node.name[-40:].replace('_', '-').strip('-')}")
    sys.modules.pop("volumes_app", None)
    return importlib.import_module("volumes_app")


def test_commit_and_reload_between_two_containers(volumes_app: ModuleType) -> None:
    app, vol = volumes_app.app, volumes_app.vol
    with app.run(show_logs=False):
        assert volumes_app.reader.remote("a.txt", False)[0] is None
        writer_pid = volumes_app.writer.remote("a.txt", "first", False)          # written, not committed
        text, reader_pid = volumes_app.reader.remote("a.txt", False)
        assert text is None
        assert volumes_app.writer.remote("a.txt", "first", True) == writer_pid   # now committed
        text, pid = volumes_app.reader.remote("a.txt", False)
        assert (text, pid) == (None, reader_pid)         # same container, still its consistent view
        text, pid = volumes_app.reader.remote("a.txt", True)
        assert (text, pid) == ("first", reader_pid)      # after reload() it sees the commit
        assert [e.path for e in vol.listdir("/")] == ["a.txt"]
        assert b"".join(vol.read_file("a.txt")) == b"first"
        # a change made outside containers is seen on reload too; the writer's own file is kept
        vol.put_file(__import__("io").BytesIO(b"from outside"), "/sub/b.txt")
        assert volumes_app.reader.remote("sub/b.txt", True)[0] == "from outside"
        volumes_app.remove.remote("a.txt")
        assert volumes_app.reader.remote("a.txt", True)[0] is None
        assert sorted(e.path for e in vol.listdir("/", recursive=True)) == ["sub", "sub/b.txt"]


def test_writes_are_committed_when_a_container_stops_cleanly(volumes_app: ModuleType) -> None:
    with volumes_app.app.run(show_logs=False):
        volumes_app.writer.remote("kept.txt", "at shutdown", False)
    assert b"".join(volumes_app.vol.read_file("kept.txt")) == b"at shutdown"
    assert not os.path.exists("/data")          # the mount point was made for the container, then removed


def test_path_escapes_are_refused(volumes_app: ModuleType) -> None:
    vol = volumes_app.vol
    with volumes_app.app.run(show_logs=False):
        volumes_app.evil_link.remote()                  # a symlink to /etc, committed into the volume
    assert {e.path: e.type for e in vol.listdir("/")}["evil"] == "link"
    for path in ("evil/passwd", "evil", "evil/../evil/hostname"):
        with pytest.raises(surge.InvalidError):
            b"".join(vol.read_file(path))
    for bad in ("../x", "a/../../x", "x\x00y", "/../etc/passwd"):
        with pytest.raises(surge.InvalidError):
            b"".join(vol.read_file(bad))
        with pytest.raises(surge.InvalidError):
            vol.put_file(__import__("io").BytesIO(b"x"), bad)
    with pytest.raises(surge.InvalidError):
        vol.listdir("evil")
    with pytest.raises(surge.InvalidError):
        vol.put_file(__import__("io").BytesIO(b"x"), "evil/owned")
    assert not os.path.exists("/etc/owned")
    with pytest.raises(surge.NotFoundError):           # volume-rooted, never the host's /etc/passwd
        b"".join(vol.read_file("/etc/passwd"))


def test_weights_are_hard_links_to_one_inode(volumes_app: ModuleType, tmp_path: Path) -> None:
    content = os.urandom(4096)
    sha = hashlib.sha256(content).hexdigest()
    marker = str(tmp_path / "downloads")
    with volumes_app.app.run(show_logs=False):
        a = volumes_app.fetch_weights.remote(sha, content, marker, str(tmp_path / "a" / "model.bin"))
        b = volumes_app.fetch_weights_again.remote(sha, content, marker, str(tmp_path / "b" / "model.bin"))
    assert a[0] == a[1] == b[0] == b[1]                 # cache file and both links: one inode
    assert os.stat(tmp_path / "a" / "model.bin").st_nlink >= 3
    assert Path(marker).read_text() == "downloaded\n"   # downloaded by the first container only


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "surge.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_cli_round_trip(server: embedded.ServerInfo, tmp_path: Path) -> None:
    env = {**os.environ, "SURGE_SERVER_URL": server.url, "SURGE_TOKEN": server.token or "", "COLUMNS": "200"}
    local = tmp_path / "weights.bin"
    local.write_bytes(b"\x00\x01model")
    tree = tmp_path / "tree"
    (tree / "inner").mkdir(parents=True)
    (tree / "inner" / "c.txt").write_text("c")
    assert cli("volume", "create", "cli-vol", env=env).returncode == 0
    dup = cli("volume", "create", "cli-vol", env=env)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert cli("volume", "put", "cli-vol", str(local), "/models/", env=env).returncode == 0
    assert cli("volume", "put", "cli-vol", str(tree), "/tree", env=env).returncode == 0
    again = cli("volume", "put", "cli-vol", str(local), "/models/", env=env)
    assert again.returncode == 1 and "--force" in again.stderr
    ls = cli("volume", "ls", "cli-vol", "/", "--recursive", "--json", env=env)
    assert sorted(e["path"] for e in json.loads(ls.stdout)) == [
        "models", "models/weights.bin", "tree", "tree/inner", "tree/inner/c.txt"]
    table = cli("volume", "ls", "cli-vol", "/models", env=env)
    assert "weights.bin" in table.stdout
    out = tmp_path / "out.bin"
    assert cli("volume", "get", "cli-vol", "/models/weights.bin", str(out), env=env).returncode == 0
    assert out.read_bytes() == b"\x00\x01model"
    assert cli("volume", "rm", "cli-vol", "/models/weights.bin", env=env).returncode == 0
    missing = cli("volume", "get", "cli-vol", "/models/weights.bin", str(tmp_path / "x"), env=env)
    assert missing.returncode == 1 and "no file" in missing.stderr
    listed = json.loads(cli("volume", "list", "--json", env=env).stdout)
    row = next(v for v in listed if v["name"] == "cli-vol")
    assert row["files"] == 1 and row["version"] == 3
    assert "cli-vol" in cli("volume", "list", env=env).stdout
    assert cli("volume", "delete", "cli-vol", "--yes", env=env).returncode == 0
    assert all(v["name"] != "cli-vol" for v in json.loads(cli("volume", "list", "--json", env=env).stdout))
