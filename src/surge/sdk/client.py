"""The SDK's HTTP client: the only place the SDK does network I/O.

The transport is injectable (``Client(url, token, transport=...)``) so integration tests drive the
real control-plane app in-process. Connection failures are retried with backoff; every submission
carries an idempotency key so a retried POST never creates a second call.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import httpx

from surge import errors
from surge.config import Settings
from surge.sdk.serialization import b64

RATE_LIMIT_WAIT = 600.0   # seconds a request keeps retrying 429 answers before raising


def _retry_after(header: str | None) -> float:
    try:
        return min(60.0, max(0.05, float(header or 1.0)))
    except ValueError:     # an HTTP date: not sent by surge; wait a second
        return 1.0


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}: {resp.text[:200]}"


_RETRYABLE = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError,
              httpx.ConnectTimeout, httpx.PoolTimeout)


class Client:
    """A connection to one control plane."""

    def __init__(self, url: str, token: str | None, *, transport: httpx.BaseTransport | None = None,
                 http: httpx.Client | None = None, connect_retries: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if http is not None:
            http.headers.update(headers)
            self._http = http
        else:
            if transport is None:
                # httpx writes headers and body separately; without TCP_NODELAY, Nagle's algorithm
                # holds the body until the server's delayed ACK: +40 ms on every small POST
                transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                                                limits=httpx.Limits(max_keepalive_connections=32))
            self._http = httpx.Client(base_url=self.url, headers=headers, transport=transport,
                                      timeout=httpx.Timeout(120.0, connect=5.0))
        self._connect_retry_seconds = connect_retries

    @classmethod
    def from_settings(cls, settings: Settings) -> Client:
        if not settings.server_url:
            raise errors.ConnectionError("no control plane configured: set SURGE_SERVER_URL or use "
                                         "`surge run`, which starts an embedded one")
        return cls(settings.server_url, settings.read_token())

    def close(self) -> None:
        self._http.close()

    # -- plumbing ----------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                content: bytes | None = None, timeout: float | None = None, retry: bool = True,
                wait_if_limited: bool = True) -> Any:
        """One API request. Connection failures and 503 are retried for ``connect_retries`` s; a
        429 (rate limit, full queue: nothing was done) is retried after its ``Retry-After`` for up
        to ``RATE_LIMIT_WAIT`` s unless ``wait_if_limited`` is false, which raises RateLimitedError."""
        deadline = time.monotonic() + self._connect_retry_seconds
        limited_until = time.monotonic() + RATE_LIMIT_WAIT
        delay = 0.05
        while True:
            try:
                resp = self._http.request(method, path, json=json, params=params, content=content,
                                          timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
            except _RETRYABLE as exc:
                if not retry or time.monotonic() > deadline:
                    raise errors.ConnectionError(
                        f"cannot reach the surge control plane at {self.url}: {exc}. Is `surge server` "
                        "running? (SURGE_SERVER_URL selects the server)") from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if resp.status_code == 503 and retry and time.monotonic() < deadline:
                # the server is starting or its store is unavailable: nothing was committed, and the
                # same body (the same idempotency key) is sent again — never past the deadline
                time.sleep(min(_retry_after(resp.headers.get("Retry-After")),
                               max(0.0, deadline - time.monotonic())))
                continue
            if resp.status_code == 429:
                after = _retry_after(resp.headers.get("Retry-After"))
                if retry and wait_if_limited and time.monotonic() + after < limited_until:
                    time.sleep(after)
                    continue
                raise errors.RateLimitedError(_message(resp), retry_after=after)
            if resp.status_code >= 400:
                try:
                    body = resp.json()
                except ValueError:
                    body = {"error": {"code": "", "message": resp.text}}
                raise errors.error_from_body(resp.status_code, body)
            if resp.status_code == 204 or not resp.content:
                return None
            if resp.headers.get("content-type", "").startswith("application/json"):
                return resp.json()
            return resp.content

    # -- blobs and apps ------------------------------------------------------------------------
    def put_blob(self, sha256: str, data: bytes) -> None:
        exists = self.request("GET", f"/v1/blobs/{sha256}/exists")
        if not exists["exists"]:
            self.request("PUT", f"/v1/blobs/{sha256}", content=data)

    def create_app(self, name: str, *, deployed: bool, source_hash: str, module: str,
                   functions: Sequence[dict[str, Any]]) -> dict[str, Any]:
        body = {"name": name, "deployed": deployed, "source_hash": source_hash, "module": module,
                "functions": list(functions)}
        result: dict[str, Any] = self.request("POST", "/v1/apps", json=body)
        return result

    def stop_app(self, app_id: str) -> None:
        self.request("POST", f"/v1/apps/{app_id}/stop")

    # -- calls -----------------------------------------------------------------------------------
    def submit(self, ref: dict[str, Any], kind: str, inputs: Sequence[bytes], *, idempotency_key: str,
               params: bytes | None = None, wait: float = 0.0) -> dict[str, Any]:
        body = {**ref, "kind": kind, "inputs": [b64(a) for a in inputs], "params": b64(params),
                "idempotency_key": idempotency_key, "wait": wait}
        result: dict[str, Any] = self.request("POST", "/v1/calls", json=body, timeout=wait + 30.0)
        return result

    def add_inputs(self, call_id: str, start_idx: int, inputs: Sequence[bytes], *,
                   wait_if_limited: bool = True) -> None:
        self.request("POST", f"/v1/calls/{call_id}/inputs", wait_if_limited=wait_if_limited,
                     json={"start_idx": start_idx, "inputs": [b64(a) for a in inputs]})

    def outputs(self, call_id: str, since: int, wait: float) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/calls/{call_id}/outputs",
                                              params={"since": since, "wait": wait}, timeout=wait + 30.0)
        return result

    def events(self, input_id: str, since: int, wait: float) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/inputs/{input_id}/events",
                                              params={"since": since, "wait": wait}, timeout=wait + 30.0)
        return result

    def stream_events(self, input_id: str, since: int = -1, *,
                      on_response: Callable[[httpx.Response], None] | None = None
                      ) -> Generator[tuple[str, str], None, None]:
        """``(event, data)`` of an input's server-sent event stream (``item`` with base64 data, then
        ``end`` with its output). Closing this iterator, or dropping it, closes the connection, and
        the server cancels the call (the generator stops). ``on_response`` gets the open response
        (``surge.sdk.genstream`` uses it to drop the connection from another thread)."""
        deadline = time.monotonic() + self._connect_retry_seconds
        delay = 0.05
        while True:
            try:
                with self._http.stream("GET", f"/v1/inputs/{input_id}/stream", params={"since": since},
                                       timeout=httpx.Timeout(None, connect=5.0)) as resp:
                    _raise_for_streamed(resp)
                    if on_response is not None:
                        on_response(resp)
                    yield from _server_sent_events(resp.iter_lines())
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if time.monotonic() > deadline:
                    raise errors.ConnectionError(f"cannot reach the surge control plane at {self.url}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def cancel(self, call_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/v1/calls/{call_id}/cancel")
        return result

    def get_call(self, call_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/calls/{call_id}")
        return result

    def web_endpoints(self, *, app: str) -> dict[str, Any]:
        """The web endpoints of a deployed app (``{"endpoints": [...], "functions": [...]}``)."""
        result: dict[str, Any] = self.request("GET", "/v1/web/endpoints", params={"app": app})
        return result

    def logs(self, *, app_id: str | None = None, app: str | None = None, function: str | None = None,
             since: int = 0, wait: float = 0.0) -> dict[str, Any]:
        params: dict[str, Any] = {"since": since, "wait": wait}
        for k, v in (("app_id", app_id), ("app", app), ("function", function)):
            if v:
                params[k] = v
        result: dict[str, Any] = self.request("GET", "/v1/logs", params=params, timeout=wait + 30.0)
        return result

    # -- streamed bodies (image build output, volume files) --------------------------------------
    def stream(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
               content: Any = None, timeout: float | None = 600.0) -> Iterator[bytes]:
        """The response body in chunks, as it arrives; an error status raises like ``request``."""
        with self._http.stream(method, path, params=params, json=json, content=content,
                               timeout=timeout) as resp:
            _raise_for_streamed(resp)
            yield from resp.iter_bytes()


def _server_sent_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """Parse a text/event-stream into ``(event, data)`` pairs (comments and ids skipped)."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def _raise_for_streamed(resp: httpx.Response) -> None:
    """A streamed response with an error status raises the server's error, as ``request`` does."""
    if resp.status_code >= 400:
        resp.read()
        try:
            body = resp.json()
        except ValueError:
            body = {"error": {"code": "", "message": resp.text}}
        raise errors.error_from_body(resp.status_code, body)
