"""Decorator mistakes fail at the decorator line, with the bad value and the fix (no server needed).

Each test marks the line it expects the error (or warning) to point at with ``# <- name``; the
last frame of the traceback outside the surge package must be that line, so what a user sees
first is their own ``@app.function(...)``, not surge's internals.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import surge

HERE = Path(__file__)
SURGE_DIR = Path(surge.__file__).resolve().parent


def line_of(marker: str) -> int:
    hits = [n for n, text in enumerate(HERE.read_text().splitlines(), 1) if text.rstrip().endswith(f"# <- {marker}")]
    assert len(hits) == 1, f"marker {marker!r} found on lines {hits}"
    return hits[0]


def assert_points_at(info: pytest.ExceptionInfo[BaseException], marker: str) -> None:
    frames = traceback.extract_tb(info.value.__traceback__)
    user = [f for f in frames if not Path(f.filename).resolve().is_relative_to(SURGE_DIR)]
    assert user, frames
    last = user[-1]
    assert (Path(last.filename).resolve(), last.lineno) == (HERE.resolve(), line_of(marker)), \
        f"the error points at {last.filename}:{last.lineno} ({last.line!r}), not at the '{marker}' line"


@pytest.fixture
def app() -> Iterator[surge.App]:
    yield surge.App("validation")


# Top-level definitions, so only the check under test can fail when they are registered.
def top_level(x: int) -> int:
    return x


def other_top_level(x: int) -> int:
    return x


class NoMethods:
    def predict(self, x: int) -> int:
        return x


class WithMethod:
    @surge.method()
    def predict(self, x: int) -> int:
        return x


def test_bare_function_decorator(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match=r"did you forget parentheses\?") as info:
        @app.function  # <- bare function
        def f() -> None: ...
    assert "@app.function()" in str(info.value)
    assert_points_at(info, "bare function")


def test_bare_cls_and_local_entrypoint_decorators(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match=r"@app.cls\(\).*did you forget parentheses\?") as info:
        @app.cls  # <- bare cls
        class C: ...
    assert_points_at(info, "bare cls")
    with pytest.raises(surge.InvalidError, match=r"did you forget parentheses\?") as info:
        @app.local_entrypoint  # <- bare entrypoint
        def main() -> None: ...
    assert_points_at(info, "bare entrypoint")


@pytest.mark.parametrize("name", ["method", "enter", "exit"])
def test_bare_marker_decorators(name: str) -> None:
    marker = getattr(surge, name)
    with pytest.raises(surge.InvalidError, match=rf"@surge.{name}\(\).*did you forget parentheses\?") as info:
        marker(top_level)  # <- bare marker
    assert_points_at(info, "bare marker")


def test_unknown_gpu_lists_the_known_types(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError) as info:
        @app.function(gpu="A1000")  # <- unknown gpu
        def f() -> None: ...
    msg = str(info.value)
    assert "'A1000'" in msg and "Known types" in msg and "A100-80GB" in msg and "H100" in msg
    assert_points_at(info, "unknown gpu")


def test_unknown_gpu_in_a_preference_list(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match=r"'X100'.*Known types") as info:
        @app.function(gpu=["H100", "X100"])  # <- unknown gpu in list
        def f() -> None: ...
    assert_points_at(info, "unknown gpu in list")


@pytest.mark.parametrize(("options", "words"), [
    ({"timeout": 0}, ["timeout=0", "between 1 and 86400"]),
    ({"timeout": 86401}, ["timeout=86401", "86400"]),
    ({"cpu": -1}, ["cpu=-1", "more than 0"]),
    ({"memory": 0}, ["memory=0", "between 1 and"]),
    ({"retries": -1}, ["retries=-1", "between 0 and"]),
    ({"min_containers": 3, "max_containers": 2}, ["min_containers=3", "max_containers=2",
                                                  "lower min_containers or raise max_containers"]),
    ({"gpu": "H100:0"}, ["H100:0", "between 1 and 8"]),
    ({"cpu": "two"}, ["cpu='two'", "number"]),
    ({"env": {"1BAD": "x"}}, ["'1BAD'", "environment variable name"]),
])
def test_bad_option_values(app: surge.App, options: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(surge.InvalidError) as info:
        @app.function(**options)  # <- bad option
        def f() -> None: ...
    for w in words:
        assert w in str(info.value), f"{w!r} missing from: {info.value}"
    assert_points_at(info, "bad option")


def test_a_multi_line_decorator_points_at_its_first_line(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match="timeout=0") as info:
        @app.function(  # <- multi-line
            cpu=1,
            timeout=0,
        )
        def f() -> None: ...
    assert_points_at(info, "multi-line")


def test_the_same_options_on_a_class(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match="cpu=-1") as info:
        @app.cls(cpu=-1)  # <- bad cls option
        class C: ...
    assert_points_at(info, "bad cls option")


def test_nested_function(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match="top level of a module") as info:
        @app.function()  # <- nested
        def inner() -> None: ...
    assert "inner" in str(info.value)
    assert_points_at(info, "nested")


def test_lambda(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match="top level of a module") as info:
        app.function()(lambda x: x)  # <- lambda
    assert "lambda" in str(info.value)
    assert_points_at(info, "lambda")


def test_function_decorator_on_a_class(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match=r"use @app.cls\(\)") as info:
        @app.function()  # <- class as function
        class Model: ...
    assert "Model" in str(info.value)
    assert_points_at(info, "class as function")


def test_cls_without_any_method(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match=r"has no @surge.method\(\)") as info:
        app.cls()(NoMethods)  # <- no methods
    assert "NoMethods" in str(info.value)
    assert_points_at(info, "no methods")
    assert app.cls()(WithMethod) is not None          # one @surge.method() is enough


def test_concurrent_without_max_inputs() -> None:
    with pytest.raises(surge.InvalidError, match=r"max_inputs=\.\.\.\) is required") as info:
        @surge.concurrent()  # <- concurrent without max_inputs
        def f() -> None: ...
    assert_points_at(info, "concurrent without max_inputs")
    with pytest.raises(surge.InvalidError, match=r"did you forget parentheses\?") as info:
        @surge.concurrent  # <- bare concurrent
        def g() -> None: ...
    assert_points_at(info, "bare concurrent")


@pytest.mark.parametrize(("kw", "words"), [
    ({"max_inputs": 0}, ["max_inputs=0", "between 1 and 1000"]),
    ({"max_inputs": 4, "target_inputs": 5}, ["target_inputs=5", "max_inputs (4)"]),
])
def test_concurrent_limits(kw: dict[str, int], words: list[str]) -> None:
    with pytest.raises(surge.InvalidError) as info:
        @surge.concurrent(**kw)  # <- concurrent limits
        def f() -> None: ...
    for w in words:
        assert w in str(info.value)
    assert_points_at(info, "concurrent limits")


def test_duplicate_function_names_in_one_app(app: surge.App) -> None:
    app.function()(top_level)
    with pytest.raises(surge.InvalidError, match="already has a function named 'top_level'") as info:
        app.function(name="top_level")(other_top_level)  # <- duplicate name
    assert "name=" in str(info.value)
    assert_points_at(info, "duplicate name")
    with pytest.raises(surge.InvalidError, match="already has a function named 'top_level'"):
        app.function()(top_level)
    assert app.function(name="top_level_2")(other_top_level).tag == "top_level_2"


def test_the_same_name_in_two_apps_is_fine() -> None:
    surge.App("one").function()(top_level)
    surge.App("two").function()(top_level)


@pytest.mark.parametrize(("legacy", "new", "value"), [
    ("keep_warm", "min_containers", 2),
    ("concurrency_limit", "max_containers", 7),
    ("container_idle_timeout", "scaledown_window", 120),
])
def test_legacy_names_are_accepted_with_a_deprecation_warning(app: surge.App, legacy: str, new: str,
                                                              value: int) -> None:
    with pytest.warns(DeprecationWarning, match=f"{legacy}= is deprecated; use {new}=") as warned:
        f = app.function(**{legacy: value})(top_level)  # <- legacy
    (w,) = warned
    assert (Path(w.filename).resolve(), w.lineno) == (HERE.resolve(), line_of("legacy"))
    assert f.info.options is not None and getattr(f.info.options, new) == value


def test_a_legacy_name_with_its_new_name_is_an_error(app: surge.App) -> None:
    with pytest.raises(surge.InvalidError, match="pass only min_containers") as info:
        app.function(keep_warm=1, min_containers=2)  # <- legacy and new
    assert_points_at(info, "legacy and new")


def test_good_options_pass(app: surge.App) -> None:
    f = app.function(gpu="h100:2", cpu=2, memory=4096, timeout=60, retries=surge.Retries(max_retries=2),
                     min_containers=1, max_containers=3)(top_level)
    o = f.info.options
    assert o is not None and o.gpu is not None
    assert (o.gpu.types, o.gpu.count, o.cpu, o.memory, o.timeout) == (("H100",), 2, 2.0, 4096, 60.0)
    assert (o.retries.max_retries, o.min_containers, o.max_containers) == (2, 1, 3)
