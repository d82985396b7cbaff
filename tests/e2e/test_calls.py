"""Every calling pattern of the SDK against a real server and real worker processes."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import surge
from surge.sdk import context


@pytest.fixture(scope="module")
def core(server: Any, apps_path: Any) -> Iterator[Any]:
    import core_app

    with core_app.app.run(show_logs=False):
        yield core_app


def test_remote_returns_value(core: Any) -> None:
    assert core.square.remote(7) == 49
    assert core.add.remote(2, b=5) == 7


def test_remote_runs_in_container_with_app_env(core: Any) -> None:
    out = core.env_and_pid.remote("GREETING")
    assert out["value"] == "hello"
    assert out["pid"] != __import__("os").getpid()
    assert out["container"].startswith("ct-")
    assert out["input_id"].startswith("in-")


def test_warm_container_is_reused(core: Any) -> None:
    first = core.env_and_pid.remote("GREETING")
    second = core.env_and_pid.remote("GREETING")
    assert first["container"] == second["container"]
    assert first["input_id"] != second["input_id"]


def test_arbitrary_python_values_round_trip(core: Any) -> None:
    value = {"set": {1, 2}, "bytes": b"\x00\xff", "nested": [(1, 2.5, None)], "big": 2**100}
    assert core.identity.remote(value) == value


def test_remote_exception_keeps_its_type_and_traceback(core: Any) -> None:
    with pytest.raises(core.CustomError) as info:
        core.boom.remote(42)
    assert info.value.code == 42
    tb = getattr(info.value, "__surge_remote_traceback__", "")
    assert "raise CustomError(code)" in tb and "core_app.py" in tb
    with pytest.raises(ValueError, match="nope"):
        core.value_error.remote("nope")


def test_map_is_ordered_and_parallel(core: Any) -> None:
    assert list(core.square.map(range(200))) == [x * x for x in range(200)]
    assert list(core.add.map([1, 2, 3], [10, 20, 30])) == [11, 22, 33]


def test_map_unordered_returns_every_result(core: Any) -> None:
    out = list(core.square.map(range(100), order_outputs=False))
    assert sorted(out) == [x * x for x in range(100)]


def test_map_kwargs_and_starmap(core: Any) -> None:
    assert list(core.add.map([1, 2], kwargs={"b": 100})) == [101, 102]
    assert list(core.add.starmap([(1, 2), (3, 4)])) == [3, 7]


def test_map_exceptions(core: Any) -> None:
    out = list(core.maybe_fail.map(range(7), return_exceptions=True))
    assert [isinstance(v, ValueError) for v in out] == [x % 3 == 0 for x in range(7)]
    assert out[1] == 1 and str(out[3]) == "bad 3"
    with pytest.raises(ValueError, match="bad 0"):
        list(core.maybe_fail.map(range(5)))


def test_map_over_infinite_generator_is_bounded(core: Any) -> None:
    consumed = itertools.count()

    def numbers() -> Iterator[int]:
        for i in itertools.count():
            next(consumed)
            yield i

    got = []
    for v in core.square.map(numbers()):
        got.append(v)
        if len(got) == 50:
            break
    assert got == [x * x for x in range(50)]
    # the map pulled a bounded number of items from the infinite iterator
    from surge.sdk.mapping import MAX_IN_FLIGHT
    assert next(consumed) <= MAX_IN_FLIGHT + 1


def test_for_each(core: Any) -> None:
    assert core.square.for_each(range(10)) is None


def test_spawn_and_from_id(core: Any) -> None:
    call = core.sleep_for.spawn(0.2)
    assert isinstance(call, surge.FunctionCall)
    with pytest.raises(surge.TimeoutError):
        surge.FunctionCall.from_id(call.object_id).get(timeout=0)
    assert surge.FunctionCall.from_id(call.object_id).get(timeout=30) == 0.2


def test_spawned_result_fetched_from_another_process(core: Any, server: Any) -> None:
    call = core.add.spawn(20, b=22)
    code = ("import surge; from surge.sdk import context, client; import os;"
            "context.set_client(client.Client(os.environ['SURGE_SERVER_URL'], os.environ['SURGE_TOKEN']));"
            f"print(surge.FunctionCall.from_id({call.object_id!r}).get(timeout=30))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "42"


def test_gather(core: Any) -> None:
    calls = [core.square.spawn(i) for i in range(5)]
    assert surge.gather(*calls) == [0, 1, 4, 9, 16]
    assert surge.FunctionCall.gather(*calls[:2]) == [0, 1]


def test_generator_streams_items_before_finishing(core: Any) -> None:
    it = core.countdown.remote_gen(4, delay=0.5)
    t0 = time.monotonic()
    first = next(it)
    first_at = time.monotonic() - t0
    rest = list(it)
    total = time.monotonic() - t0
    assert [first, *rest] == [4, 3, 2, 1]
    # the first item arrived while the generator was still sleeping between items
    assert first_at < total - 1.0, (first_at, total)


def test_generator_rules(core: Any) -> None:
    with pytest.raises(surge.InvalidError, match="remote_gen"):
        core.countdown.remote(3)
    with pytest.raises(surge.InvalidError, match="remote_gen"):
        core.countdown.spawn(3)
    with pytest.raises(surge.InvalidError, match="not a generator"):
        list(core.square.remote_gen(3))


def test_async_function_and_aio_forms(core: Any) -> None:
    assert core.async_double.remote(21) == 42

    async def main() -> tuple[Any, ...]:
        a = await core.square.remote.aio(3)
        b = [v async for v in core.square.map.aio([1, 2, 3])]
        c = [v async for v in core.countdown.remote_gen.aio(3)]
        call = await core.add.spawn.aio(1, b=1)
        d = await call.get.aio(timeout=30)
        return a, b, c, d

    assert asyncio.run(main()) == (9, [1, 4, 9], [3, 2, 1], 2)


def test_concurrent_inputs_share_a_container(core: Any) -> None:
    out = list(core.concurrent_sleep.map([1.0] * 4))
    assert len({o["container"] for o in out}) == 1
    starts = sorted(o["start"] for o in out)
    assert starts[-1] - starts[0] < 1.0   # all four started before the first one finished


def test_local_runs_in_process(core: Any) -> None:
    import os

    assert core.square.local(5) == 25
    assert core.env_and_pid.local("PATH")["pid"] == os.getpid()


def test_nested_calls_from_a_container(core: Any) -> None:
    assert core.nested_call.remote(6) == 37


def test_class_parameters_and_enter_hooks(core: Any) -> None:
    a = core.Counter(start=10, label="a")
    b = core.Counter(start=100, label="b")
    r1 = a.incr.remote(1)
    r2 = a.incr.remote(2)
    r3 = b.incr.remote(5)
    assert r1["entered"] and r1["value"] == 11 and r2["value"] == 13   # state kept in one container
    assert r1["pid"] == r2["pid"]
    assert r3["value"] == 105 and r3["label"] == "b" and r3["pid"] != r1["pid"]   # own pool
    assert list(a.stream.remote_gen(3)) == ["a-0", "a-1", "a-2"]
    assert core.Counter().incr.remote()["value"] == 1     # defaults


def test_class_method_local(core: Any) -> None:
    obj = core.Counter(start=5)
    assert obj.incr.local(2)["value"] == 7
    assert obj.incr.local(2)["value"] == 9   # the local instance is kept


def test_class_parameter_errors(core: Any) -> None:
    with pytest.raises(surge.InvalidError, match="unknown parameter"):
        core.Counter(nope=1)
    with pytest.raises(surge.InvalidError, match=r"str, int, bool or bytes"):
        core.Counter(label=[1])
    with pytest.raises(AttributeError, match="no @surge\\.method"):
        core.Counter().missing


def test_unpicklable_argument_is_a_clear_error(core: Any) -> None:
    with pytest.raises(surge.InvalidError, match="positional argument 0 of type lock"):
        core.identity.remote(threading.Lock())


def test_unpicklable_result_is_a_clear_error(core: Any) -> None:
    with pytest.raises(TypeError, match="cannot be serialized"):
        core.returns_lambda.remote()


def test_result_over_the_limit(core: Any, server: Any) -> None:
    # the server's limit is 256 MiB by default: ask for more than that
    with pytest.raises(surge.ExecutionError) as info:
        core.big_result.remote((256 << 20) + 1)
    assert info.value.reason == "RESULT_TOO_LARGE"
    assert "over the limit" in str(info.value)


def test_deployed_lookup_of_unknown_names(core: Any) -> None:
    with pytest.raises(surge.NotFoundError, match="no deployed app named 'does-not-exist'"):
        surge.Function.from_name("does-not-exist", "f").remote(1)


def test_call_listing_shows_calls(core: Any) -> None:
    call = core.square.spawn(3)
    call.get(timeout=30)
    info = context.get_client().get_call(call.object_id)
    assert info["state"] == "SUCCEEDED" and info["kind"] == "spawn" and info["function"] == "square"
    assert info["input_list"][0]["attempt"] == 1


def test_usage_is_metered_per_function(core: Any) -> None:
    core.sleep_for.remote(0.3)
    deadline = time.monotonic() + 10
    while True:
        data = context.get_client().request("GET", "/v1/usage", params={"app": "e2e-core"})
        fn = data["by_function"].get("e2e-core::sleep_for")
        if (fn and fn["phases"].get("busy", {}).get("seconds", 0) >= 0.3) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fn is not None
    assert fn["phases"]["busy"]["seconds"] >= 0.3          # the 0.3 s sleep was billed as inference
    assert fn["phases"]["cold_start"]["seconds"] > 0        # the container's start was billed apart
    assert fn["total"]["cpu_seconds"] > 0 and fn["total"]["cost"] > 0
    assert data["total"]["cost"] >= fn["total"]["cost"]
