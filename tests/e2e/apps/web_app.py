"""Web endpoints for tests/e2e/test_web.py: one of each decorator kind, plus endpoints that block on
files the test creates (so ordering is checked with events, not timers)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

import surge

app = surge.App("web-e2e")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# the test process picks the port; containers read it back from their env (set below)
SERVER_PORT = int(os.environ.get("WEB_E2E_PORT") or _free_port())
os.environ["WEB_E2E_PORT"] = str(SERVER_PORT)


def _wait_for(path: Path, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {path} never appeared")
        time.sleep(0.005)


@app.function()
@surge.fastapi_endpoint(method="GET")
def hello(name: str = "world", times: int = 1) -> dict[str, Any]:
    return {"hello": name, "times": times, "pid": os.getpid()}


@app.function()
@surge.fastapi_endpoint(method="POST", label="echo-json")
def echo(item: dict[str, Any]) -> dict[str, Any]:
    return {"got": item, "keys": sorted(item)}


@app.function()
@surge.fastapi_endpoint(method="GET", requires_auth=True, docs=True)
def secret() -> dict[str, str]:
    return {"secret": "42"}


@app.function()
@surge.asgi_app(label="api")
def api() -> Any:
    web = FastAPI()
    items: dict[int, str] = {}

    @web.get("/items/{item_id}")
    def get_item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": items.get(item_id)}

    @web.post("/items/{item_id}")
    def put_item(item_id: int, body: dict[str, str]) -> dict[str, Any]:
        items[item_id] = body["name"]
        return {"stored": item_id}

    @web.get("/where")
    def where(request: Request) -> dict[str, Any]:
        return {"path": request.url.path, "root_path": request.scope.get("root_path"),
                "forwarded_for": request.headers.get("x-forwarded-for"), "pid": os.getpid(),
                "authorization": request.headers.get("authorization")}

    @web.api_route("/fixed", methods=["GET", "HEAD"])
    def fixed() -> dict[str, str]:
        return {"fixed": "body"}

    @web.get("/stream")
    def stream(gate: str) -> StreamingResponse:
        """First chunk at once; the second only after the test created ``gate`` (which it does
        only once it has read the first): a buffering proxy deadlocks here."""
        def chunks() -> Iterable[bytes]:
            yield b"first\n"
            _wait_for(Path(gate), "stream gate")
            yield b"second\n"
        return StreamingResponse(chunks(), media_type="text/plain")

    @web.get("/events")
    async def events(n: int = 3) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(n):
                yield f"data: {i}\n\n".encode()
        return StreamingResponse(gen(), media_type="text/event-stream")

    @web.get("/forever")
    async def forever(marker: str) -> StreamingResponse:
        """Streams until the client goes away (Starlette then cancels it), and leaves ``marker``."""
        async def gen() -> AsyncIterator[bytes]:
            import asyncio

            try:
                yield b"tick\n"
                while True:
                    await asyncio.sleep(0.01)
            finally:
                Path(marker).write_text("disconnected")
        return StreamingResponse(gen(), media_type="text/plain")

    @web.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        h = hashlib.sha256()
        size = chunks = 0
        async for chunk in request.stream():
            h.update(chunk)
            size += len(chunk)
            chunks += 1
        return {"size": size, "sha256": h.hexdigest(), "chunks": chunks}

    return web


@app.function()
@surge.wsgi_app()
def legacy() -> Any:
    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        text = (f"{environ['REQUEST_METHOD']} {environ['SCRIPT_NAME']}|{environ['PATH_INFO']}"
                f"?{environ['QUERY_STRING']} {len(body)}")
        data = text.encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data))),
                                  ("X-Wsgi", "yes")])
        return [data]

    return wsgi


@app.function(env={"WEB_E2E_PORT": str(SERVER_PORT)})
@surge.web_server(SERVER_PORT, startup_timeout=30)
def files() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = f"own server saw {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["WEB_E2E_PORT"])), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


@app.function()
@surge.fastapi_endpoint()
def barrier(directory: str, n: int) -> dict[str, int]:
    """Each request marks itself, then waits until ``n`` are running at once."""
    d = Path(directory)
    (d / f"{os.getpid()}-{threading.get_ident()}").touch()
    deadline = time.monotonic() + 60
    while len(list(d.iterdir())) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("the others never came")
        time.sleep(0.005)
    return {"pid": os.getpid()}


@app.function(max_containers=1)
@surge.concurrent(max_inputs=3)
@surge.fastapi_endpoint()
def shared_barrier(directory: str, n: int) -> dict[str, int]:
    return barrier.local(directory, n)


@app.function(timeout=2, max_containers=1)
@surge.asgi_app(label="busy")
def busy() -> Any:
    web = FastAPI()

    @web.get("/hold")
    def hold(gate: str) -> StreamingResponse:
        def chunks() -> Iterable[bytes]:
            yield b"holding\n"
            _wait_for(Path(gate), "hold gate")
            yield b"released\n"
        return StreamingResponse(chunks())

    return web


@app.function(startup_timeout=2)
@surge.asgi_app(label="slow-start")
def slow_start() -> Any:
    time.sleep(600)


@app.function()
@surge.wsgi_app(label="broken")
def broken() -> Any:
    raise RuntimeError("no app today")


@app.function(scaledown_window=2)
@surge.fastapi_endpoint()
def brief() -> dict[str, bool]:
    return {"ok": True}


@app.function()
def plain(x: int) -> int:
    return x
