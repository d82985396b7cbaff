"""``Function``: the handle ``@app.function`` returns (and every ``@surge.method`` of a class)."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.core.models import CallKind
from surge.sdk import serialization
from surge.sdk.aio import gen_synchronizer, synchronizer
from surge.sdk.call import LONG_POLL, FunctionCall, value_or_raise
from surge.sdk.context import get_client
from surge.sdk.genstream import ItemStream
from surge.sdk.options import FunctionOptions

if TYPE_CHECKING:
    from surge.sdk.app import App


@dataclass
class FunctionInfo:
    """What a decorated function is: enough to find it again inside a container."""

    tag: str                        # "embed" or "Model.predict"
    raw: Callable[..., Any] | None  # the user's function (None for handles from from_name)
    options: FunctionOptions | None
    module: str = ""
    is_generator: bool = False
    is_async: bool = False
    cls_name: str | None = None
    method_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_callable(cls, f: Callable[..., Any], tag: str, options: FunctionOptions, module: str,
                      *, cls_name: str | None = None, method_name: str | None = None) -> FunctionInfo:
        gen = inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f)
        is_async = inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
        return cls(tag=tag, raw=f, options=options, module=module, is_generator=gen, is_async=is_async,
                   cls_name=cls_name, method_name=method_name)

    def spec(self) -> dict[str, Any]:
        """The JSON the control plane stores for this function and hands to its containers."""
        assert self.options is not None
        return {"tag": self.tag, "module": self.module, "options": self.options.to_json(),
                "is_generator": self.is_generator, "is_async": self.is_async,
                "cls": self.cls_name, "method": self.method_name, **self.extra}


class Function:
    """A remotely callable function.

    >>> @app.function(gpu="A100-80GB")
    ... def embed(text: str) -> list[float]: ...
    >>> embed.remote("hi")            # runs in a container, returns the value
    >>> list(embed.map(["a", "b"]))   # parallel, ordered
    >>> embed.spawn("x").get()        # durable async call
    """

    def __init__(self, info: FunctionInfo, app: App | None = None, *, app_name: str | None = None,
                 params: bytes | None = None, local_self: Callable[[], Any] | None = None) -> None:
        self._info = info
        self._app = app
        self._app_name = app_name if app_name is not None else (app.name if app else None)
        self._params = params
        self._local_self = local_self   # builds the local instance for .local() on methods

    def __repr__(self) -> str:
        return f"surge.Function({self._app_name}::{self._info.tag})"

    @property
    def tag(self) -> str:
        return self._info.tag

    @property
    def info(self) -> FunctionInfo:
        return self._info

    @classmethod
    def from_name(cls, app_name: str, name: str) -> Function:
        """A lazy handle on a deployed function: resolved by the server at each call, so it follows
        redeploys and rollbacks."""
        return cls(FunctionInfo(tag=name, raw=None, options=None), app_name=app_name)

    # -- plumbing ------------------------------------------------------------------------------
    def _ref(self) -> dict[str, Any]:
        """How the server finds the function: by id inside a running app, else by name (deployed)."""
        if self._app is not None and self._info.tag in self._app._function_ids:
            return {"function_id": self._app._function_ids[self._info.tag]}
        if not self._app_name:
            raise errors.InvalidError(
                f"{self._info.tag} is not part of a running or deployed app: call it inside "
                "`surge run`, `with app.run():`, or deploy the app and use Function.from_name()")
        return {"app": self._app_name, "function": self._info.tag}

    def _check_kind(self, want_generator: bool, what: str) -> None:
        if self._info.raw is None:
            return
        web = self._info.extra.get("web")
        if web is not None and web["kind"] != "fastapi":
            from surge.sdk.web import DECORATOR

            raise errors.InvalidError(f"{self._info.tag} is served over HTTP (@surge.{DECORATOR[web['kind']]}), "
                                      f"it cannot be called with .{what}(): send requests to its URL, "
                                      f"{self._info.tag}.get_web_url()")
        if self._info.is_generator and not want_generator:
            raise errors.InvalidError(f"{self._info.tag} is a generator function: use .remote_gen() "
                                      f"instead of .{what}()")
        if want_generator and not self._info.is_generator:
            raise errors.InvalidError(f"{self._info.tag} is not a generator function: use .remote()")

    def _submit(self, kind: CallKind, inputs: list[bytes], wait: float) -> dict[str, Any]:
        return get_client().submit(self._ref(), kind.value, inputs, idempotency_key=uuid.uuid4().hex,
                                   params=self._params, wait=wait)

    # -- calling -------------------------------------------------------------------------------
    @synchronizer
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run once in a container and return its value (re-raising its exception)."""
        self._check_kind(False, "remote")
        data = serialization.serialize_args(args, kwargs)
        resp = self._submit(CallKind.REMOTE, [data], wait=LONG_POLL)
        for out in resp.get("outputs", ()):
            return value_or_raise(out)
        return FunctionCall(resp["call_id"]).get()

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function in this process, with none of surge's machinery."""
        f = self._info.raw
        if f is None:
            raise errors.InvalidError(f"{self!r} was looked up by name; .local() needs the code")
        if self._local_self is not None:
            return f(self._local_self(), *args, **kwargs)
        return f(*args, **kwargs)

    @synchronizer
    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """Submit without waiting: the call is durable, its result kept for 7 days by default."""
        self._check_kind(False, "spawn")
        data = serialization.serialize_args(args, kwargs)
        return FunctionCall(self._submit(CallKind.SPAWN, [data], wait=0.0)["call_id"])

    @gen_synchronizer
    def remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Call a generator function; items stream back as the container produces them."""
        self._check_kind(True, "remote_gen")
        data = serialization.serialize_args(args, kwargs)
        resp = self._submit(CallKind.GENERATOR, [data], wait=0.0)
        # server-sent events over one connection: closing (or dropping) the iterator closes it, and
        # the server then cancels the generator in its container (.aio: see surge.sdk.genstream)
        return ItemStream(get_client(), resp["call_id"], resp["input_ids"][0], self._info.tag)

    @gen_synchronizer
    def map(self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None,
            order_outputs: bool = True, return_exceptions: bool = False) -> Iterator[Any]:
        """Run over every item of the zipped iterables in parallel; yields results (in input order
        unless ``order_outputs=False``). Inputs are sent as results come back, so an infinite
        generator works."""
        from surge.sdk.mapping import run_map

        self._check_kind(False, "map")
        return run_map(self, (tuple(t) for t in zip(*iterables, strict=False)), kwargs or {},
                       order_outputs=order_outputs, return_exceptions=return_exceptions,
                       total=_known_length(iterables))

    @gen_synchronizer
    def starmap(self, iterable: Iterable[Iterable[Any]], kwargs: dict[str, Any] | None = None,
                order_outputs: bool = True, return_exceptions: bool = False) -> Iterator[Any]:
        """Like map, each item unpacked into positional arguments."""
        from surge.sdk.mapping import run_map

        self._check_kind(False, "starmap")
        return run_map(self, (tuple(t) for t in iterable), kwargs or {},
                       order_outputs=order_outputs, return_exceptions=return_exceptions)

    @synchronizer
    def for_each(self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None,
                 ignore_exceptions: bool = False) -> None:
        """Map for side effects: waits for everything, returns nothing."""
        from surge.sdk.mapping import run_map

        for _ in run_map(self, (tuple(t) for t in zip(*iterables, strict=False)), kwargs or {},
                         order_outputs=False, return_exceptions=ignore_exceptions):
            pass

    def get_web_url(self) -> str:
        """The URL of a web endpoint (``@surge.fastapi_endpoint``, ``asgi_app``, ``wsgi_app``,
        ``web_server``) of a running or deployed app."""
        from surge.sdk.web import DECORATOR, endpoint_url, server_web_host, web_url

        client = get_client()
        web = self._info.extra.get("web")
        if self._info.raw is not None and web is None:
            raise errors.InvalidError(f"{self._info.tag} is not a web endpoint: decorate it with "
                                      f"@surge.{DECORATOR['fastapi']}() (or asgi_app, wsgi_app, web_server) "
                                      "under @app.function()")
        if web is not None and self._app is not None and self._app._app_id is not None:
            return web_url(client.url, self._app._app_id, web["label"], server_web_host(client))   # running: by id
        if not self._app_name:
            raise errors.InvalidError(f"{self._info.tag} is not part of a running or deployed app")
        found = client.web_endpoints(app=self._app_name)
        for e in found["endpoints"]:
            if e["function"] == self._info.tag:
                return endpoint_url(client.url, e, found.get("web_host"))
        fns = found.get("functions") or []
        if self._info.tag in fns:
            raise errors.InvalidError(f"{self._app_name}::{self._info.tag} is not a web endpoint")
        raise errors.NotFoundError(f"deployed app {self._app_name!r} has no function {self._info.tag!r} "
                                   "serving a web endpoint (deploy the app first)")


def _known_length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    try:
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    except TypeError:
        return None
