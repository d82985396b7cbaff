"""Serving a web endpoint inside a container.

A class's container serves every web method of the class (after its ``@enter`` hooks): the ASGI
ones behind one uvicorn on the container's socket (``Mux`` picks the app by the label the gateway
sends in ``X-Surge-Label``), each ``web_server`` method's server on its own port.

``@surge.fastapi_endpoint`` functions are wrapped in a FastAPI app; ``@surge.asgi_app`` and
``@surge.wsgi_app`` functions return the app; either way uvicorn serves it on a Unix socket in
the agent's run directory (``web-{container_id}.sock``), on a thread of its own, and the
container says ``ready`` only once the socket accepts connections (and the app's lifespan startup
has run). ``@surge.web_server`` functions start their own server: the function runs on a thread
(it may return or block), and the container is ready once ``127.0.0.1:{port}`` accepts
connections, within the decorator's ``startup_timeout``.

The control plane's gateway proxies requests to that socket or port, with the endpoint's public
prefix (``/web/{app}/{label}``) in ``X-Forwarded-Prefix``; ``with_prefix`` makes it the ASGI
``root_path``, so apps build correct absolute URLs (FastAPI's ``/docs`` among them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from surge.wire import web_socket_path

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Any    # an ASGI callable


# -- building the ASGI app -----------------------------------------------------------------------
def build_app(spec: dict[str, Any], fn: Callable[..., Any], max_inputs: int) -> ASGIApp:
    kind = spec["kind"]
    if kind == "fastapi":
        from fastapi import FastAPI

        api = FastAPI(docs_url="/docs" if spec.get("docs") else None, redoc_url=None,
                      openapi_url="/openapi.json" if spec.get("docs") else None)
        api.add_api_route("/", fn, methods=[str(spec.get("method") or "GET")])
        return with_prefix(api)
    app = fn()
    if kind == "wsgi":
        if not callable(app):
            raise TypeError(f"@surge.wsgi_app: {fn.__name__}() returned {type(app).__name__}, not a WSGI app")
        return with_prefix(WSGIAdapter(app, max_workers=max(4, max_inputs)))
    if not callable(app):
        raise TypeError(f"@surge.asgi_app: {fn.__name__}() returned {type(app).__name__}, not an ASGI app")
    return with_prefix(app)


def with_prefix(app: ASGIApp) -> ASGIApp:
    """Set ``root_path`` from the gateway's ``X-Forwarded-Prefix`` (paths stay relative to it)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            for k, v in scope["headers"]:
                if k == b"x-forwarded-prefix":
                    scope = dict(scope)
                    scope["root_path"] = scope.get("root_path", "") + v.decode("latin-1").rstrip("/")
                    break
        await app(scope, receive, send)

    return wrapped


# -- several endpoints in one container (web methods of an @app.cls class) ----------------------
class Mux:
    """The ASGI app of a class's container: one per web method, chosen by the label the gateway
    names in ``X-Surge-Label``. Lifespan events go to every app (one that does not support lifespan
    is skipped, as uvicorn's ``lifespan="auto"`` does), so each app's startup runs before the
    container says it is ready."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        label = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-surge-label"), "")
        app = self.apps.get(label)
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            body = f"no web endpoint {label!r} in this container".encode()
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        children = [_Lifespan(app, scope) for app in self.apps.values()]
        await receive()                                    # lifespan.startup
        failures = [f for f in await asyncio.gather(*(c.startup() for c in children)) if f]
        if failures:
            await send({"type": "lifespan.startup.failed", "message": "; ".join(failures)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()                                    # lifespan.shutdown
        await asyncio.gather(*(c.shutdown() for c in children))
        await send({"type": "lifespan.shutdown.complete"})


class _Lifespan:
    """One app's lifespan, driven by ``Mux``."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run(app, scope))

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.inbox.get, self.outbox.put)
        except Exception as exc:          # no lifespan support (or it failed before starting)
            await self.outbox.put({"type": "surge.lifespan.error", "message": f"{type(exc).__name__}: {exc}"})
        else:
            await self.outbox.put({"type": "surge.lifespan.returned"})

    async def startup(self) -> str | None:
        """None once started (or when the app has no lifespan); else why its startup failed."""
        await self.inbox.put({"type": "lifespan.startup"})
        msg = await self.outbox.get()
        if msg["type"] == "lifespan.startup.failed":
            return str(msg.get("message") or "the app's lifespan startup failed")
        return None

    async def shutdown(self) -> None:
        if self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()


# -- WSGI ------------------------------------------------------------------------------------------
class _Body:
    """``wsgi.input``: reads the request body from the event loop as the app asks for it, so a
    large upload is never held in memory whole."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive) -> None:
        self._loop = loop
        self._receive = receive
        self._buf = bytearray()
        self._more = True

    def _fill(self) -> bool:
        if not self._more:
            return False
        msg = asyncio.run_coroutine_threadsafe(self._receive(), self._loop).result()
        if msg["type"] == "http.disconnect":
            self._more = False
            raise OSError("the client disconnected")
        self._buf += msg.get("body", b"")
        self._more = bool(msg.get("more_body", False))
        return True

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buf) < size) and self._fill():
            pass
        n = len(self._buf) if size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readline(self, size: int = -1) -> bytes:
        while b"\n" not in self._buf and (size < 0 or len(self._buf) < size) and self._fill():
            pass
        end = self._buf.find(b"\n") + 1 or len(self._buf)
        if size >= 0:
            end = min(end, size)
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class WSGIAdapter:
    """Runs a WSGI app on a thread pool; request and response bodies stream (the response with
    backpressure: the app's iterator is pulled only as fast as the client reads)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *, max_workers: int) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="surge-wsgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=8)

        def put(item: tuple[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        run = loop.run_in_executor(self.pool, self._run, environ(scope, _Body(loop, receive)), put)
        started = False
        status: tuple[int, list[tuple[bytes, bytes]]] = (500, [])
        while True:
            kind, value = await queue.get()
            if kind == "start":
                status = value
                continue
            if not started:
                started = True
                await send({"type": "http.response.start", "status": status[0], "headers": status[1]})
            if kind == "end":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                break
            await send({"type": "http.response.body", "body": value, "more_body": True})
        await run

    def _run(self, env: dict[str, Any], put: Callable[[tuple[str, Any]], None]) -> None:
        sent = False

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            if exc_info is not None and sent:
                raise exc_info[1].with_traceback(exc_info[2])
            put(("start", (int(status.split(" ", 1)[0]),
                           [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers])))
            return lambda data: put(("body", bytes(data)))

        try:
            result = self.app(env, start_response)
            try:
                for chunk in result:
                    if chunk:
                        sent = True
                        put(("body", bytes(chunk)))
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            traceback.print_exc()
            if not sent:
                put(("start", (500, [(b"content-type", b"text/plain; charset=utf-8")])))
                put(("body", b"Internal Server Error"))
        put(("end", None))


def environ(scope: Scope, body: _Body) -> dict[str, Any]:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    host = next((v for k, v in headers if k == "host"), "localhost")
    name, _, port = host.partition(":")
    client = scope.get("client") or ("", 0)
    forwarded = next((v for k, v in headers if k == "x-forwarded-for"), "")
    env: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": name,
        "SERVER_PORT": port or "80",
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": forwarded.split(",")[0].strip() or client[0] or "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": next((v for k, v in headers if k == "x-forwarded-proto"), scope.get("scheme", "http")),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for k, v in headers:
        if k == "content-type":
            env["CONTENT_TYPE"] = v
        elif k == "content-length":
            env["CONTENT_LENGTH"] = v
        else:
            key = "HTTP_" + k.upper().replace("-", "_")
            env[key] = f"{env[key]},{v}" if key in env else v
    return env


# -- serving -------------------------------------------------------------------------------------
def preload() -> None:
    """Import what serving an endpoint needs (FastAPI, uvicorn and the protocol modules it loads
    lazily): a zygote calls this, so containers it forks start serving without ~150 ms of imports."""
    import importlib

    for module in ("fastapi", "fastapi.routing", "fastapi.responses", "uvicorn", "uvicorn.config",
                   "uvicorn.server", "uvicorn.lifespan.on", "uvicorn.loops.auto", "uvicorn.loops.asyncio",
                   "uvicorn.loops.uvloop", "uvicorn.protocols.http.httptools_impl",
                   "uvicorn.protocols.http.h11_impl", "uvicorn.protocols.websockets.auto"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def serve(spec: dict[str, Any], fn: Callable[..., Any], *, max_inputs: int, run_dir: str,
          container_id: str) -> dict[str, float]:
    """Start serving; return once requests can be proxied (raise if that cannot happen). The
    returned phases (seconds) join the container's start-up report."""
    t0 = time.perf_counter()
    if spec["kind"] == "server":
        _start_own_server(fn, int(spec["port"]), float(spec.get("startup_timeout") or 5.0))
        return {"web_server": time.perf_counter() - t0}
    app = build_app(spec, fn, max_inputs)
    t1 = time.perf_counter()
    _start_uvicorn(app, web_socket_path(run_dir, container_id))
    return {"web_app": t1 - t0, "web_listen": time.perf_counter() - t1}


def serve_service(service: Any, *, run_dir: str, container_id: str) -> dict[str, float]:
    """Serve a container's web endpoints (a function's one, or every web method of a class, after its
    ``@enter`` hooks ran): the ASGI ones on the container's socket, each ``web_server`` method's own
    server on its port. Return once all of them accept connections."""
    if service.web is not None:
        return serve(service.web, service.targets[""].fn, max_inputs=service.max_inputs, run_dir=run_dir,
                     container_id=container_id)
    t0 = time.perf_counter()
    apps: dict[str, ASGIApp] = {}
    for name, spec in service.web_methods.items():
        fn = service.targets[name].fn
        if spec["kind"] == "server":
            _start_own_server(fn, int(spec["port"]), float(spec.get("startup_timeout") or 5.0))
        else:
            apps[str(spec["label"])] = build_app(spec, fn, service.max_inputs)
    t1 = time.perf_counter()
    if apps:
        _start_uvicorn(Mux(apps), web_socket_path(run_dir, container_id))
    return {"web_app": t1 - t0, "web_listen": time.perf_counter() - t1}


def _start_uvicorn(app: ASGIApp, path: str) -> None:
    import uvicorn

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = uvicorn.Server(uvicorn.Config(
        app, uds=path, lifespan="auto", access_log=False, log_level="warning", log_config=None,
        server_header=False, date_header=False, timeout_keep_alive=3600, backlog=4096))
    thread = threading.Thread(target=server.run, name="surge-web", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the web app did not start: its lifespan startup failed or uvicorn could not "
                               f"listen on {path} (see the container log above)")
        time.sleep(0.001)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_own_server(fn: Callable[..., Any], port: int, timeout: float) -> None:
    if _listening(port):
        raise RuntimeError(f"port {port} is already in use on this node (another container of this endpoint, or "
                           "another program): @surge.web_server endpoints need their port to themselves")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:   # reported as the container's start-up failure
            failure.append(exc)

    thread = threading.Thread(target=run, name="surge-web-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not _listening(port):
        if failure:
            raise failure[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} {timeout:g} s after {fn.__name__}() started: the "
                               f"server must listen on 127.0.0.1:{port} (or 0.0.0.0) within "
                               "@surge.web_server(startup_timeout=...)")
        time.sleep(0.01)
