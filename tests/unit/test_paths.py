"""Pure path rules (surge.core.paths): tables for the named cases, hypothesis for the rest."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surge.core import paths
from surge.errors import InvalidError


@pytest.mark.parametrize(("path", "parts"), [
    ("", ()), ("/", ()), (".", ()), ("//./", ()),
    ("a", ("a",)), ("/a/b", ("a", "b")), ("a//b/./c/", ("a", "b", "c")), ("./x", ("x",)),
    ("...", ("...",)), ("..a/b..", ("..a", "b..")), ("a\\..\\b", ("a\\..\\b",)),
])
def test_volume_parts(path: str, parts: tuple[str, ...]) -> None:
    assert paths.volume_parts(path) == parts
    assert paths.volume_path(path) == "/".join(parts)


@pytest.mark.parametrize(("path", "message"), [
    ("..", "'..' is not allowed"), ("a/../b", "'..' is not allowed"), ("/../etc", "'..' is not allowed"),
    ("a/..", "'..' is not allowed"), ("x\x00y", "NUL byte"), ("a" * 256, "longer than 255 bytes"),
    ("a/" * 2100, "the limit is 4096"), (b"bytes", "must be a string"), (None, "must be a string"),
])
def test_volume_parts_refused(path: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        paths.volume_parts(path)  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(["..", ".", "", "a", "b", "c d", "\x00", "é", "/"]), max_size=12))
def test_volume_parts_never_leave_the_root(pieces: list[str]) -> None:
    raw = "/".join(pieces)
    try:
        parts = paths.volume_parts(raw)
    except InvalidError:
        assert ".." in raw.split("/") or "\x00" in raw
        return
    assert ".." not in parts and "." not in parts and "" not in parts
    joined = posixpath.normpath(posixpath.join("/vol", *parts))
    assert paths.contains("/vol", joined)


@given(st.text(max_size=60))
def test_volume_parts_on_any_text(raw: str) -> None:
    try:
        parts = paths.volume_parts(raw)
    except InvalidError:
        return
    assert all(p not in ("", ".", "..") and "/" not in p and "\x00" not in p for p in parts)
    assert paths.contains("/vol", posixpath.normpath("/vol/" + "/".join(parts)))


@pytest.mark.parametrize(("path", "norm"), [
    ("/models", "/models"), ("/data/cache/", "/data/cache"), ("//x//y", "/x/y"), ("/tmp/scratch", "/tmp/scratch"),
    ("/root/models", "/root/models"), ("/usrx", "/usrx"),
])
def test_mount_path(path: str, norm: str) -> None:
    assert paths.mount_path(path) == norm


@pytest.mark.parametrize(("path", "message"), [
    ("models", "must be absolute"), ("./m", "must be absolute"), ("/", "whole of /"), ("/tmp", "whole of /tmp"),
    ("/root/", "whole of /root"), ("/usr/lib/x", "inside /usr"), ("/proc", "inside /proc"), ("/etc/x", "inside /etc"),
    ("/a/../b", "'..'"), ("/a\x00", "NUL"), (3, "must be a string"),
])
def test_mount_path_refused(path: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        paths.mount_path(path)  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "root", "inside"), [
    ("/data", "/data", True), ("/data/x", "/data", True), ("/data2", "/data", False), ("/dat", "/data", False),
    ("/", "/data", False), ("/data", "/", True), ("/a/b/c", "/a/b", True),
])
def test_under_compares_components_not_strings(path: str, root: str, inside: bool) -> None:
    assert paths.under(path, root) is inside
    assert paths.contains(root, path) is inside


@pytest.mark.parametrize(("mounts", "pair"), [
    (["/a", "/b"], None), (["/a", "/a/b"], ("/a", "/a/b")), (["/a/b", "/a"], ("/a/b", "/a")),
    (["/x", "/x"], ("/x", "/x")), (["/data", "/data2"], None), ([], None),
])
def test_overlapping(mounts: list[str], pair: tuple[str, str] | None) -> None:
    assert paths.overlapping(mounts) == pair
    if pair is None:
        paths.check_mounts(mounts)
    else:
        with pytest.raises(InvalidError, match="overlap"):
            paths.check_mounts(mounts)


@pytest.mark.parametrize(("name", "ok"), [
    ("weights", True), ("a", True), ("A.b_c-9", True), ("x" * 64, True), ("x" * 65, False), ("", False),
    ("-x", False), (".x", False), ("a/b", False), ("a b", False), (7, False),
])
def test_volume_name(name: object, ok: bool) -> None:
    if ok:
        assert paths.volume_name(name) == name
    else:
        with pytest.raises(InvalidError, match="volume name"):
            paths.volume_name(name)


@pytest.mark.parametrize(("version", "parsed"), [("3.12", (3, 12)), ("3.11.7", (3, 11)), ("3.9", (3, 9))])
def test_parse_python_version(version: str, parsed: tuple[int, int]) -> None:
    assert paths.parse_python_version(version) == parsed


@pytest.mark.parametrize("version", ["3", "2.7", "python3.12", 3.12, "3.12.1.1", ""])
def test_parse_python_version_refused(version: object) -> None:
    with pytest.raises(InvalidError, match="python_version"):
        paths.parse_python_version(version)


def test_pick_python_takes_the_first_match() -> None:
    found = [((3, 11), "/a/python3.11"), ((3, 12), "/b/python3.12"), ((3, 12), "/c/python3.12")]
    assert paths.pick_python((3, 12), found) == "/b/python3.12"
    assert paths.pick_python((3, 13), found) is None
