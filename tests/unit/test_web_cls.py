"""Web methods of ``@app.cls`` classes, declared (``App.cls`` + ``surge.sdk.web``), and the
container-side ``Mux`` that serves several of them from one container, driven in-process (ASGI)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

import surge
from surge.errors import InvalidError
from surge.runtime.web import Mux
from surge.sdk import serialization


def _web(app: surge.App, name: str) -> dict[str, Any]:
    return dict(app._infos[name].extra)


class Model:
    size: str = surge.parameter(default="small")
    n: int = surge.parameter(default=3)

    @surge.enter()
    def load(self) -> None: ...

    @surge.fastapi_endpoint(method="POST")
    def predict(self, x: int) -> int:
        return x

    @surge.asgi_app(label="model-api")
    def api(self) -> Any: ...

    @surge.web_server(8123)
    def own(self) -> None: ...

    @surge.method()
    @surge.wsgi_app()
    def both(self) -> Any: ...

    @surge.method()
    def plain(self) -> int:
        return 1


class Plain:
    @surge.fastapi_endpoint()
    def hello(self) -> str:
        return "hi"


class Required:
    size: str = surge.parameter()

    @surge.fastapi_endpoint()
    def predict(self) -> str:
        return self.size


class Same:
    @surge.asgi_app(label="same")
    def api(self) -> Any: ...


class Batched:
    @surge.fastapi_endpoint()
    @surge.batched(max_batch_size=4, wait_ms=1)
    def predict(self, xs: list[int]) -> list[int]:
        return xs


def _same() -> None: ...


def test_web_methods_register_with_class_labels_and_default_parameters() -> None:
    app = surge.App("cls-web")
    handle = app.cls()(Model)
    extra = _web(app, "Model.predict")
    assert extra["web"]["label"] == "model-predict" and extra["web"]["method"] == "POST"
    assert _web(app, "Model.api")["web"]["label"] == "model-api"
    assert _web(app, "Model.own")["web"] == {**_web(app, "Model.own")["web"], "kind": "server", "port": 8123}
    assert _web(app, "Model.both")["web"]["kind"] == "wsgi"
    assert "web" not in _web(app, "Model.plain")
    # what Model() sends as its parameters, so requests and .remote() calls share a pool
    params = base64.b64decode(extra["web_params"])
    assert sorted(serialization.loads(params)) == [("n", 3), ("size", "small")]
    assert handle().predict.info.extra["web"]["label"] == "model-predict"


def test_a_class_without_parameters_has_no_web_params() -> None:
    app = surge.App("cls-web-plain")
    app.cls()(Plain)
    assert "web_params" not in _web(app, "Plain.hello")
    assert _web(app, "Plain.hello")["web"]["label"] == "plain-hello"


def test_a_parameter_without_a_default_is_refused_with_the_fix() -> None:
    app = surge.App("cls-web-required")
    with pytest.raises(InvalidError, match=r"default parameters.*size has no default.*size: str = surge.parameter"):
        app.cls()(Required)


def test_labels_are_unique_across_functions_and_classes() -> None:
    app = surge.App("cls-web-labels")
    app.function()(surge.fastapi_endpoint(label="same")(_same))
    with pytest.raises(InvalidError, match="both serve web label 'same'"):
        app.cls()(Same)


def test_batched_web_methods_are_refused() -> None:
    app = surge.App("cls-web-batched")
    with pytest.raises(InvalidError, match=r"cannot be @surge\.batched"):
        app.cls()(Batched)


def test_app_factories_on_methods_take_only_self() -> None:
    with pytest.raises(InvalidError, match="api requires config"):
        class Model:
            @surge.asgi_app()
            def api(self, config: str) -> Any: ...

    def outer() -> Any:
        @surge.asgi_app()
        def nested(self: Any) -> Any: ...       # a function, not a method: self is an argument
        return nested

    with pytest.raises(InvalidError, match="nested requires self"):
        outer()


# -- Mux: several apps behind one socket -------------------------------------------------------------
class _App:
    """A tiny ASGI app that records its lifespan and answers with its name."""

    def __init__(self, name: str, *, lifespan: str = "ok") -> None:
        self.name = name
        self.lifespan = lifespan
        self.events: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            if self.lifespan == "unsupported":
                raise RuntimeError("no lifespan here")
            while True:
                msg = await receive()
                self.events.append(msg["type"])
                if msg["type"] == "lifespan.startup":
                    if self.lifespan == "fail":
                        await send({"type": "lifespan.startup.failed", "message": f"{self.name} broke"})
                        return
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.name.encode()})


async def _lifespan(mux: Mux) -> list[dict[str, Any]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)
        if msg["type"] == "lifespan.startup.complete":
            await inbox.put({"type": "lifespan.shutdown"})

    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(mux({"type": "lifespan"}, inbox.get, send), 5)
    return sent


async def _get(mux: Mux, label: str | None, kind: str = "http") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    headers = [(b"x-surge-label", label.encode())] if label is not None else []
    await mux({"type": kind, "headers": headers}, receive, send)
    return sent


def test_mux_routes_by_label() -> None:
    mux = Mux({"a": _App("a"), "b": _App("b")})
    assert asyncio.run(_get(mux, "b"))[1]["body"] == b"b"
    assert asyncio.run(_get(mux, "a"))[1]["body"] == b"a"
    missing = asyncio.run(_get(mux, "c"))
    assert missing[0]["status"] == 404 and b"'c'" in missing[1]["body"]
    assert asyncio.run(_get(mux, None))[0]["status"] == 404
    assert asyncio.run(_get(mux, "zzz", "websocket")) == [{"type": "websocket.close", "code": 1008}]


def test_mux_runs_every_lifespan_and_skips_apps_without_one() -> None:
    a, b, c = _App("a"), _App("b"), _App("c", lifespan="unsupported")
    sent = asyncio.run(_lifespan(Mux({"a": a, "b": b, "c": c})))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert a.events == b.events == ["lifespan.startup", "lifespan.shutdown"]


def test_mux_fails_startup_when_one_app_does() -> None:
    sent = asyncio.run(_lifespan(Mux({"a": _App("a"), "b": _App("b", lifespan="fail")})))
    assert sent == [{"type": "lifespan.startup.failed", "message": "b broke"}]
