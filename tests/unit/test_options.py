from __future__ import annotations

import dataclasses
import doctest
import json
from typing import Any

import pytest

import surge.sdk.options
from surge.core.models import GpuRequest, Resources
from surge.core.retries import Retries
from surge.errors import InvalidError
from surge.sdk.options import FunctionOptions, validate_batching, validate_concurrency, validate_options

ONE_SECOND_APART = Retries(0, backoff_coefficient=1.0, initial_delay=1.0)


def test_defaults() -> None:
    assert validate_options() == FunctionOptions(
        gpu=None,
        cpu=0.125,
        memory=128,
        timeout=300,
        startup_timeout=300,
        retries=ONE_SECOND_APART,
        min_containers=0,
        max_containers=None,
        buffer_containers=0,
        scaledown_window=60,
        env={},
        name=None,
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"gpu": "a100-80gb:2"}, "gpu", GpuRequest(("A100-80GB",), 2)),
        ({"gpu": ["H100", "A100"]}, "gpu", GpuRequest(("H100", "A100-40GB", "A100-80GB"), 1)),
        ({"cpu": 2}, "cpu", 2.0),
        ({"cpu": 0.01}, "cpu", 0.01),
        ({"cpu": 512}, "cpu", 512.0),
        ({"memory": 1}, "memory", 1),
        ({"memory": 4_194_304}, "memory", 4_194_304),
        ({"timeout": 1}, "timeout", 1.0),
        ({"timeout": 86_400}, "timeout", 86_400.0),
        ({"timeout": 10}, "startup_timeout", 10.0),
        ({"timeout": 10, "startup_timeout": 600}, "startup_timeout", 600.0),
        ({"startup_timeout": 1.5}, "startup_timeout", 1.5),
        ({"retries": 3}, "retries", Retries(3, backoff_coefficient=1.0, initial_delay=1.0)),
        ({"retries": Retries(2)}, "retries", Retries(2)),
        ({"min_containers": 1000}, "min_containers", 1000),
        ({"max_containers": 1}, "max_containers", 1),
        ({"max_containers": 10_000}, "max_containers", 10_000),
        ({"min_containers": 3, "max_containers": 3}, "max_containers", 3),
        ({"buffer_containers": 1000}, "buffer_containers", 1000),
        ({"scaledown_window": 2}, "scaledown_window", 2.0),
        ({"scaledown_window": 1200}, "scaledown_window", 1200.0),
        ({"env": {"A": "1", "_b2": ""}}, "env", {"A": "1", "_b2": ""}),
        ({"name": "embed-v2.fast_1"}, "name", "embed-v2.fast_1"),
        ({"enable_memory_snapshot": True}, "enable_memory_snapshot", True),
    ],
)
def test_accepts(kwargs: dict[str, Any], field: str, expected: object) -> None:
    assert getattr(validate_options(**kwargs), field) == expected


def test_env_is_copied() -> None:
    env = {"A": "1"}
    options = validate_options(env=env)
    env["B"] = "2"
    assert options.env == {"A": "1"}


REJECTED = [
    ({"gpu": "X100"}, ["gpu='X100'", "unknown GPU type 'X100'", "Known types:"]),
    ({"cpu": 0}, ["cpu=0 is out of range: must be more than 0 and at most 512 cores"]),
    ({"cpu": -1.0}, ["cpu=-1.0 is out of range"]),
    ({"cpu": 512.5}, ["cpu=512.5 is out of range", "at most 512"]),
    ({"cpu": float("nan")}, ["cpu=nan is out of range"]),
    ({"cpu": True}, ["cpu=True: must be a number of cores", "got bool"]),
    ({"cpu": "2"}, ["cpu='2': must be a number of cores", "got str"]),
    ({"cpu": (1, 4)}, ["cpu=(1, 4)", "got tuple", "(request, limit) pairs are not supported"]),
    ({"memory": 0}, ["memory=0 is out of range: must be between 1 and 4194304 MiB"]),
    ({"memory": 4_194_305}, ["memory=4194305 is out of range"]),
    ({"memory": 1024.0}, ["memory=1024.0: must be a whole number of MiB", "got float"]),
    ({"memory": (2048, 1024)}, ["memory=(2048, 1024)", "below the request"]),
    ({"memory": (1, 2, 3)}, ["memory=(1, 2, 3)", "(request, limit) pair"]),
    ({"memory": (512, 0)}, ["memory limit=0", "MiB"]),
    ({"timeout": 0}, ["timeout=0 is out of range: must be between 1 and 86400 seconds (24 h)"]),
    ({"timeout": 86_401}, ["timeout=86401 is out of range", "86400 seconds (24 h)"]),
    ({"timeout": 0.5}, ["timeout=0.5 is out of range"]),
    ({"timeout": None}, ["timeout=None: must be a number of seconds", "got NoneType"]),
    ({"timeout": "60"}, ["timeout='60'", "got str"]),
    ({"startup_timeout": 0}, ["startup_timeout=0 is out of range: must be between 1 and 86400 seconds"]),
    ({"startup_timeout": 90_000}, ["startup_timeout=90000 is out of range"]),
    ({"retries": -1}, ["retries=-1 is out of range", "between 0 and 10"]),
    ({"retries": 11}, ["retries=11 is out of range"]),
    ({"retries": True}, ["retries=True", "got bool"]),
    ({"min_containers": -1}, ["min_containers=-1 is out of range: must be between 0 and 1000 containers"]),
    ({"min_containers": 1001}, ["min_containers=1001 is out of range"]),
    ({"min_containers": 1.0}, ["min_containers=1.0: must be a whole number of containers", "got float"]),
    ({"max_containers": 0}, ["max_containers=0 is out of range: must be between 1 and 10000 containers"]),
    ({"max_containers": 10_001}, ["max_containers=10001 is out of range"]),
    ({"max_containers": "5"}, ["max_containers='5'", "got str"]),
    ({"min_containers": 5, "max_containers": 2},
     ["min_containers=5 is more than max_containers=2", "lower min_containers or raise max_containers"]),
    ({"buffer_containers": -1}, ["buffer_containers=-1 is out of range: must be between 0 and 1000 containers"]),
    ({"buffer_containers": 1001}, ["buffer_containers=1001 is out of range"]),
    ({"scaledown_window": 1}, ["scaledown_window=1 is out of range: must be between 2 and 1200 seconds (20 min)"]),
    ({"scaledown_window": 1201}, ["scaledown_window=1201 is out of range"]),
    ({"scaledown_window": False}, ["scaledown_window=False", "got bool"]),
    ({"env": ["A=1"]}, ["env=['A=1']: must be a dict of environment variable names to string values", "got list"]),
    ({"env": {"1A": "x"}}, ["env: '1A' is not a valid environment variable name", "not starting with a digit"]),
    ({"env": {"A-B": "x"}}, ["'A-B' is not a valid environment variable name"]),
    ({"env": {"": "x"}}, ["'' is not a valid environment variable name"]),
    ({"env": {1: "x"}}, ["env: 1 is not a valid environment variable name"]),
    ({"env": {"A": 1}}, ["env['A']=1: values must be strings", "got int", "str()"]),
    ({"name": ""}, ["name='': must be a non-empty string of letters, digits, '_', '-' and '.'"]),
    ({"name": "a b"}, ["name='a b'"]),
    ({"name": "a/b"}, ["name='a/b'"]),
    ({"name": 3}, ["name=3"]),
    ({"enable_memory_snapshot": 1}, ["enable_memory_snapshot=1: must be True or False", "got int"]),
]


@pytest.mark.parametrize(("kwargs", "fragments"), REJECTED)
def test_rejects(kwargs: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        validate_options(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


# --- legacy names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("keep_warm", "min_containers", 2),
        ("container_idle_timeout", "scaledown_window", 30.0),
        ("concurrency_limit", "max_containers", 5),
    ],
)
def test_legacy_names_warn_and_map(old: str, new: str, value: float) -> None:
    with pytest.warns(DeprecationWarning, match=rf"{old}= is deprecated; use {new}= instead"):
        kwargs: dict[str, Any] = {old: value}
        options = validate_options(**kwargs)
    assert getattr(options, new) == value


def test_deprecation_points_at_the_first_frame_outside_surge() -> None:
    with pytest.warns(DeprecationWarning) as record:
        validate_options(keep_warm=1)
    assert record[0].filename == __file__


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"keep_warm": 2, "min_containers": 3},
         ["got both keep_warm=2 and min_containers=3", "pass only min_containers"]),
        ({"container_idle_timeout": 30, "scaledown_window": 90},
         ["got both container_idle_timeout=30 and scaledown_window=90", "pass only scaledown_window"]),
        ({"concurrency_limit": 5, "max_containers": 5},
         ["got both concurrency_limit=5 and max_containers=5", "pass only max_containers"]),
    ],
)
def test_old_and_new_name_together_is_an_error(kwargs: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        validate_options(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_legacy_values_are_validated_under_the_new_name() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidError, match="min_containers=-1 is out of range"):
        validate_options(keep_warm=-1)


# --- concurrency / batching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_inputs", "target", "expected"),
    [(1, None, (1, 1)), (10, None, (10, 10)), (10, 4, (10, 4)), (1000, 1, (1000, 1)), (7, 7, (7, 7))],
)
def test_validate_concurrency(max_inputs: int, target: int | None, expected: tuple[int, int]) -> None:
    assert validate_concurrency(max_inputs, target) == expected


@pytest.mark.parametrize(
    ("max_inputs", "target", "fragments"),
    [
        (0, None, ["max_inputs=0 is out of range: must be between 1 and 1000 inputs"]),
        (1001, None, ["max_inputs=1001 is out of range"]),
        (2.0, None, ["max_inputs=2.0: must be a whole number of inputs", "got float"]),
        (10, 0, ["target_inputs=0 is out of range: must be between 1 and max_inputs (10)"]),
        (10, 11, ["target_inputs=11 is out of range", "max_inputs (10)"]),
        (10, True, ["target_inputs=True", "got bool"]),
        (10, "4", ["target_inputs='4'", "got str"]),
    ],
)
def test_validate_concurrency_rejects(max_inputs: Any, target: Any, fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        validate_concurrency(max_inputs, target)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(("size", "wait"), [(1, 0), (1000, 600_000), (32, 50)])
def test_validate_batching(size: int, wait: int) -> None:
    assert validate_batching(size, wait) == (size, wait)


@pytest.mark.parametrize(
    ("size", "wait", "fragments"),
    [
        (0, 10, ["max_batch_size=0 is out of range: must be between 1 and 1000 inputs"]),
        (1001, 10, ["max_batch_size=1001 is out of range"]),
        (8, -1, ["wait_ms=-1 is out of range: must be between 0 and 600000 ms"]),
        (8, 600_001, ["wait_ms=600001 is out of range"]),
        (8, 1.5, ["wait_ms=1.5: must be a whole number of ms", "got float"]),
    ],
)
def test_validate_batching_rejects(size: Any, wait: Any, fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        validate_batching(size, wait)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_with_concurrency_and_batching_return_copies() -> None:
    base = validate_options()
    concurrent = base.with_concurrency(8)
    assert (concurrent.max_inputs, concurrent.target_inputs) == (8, 8)
    assert base.with_concurrency(8, 2).target_inputs == 2
    batched = base.with_batching(16, 100)
    assert (batched.batch_max_size, batched.batch_wait_ms) == (16, 100)
    assert (base.max_inputs, base.target_inputs, base.batch_max_size, base.batch_wait_ms) == (1, None, None, None)
    with pytest.raises(InvalidError, match="max_inputs=0"):
        base.with_concurrency(0)
    with pytest.raises(InvalidError, match="wait_ms=-5"):
        base.with_batching(4, -5)


# --- resources / JSON ----------------------------------------------------------------------------


def test_resources() -> None:
    options = validate_options(gpu="H100:2", cpu=4, memory=8192)
    assert options.resources() == Resources(cpu=4.0, memory=8192, gpu=GpuRequest(("H100",), 2))


FULL = dataclasses.replace(
    validate_options(
        gpu=["H100", "A100"], cpu=2.5, memory=4096, timeout=120.5, startup_timeout=30, min_containers=1,
        max_containers=10, buffer_containers=2, scaledown_window=300, env={"HF_HOME": "/cache"},
        name="embed", enable_memory_snapshot=True,
        retries=Retries(4, backoff_coefficient=1.5, initial_delay=0.25, max_delay=7),
    ),
    max_inputs=8, target_inputs=6, batch_max_size=32, batch_wait_ms=250,
)


@pytest.mark.parametrize("options", [validate_options(), FULL, validate_options(gpu="any:2", retries=3)],
                         ids=["defaults", "everything", "any-gpu"])
def test_json_round_trip_is_exact(options: FunctionOptions) -> None:
    wire = json.loads(json.dumps(options.to_json()))
    assert wire == options.to_json()
    back = FunctionOptions.from_json(wire)
    assert back == options
    assert back.to_json() == options.to_json()


def test_to_json_shape() -> None:
    d = FULL.to_json()
    assert d["gpu"] == {"types": ["H100", "A100-40GB", "A100-80GB"], "count": 1}
    assert d["retries"] == {"max_retries": 4, "backoff_coefficient": 1.5, "initial_delay": 0.25, "max_delay": 7}
    assert set(d) == {f.name for f in dataclasses.fields(FunctionOptions)}


def test_from_json_defaults_newer_fields_and_ignores_unknown_ones() -> None:
    d = validate_options().to_json()
    for key in ("max_inputs", "target_inputs", "batch_max_size", "batch_wait_ms", "enable_memory_snapshot"):
        del d[key]
    d["from_the_future"] = 1
    assert FunctionOptions.from_json(d) == validate_options()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"cpu": None}, "KeyError: 'cpu'"),
        ({"retries": {"max_retries": 1, "bogus": 2}}, "TypeError"),
        ({"gpu": {"types": ["H100"]}}, "KeyError: 'count'"),
    ],
)
def test_from_json_rejects_malformed(change: dict[str, Any], fragment: str) -> None:
    d = validate_options().to_json()
    for key, value in change.items():
        if value is None:
            del d[key]
        else:
            d[key] = value
    with pytest.raises(InvalidError) as info:
        FunctionOptions.from_json(d)
    assert "function options JSON is malformed" in str(info.value)
    assert fragment in str(info.value)


def test_from_json_validates_retries() -> None:
    d = validate_options().to_json()
    d["retries"]["max_retries"] = 99
    with pytest.raises(InvalidError, match="max_retries=99"):
        FunctionOptions.from_json(d)


def test_docstring_examples() -> None:
    assert doctest.testmod(surge.sdk.options).failed == 0


@pytest.mark.parametrize(("memory", "request_mib", "limit"), [
    (None, 128, None),          # default: a request, no enforced limit
    (512, 512, 512),            # an explicit size is also the limit
    ((256, 1024), 256, 1024),   # Modal's (request, limit) form
])
def test_memory_request_and_limit(memory: Any, request_mib: int, limit: int | None) -> None:
    o = validate_options(memory=memory)
    assert (o.memory, o.memory_limit) == (request_mib, limit)
    assert FunctionOptions.from_json(o.to_json()) == o
