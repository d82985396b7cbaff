"""Virtual hosts: with ``surge server --web-host surge.localhost``, ``{label}.{app}.surge.localhost``
serves the endpoint ``/web/{app}/{label}`` serves (requests, WebSockets), and ``get_web_url()``
returns that form. Requests go to 127.0.0.1 with the Host header set, as a wildcard DNS record or a
reverse proxy would send them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from surge.sdk import context, embedded
from surge.sdk.client import Client

TIMEOUT = httpx.Timeout(60.0)
BASE = "surge.localhost"


@pytest.fixture(scope="module")
def vhost(tmp_path_factory: pytest.TempPathFactory, apps_path: Path) -> Iterator[tuple[Any, embedded.ServerInfo]]:
    info = embedded.start(tmp_path_factory.mktemp("surge-vhost"), gpus="A100-80GB:1",
                          extra_args=["--web-host", BASE, "--log-level", "warning"])
    client = Client(info.url, info.token)
    old = context.set_client(client)
    try:
        import web_cls_app

        with web_cls_app.app.run(show_logs=False):
            yield web_cls_app, info
    finally:
        context.set_client(old)
        client.close()
        info.stop()


def _port(info: embedded.ServerInfo) -> int:
    return int(info.url.rsplit(":", 1)[1])


def _get(info: embedded.ServerInfo, host: str, path: str = "/", **kw: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{_port(info)}{path}", headers={"host": host}, timeout=TIMEOUT, **kw)


def test_get_web_url_returns_the_virtual_host(vhost: tuple[Any, embedded.ServerInfo]) -> None:
    web, info = vhost
    app_id = web.app.app_id
    assert web.Model().predict.get_web_url() == f"http://model-predict.{app_id}.{BASE}:{_port(info)}/"
    assert web.chat.get_web_url() == f"http://chat.{app_id}.{BASE}:{_port(info)}/"


def test_a_virtual_host_serves_the_endpoint_at_its_root(vhost: tuple[Any, embedded.ServerInfo]) -> None:
    web, info = vhost
    app_id = web.app.app_id
    resp = _get(info, f"model-predict.{app_id}.{BASE}:{_port(info)}", params={"x": 4})
    assert resp.status_code == 200, resp.text
    assert resp.json()["y"] == 8
    host = f"model-api.{app_id}.{BASE}"
    where = _get(info, host, "/info").json()
    assert where["root_path"] == ""                     # at the root of its own host
    assert where["forwarded_host"] == host
    # the path form keeps working on the same server
    by_path = httpx.get(f"{info.url}/web/{app_id}/model-api/info", timeout=TIMEOUT).json()
    assert by_path["root_path"] == f"/web/{app_id}/model-api" and by_path["pid"] == where["pid"]


def test_names_under_the_base_that_are_no_endpoint_are_404(vhost: tuple[Any, embedded.ServerInfo]) -> None:
    web, info = vhost
    for host in (f"nothing.{web.app.app_id}.{BASE}", f"model-api.no-such-app.{BASE}", f"shallow.{BASE}",
                 f"a.b.c.{BASE}"):
        resp = _get(info, host)
        assert resp.status_code == 404, host
        assert "no web endpoint at host" in resp.json()["error"]["message"]


def test_other_hosts_reach_the_api(vhost: tuple[Any, embedded.ServerInfo]) -> None:
    _, info = vhost
    assert _get(info, BASE, "/health").status_code == 200
    assert _get(info, f"127.0.0.1:{_port(info)}", "/v1/web/config").status_code == 401     # the API needs the token
    cfg = httpx.get(f"{info.url}/v1/web/config", headers={"authorization": f"Bearer {info.token}"}, timeout=TIMEOUT)
    assert cfg.json() == {"web_host": BASE}


def test_websockets_by_virtual_host(vhost: tuple[Any, embedded.ServerInfo]) -> None:
    web, info = vhost
    sock = socket.create_connection(("127.0.0.1", _port(info)))
    with connect(f"ws://model-api.{web.app.app_id}.{BASE}:{_port(info)}/ws", sock=sock, open_timeout=60) as ws:
        ws.send("over vhost")
        assert ws.recv(timeout=30).startswith("echo:over vhost:")
