"""Marker decorators stacked under ``@app.function`` / inside ``@app.cls`` classes:
``concurrent``, ``enter``, ``exit``, ``method`` and ``parameter``. They only annotate the
callable; ``App.function`` / ``App.cls`` read the annotations and validate them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from surge.errors import InvalidError

if TYPE_CHECKING:
    from surge.sdk.options import FunctionOptions

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
        try:
            params = list(inspect.signature(f).parameters.values())
        except (TypeError, ValueError):
            params = []     # a callable without a signature: the call itself will tell
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                star = "*" if p.kind == p.VAR_POSITIONAL else "**"
                raise InvalidError(f"@surge.batched: {f.__name__} takes {star}{p.name}, but a batched function "
                                   "receives one list per named parameter; declare each parameter by name")
        f.__surge_batched__ = (size, wait)  # type: ignore[attr-defined]
        return f

    return deco


def batching_of_class(user_cls: type, options: FunctionOptions) -> FunctionOptions:
    """The options of an ``@app.cls`` class with its ``@surge.batched`` method's batching, under
    Modal's rules: one batched method at most, and then no other method or web endpoint, because the
    class's containers run one batch loop. ``@surge.method()`` on it is optional, as in Modal."""
    name = user_cls.__name__
    batched_methods = [a for a, v in vars(user_cls).items() if callable(v) and getattr(v, "__surge_batched__", None)]
    if not batched_methods:
        return options
    if len(batched_methods) > 1:
        raise InvalidError(f"class {name} has {len(batched_methods)} @surge.batched methods "
                           f"({', '.join(batched_methods)}); a class can have one, because its containers run "
                           "one batch loop: put the others in classes of their own")
    attr = batched_methods[0]
    others = [a for a, v in vars(user_cls).items() if a != attr and callable(v) and (
        hasattr(v, "__surge_method__") or getattr(v, "__surge_web__", None) is not None)]
    if others:
        raise InvalidError(f"class {name} has the @surge.batched method {attr}, so it can have no other "
                           f"@surge.method() or web endpoint (found {', '.join(others)}): its containers run one "
                           "batch loop. Move the others to another @app.cls class")
    if getattr(user_cls, "__surge_concurrent__", None):
        raise InvalidError(f"class {name}: @surge.batched (on {attr}) and @surge.concurrent cannot be combined; "
                           "a batch already runs many inputs at once")
    method_mark = getattr(vars(user_cls)[attr], "__surge_method__", None) or {}
    if method_mark.get("is_generator"):
        raise InvalidError(f"{name}.{attr}: @surge.batched cannot be combined with "
                           "@surge.method(is_generator=True); a batched method returns one list")
    size, wait = vars(user_cls)[attr].__surge_batched__
    return options.with_batching(size, wait)


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
