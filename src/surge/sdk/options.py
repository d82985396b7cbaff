"""Validation of ``@app.function`` / ``@app.cls`` options, at declaration time.

Every message names the option, the bad value, the allowed range and, where it helps, the fix:

>>> validate_options(timeout=0)
Traceback (most recent call last):
...
surge.errors.InvalidError: timeout=0 is out of range: must be between 1 and 86400 seconds (24 h)

The result, ``FunctionOptions``, is stored with the deployment and sent to workers as JSON
(``to_json`` / ``from_json`` round-trip exactly).
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from surge.core.gpu import parse_gpu
from surge.core.models import GpuRequest, Resources
from surge.core.retries import Retries, normalize_retries
from surge.errors import InvalidError

DEFAULT_CPU = 0.125
DEFAULT_MEMORY = 128
MAX_CPU = 512
MAX_MEMORY = 4_194_304  # MiB (4 TiB)
MAX_TIMEOUT = 86_400
MAX_MIN_CONTAINERS = 1000
MAX_MAX_CONTAINERS = 10_000
MAX_BUFFER_CONTAINERS = 1000
MIN_SCALEDOWN_WINDOW = 2
MAX_SCALEDOWN_WINDOW = 1200
MAX_INPUTS = 1000
MAX_BATCH_SIZE = 1000
MAX_BATCH_WAIT_MS = 600_000

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class FunctionOptions:
    """The validated options of one function (memory in MiB, times in seconds)."""

    gpu: GpuRequest | None
    cpu: float
    memory: int
    timeout: float
    startup_timeout: float
    retries: Retries
    min_containers: int
    max_containers: int | None
    buffer_containers: int
    scaledown_window: float
    env: dict[str, str]
    name: str | None
    max_inputs: int = 1
    target_inputs: int | None = None
    batch_max_size: int | None = None
    batch_wait_ms: int | None = None
    enable_memory_snapshot: bool = False
    memory_limit: int | None = None   # MiB; the container is OOM-killed past it (None: no limit)

    def resources(self) -> Resources:
        return Resources(cpu=self.cpu, memory=self.memory, gpu=self.gpu)

    def with_concurrency(self, max_inputs: int, target_inputs: int | None = None) -> FunctionOptions:
        """A copy taking up to ``max_inputs`` at once per container (``@surge.concurrent``)."""
        max_inputs, target_inputs = validate_concurrency(max_inputs, target_inputs)
        return replace(self, max_inputs=max_inputs, target_inputs=target_inputs)

    def with_batching(self, max_batch_size: int, wait_ms: int) -> FunctionOptions:
        """A copy that runs inputs in batches (``@surge.batched``)."""
        max_batch_size, wait_ms = validate_batching(max_batch_size, wait_ms)
        return replace(self, batch_max_size=max_batch_size, batch_wait_ms=wait_ms)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only; ``from_json(to_json())`` gives back an equal value."""
        gpu = None if self.gpu is None else {"types": list(self.gpu.types), "count": self.gpu.count}
        r = self.retries
        retries = {
            "max_retries": r.max_retries,
            "backoff_coefficient": r.backoff_coefficient,
            "initial_delay": r.initial_delay,
            "max_delay": r.max_delay,
        }
        return {
            "gpu": gpu,
            "cpu": self.cpu,
            "memory": self.memory,
            "timeout": self.timeout,
            "startup_timeout": self.startup_timeout,
            "retries": retries,
            "min_containers": self.min_containers,
            "max_containers": self.max_containers,
            "buffer_containers": self.buffer_containers,
            "scaledown_window": self.scaledown_window,
            "env": dict(self.env),
            "name": self.name,
            "max_inputs": self.max_inputs,
            "target_inputs": self.target_inputs,
            "batch_max_size": self.batch_max_size,
            "batch_wait_ms": self.batch_wait_ms,
            "enable_memory_snapshot": self.enable_memory_snapshot,
            "memory_limit": self.memory_limit,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FunctionOptions:
        """Rebuild from ``to_json`` output. Keys this version does not know are ignored."""
        try:
            gpu = d["gpu"]
            return cls(
                gpu=None if gpu is None else GpuRequest(types=tuple(gpu["types"]), count=gpu["count"]),
                cpu=d["cpu"],
                memory=d["memory"],
                timeout=d["timeout"],
                startup_timeout=d["startup_timeout"],
                retries=Retries(**d["retries"]),
                min_containers=d["min_containers"],
                max_containers=d["max_containers"],
                buffer_containers=d["buffer_containers"],
                scaledown_window=d["scaledown_window"],
                env=dict(d["env"]),
                name=d["name"],
                max_inputs=d.get("max_inputs", 1),
                target_inputs=d.get("target_inputs"),
                batch_max_size=d.get("batch_max_size"),
                batch_wait_ms=d.get("batch_wait_ms"),
                enable_memory_snapshot=d.get("enable_memory_snapshot", False),
                memory_limit=d.get("memory_limit"),
            )
        except (KeyError, TypeError) as exc:
            # Not the document itself: env may hold secret values.
            raise InvalidError(f"function options JSON is malformed ({type(exc).__name__}: {exc})") from None


def validate_options(
    *,
    gpu: str | Sequence[str] | None = None,
    cpu: float | None = None,
    memory: int | tuple[int, int] | None = None,
    timeout: float = 300,
    startup_timeout: float | None = None,
    retries: int | Retries | None = None,
    min_containers: int = 0,
    max_containers: int | None = None,
    buffer_containers: int = 0,
    scaledown_window: float = 60,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    enable_memory_snapshot: bool = False,
    keep_warm: int | None = None,
    container_idle_timeout: float | None = None,
    concurrency_limit: int | None = None,
) -> FunctionOptions:
    """Check every option and fill in defaults; raise ``InvalidError`` on the first bad one.

    ``keep_warm``, ``container_idle_timeout`` and ``concurrency_limit`` are Modal's old names of
    ``min_containers``, ``scaledown_window`` and ``max_containers``: accepted with a
    ``DeprecationWarning``. A new-name option counts as given when it differs from its default.
    """
    min_containers = _legacy("keep_warm", keep_warm, "min_containers", min_containers, 0)
    scaledown_window = _legacy("container_idle_timeout", container_idle_timeout, "scaledown_window",
                               scaledown_window, 60)
    max_containers = _legacy("concurrency_limit", concurrency_limit, "max_containers", max_containers, None)

    cores = DEFAULT_CPU if cpu is None else _number("cpu", cpu, "cores")
    if not 0 < cores <= MAX_CPU:
        raise InvalidError(f"cpu={cpu!r} is out of range: must be more than 0 and at most {MAX_CPU} cores")
    memory, memory_limit = _memory(memory)
    timeout = _seconds("timeout", timeout, 1, MAX_TIMEOUT, " (24 h)")
    startup_timeout = timeout if startup_timeout is None else _seconds(
        "startup_timeout", startup_timeout, 1, MAX_TIMEOUT, " (24 h)")
    _whole("min_containers", min_containers, 0, MAX_MIN_CONTAINERS, "containers")
    if max_containers is not None:
        _whole("max_containers", max_containers, 1, MAX_MAX_CONTAINERS, "containers")
        if min_containers > max_containers:
            raise InvalidError(
                f"min_containers={min_containers} is more than max_containers={max_containers}; "
                f"lower min_containers or raise max_containers"
            )
    _whole("buffer_containers", buffer_containers, 0, MAX_BUFFER_CONTAINERS, "containers")
    scaledown_window = _seconds("scaledown_window", scaledown_window, MIN_SCALEDOWN_WINDOW,
                                MAX_SCALEDOWN_WINDOW, " (20 min)")
    if not isinstance(enable_memory_snapshot, bool):
        raise InvalidError(
            f"enable_memory_snapshot={enable_memory_snapshot!r}: must be True or False, "
            f"got {type(enable_memory_snapshot).__name__}"
        )
    return FunctionOptions(
        gpu=parse_gpu(gpu),
        cpu=cores,
        memory=memory,
        memory_limit=memory_limit,
        timeout=timeout,
        startup_timeout=startup_timeout,
        retries=normalize_retries(retries),
        min_containers=min_containers,
        max_containers=max_containers,
        buffer_containers=buffer_containers,
        scaledown_window=scaledown_window,
        env=_env(env),
        name=_name(name),
        enable_memory_snapshot=enable_memory_snapshot,
    )


def validate_concurrency(max_inputs: int, target_inputs: int | None = None) -> tuple[int, int]:
    """``(max_inputs, target_inputs)`` with ``target_inputs`` defaulting to ``max_inputs``."""
    _whole("max_inputs", max_inputs, 1, MAX_INPUTS, "inputs")
    if target_inputs is None:
        return max_inputs, max_inputs
    if isinstance(target_inputs, bool) or not isinstance(target_inputs, int):
        raise _type_error("target_inputs", target_inputs, "a whole number of inputs")
    if not 1 <= target_inputs <= max_inputs:
        raise InvalidError(
            f"target_inputs={target_inputs} is out of range: must be between 1 and max_inputs ({max_inputs})"
        )
    return max_inputs, target_inputs


def validate_batching(max_batch_size: int, wait_ms: int) -> tuple[int, int]:
    """``(max_batch_size, wait_ms)``: 1..1000 inputs, 0..600000 ms."""
    _whole("max_batch_size", max_batch_size, 1, MAX_BATCH_SIZE, "inputs")
    _whole("wait_ms", wait_ms, 0, MAX_BATCH_WAIT_MS, "ms")
    return max_batch_size, wait_ms


def _legacy(old: str, old_value: Any, new: str, new_value: Any, default: Any) -> Any:
    if old_value is None:
        return new_value
    if new_value != default:
        raise InvalidError(
            f"got both {old}={old_value!r} and {new}={new_value!r}; {old} is the old name of {new}: pass only {new}"
        )
    warnings.warn(f"{old}= is deprecated; use {new}= instead (same meaning)", DeprecationWarning,
                  stacklevel=_outside_surge())
    return old_value


def _outside_surge() -> int:
    """The ``stacklevel`` (for our caller's ``warnings.warn``) of the first frame outside surge.

    The decorators reach this module through a varying number of surge frames; counting them
    makes the warning point at the user's ``@app.function(...)`` line.
    """
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "surge":
        frame = frame.f_back
        level += 1
    return level


def _type_error(name: str, value: object, expected: str) -> InvalidError:
    hint = "; (request, limit) pairs are not supported: pass the request only" if isinstance(value, tuple) else ""
    return InvalidError(f"{name}={value!r}: must be {expected}, got {type(value).__name__}{hint}")


def _number(name: str, value: object, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(name, value, f"a number of {unit}")
    return float(value)


def _whole(name: str, value: object, low: int, high: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(name, value, f"a whole number of {unit}")
    if not low <= value <= high:
        raise InvalidError(f"{name}={value} is out of range: must be between {low} and {high} {unit}")
    return value


def _seconds(name: str, value: object, low: int, high: int, note: str) -> float:
    seconds = _number(name, value, "seconds")
    if not low <= seconds <= high:
        raise InvalidError(f"{name}={value!r} is out of range: must be between {low} and {high} seconds{note}")
    return seconds


def _memory(value: object) -> tuple[int, int | None]:
    """``memory=N`` requests N MiB and enforces N as the limit; ``(request, limit)`` sets both
    (Modal's form); omitted: the default request and no limit."""
    if value is None:
        return DEFAULT_MEMORY, None
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidError(f"memory={value!r}: give MiB as an int, or a (request, limit) pair")
        request = _whole("memory", value[0], 1, MAX_MEMORY, "MiB")
        limit = _whole("memory limit", value[1], 1, MAX_MEMORY, "MiB")
        if limit < request:
            raise InvalidError(f"memory={value!r}: the limit ({limit} MiB) is below the request "
                               f"({request} MiB); the limit must be at least the request")
        return request, limit
    n = _whole("memory", value, 1, MAX_MEMORY, "MiB")
    return n, n


def _env(env: Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise _type_error("env", env, "a dict of environment variable names to string values")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise InvalidError(
                f"env: {key!r} is not a valid environment variable name "
                f"(letters, digits and _, not starting with a digit)"
            )
        if not isinstance(value, str):
            raise InvalidError(
                f"env[{key!r}]={value!r}: values must be strings, got {type(value).__name__}; convert it with str()"
            )
    return dict(env)


def _name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
        raise InvalidError(
            f"name={name!r}: must be a non-empty string of letters, digits, '_', '-' and '.'"
        )
    return name


def options_from_wire(d: Mapping[str, Any]) -> FunctionOptions:
    """Options JSON sent by a client, checked as strictly as the decorator checks them: the server
    must not store values (``cpu="lots"``, ``timeout=-5``) that no decorator would have accepted."""
    if not isinstance(d, Mapping):
        raise InvalidError(f"function options must be a JSON object, got {type(d).__name__}")
    o = FunctionOptions.from_json(d)
    gpu = None if o.gpu is None else [f"{t}:{o.gpu.count}" for t in o.gpu.types]
    if o.memory_limit is None:
        _whole("memory", o.memory, 1, MAX_MEMORY, "MiB")
        memory: int | tuple[int, int] | None = None
    else:
        memory = (o.memory, o.memory_limit)
    if not isinstance(o.retries, Retries):
        raise InvalidError(f"retries={o.retries!r}: expected an object like {{\"max_retries\": 2, ...}}")
    checked = validate_options(
        gpu=gpu, cpu=o.cpu, memory=memory, timeout=o.timeout, startup_timeout=o.startup_timeout,
        retries=o.retries, min_containers=o.min_containers, max_containers=o.max_containers,
        buffer_containers=o.buffer_containers, scaledown_window=o.scaledown_window, env=o.env or None,
        name=o.name, enable_memory_snapshot=o.enable_memory_snapshot)
    if o.max_inputs != 1 or o.target_inputs is not None:
        checked = checked.with_concurrency(o.max_inputs, o.target_inputs)
    if o.batch_max_size is not None or o.batch_wait_ms is not None:
        checked = checked.with_batching(o.batch_max_size, o.batch_wait_ms)  # type: ignore[arg-type]
    return checked
