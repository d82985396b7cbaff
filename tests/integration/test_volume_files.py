"""The file side of volumes on a real file system: real-path confinement (symlinks out of a volume
are refused, whatever the path), and merging an overlay upper layer into a new version."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surge.errors import InvalidError
from surge.server.volumes import ContainerMount, _build_version, _merge, _pending, resolve_inside


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "vol"
    (root / "dir" / "deep").mkdir(parents=True)
    (root / "dir" / "f.txt").write_text("f")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", root / "out")              # absolute symlink out
    os.symlink("../../outside", root / "dir" / "up")            # relative symlink out
    os.symlink("f.txt", root / "dir" / "inner")                 # stays inside
    return root


@pytest.mark.parametrize("path", ["out", "out/secret", "dir/up/secret", "dir/up", "/out/secret"])
def test_symlinks_out_are_refused(tree: Path, path: str) -> None:
    with pytest.raises(InvalidError, match="leads outside the volume"):
        resolve_inside(tree, path)


def test_symlinks_inside_are_followed_and_last_component_kept(tree: Path) -> None:
    assert resolve_inside(tree, "dir/inner") == tree / "dir" / "inner"
    # writing over a link replaces the link itself, so its target does not matter then
    assert resolve_inside(tree, "out", follow_last=False) == tree / "out"
    with pytest.raises(InvalidError):
        resolve_inside(tree, "out/new", follow_last=False)     # its parent leads out


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["dir", "deep", "out", "up", "inner", "f.txt", "..", ".", "", "secret", "x"]),
                min_size=1, max_size=6))
def test_no_path_resolves_outside(tree: Path, pieces: list[str]) -> None:
    path = "/".join(pieces)
    try:
        full = resolve_inside(tree, path)
    except InvalidError:
        return
    real = os.path.realpath(full)
    assert real == str(tree.resolve()) or real.startswith(str(tree.resolve()) + os.sep)


def test_merge_applies_files_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    base = tmp_path / "v1"
    (base / "keep").mkdir(parents=True)
    (base / "keep" / "k.txt").write_text("k")
    (base / "gone.txt").write_text("old")
    (base / "replaced").mkdir()
    (base / "replaced" / "old.txt").write_text("old")
    (base / "edit.txt").write_text("before")
    layers = tmp_path / "c"
    m = ContainerMount("vo-1", "default", "v", "/data", 1, 0, layers)
    up = m.upper
    (up / "replaced").mkdir(parents=True)
    (up / "replaced" / "new.txt").write_text("new")
    os.setxattr(up / "replaced", "trusted.overlay.opaque", b"y")
    os.mknod(up / "gone.txt", stat.S_IFCHR | 0o000, 0)          # overlayfs's whiteout
    (up / "edit.txt").write_text("after")
    (up / "added").mkdir()
    (up / "added" / "a.txt").write_text("a")
    changes = _pending(m)
    new = tmp_path / "v2"
    new.mkdir()
    _build_version(base, new, lambda t: _merge(up, t, changes=changes, seen=set()))
    listing = sorted(str(p.relative_to(new)) for p in new.rglob("*"))
    assert listing == ["added", "added/a.txt", "edit.txt", "keep", "keep/k.txt", "replaced", "replaced/new.txt"]
    assert (new / "edit.txt").read_text() == "after" and (base / "edit.txt").read_text() == "before"
    assert os.stat(new / "keep" / "k.txt").st_ino == os.stat(base / "keep" / "k.txt").st_ino   # linked, not copied
    m.committed.update(changes)
    assert _pending(m) == {}                                    # nothing to commit twice
    (up / "edit.txt").write_text("again")
    assert list(_pending(m)) == ["edit.txt"]
