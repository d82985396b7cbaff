"""``@app.cls`` classes: lifecycle hooks, constructor parameters and per-parameter-set pools."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.sdk import serialization
from surge.sdk.function import Function, FunctionInfo
from surge.sdk.partial import Parameter, check_parameter_value

if TYPE_CHECKING:
    from surge.sdk.app import App


def parameters_of(user_cls: type) -> dict[str, Parameter]:
    out: dict[str, Parameter] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Parameter):
                out[name] = value
    return out


def hooks_of(user_cls: type, kind: str, *, snap: bool | None = None) -> list[Callable[..., Any]]:
    """Methods marked ``@surge.enter`` (``kind="enter"``, filtered by ``snap``) or ``@surge.exit``,
    in definition order, base classes first."""
    found: list[Callable[..., Any]] = []
    seen: set[str] = set()
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if name in seen or not callable(value):
                continue
            mark = getattr(value, f"__surge_{kind}__", None)
            if mark is None or (snap is not None and mark.get("snap") != snap):
                continue
            seen.add(name)
            found.append(value)
    return found


def resolve_params(user_cls_name: str, declared: dict[str, Parameter], given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(declared))
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise errors.InvalidError(f"{user_cls_name}() got unknown parameter(s) {', '.join(unknown)}; "
                                  f"declared with surge.parameter(): {allowed}")
    values: dict[str, Any] = {}
    for name, p in declared.items():
        if name in given:
            check_parameter_value(name, given[name])
            values[name] = given[name]
        elif p.required:
            raise errors.InvalidError(f"{user_cls_name}() is missing the parameter {name!r} "
                                      "(it has no default)")
        else:
            values[name] = p.default
    return values


def build_instance(user_cls: type, params: dict[str, Any]) -> Any:
    """Create the user's object with its parameters set (used in containers and by ``.local()``)."""
    obj: Any = object.__new__(user_cls)
    for k, v in params.items():
        setattr(obj, k, v)
    if "__init__" in vars(user_cls):
        obj.__init__()
    return obj


def run_enter_hooks(obj: Any, *, snap: bool | None = None) -> None:
    for hook in hooks_of(type(obj), "enter", snap=snap):
        hook(obj)


def run_exit_hooks(obj: Any) -> None:
    for hook in hooks_of(type(obj), "exit"):
        hook(obj)


def encode_params(params: dict[str, Any]) -> bytes | None:
    """Stable bytes for a parameter set (the pool key hashes them); None when there are none."""
    if not params:
        return None
    return serialization.dumps(sorted(params.items()))


def params_hash(params: bytes | None) -> str:
    return hashlib.sha256(params).hexdigest()[:16] if params else ""


class Cls:
    """What ``@app.cls`` returns. Instantiate with keyword parameters to get an object whose
    methods are remotely callable: ``Model(size="large").predict.remote(x)``."""

    def __init__(self, name: str, app: App | None, methods: dict[str, FunctionInfo], *,
                 user_cls: type | None = None, app_name: str | None = None) -> None:
        self._name = name
        self._app = app
        self._app_name = app_name if app_name is not None else (app.name if app else None)
        self._methods = methods
        self._user_cls = user_cls
        self._declared = parameters_of(user_cls) if user_cls else {}

    def __repr__(self) -> str:
        return f"surge.Cls({self._app_name}::{self._name})"

    @classmethod
    def from_name(cls, app_name: str, name: str) -> Cls:
        """A lazy handle on a class of a deployed app: ``Cls.from_name("app", "Model")(x=1).f.remote()``."""
        return cls(name, None, {}, app_name=app_name)

    def __call__(self, **params: Any) -> Obj:
        if self._user_cls is not None:
            values = resolve_params(self._name, self._declared, params)
        else:
            for k, v in params.items():
                check_parameter_value(k, v)
            values = dict(params)
        return Obj(self, values)

    @property
    def user_cls(self) -> type | None:
        return self._user_cls


class Obj:
    """An instance of a remote class (a parameter set). Its methods are ``Function`` handles."""

    def __init__(self, cls: Cls, params: dict[str, Any]) -> None:
        self._cls = cls
        self._params = params
        self._params_bytes = encode_params(params)
        self._local: Any = None

    def _local_instance(self) -> Any:
        if self._local is None:
            assert self._cls.user_cls is not None
            obj = build_instance(self._cls.user_cls, self._params)
            run_enter_hooks(obj)
            self._local = obj
        return self._local

    def __getattr__(self, name: str) -> Function:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = self._cls
        info = cls._methods.get(name)
        if info is None:
            if cls.user_cls is not None:
                known = ", ".join(sorted(cls._methods)) or "none"
                raise AttributeError(f"{cls._name} has no @surge.method() named {name!r} (methods: {known})")
            info = FunctionInfo(tag=f"{cls._name}.{name}", raw=None, options=None,
                                cls_name=cls._name, method_name=name)
        return Function(info, cls._app, app_name=cls._app_name, params=self._params_bytes,
                        local_self=self._local_instance if info.raw is not None else None)
