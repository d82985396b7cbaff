"""Web endpoints: ``@surge.fastapi_endpoint``, ``@surge.asgi_app``, ``@surge.wsgi_app`` and
``@surge.web_server``, stacked under ``@app.function`` the way Modal's are.

>>> @app.function()
... @surge.fastapi_endpoint(method="POST")
... def predict(item: dict) -> dict: ...

The decorators only check their options and mark the function (``__surge_web__``);
``App.function`` reads the mark, gives the endpoint its label and checks that labels are unique
in the app. The control plane serves each endpoint at ``/web/{app}/{label}`` (``{app}`` is the
app's name once deployed, its id while it runs ephemerally) and proxies requests to the app the
container serves. ``WebSpec`` is what travels in the function's spec (JSON).
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from surge.errors import InvalidError

F = TypeVar("F", bound=Callable[..., Any])

KINDS = ("fastapi", "asgi", "wsgi", "server")
DECORATOR = {"fastapi": "fastapi_endpoint", "asgi": "asgi_app", "wsgi": "wsgi_app", "server": "web_server"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_LABEL = 63
MAX_STARTUP_TIMEOUT = 86_400
DEFAULT_SERVER_STARTUP_TIMEOUT = 5.0

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class WebSpec:
    """How a function is served over HTTP (``kind``: fastapi, asgi, wsgi or server)."""

    kind: str
    label: str | None = None          # filled in by App.function (default: from the function's name)
    method: str | None = None         # fastapi only
    docs: bool = False                # fastapi only: serve /docs and /openapi.json
    requires_auth: bool = False       # demand the surge token (Authorization: Bearer ...)
    port: int | None = None           # server only: where the container's own server listens
    startup_timeout: float | None = None   # server only: seconds for the port to accept connections

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WebSpec:
        """Checked as strictly as the decorators check their options (the server calls this on
        what clients send)."""
        if not isinstance(d, Mapping):
            raise InvalidError(f"web: must be a JSON object, got {type(d).__name__}")
        kind = d.get("kind")
        if kind not in KINDS:
            raise InvalidError(f"web.kind={kind!r}: must be one of {', '.join(KINDS)}")
        label = d.get("label")
        spec = cls(kind=str(kind), label=None if label is None else check_label(label),
                   requires_auth=_flag("requires_auth", d.get("requires_auth", False)))
        if kind == "fastapi":
            return replace(spec, method=check_method(d.get("method", "GET")), docs=_flag("docs", d.get("docs", False)))
        if kind == "server":
            return replace(spec, port=check_port(d.get("port")), startup_timeout=check_startup_timeout(
                d.get("startup_timeout", DEFAULT_SERVER_STARTUP_TIMEOUT)))
        return spec


# -- checks --------------------------------------------------------------------------------------
def check_method(method: object) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidError(f"method={method!r}: must be one of {', '.join(METHODS)} "
                           "(for several methods or routes, use @surge.asgi_app with a FastAPI app)")
    return method.upper()


def check_label(label: object) -> str:
    """A DNS label: 1-63 lowercase letters, digits and '-', not starting or ending with '-' (so it
    can also name a ``{label}.{host}`` virtual host)."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        hint = ""
        if isinstance(label, str) and label:
            fixed = suggest_label(label)
            hint = f"; for example label={fixed!r}" if fixed else ""
        raise InvalidError(f"label={label!r}: must be a DNS label: 1 to {MAX_LABEL} lowercase letters, digits "
                           f"and '-', starting and ending with a letter or digit{hint}")
    return label


def suggest_label(name: str) -> str | None:
    """``name`` made into a valid label (``My_Func`` → ``my-func``), or None if nothing is left."""
    s = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    s = re.sub(r"-{2,}", "-", s)[:MAX_LABEL].rstrip("-")
    return s or None


def check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidError(f"port={port!r}: must be a whole number between 1 and 65535 (the port the "
                           "server started by your function listens on)")
    return port


def check_startup_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_STARTUP_TIMEOUT:
        raise InvalidError(f"startup_timeout={value!r}: must be a number of seconds more than 0 and at "
                           f"most {MAX_STARTUP_TIMEOUT} (24 h)")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidError(f"{name}={value!r}: must be True or False, got {type(value).__name__}")
    return value


def _auth(requires_auth: bool, requires_proxy_auth: bool | None) -> bool:
    """``requires_proxy_auth`` is Modal's name: accepted, with the same meaning."""
    _flag("requires_auth", requires_auth)
    if requires_proxy_auth is None:
        return requires_auth
    _flag("requires_proxy_auth", requires_proxy_auth)
    if requires_auth and not requires_proxy_auth:
        raise InvalidError("got requires_auth=True and requires_proxy_auth=False; they are the same option: "
                           "pass only requires_auth")
    return requires_auth or requires_proxy_auth


def _no_custom_domains(custom_domains: Sequence[str] | None) -> None:
    if custom_domains:
        raise InvalidError(f"custom_domains={list(custom_domains)!r} is not supported: endpoints are served at "
                           "/web/{app}/{label} on the control plane (put your own reverse proxy or DNS in front)")


# -- the decorators ------------------------------------------------------------------------------
def _mark(spec: WebSpec, bare: object) -> Callable[[F], F]:
    name = DECORATOR[spec.kind]
    if bare is not None:
        raise InvalidError(f"@surge.{name} needs parentheses: write @surge.{name}() (did you forget parentheses?)")

    def deco(f: F) -> F:
        from surge.sdk.cls import Cls
        from surge.sdk.function import Function

        if isinstance(f, Function | Cls):
            raise InvalidError(f"@surge.{name} must be applied below @app.function(), not above it: decorators "
                               f"apply bottom-up, so write\n    @app.function()\n    @surge.{name}(...)\n    def ...")
        if inspect.isclass(f) or not callable(f):
            raise InvalidError(f"@surge.{name} decorates functions, got {type(f).__name__}")
        if getattr(f, "__surge_web__", None) is not None:
            raise InvalidError(f"{f.__name__} already has a web decorator; a function is one endpoint")
        if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
            raise InvalidError(f"@surge.{name} cannot wrap the generator function {f.__name__}: return a "
                               "StreamingResponse to stream a response")
        if spec.kind != "fastapi":
            params = list(inspect.signature(f).parameters.values())
            if _in_class_body(f):
                params = params[1:]           # self: a web method of an @app.cls class
            required = [p.name for p in params if p.default is inspect.Parameter.empty
                        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            if required:
                what = "starts the server" if spec.kind == "server" else "returns the app"
                raise InvalidError(f"@surge.{name} decorates a function with no arguments that {what}; "
                                   f"{f.__name__} requires {', '.join(required)}")
            if spec.kind in ("asgi", "wsgi") and inspect.iscoroutinefunction(f):
                raise InvalidError(f"@surge.{name}: {f.__name__} must be a plain def that returns the app, "
                                   "not async def")
        f.__surge_web__ = spec  # type: ignore[attr-defined]
        return f

    return deco


def _in_class_body(f: Callable[..., Any]) -> bool:
    """Whether ``f`` is being defined in a class body (``Model.api``, not ``main.<locals>.api``)."""
    parent = getattr(f, "__qualname__", "").rpartition(".")[0]
    return bool(parent) and not parent.endswith("<locals>")


def fastapi_endpoint(_f: Any = None, *, method: str = "GET", label: str | None = None, docs: bool = False,
                     requires_auth: bool = False, requires_proxy_auth: bool | None = None,
                     custom_domains: Sequence[str] | None = None) -> Callable[[F], F]:
    """Serve one function over HTTP; FastAPI parses query parameters and the JSON body from its
    signature.

    >>> @app.function()
    ... @surge.fastapi_endpoint(method="GET")
    ... def square(x: int) -> dict: return {"square": x * x}
    """
    _no_custom_domains(custom_domains)
    spec = WebSpec("fastapi", label=None if label is None else check_label(label), method=check_method(method),
                   docs=_flag("docs", docs), requires_auth=_auth(requires_auth, requires_proxy_auth))
    return _mark(spec, _f)


def web_endpoint(_f: Any = None, **kwargs: Any) -> Callable[[F], F]:
    """Modal's old name of ``fastapi_endpoint`` (deprecated)."""
    from surge.sdk.options import _outside_surge

    warnings.warn("@surge.web_endpoint is deprecated; use @surge.fastapi_endpoint (same options)",
                  DeprecationWarning, stacklevel=_outside_surge())
    return fastapi_endpoint(_f, **kwargs)


def asgi_app(_f: Any = None, *, label: str | None = None, requires_auth: bool = False,
             requires_proxy_auth: bool | None = None,
             custom_domains: Sequence[str] | None = None) -> Callable[[F], F]:
    """Serve the ASGI app (FastAPI, Starlette, ...) that a zero-argument function returns.

    >>> @app.function()
    ... @surge.asgi_app()
    ... def api():
    ...     web = fastapi.FastAPI()
    ...     return web
    """
    _no_custom_domains(custom_domains)
    spec = WebSpec("asgi", label=None if label is None else check_label(label),
                   requires_auth=_auth(requires_auth, requires_proxy_auth))
    return _mark(spec, _f)


def wsgi_app(_f: Any = None, *, label: str | None = None, requires_auth: bool = False,
             requires_proxy_auth: bool | None = None,
             custom_domains: Sequence[str] | None = None) -> Callable[[F], F]:
    """Serve the WSGI app (Flask, Django, ...) that a zero-argument function returns."""
    _no_custom_domains(custom_domains)
    spec = WebSpec("wsgi", label=None if label is None else check_label(label),
                   requires_auth=_auth(requires_auth, requires_proxy_auth))
    return _mark(spec, _f)


def web_server(port: int, *, startup_timeout: float = DEFAULT_SERVER_STARTUP_TIMEOUT, label: str | None = None,
               requires_auth: bool = False, requires_proxy_auth: bool | None = None,
               custom_domains: Sequence[str] | None = None) -> Callable[[F], F]:
    """Proxy to any HTTP server the zero-argument function starts on ``port`` (it must be
    listening within ``startup_timeout`` seconds).

    >>> @app.function()
    ... @surge.web_server(8000)
    ... def serve():
    ...     subprocess.Popen("python -m http.server 8000", shell=True)
    """
    if callable(port):
        raise InvalidError("@surge.web_server needs the port: write @surge.web_server(8000) "
                           "(did you forget parentheses?)")
    _no_custom_domains(custom_domains)
    spec = WebSpec("server", label=None if label is None else check_label(label), port=check_port(port),
                   startup_timeout=check_startup_timeout(startup_timeout),
                   requires_auth=_auth(requires_auth, requires_proxy_auth))
    return _mark(spec, None)


# -- used by App.function, the control plane and the SDK -----------------------------------------
def endpoint_spec(f: Callable[..., Any], tag: str) -> WebSpec | None:
    """The function's web mark with its label filled in (default: from the function's name)."""
    spec: WebSpec | None = getattr(f, "__surge_web__", None)
    if spec is None or spec.label is not None:
        return spec
    label = suggest_label(tag)
    if label is None or not _LABEL.fullmatch(label):
        raise InvalidError(f"{tag}: cannot make a web label from the function's name; pass label= to "
                           f"@surge.{DECORATOR[spec.kind]}(...)")
    return replace(spec, label=label)


def check_unique_labels(specs: Sequence[tuple[str, WebSpec]]) -> None:
    """Raise if two endpoints of one app share a label. ``specs``: ``(function tag, spec)``."""
    seen: dict[str, str] = {}
    for tag, spec in specs:
        assert spec.label is not None
        if spec.label in seen:
            raise InvalidError(f"functions {seen[spec.label]!r} and {tag!r} both serve web label "
                               f"{spec.label!r}; labels must be unique in an app: pass label= to one of them")
        seen[spec.label] = tag


def class_web_extra(user_cls: type, tag: str) -> dict[str, Any]:
    """What a web method of an ``@app.cls`` class adds to its spec: the class's default parameters
    (``web_params``, encoded as ``Cls()`` encodes them, so requests share the pool of
    ``Model().method.remote()`` calls). Endpoints serve the class with its defaults, as Modal's
    do, so every ``surge.parameter`` needs one."""
    import base64

    from surge.sdk.cls import encode_params, parameters_of

    declared = parameters_of(user_cls)
    required = sorted(name for name, p in declared.items() if p.required)
    if required:
        raise InvalidError(f"{tag}: a web endpoint serves its class with the default parameters, but "
                           f"{', '.join(required)} {'has' if len(required) == 1 else 'have'} no default: give "
                           f"each one, e.g. {required[0]}: str = surge.parameter(default=...)")
    params = encode_params({name: p.default for name, p in declared.items()})
    return {} if params is None else {"web_params": base64.b64encode(params).decode()}


def _check_web_params(tag: object, value: object) -> None:
    import base64
    import binascii

    try:
        if not isinstance(value, str):
            raise TypeError
        base64.b64decode(value, validate=True)
    except (TypeError, binascii.Error):
        raise InvalidError(f"function {tag!r}: web_params must be base64 text (the class's default "
                           "parameters, encoded by the SDK)") from None


def check_functions_json(functions: Sequence[Mapping[str, Any]]) -> None:
    """What the control plane checks in a new app version's function specs."""
    specs = []
    for f in functions:
        web = f.get("web")
        if web is None:
            continue
        try:
            spec = WebSpec.from_json(web)
        except InvalidError as exc:
            raise InvalidError(f"function {f.get('tag')!r}: invalid web endpoint: {exc}") from None
        if spec.label is None:
            raise InvalidError(f"function {f.get('tag')!r}: web endpoint without a label")
        if f.get("cls") and f.get("web_params") is not None:
            _check_web_params(f.get("tag"), f.get("web_params"))
        specs.append((str(f.get("tag")), spec))
    check_unique_labels(specs)


def endpoint_urls(app: Any, *, deployed_as: str | None = None) -> dict[str, str]:
    """``{function tag: URL}`` of an App's web endpoints: while it runs (``with app.run()``), or,
    with ``deployed_as``, of its deployed version (the server says which path its workspace uses)."""
    from surge.sdk.context import get_client

    if not any("web" in i.extra for i in app._infos.values()):
        return {}
    client = get_client()
    if deployed_as is not None:
        found = client.web_endpoints(app=deployed_as)
        return {str(e["function"]): endpoint_url(client.url, e, found.get("web_host")) for e in found["endpoints"]}
    if not app.app_id:
        return {}
    host = server_web_host(client)
    return {tag: web_url(client.url, app.app_id, i.extra["web"]["label"], host)
            for tag, i in app._infos.items() if "web" in i.extra}


def web_url(base_url: str, app_ref: str, label: str, web_host: str | None = None) -> str:
    """``http://host:port/web/{app}/{label}`` (``app_ref``: the deployed app's name, or the id of
    an app running ephemerally); with the server's ``web_host`` (``surge server --web-host``), the
    virtual-host form ``http://{label}.{app}.{web_host}:port/`` where ``app_ref`` can name a host."""
    if web_host and vhost_name(app_ref):
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{label}.{app_ref}.{web_host}{port}/"
    return f"{base_url.rstrip('/')}/web/{app_ref}/{label}"


def vhost_name(app_ref: str) -> bool:
    """Whether an app reference (``shop``, ``team--shop``, an app id) can be a DNS label of a
    virtual host; other apps are reached by path only."""
    return bool(_LABEL.fullmatch(app_ref))


def endpoint_url(base_url: str, entry: Mapping[str, Any], web_host: str | None) -> str:
    """The URL of one entry of ``GET /v1/web/endpoints`` (its ``path`` is ``/web/{app}/{label}``)."""
    _, _, app_ref, label = str(entry["path"]).split("/", 3)
    return web_url(base_url, app_ref, label, web_host)


_web_hosts: dict[str, str | None] = {}


def server_web_host(client: Any) -> str | None:
    """The server's virtual-host base (``surge server --web-host``), or None; asked once per server."""
    if client.url not in _web_hosts:
        found = client.request("GET", "/v1/web/config")
        _web_hosts[client.url] = found.get("web_host") or None
    return _web_hosts[client.url]
