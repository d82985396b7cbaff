"""Marker decorators stacked under ``@app.function`` / inside ``@app.cls`` classes:
``concurrent``, ``enter``, ``exit``, ``method`` and ``parameter``. They only annotate the
callable; ``App.function`` / ``App.cls`` read the annotations and validate them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from surge.errors import InvalidError

F = TypeVar("F", bound=Callable[..., Any])

_MISSING: Any = object()


def _check_not_bare(name: str, arg: object) -> None:
    if callable(arg):
        raise InvalidError(
            f"@surge.{name} needs parentheses: write @surge.{name}() (did you forget parentheses?)")


def concurrent(_f: Any = None, *, max_inputs: int | None = None,
               target_inputs: int | None = None) -> Callable[[F], F]:
    """Let one container run several inputs at once: threads for sync code, tasks for ``async def``.

    >>> @app.function()
    ... @surge.concurrent(max_inputs=10, target_inputs=8)
    ... def f(x): ...
    """
    from surge.sdk.options import validate_concurrency

    if _f is not None:
        raise InvalidError("@surge.concurrent needs arguments: @surge.concurrent(max_inputs=N) "
                           "(did you forget parentheses?)")
    if max_inputs is None:
        raise InvalidError("@surge.concurrent(max_inputs=...) is required: how many inputs one "
                           "container may run at once (1..1000)")
    mx, tgt = validate_concurrency(max_inputs, target_inputs)

    def deco(f: F) -> F:
        f.__surge_concurrent__ = (mx, tgt)  # type: ignore[attr-defined]
        return f

    return deco


def batched(_f: Any = None, *, max_batch_size: int | None = None,
            wait_ms: int | None = None) -> Callable[[F], F]:
    """Run inputs in batches: the function takes lists (one per parameter) and returns a list of
    the same length; callers still send single items. A batch runs when it has ``max_batch_size``
    inputs or ``wait_ms`` after its first. Return an exception instance to fail one item.

    >>> @app.function()
    ... @surge.batched(max_batch_size=64, wait_ms=10)
    ... def embed(texts: list[str]) -> list[list[float]]: ...
    """
    from surge.sdk.options import validate_batching

    if _f is not None:
        raise InvalidError("@surge.batched needs arguments: @surge.batched(max_batch_size=N, wait_ms=M) "
                           "(did you forget parentheses?)")
    if max_batch_size is None or wait_ms is None:
        raise InvalidError("@surge.batched(max_batch_size=..., wait_ms=...) needs both: the largest batch "
                           "(1..1000 inputs) and how long to wait for it to fill (0..600000 ms)")
    size, wait = validate_batching(max_batch_size, wait_ms)

    def deco(f: F) -> F:
        import inspect

        if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
            raise InvalidError(f"@surge.batched cannot wrap the generator function {f.__name__}")
        f.__surge_batched__ = (size, wait)  # type: ignore[attr-defined]
        return f

    return deco


def enter(_f: Any = None, *, snap: bool = False) -> Callable[[F], F]:
    """Run a method once per container before it takes inputs. ``snap=True`` hooks run before a
    memory snapshot is taken (their state is shared by every forked container)."""
    _check_not_bare("enter", _f)
    if not isinstance(snap, bool):
        raise InvalidError(f"@surge.enter(snap={snap!r}): snap must be True or False")

    def deco(f: F) -> F:
        f.__surge_enter__ = {"snap": snap}  # type: ignore[attr-defined]
        return f

    return deco


def exit(_f: Any = None) -> Callable[[F], F]:
    """Run a method when the container shuts down (scale-down, redeploy, stop)."""
    _check_not_bare("exit", _f)

    def deco(f: F) -> F:
        f.__surge_exit__ = True  # type: ignore[attr-defined]
        return f

    return deco


def method(_f: Any = None, *, is_generator: bool | None = None) -> Callable[[F], F]:
    """Expose a method of an ``@app.cls`` class as a remotely callable function."""
    _check_not_bare("method", _f)

    def deco(f: F) -> F:
        f.__surge_method__ = {"is_generator": is_generator}  # type: ignore[attr-defined]
        return f

    return deco


_PARAM_TYPES = (str, int, bool, bytes)


@dataclass(frozen=True)
class Parameter:
    default: Any = _MISSING
    init: bool = True

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def parameter(*, default: Any = _MISSING, init: bool = True) -> Any:
    """A constructor parameter of an ``@app.cls`` class: ``name: str = surge.parameter(default="x")``.

    Each distinct set of values gets its own pool of containers. Values must be str, int, bool or bytes."""
    if default is not _MISSING and not isinstance(default, _PARAM_TYPES):
        raise InvalidError(f"surge.parameter(default={default!r}): parameter values must be "
                           "str, int, bool or bytes")
    return Parameter(default=default, init=init)


def check_parameter_value(name: str, value: Any) -> None:
    if not isinstance(value, _PARAM_TYPES):
        raise InvalidError(f"parameter {name}={value!r} has type {type(value).__name__}; "
                           "class parameters must be str, int, bool or bytes")
