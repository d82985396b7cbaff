"""Web endpoints over real HTTP on 127.0.0.1: every decorator kind, scale-from-zero, held requests
and their deadline, streaming both ways, concurrency, auth and URLs.

Orderings are checked with events (files the test creates once it has seen something), never with
timers: a proxy that buffered a streamed response would deadlock on the gate, not run late.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import surge
from surge.sdk import context

TIMEOUT = httpx.Timeout(60.0)


@pytest.fixture(scope="module")
def web(server: Any, apps_path: Any) -> Iterator[Any]:
    import web_app

    with web_app.app.run(show_logs=False):
        yield web_app


def _live(function: str) -> list[dict[str, Any]]:
    rows = context.get_client().request("GET", "/v1/containers")["containers"]
    return [r for r in rows if r["app"] == "web-e2e" and r["function"] == function
            and r["state"] in ("STARTING", "IDLE", "BUSY")]


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    return str(err["message"])


# -- each kind ------------------------------------------------------------------------------------
def test_a_request_at_zero_containers_is_held_until_one_starts(web: Any) -> None:
    assert _live("hello") == []
    resp = httpx.get(web.hello.get_web_url(), params={"name": "cold"}, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["hello"] == "cold"
    assert len(_live("hello")) == 1


def test_fastapi_get_parses_the_query(web: Any) -> None:
    url = web.hello.get_web_url()
    assert httpx.get(url, params={"name": "ada", "times": 3}, timeout=TIMEOUT).json()["times"] == 3
    assert httpx.get(url + "/", timeout=TIMEOUT).json()["hello"] == "world"
    bad = httpx.get(url, params={"times": "many"}, timeout=TIMEOUT)
    assert bad.status_code == 422 and "times" in bad.text       # FastAPI's own validation
    assert httpx.post(url, timeout=TIMEOUT).status_code == 405   # method="GET" only


def test_fastapi_post_parses_the_json_body(web: Any) -> None:
    url = web.echo.get_web_url()
    assert url.endswith("/echo-json")
    resp = httpx.post(url, json={"b": [1, 2], "a": "x"}, timeout=TIMEOUT)
    assert resp.json() == {"got": {"b": [1, 2], "a": "x"}, "keys": ["a", "b"]}
    assert httpx.post(url, content=b"{not json", headers={"content-type": "application/json"},
                      timeout=TIMEOUT).status_code == 422


def test_a_fastapi_endpoint_is_still_callable_with_remote(web: Any) -> None:
    assert web.hello.remote(name="sdk")["hello"] == "sdk"


def test_asgi_app_serves_its_routes_under_the_prefix(web: Any) -> None:
    url = web.api.get_web_url()
    assert httpx.post(url + "/items/7", json={"name": "seven"}, timeout=TIMEOUT).json() == {"stored": 7}
    assert httpx.get(url + "/items/7", timeout=TIMEOUT).json() == {"id": 7, "name": "seven"}
    where = httpx.get(url + "/where", headers={"authorization": "Bearer mine"}, timeout=TIMEOUT).json()
    prefix = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    assert where["path"].endswith("/where")
    assert where["root_path"] == "/" + prefix                  # from X-Forwarded-Prefix
    assert where["forwarded_for"] == "127.0.0.1"
    assert where["authorization"] == "Bearer mine"              # public endpoints pass it on
    assert httpx.get(url + "/nope", timeout=TIMEOUT).status_code == 404     # the app's 404


def test_wsgi_app(web: Any) -> None:
    resp = httpx.post(web.legacy.get_web_url() + "/a/b", params={"x": "1"}, content=b"12345", timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.headers["x-wsgi"] == "yes"
    method, paths, size = resp.text.split(" ")
    script, path = paths.split("|")
    assert (method, path, size) == ("POST", "/a/b?x=1", "5")
    assert script.endswith("/legacy")


def test_web_server_proxies_to_the_containers_own_server(web: Any) -> None:
    resp = httpx.get(web.files.get_web_url() + "/some/file.txt", params={"q": "1"}, timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.text == "own server saw /some/file.txt?q=1"


def test_head_requests_get_headers_only(web: Any) -> None:
    """The container answers HEAD with the GET's Content-Length and no body: the gateway must not
    wait for that body (it would hang until the client gave up)."""
    url = web.api.get_web_url() + "/fixed"
    get = httpx.get(url, timeout=TIMEOUT)
    head = httpx.head(url, timeout=TIMEOUT)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert httpx.get(url, timeout=TIMEOUT).text == get.text       # the next request is unaffected


# -- streaming ------------------------------------------------------------------------------------
def test_a_streamed_response_arrives_as_it_is_produced(web: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with httpx.stream("GET", web.api.get_web_url() + "/stream", params={"gate": str(gate)},
                      timeout=TIMEOUT) as resp:
        lines = resp.iter_lines()
        assert next(lines) == "first"      # before the handler can finish: it waits for the gate
        gate.touch()
        assert next(lines) == "second"


def test_server_sent_events(web: Any) -> None:
    with httpx.stream("GET", web.api.get_web_url() + "/events", params={"n": 4}, timeout=TIMEOUT) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    assert events == ["data: 0", "data: 1", "data: 2", "data: 3"]


def test_a_client_that_disconnects_is_seen_by_the_app(web: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with httpx.stream("GET", web.api.get_web_url() + "/forever", params={"marker": str(marker)},
                      timeout=TIMEOUT) as resp:
        assert next(resp.iter_lines()) == "tick"
    # closed: the gateway closes its connection to the container, whose app sees the disconnect
    seen = threading.Event()
    for _ in range(600):
        if marker.exists():
            seen.set()
            break
        seen.wait(0.05)
    assert seen.is_set() and marker.read_text() == "disconnected"


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_large_upload_streams_through_without_being_held_in_memory(web: Any, server: Any) -> None:
    pid = json.loads((Path(server.home) / "server.json").read_text())["pid"]
    size, piece = 192 << 20, os.urandom(1 << 20)
    before = _peak_rss_kib(pid)

    def body() -> Iterator[bytes]:
        for _ in range(size // len(piece)):
            yield piece

    resp = httpx.post(web.api.get_web_url() + "/upload", content=body(), timeout=TIMEOUT)
    expected = hashlib.sha256(piece * (size // len(piece))).hexdigest()
    assert resp.json()["size"] == size and resp.json()["sha256"] == expected
    assert resp.json()["chunks"] > 1
    grew_mib = (_peak_rss_kib(pid) - before) / 1024
    assert grew_mib < 64, f"the control plane's peak memory grew by {grew_mib:.0f} MiB for a 192 MiB upload"


def test_an_upload_with_content_length(web: Any) -> None:
    data = os.urandom(3 << 20)
    resp = httpx.post(web.api.get_web_url() + "/upload", content=data, timeout=TIMEOUT)
    assert resp.json()["size"] == len(data) and resp.json()["sha256"] == hashlib.sha256(data).hexdigest()


# -- capacity ---------------------------------------------------------------------------------------
def _together(url: str, n: int, directory: Path) -> list[int]:
    """``n`` concurrent requests that each wait until all ``n`` are running at once."""
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(httpx.get, url, params={"directory": str(directory), "n": n}, timeout=TIMEOUT)
                   for _ in range(n)]
        resps = [f.result() for f in futures]
    assert all(r.status_code == 200 for r in resps), [r.text for r in resps]
    return [int(r.json()["pid"]) for r in resps]


def test_concurrent_requests_spread_over_containers(web: Any, tmp_path: Path) -> None:
    # one request per container (the default): three at once need three containers
    assert len(set(_together(web.barrier.get_web_url(), 3, tmp_path))) == 3


def test_surge_concurrent_lets_one_container_take_several(web: Any, tmp_path: Path) -> None:
    # @surge.concurrent(max_inputs=3), max_containers=1: the three run together in one container
    assert len(set(_together(web.shared_barrier.get_web_url(), 3, tmp_path))) == 1


def test_a_held_request_gets_503_with_retry_after_when_its_deadline_passes(web: Any, tmp_path: Path) -> None:
    """max_containers=1 and its only slot taken: the next request is held for the function's
    timeout (2 s), then refused."""
    gate = tmp_path / "gate"
    url = web.busy.get_web_url() + "/hold"
    with httpx.stream("GET", url, params={"gate": str(gate)}, timeout=TIMEOUT) as first:
        lines = first.iter_lines()
        assert next(lines) == "holding"           # the slot is taken until the gate opens
        second = httpx.get(url, params={"gate": str(gate)}, timeout=TIMEOUT)
        assert "within 2 s" in _error(second, 503)
        assert int(second.headers["retry-after"]) >= 1
        gate.touch()
        assert next(lines) == "released"
    assert httpx.get(url, params={"gate": str(gate)}, timeout=TIMEOUT).status_code == 200


def test_a_container_that_cannot_start_fails_held_requests_with_503(web: Any) -> None:
    resp = httpx.get(web.broken.get_web_url(), timeout=TIMEOUT)
    assert "no app today" in _error(resp, 503)
    assert resp.headers["retry-after"]
    slow = httpx.get(web.slow_start.get_web_url(), timeout=TIMEOUT)
    assert "startup_timeout=2" in _error(slow, 503)


# -- auth and addressing ---------------------------------------------------------------------------
def test_requires_auth(web: Any, server: Any) -> None:
    url = web.secret.get_web_url()
    assert _error(httpx.get(url, timeout=TIMEOUT), 401).startswith("this endpoint requires a surge token")
    assert httpx.get(url, headers={"authorization": "Bearer sg-wrong"}, timeout=TIMEOUT).status_code == 401
    ok = httpx.get(url, headers={"authorization": f"Bearer {server.token}"}, timeout=TIMEOUT)
    assert ok.json() == {"secret": "42"}
    docs = httpx.get(url + "/docs", headers={"authorization": f"Bearer {server.token}"}, timeout=TIMEOUT)
    prefix = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    assert f"/{prefix}/openapi.json" in docs.text                 # docs=True, under the prefix


def test_unknown_endpoints_are_404_without_a_token(web: Any, server: Any) -> None:
    for path in ("/web/no-such-app/hello", "/web/web-e2e/hello", "/web/ap-0-0/x/y"):
        assert "no web endpoint" in _error(httpx.get(server.url + path, timeout=TIMEOUT), 404)


def test_get_web_url_of_a_deployed_app(web: Any, server: Any) -> None:
    web.app.deploy(name="web-e2e-deployed")
    try:
        url = surge.Function.from_name("web-e2e-deployed", "hello").get_web_url()
        assert url == f"{server.url}/web/web-e2e-deployed/hello"
        assert httpx.get(url, params={"name": "deployed"}, timeout=TIMEOUT).json()["hello"] == "deployed"
        with pytest.raises(surge.InvalidError, match="not a web endpoint"):
            surge.Function.from_name("web-e2e-deployed", "plain").get_web_url()
        with pytest.raises(surge.NotFoundError):
            surge.Function.from_name("web-e2e-deployed", "nope").get_web_url()
    finally:
        context.get_client().request("POST", "/v1/apps/web-e2e-deployed/stop")
    assert httpx.get(url, timeout=TIMEOUT).status_code == 404       # stopped: gone at once


def test_non_web_functions_and_http_only_functions(web: Any) -> None:
    with pytest.raises(surge.InvalidError, match="not a web endpoint"):
        web.plain.get_web_url()
    with pytest.raises(surge.InvalidError, match="served over HTTP"):
        web.api.remote()


# -- declaration errors ----------------------------------------------------------------------------
def _noop() -> None:
    pass


def _one(x: int) -> int:
    return x


BAD = [
    (lambda: surge.fastapi_endpoint(_noop), "did you forget parentheses"),
    (lambda: surge.fastapi_endpoint(method="FETCH"), r"method='FETCH': must be one of GET, POST"),
    (lambda: surge.fastapi_endpoint(label="Bad_Label"), r"label='Bad_Label'.*DNS label.*label='bad-label'"),
    (lambda: surge.asgi_app(label="-x"), r"label='-x'"),
    (lambda: surge.asgi_app(label="x" * 64), "1 to 63"),
    (lambda: surge.fastapi_endpoint(docs="yes"), r"docs='yes': must be True or False"),
    (lambda: surge.web_server(0), r"port=0: must be a whole number between 1 and 65535"),
    (lambda: surge.web_server(70000), r"port=70000"),
    (lambda: surge.web_server(_noop), "needs the port"),
    (lambda: surge.web_server(8000, startup_timeout=0), r"startup_timeout=0"),
    (lambda: surge.asgi_app()(_one), r"no arguments that returns the app; _one requires x"),
    (lambda: surge.web_server(8000)(_one), r"no arguments that starts the server"),
    (lambda: surge.asgi_app(custom_domains=["a.example"]), "custom_domains"),
    (lambda: surge.fastapi_endpoint(requires_auth=True, requires_proxy_auth=False), "same option"),
]


@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_decorator_usage_fails_at_the_decorator_line(make: Any, message: str) -> None:
    with pytest.raises(surge.InvalidError, match=message):
        make()


def _first() -> None:
    pass


def _second() -> None:
    pass


def _twice() -> None:
    pass


def test_stacking_mistakes() -> None:
    app = surge.App("web-bad")
    with pytest.raises(surge.InvalidError, match=r"below @app\.function"):
        surge.asgi_app()(app.function()(_noop))
    app.function()(surge.fastapi_endpoint(label="same")(_first))
    with pytest.raises(surge.InvalidError, match="both serve web label 'same'"):
        app.function()(surge.fastapi_endpoint(label="same")(_second))
    marked = surge.wsgi_app()(_twice)
    with pytest.raises(surge.InvalidError, match="already has a web decorator"):
        surge.asgi_app()(marked)


def test_web_endpoint_is_the_old_name_of_fastapi_endpoint() -> None:
    with pytest.warns(DeprecationWarning, match="use @surge.fastapi_endpoint"):
        deco = surge.web_endpoint(method="POST")
    assert deco(_noop).__surge_web__.method == "POST"     # type: ignore[attr-defined]


def test_endpoint_containers_scale_to_zero_after_the_window(web: Any) -> None:
    """A served request leaves its container IDLE (busy only while it ran), and the scaledown
    window (2 s here) then removes it."""
    assert httpx.get(web.brief.get_web_url(), timeout=TIMEOUT).json() == {"ok": True}
    rows = _live("brief")
    assert len(rows) == 1 and rows[0]["state"] == "IDLE" and rows[0]["inflight"] == 0
    gone = threading.Event()
    for _ in range(300):                 # polls for the outcome; the window itself is the server's
        if not _live("brief"):
            gone.set()
            break
        gone.wait(0.1)
    assert gone.is_set(), _live("brief")


# -- the CLI prints the URLs ------------------------------------------------------------------------
def _surge(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SURGE_SERVER_URL": server.url, "SURGE_TOKEN": server.token or ""}
    proc = subprocess.run([sys.executable, "-m", "surge.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_deploy_and_run_print_the_endpoint_urls(web: Any, server: Any, apps_path: Path) -> None:
    out = _surge(server, "deploy", str(apps_path / "web_app.py"), "--name", "web-cli").stderr
    try:
        urls = dict(re.findall(r"web endpoint (\S+): (\S+)", out))
        assert urls["hello"] == f"{server.url}/web/web-cli/hello"
        assert urls["echo"] == f"{server.url}/web/web-cli/echo-json"
        assert "plain" not in urls
        assert httpx.get(urls["hello"], timeout=TIMEOUT).json()["hello"] == "world"
    finally:
        context.get_client().request("POST", "/v1/apps/web-cli/stop")
    ran = _surge(server, "run", f"{apps_path / 'web_app.py'}::plain", "--x", "5")
    assert re.search(rf"web endpoint api: {re.escape(server.url)}/web/ap-[0-9a-f-]+/api", ran.stderr), ran.stderr
    assert ran.stdout.strip() == "5"


def test_the_docs_example_runs(server: Any, tmp_path: Path) -> None:
    """The first example of docs/web.md, as written (on a free port instead of 8000)."""
    import importlib.util

    docs = (Path(__file__).resolve().parents[2] / "docs" / "web.md").read_text()
    code = re.findall(r"```python\n(.*?)```", docs, flags=re.S)[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    (tmp_path / "shop.py").write_text(code.replace("8000", port))
    spec = importlib.util.spec_from_file_location("shop", tmp_path / "shop.py")
    assert spec is not None and spec.loader is not None
    shop = importlib.util.module_from_spec(spec)
    sys.modules["shop"] = shop
    try:
        spec.loader.exec_module(shop)
        with shop.app.run(show_logs=False):
            assert httpx.get(shop.square.get_web_url(), params={"x": 7}, timeout=TIMEOUT).json() == {"square": 49}
            assert httpx.get(shop.api.get_web_url() + "/items/3", timeout=TIMEOUT).json() == {"id": 3}
            assert httpx.get(shop.legacy.get_web_url(), timeout=TIMEOUT).text == "hello from WSGI"
            assert httpx.post(shop.predict.get_web_url(), json={}, timeout=TIMEOUT).status_code == 401
            listing = httpx.get(shop.notebook.get_web_url() + "/", timeout=TIMEOUT)
            assert listing.status_code == 200 and "Directory listing" in listing.text
    finally:
        sys.modules.pop("shop", None)
