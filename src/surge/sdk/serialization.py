"""cloudpickle in one place. Only the SDK (caller side) and the container runtime import this:
the control plane and the agent treat arguments and results as opaque bytes."""

from __future__ import annotations

import base64
import sys
import traceback
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from surge.errors import InvalidError, RemoteError


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(data: str | None) -> bytes | None:
    return None if data is None else base64.b64decode(data)


def dumps(obj: Any) -> bytes:
    data: bytes = cloudpickle.dumps(obj, protocol=5)
    return data


def loads(data: bytes) -> Any:
    return cloudpickle.loads(data)


def serialize_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    try:
        return dumps((args, kwargs))
    except Exception as exc:  # cloudpickle raises many types (TypeError, PicklingError, ...)
        bad = _first_unpicklable(args, kwargs)
        where = f" ({bad})" if bad else ""
        raise InvalidError(
            f"could not serialize the arguments{where}: {type(exc).__name__}: {exc}. Arguments and "
            "return values travel between processes, so they must be picklable: pass data (paths, "
            "bytes, arrays) rather than open files, locks, sockets or generators."
        ) from exc


def _first_unpicklable(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    for i, a in enumerate(args):
        try:
            cloudpickle.dumps(a)
        except Exception:
            return f"positional argument {i} of type {type(a).__name__}"
    for k, v in kwargs.items():
        try:
            cloudpickle.dumps(v)
        except Exception:
            return f"keyword argument {k!r} of type {type(v).__name__}"
    return ""


def deserialize_args(data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = loads(data)
    return tuple(args), dict(kwargs)


def serialize_exception(exc: BaseException) -> tuple[bytes, str, str]:
    """Pickle an exception for the trip home. Returns (bytes, "Type: message", traceback text).

    If the exception itself cannot be pickled, a RemoteError carrying its type name and
    traceback is sent instead, so the caller always gets something it can raise."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    summary = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    try:
        data = dumps(exc)
        cloudpickle.loads(data)  # some exceptions pickle but cannot be rebuilt (bad __init__)
    except Exception:
        data = dumps(RemoteError(str(exc), remote_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                                 remote_traceback=tb))
    return data, summary, tb


def deserialize_exception(data: bytes | None, summary: str, tb: str) -> BaseException:
    """Rebuild the remote exception with the remote traceback attached (as a note, and as
    ``__surge_remote_traceback__``). Falls back to RemoteError when its type is not importable here."""
    exc: BaseException
    try:
        if data is None:
            raise ValueError("no payload")
        exc = loads(data)
        if not isinstance(exc, BaseException):
            raise TypeError("not an exception")
    except Exception:
        type_name, _, message = summary.partition(": ")
        return RemoteError(message or summary, remote_type=type_name, remote_traceback=tb)
    exc = _importable_twin(exc)
    if tb and not isinstance(exc, RemoteError):
        exc.__surge_remote_traceback__ = tb  # type: ignore[attr-defined]
        exc.add_note(f"\nRemote traceback (from the container):\n{tb.rstrip()}")
    return exc


def _importable_twin(exc: BaseException) -> BaseException:
    """When the container could not import the module defining the exception's class (say, the
    import itself raised), cloudpickle sends the class by value and the caller gets a look-alike.
    If the caller has that module loaded, rebuild the exception with the real class so
    ``except mymodule.MyError`` works."""
    cls = type(exc)
    mod = sys.modules.get(cls.__module__)
    twin: object = mod
    for part in cls.__qualname__.split("."):
        twin = getattr(twin, part, None)
    if twin is cls or not isinstance(twin, type) or not issubclass(twin, BaseException):
        return exc
    try:
        rebuilt = twin.__new__(twin)
        rebuilt.args = exc.args
        rebuilt.__dict__.update(exc.__dict__)
    except Exception:
        return exc
    return rebuilt
