"""Web methods of ``@app.cls`` classes and WebSocket tunnels, over real HTTP on 127.0.0.1.

One class serves a ``fastapi_endpoint``, an ``asgi_app``, a ``wsgi_app`` and a ``web_server`` from
one container whose ``@enter`` hook ran once, and shares that container with ``.remote()`` calls
of the class's default parameter set. WebSockets go through the gateway's byte tunnel.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import surge
from surge.sdk import context

TIMEOUT = httpx.Timeout(60.0)


@pytest.fixture(scope="module")
def web(server: Any, apps_path: Any) -> Iterator[Any]:
    import web_cls_app

    with web_cls_app.app.run(show_logs=False):
        yield web_cls_app


def _containers(function: str) -> list[dict[str, Any]]:
    rows = context.get_client().request("GET", "/v1/containers")["containers"]
    return [r for r in rows if r["app"] == "web-cls-e2e" and r["function"] == function
            and r["state"] in ("STARTING", "IDLE", "BUSY")]


def _ws_url(http_url: str) -> str:
    return "ws://" + http_url.split("://", 1)[1]


def _until(check: Any, what: str) -> Any:
    """Poll a condition the server reports asynchronously (container states are flushed in batches)."""
    deadline = time.monotonic() + 30
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


# -- a class's web methods ------------------------------------------------------------------------
def test_every_kind_is_served_by_one_container_after_enter(web: Any) -> None:
    model = web.Model()
    predict = httpx.get(model.predict.get_web_url(), params={"x": 21}, timeout=TIMEOUT).json()
    assert predict["y"] == 42 and predict["greeting"] == "hello"      # enter ran; default parameters
    info = httpx.get(model.api.get_web_url() + "/info", timeout=TIMEOUT).json()
    legacy = httpx.get(model.legacy.get_web_url() + "/x", timeout=TIMEOUT).text
    own = httpx.get(model.own.get_web_url() + "/y?z=1", timeout=TIMEOUT).text
    echo = httpx.post(model.echo.get_web_url(), json={"a": 1}, timeout=TIMEOUT).json()
    assert info["scale"] == 2
    assert legacy.startswith("hello from WSGI /x ")
    assert own.startswith("own server (scale 2) saw /y?z=1 ")
    assert echo["got"] == {"a": 1}
    pids = {predict["pid"], info["pid"], int(legacy.rsplit(" ", 1)[1]), int(own.rsplit(" ", 1)[1]), echo["pid"]}
    assert len(pids) == 1                                  # one container serves every web method
    assert info["entered"] == 1 and predict["entered"] == 1   # @enter ran once in it
    assert len(_containers("Model")) == 1


def test_labels_and_urls(web: Any) -> None:
    model = web.Model()
    app_id = web.app.app_id
    assert model.predict.get_web_url().endswith(f"/web/{app_id}/model-predict")   # {class}-{method}
    assert model.api.get_web_url().endswith(f"/web/{app_id}/model-api")
    assert model.legacy.get_web_url().endswith(f"/web/{app_id}/model-legacy")
    info = httpx.get(model.api.get_web_url() + "/info", timeout=TIMEOUT).json()
    assert info["root_path"] == f"/web/{app_id}/model-api"


def test_remote_calls_share_the_default_parameter_sets_container(web: Any) -> None:
    model = web.Model()
    pid = httpx.get(model.predict.get_web_url(), params={"x": 1}, timeout=TIMEOUT).json()["pid"]
    assert model.pid.remote() == pid
    assert model.predict.remote(x=5)["y"] == 10            # a fastapi_endpoint method is callable too
    with pytest.raises(surge.InvalidError, match="served over HTTP"):
        model.api.remote()


def test_a_label_no_method_serves_is_404(web: Any) -> None:
    url = web.Model().predict.get_web_url().rsplit("/", 1)[0] + "/model-nothing"
    resp = httpx.get(url, timeout=TIMEOUT)
    assert resp.status_code == 404 and "no web endpoint" in resp.text


# -- WebSockets -------------------------------------------------------------------------------------
def test_websocket_messages_flow_both_ways_through_the_tunnel(web: Any) -> None:
    url = _ws_url(web.Model().api.get_web_url()) + "/ws"
    pid = httpx.get(web.Model().api.get_web_url() + "/info", timeout=TIMEOUT).json()["pid"]
    with connect(url, subprotocols=["surge.test"], open_timeout=60) as ws:   # type: ignore[list-item]
        assert ws.subprotocol == "surge.test"              # negotiated with the container
        for i in range(20):
            ws.send(f"m{i}")
            assert ws.recv(timeout=30) == f"echo:m{i}:{pid}"
        payload = bytes(range(256)) * 1024                 # 256 KiB: several TCP segments each way
        ws.send(payload)
        assert ws.recv(timeout=30) == payload[::-1]
        ws.ping().wait(timeout=30)                         # control frames pass end to end
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001      # the container's close


def test_an_open_websocket_keeps_its_container_busy(web: Any) -> None:
    url = _ws_url(web.chat.get_web_url())
    assert _containers("chat") == []                       # the upgrade is held while one starts
    with connect(url, open_timeout=60) as ws:
        ws.send("hi")
        assert ws.recv(timeout=30) == "chat:hi"
        row = _until(lambda: [r for r in _containers("chat") if r["state"] == "BUSY"], "chat BUSY")[0]
        ws.send("again")
        assert ws.recv(timeout=30) == "chat:again"
    _until(lambda: [r for r in _containers("chat") if r["container_id"] == row["container_id"] and r["state"] == "IDLE"],
           "chat IDLE after the socket closed")


def test_a_websocket_to_a_requires_auth_endpoint_needs_the_token(web: Any, server: Any) -> None:
    url = _ws_url(web.guarded.get_web_url())
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=30)
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["www-authenticate"] == "Bearer"
    with pytest.raises(InvalidStatus) as bad:
        connect(url, open_timeout=30, additional_headers={"Authorization": "Bearer not-a-token"})
    assert bad.value.response.status_code == 401
    with connect(url, open_timeout=60, additional_headers={"Authorization": f"Bearer {server.token}"}) as ws:
        assert ws.recv(timeout=30) == "authorization=None"        # the token stops at the gateway


def test_websocket_refusals_are_http_errors(web: Any) -> None:
    base = web.Model().api.get_web_url().rsplit("/", 1)[0]
    with pytest.raises(InvalidStatus) as missing:
        connect(_ws_url(base) + "/no-such-label/ws", open_timeout=30)
    assert missing.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as refused:          # the container's app has no such route
        connect(_ws_url(web.Model().api.get_web_url()) + "/nope", open_timeout=30)
    assert refused.value.response.status_code == 403


# -- the docs' examples, as written ------------------------------------------------------------------
def _docs_example(marker: str, name: str, tmp_path: Path) -> Any:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "web.md").read_text()
    code = next(c for c in re.findall(r"```python\n(.*?)```", docs, flags=re.S) if marker in c)
    (tmp_path / f"{name}.py").write_text(code)
    spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_docs_class_example_runs(server: Any, tmp_path: Path) -> None:
    models = _docs_example("@app.cls", "docs_models", tmp_path)
    try:
        with models.app.run(show_logs=False):
            model = models.Model()
            assert model.predict.get_web_url().endswith("/model-predict")
            assert httpx.get(model.predict.get_web_url(), params={"x": 4}, timeout=TIMEOUT).json() == {"y": 8}
            assert httpx.get(model.api.get_web_url() + "/info", timeout=TIMEOUT).json() == {"size": "small"}
            assert model.embed.remote(3) == 6
        models.app.deploy(name="docs-models")             # deployed: found by name, served by name
        try:
            deployed = surge.Cls.from_name("docs-models", "Model")()
            url = deployed.predict.get_web_url()
            assert url == f"{context.get_client().url}/web/docs-models/model-predict"
            assert httpx.get(url, params={"x": 5}, timeout=TIMEOUT).json() == {"y": 10}
        finally:
            context.get_client().request("POST", "/v1/apps/docs-models/stop")
    finally:
        sys.modules.pop("docs_models", None)


def test_the_docs_websocket_example_runs(server: Any, tmp_path: Path) -> None:
    chat = _docs_example("@web.websocket", "docs_chat", tmp_path)
    try:
        with chat.app.run(show_logs=False), connect(_ws_url(chat.chat.get_web_url()) + "/ws", open_timeout=60) as ws:
            ws.send("hi")
            assert ws.recv(timeout=30) == "echo: hi"
    finally:
        sys.modules.pop("docs_chat", None)
