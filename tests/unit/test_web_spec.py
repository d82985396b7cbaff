"""Web endpoint declarations (``surge.sdk.web``): labels, options, and what the control plane
accepts from clients."""

from __future__ import annotations

from typing import Any

import pytest

from surge.errors import InvalidError
from surge.sdk.web import (
    WebSpec,
    check_functions_json,
    check_label,
    endpoint_spec,
    fastapi_endpoint,
    suggest_label,
    web_url,
)


@pytest.mark.parametrize("label", ["a", "hello", "my-func-2", "0", "x" * 63, "a-b-c"])
def test_valid_labels(label: str) -> None:
    assert check_label(label) == label


@pytest.mark.parametrize(("label", "hint"), [
    ("", ""), ("-a", "'a'"), ("a-", "'a'"), ("Hello", "'hello'"), ("my_func", "'my-func'"),
    ("x" * 64, "'" + "x" * 63 + "'"), ("a.b", "'a-b'"), (3, ""), (None, ""),
])
def test_invalid_labels_name_the_rule_and_a_fix(label: Any, hint: str) -> None:
    with pytest.raises(InvalidError, match="must be a DNS label") as info:
        check_label(label)
    assert hint in str(info.value)


@pytest.mark.parametrize(("name", "label"), [
    ("hello", "hello"), ("My_Func", "my-func"), ("__x__", "x"), ("a__b", "a-b"), ("Model.predict", "model-predict"),
    ("___", None), ("f" * 70, "f" * 63),
])
def test_suggested_labels(name: str, label: str | None) -> None:
    assert suggest_label(name) == label


def test_default_label_comes_from_the_function_name() -> None:
    def my_endpoint() -> None: ...

    assert endpoint_spec(fastapi_endpoint()(my_endpoint), "my_endpoint") == WebSpec(
        "fastapi", label="my-endpoint", method="GET")
    with pytest.raises(InvalidError, match="pass label="):
        endpoint_spec(fastapi_endpoint()(lambda: None), "___")

    def plain() -> None: ...

    assert endpoint_spec(plain, "plain") is None


GOOD = [
    {"kind": "fastapi", "label": "a", "method": "post", "docs": True},
    {"kind": "asgi", "label": "a", "requires_auth": True},
    {"kind": "wsgi", "label": "a"},
    {"kind": "server", "label": "a", "port": 8000},
    {"kind": "server", "label": "a", "port": 65535, "startup_timeout": 0.5},
]


@pytest.mark.parametrize("d", GOOD)
def test_from_json_accepts_what_the_decorators_make(d: dict[str, Any]) -> None:
    spec = WebSpec.from_json(d)
    assert WebSpec.from_json(spec.to_json()) == spec
    assert spec.method in (None, "POST")


BAD = [
    ([], "must be a JSON object"),
    ({"kind": "grpc", "label": "a"}, "web.kind='grpc'"),
    ({"kind": "fastapi", "label": "A"}, "DNS label"),
    ({"kind": "fastapi", "label": "a", "method": "BREW"}, "method='BREW'"),
    ({"kind": "fastapi", "label": "a", "docs": "yes"}, "docs='yes'"),
    ({"kind": "asgi", "label": "a", "requires_auth": 1}, "requires_auth=1"),
    ({"kind": "server", "label": "a"}, "port=None"),
    ({"kind": "server", "label": "a", "port": True}, "port=True"),
    ({"kind": "server", "label": "a", "port": 80, "startup_timeout": -1}, "startup_timeout=-1"),
]


@pytest.mark.parametrize(("d", "message"), BAD)
def test_from_json_refuses_what_no_decorator_makes(d: Any, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        WebSpec.from_json(d)


@pytest.mark.parametrize(("functions", "message"), [
    ([{"tag": "f", "web": {"kind": "asgi"}}], "without a label"),
    ([{"tag": "f", "web": {"kind": "asgi", "label": "x"}}, {"tag": "g", "web": {"kind": "wsgi", "label": "x"}}],
     "both serve web label 'x'"),
    ([{"tag": "C.m", "cls": "C", "web": {"kind": "fastapi", "label": "m"}, "web_params": "%%"}], "base64"),
    ([{"tag": "C.m", "cls": "C", "web": {"kind": "fastapi", "label": "m"}, "web_params": 3}], "base64"),
    ([{"tag": "f", "web": {"kind": "nope", "label": "x"}}], "function 'f': invalid web endpoint"),
])
def test_the_control_plane_checks_web_specs(functions: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        check_functions_json(functions)


def test_the_control_plane_accepts_distinct_labels() -> None:
    check_functions_json([{"tag": "f", "web": {"kind": "asgi", "label": "x"}}, {"tag": "g", "options": {}},
                          {"tag": "h", "web": {"kind": "fastapi", "label": "y", "method": "GET"}}])


def test_the_control_plane_accepts_class_methods() -> None:
    check_functions_json([{"tag": "C.m", "cls": "C", "web": {"kind": "fastapi", "label": "c-m", "method": "GET"},
                           "web_params": "gASV"}, {"tag": "C.n", "cls": "C", "web": {"kind": "asgi", "label": "c-n"}}])


@pytest.mark.parametrize(("base", "app", "host", "url"), [
    ("http://h:1/", "app", None, "http://h:1/web/app/lbl"),
    ("http://127.0.0.1:8765", "shop", "surge.localhost", "http://lbl.shop.surge.localhost:8765/"),
    ("https://api.example.com", "team--shop", "run.example.com", "https://lbl.team--shop.run.example.com/"),
    ("http://h:1", "ap-18f3a2b4c01-9f2c4e1a7b3d5f60", "s.test", "http://lbl.ap-18f3a2b4c01-9f2c4e1a7b3d5f60.s.test:1/"),
    ("http://h:1", "My App", "s.test", "http://h:1/web/My App/lbl"),      # not a DNS label: path form
])
def test_web_url(base: str, app: str, host: str | None, url: str) -> None:
    assert web_url(base, app, "lbl", host) == url
