"""Web methods of an ``@app.cls`` class for tests/e2e/test_web_cls.py: one of each decorator kind on
one class with an ``@enter`` hook, a plain ``@surge.method()`` sharing its containers, and a
WebSocket route (proxied by the gateway's tunnel)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

import surge

app = surge.App("web-cls-e2e")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER_PORT = int(os.environ.get("WEB_CLS_E2E_PORT") or _free_port())
os.environ["WEB_CLS_E2E_PORT"] = str(SERVER_PORT)

ENTERED: list[int] = []        # how many times @enter ran in this process


@app.cls(env={"WEB_CLS_E2E_PORT": str(SERVER_PORT)}, max_containers=1)
@surge.concurrent(max_inputs=8)
class Model:
    greeting: str = surge.parameter(default="hello")

    @surge.enter()
    def load(self) -> None:
        ENTERED.append(os.getpid())
        self.weights = {"scale": 2}

    @surge.fastapi_endpoint(method="GET")
    def predict(self, x: int) -> dict[str, Any]:
        return {"y": x * self.weights["scale"], "greeting": self.greeting, "pid": os.getpid(),
                "entered": len(ENTERED)}

    @surge.fastapi_endpoint(method="POST", label="model-echo")
    async def echo(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"got": item, "pid": os.getpid()}

    @surge.asgi_app(label="model-api")
    def api(self) -> Any:
        web = FastAPI()
        scale = self.weights["scale"]

        @web.get("/info")
        def info(request: Request) -> dict[str, Any]:
            return {"scale": scale, "root_path": request.scope.get("root_path"), "pid": os.getpid(),
                    "entered": len(ENTERED), "host": request.headers.get("host"),
                    "forwarded_host": request.headers.get("x-forwarded-host")}

        @web.websocket("/ws")
        async def ws(sock: WebSocket) -> None:
            await sock.accept(subprotocol=sock.scope["subprotocols"][0] if sock.scope["subprotocols"] else None)
            try:
                while True:
                    msg = await sock.receive()
                    if msg["type"] == "websocket.disconnect":
                        return
                    if msg.get("bytes") is not None:
                        await sock.send_bytes(msg["bytes"][::-1])
                    elif msg.get("text") == "close":
                        await sock.close(code=4001, reason="asked to")
                        return
                    else:
                        await sock.send_text(f"echo:{msg.get('text')}:{os.getpid()}")
            except WebSocketDisconnect:
                return

        return web

    @surge.wsgi_app()
    def legacy(self) -> Any:
        greeting = self.greeting

        def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            data = f"{greeting} from WSGI {environ['PATH_INFO']} {os.getpid()}".encode()
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
            return [data]

        return wsgi

    @surge.web_server(SERVER_PORT, startup_timeout=30)
    def own(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        scale = self.weights["scale"]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = f"own server (scale {scale}) saw {self.path} {os.getpid()}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["WEB_CLS_E2E_PORT"])), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()

    @surge.method()
    def pid(self) -> int:
        return os.getpid()


@app.function()
@surge.asgi_app(label="chat")
def chat() -> Any:
    """A function's WebSocket endpoint (max_inputs=1: an open socket holds the container's slot)."""
    web = FastAPI()

    @web.websocket("/")
    async def ws(sock: WebSocket) -> None:
        await sock.accept()
        try:
            while True:
                text = await sock.receive_text()
                await sock.send_text(f"chat:{text}")
        except WebSocketDisconnect:
            return

    return web


@app.function()
@surge.asgi_app(label="guarded", requires_auth=True)
def guarded() -> Any:
    """A WebSocket behind the surge token: it reports whether the token reached it (it must not)."""
    web = FastAPI()

    @web.websocket("/")
    async def ws(sock: WebSocket) -> None:
        await sock.accept()
        await sock.send_text(f"authorization={sock.headers.get('authorization')}")
        await sock.close()

    return web
