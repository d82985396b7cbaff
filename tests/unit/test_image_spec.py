"""surge.Image specs: immutable builders, validated arguments, and a content hash that is stable
for equal inputs and changes with any step or referenced local file."""

from __future__ import annotations

from pathlib import Path

import pytest

import surge
from surge.errors import InvalidError
from surge.sdk.image import spec_hash
from surge.sdk.volume import check_volumes


def test_methods_return_new_images() -> None:
    base = surge.Image.debian_slim()
    extended = base.pip_install("numpy").env({"A": "1"})
    assert base.resolve()[0]["steps"] == []
    assert [s["op"] for s in extended.resolve()[0]["steps"]] == ["pip", "env"]


def test_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    def make() -> surge.Image:
        return surge.Image.debian_slim("3.12").pip_install("numpy==2.1", "rich").env({"B": "2", "A": "1"})

    assert make().hash() == make().hash()
    variants = [
        surge.Image.debian_slim("3.12").pip_install("rich", "numpy==2.1").env({"A": "1", "B": "2"}),   # order
        surge.Image.debian_slim("3.11").pip_install("numpy==2.1", "rich").env({"A": "1", "B": "2"}),   # python
        surge.Image.debian_slim("3.12").pip_install("numpy==2.1", "rich").env({"A": "1", "B": "3"}),   # env
        surge.Image.debian_slim("3.12").pip_install("numpy==2.1", "rich", pre=True).env({"A": "1", "B": "2"}),
        make().run_commands("true"),
    ]
    hashes = {make().hash(), *(v.hash() for v in variants)}
    assert len(hashes) == 1 + len(variants)


def test_env_order_does_not_matter() -> None:
    a = surge.Image.debian_slim().env({"A": "1", "B": "2"})
    b = surge.Image.debian_slim().env({"B": "2", "A": "1"})
    assert a.hash() == b.hash()


def test_local_file_content_is_part_of_the_hash(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("numpy\n")
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    (files / "sub" / "a.txt").write_text("one")
    (files / "__pycache__").mkdir()
    image = surge.Image.debian_slim().pip_install_from_requirements(req).add_local_dir(files, "/srv/files")
    first = image.hash()
    assert image.hash() == first                       # packing is deterministic
    (files / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    assert image.hash() == first                       # ignored by default
    (files / "sub" / "a.txt").write_text("two")
    second = image.hash()
    assert second != first                             # the same builder sees the new content
    req.write_text("numpy\nrich\n")
    assert image.hash() not in (first, second)
    spec, blobs = image.resolve()
    assert {b.sha for b in blobs} == {spec["steps"][0]["file"]["blob"], spec["steps"][1]["dir"]["blob"]}
    assert spec_hash(spec) == image.hash()


def test_local_wheel_is_uploaded_by_content(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-0.1-py3-none-any.whl"
    wheel.write_bytes(b"one")
    image = surge.Image.debian_slim().pip_install(str(wheel), "numpy")
    spec, blobs = image.resolve()
    local, remote = spec["steps"][0]["packages"]
    assert remote == "numpy" and local["name"] == wheel.name and local["blob"] == blobs[0].sha
    before = image.hash()
    wheel.write_bytes(b"two")
    assert image.hash() != before


def test_add_local_python_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mylib").mkdir()
    (tmp_path / "mylib" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "single.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec, blobs = surge.Image.debian_slim().add_local_python_source("mylib", "single").resolve()
    kinds = [(s["name"], s["kind"]) for s in spec["steps"][0]["sources"]]
    assert kinds == [("mylib", "dir"), ("single.py", "file")] and len(blobs) == 2


@pytest.mark.parametrize(("make", "message"), [
    (lambda: surge.Image.debian_slim("3.10"), "needs Python 3.11 or newer"),
    (lambda: surge.Image.debian_slim("latest"), "give a version like '3.12'"),
    (lambda: surge.Image.from_current().pip_install("x"), "cannot be extended"),
    (lambda: surge.Image.debian_slim().pip_install(3), "give strings"),
    (lambda: surge.Image.debian_slim().pip_install(""), "non-empty string"),
    (lambda: surge.Image.debian_slim().pip_install("./nope"), "no such file or directory"),
    (lambda: surge.Image.debian_slim().pip_install("x", index_url="-x"), "give a URL"),
    (lambda: surge.Image.debian_slim().pip_install("x", pre="yes"), "True or False"),
    (lambda: surge.Image.debian_slim().env({"1A": "x"}), "not a valid environment variable name"),
    (lambda: surge.Image.debian_slim().env(["A"]), "give a dict"),
    (lambda: surge.Image.debian_slim().workdir("app"), "must be absolute"),
    (lambda: surge.Image.debian_slim().add_local_dir("/no/such/dir", "/app"), "no such directory"),
    (lambda: surge.Image.debian_slim().add_local_dir(".", "/usr/app"), "inside /usr"),
    (lambda: surge.Image.debian_slim().add_local_dir(".", "/app", ignore="*.pyc"), "list of glob patterns"),
    (lambda: surge.Image.debian_slim().add_local_python_source("no_such_module_xyz"), "no such module"),
    (lambda: surge.Image.debian_slim().add_local_python_source("a.b"), "top-level module"),
    (lambda: surge.Image.debian_slim().add_local_python_source(), "at least one module"),
    (lambda: surge.Image.debian_slim().pip_install_from_requirements("/no/such.txt"), "no such file"),
])
def test_bad_arguments_fail_where_they_are_written(make: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        make()  # type: ignore[operator]


def test_decorators_validate_image_and_volumes() -> None:
    app = surge.App("image-spec-unit")
    with pytest.raises(InvalidError, match="did you forget the parentheses"):
        app.function(image=surge.Image.debian_slim)
    with pytest.raises(InvalidError, match=r"is not a surge\.Image"):
        app.cls(image="python:3.12")
    vol = surge.Volume.from_name("v")
    with pytest.raises(InvalidError, match="must be absolute"):
        app.function(volumes={"models": vol})
    with pytest.raises(InvalidError, match="overlap"):
        app.function(volumes={"/models": vol, "/models/sub": surge.Volume.from_name("w")})
    with pytest.raises(InvalidError, match=r"did you mean surge\.Volume\.from_name"):
        app.function(volumes={"/models": "v"})
    with pytest.raises(InvalidError, match="must be a dict"):
        app.function(volumes=["/models"])
    with pytest.raises(InvalidError, match="volume name"):
        surge.Volume.from_name("../escape")
    assert check_volumes({"/models/": vol}, "x") == {"/models": vol}
