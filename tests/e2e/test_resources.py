"""Resources with real worker processes: GPU placement from the declared inventory
(A100-80GB:2, H100:1 → indices 0, 1 and 2) seen through ``CUDA_VISIBLE_DEVICES``, capacity that can
never fit, the memory limit (a cgroup OOM kill), and several inputs at once in one container."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import surge
from surge.sdk import context
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def faults(server: Any, apps_path: Any) -> Iterator[Any]:
    import faults_app

    with faults_app.app.run(show_logs=False):
        yield faults_app


def node() -> dict[str, Any]:
    node_info: dict[str, Any] = context.get_client().request("GET", "/health")["node"]
    return node_info


def wait_gpus_free() -> None:
    """GPU containers linger for their 2 s scaledown window; tests of placement start from none."""
    wait_for("every GPU to be released", lambda: not node()["allocated"]["gpu_indices"], 10)


def containers_of(function: str) -> list[dict[str, Any]]:
    rows = context.get_client().request("GET", "/v1/containers", params={"all": True})["containers"]
    return [c for c in rows if c["app"] == "e2e-faults" and c["function"] == function]


# -- GPUs ------------------------------------------------------------------------------------------
def test_two_a100_functions_at_once_get_disjoint_devices(faults: Any) -> None:
    wait_gpus_free()
    first, second = faults.a100_first.spawn(1.0), faults.a100_second.spawn(1.0)
    seen = {first.get(timeout=30), second.get(timeout=30)}
    assert seen == {"0", "1"}
    for fn in ("a100_first", "a100_second"):
        (ct,) = containers_of(fn)
        assert ct["gpu"] == "A100-80GB" and len(ct["gpu_indices"]) == 1


def test_h100_function_gets_the_h100(faults: Any) -> None:
    assert faults.h100.remote(0) == "2"
    (ct,) = containers_of("h100")
    assert (ct["gpu"], ct["gpu_indices"]) == ("H100", [2])


@pytest.mark.slow
def test_preference_list_takes_h100_first_then_falls_back(faults: Any) -> None:
    wait_gpus_free()
    assert faults.h100_else_a100.remote(0) == "2"
    wait_gpus_free()
    # with the H100 busy, the same function lands on an A100 instead of waiting
    busy = faults.h100.spawn(3.0)
    wait_for("the H100 function to run", lambda: context.get_client().get_call(busy.object_id)["state"] == "RUNNING",
             30)
    assert faults.h100_else_a100.remote(0) in {"0", "1"}
    assert busy.get(timeout=30) == "2"


def test_function_without_gpu_sees_no_device(faults: Any) -> None:
    assert faults.no_gpu.remote(0) == ""


def test_gpu_count_beyond_the_inventory_fails_fast(faults: Any) -> None:
    t0 = time.monotonic()
    call = faults.a100_triple.spawn(0)
    with pytest.raises(surge.ExecutionError) as info:
        call.get(timeout=30)
    assert time.monotonic() - t0 < 5
    err = info.value
    assert type(err) is surge.ExecutionError and err.reason == "NO_CAPACITY"
    assert "3 × A100-80GB" in str(err) and "inventory" in str(err), str(err)
    row = context.get_client().get_call(call.object_id)["input_list"][0]
    assert (row["state"], row["reason"], row["attempt"]) == ("FAILED", "NO_CAPACITY", 0)
    assert not containers_of("a100_triple")


def test_two_gpu_function_gets_both_a100s(faults: Any) -> None:
    assert faults.a100_pair.remote(0) == "0,1"
    (ct,) = containers_of("a100_pair")
    assert (ct["gpu"], ct["gpu_indices"]) == ("A100-80GB", [0, 1])


# -- memory ----------------------------------------------------------------------------------------
def test_memory_limit_oom_kills_and_the_container_is_replaced(faults: Any) -> None:
    mechanism = node()["memory_limits"]
    if not mechanism.startswith("cgroup"):
        pytest.skip(f"no writable memory cgroup on this host (limits use {mechanism}): an OOM kill "
                    "cannot be observed")
    small = faults.hog.remote(1)      # memory=100: a small allocation is fine
    call = faults.hog.spawn(400)
    with pytest.raises(surge.ExecutionError) as info:
        call.get(timeout=30)
    err = info.value
    assert type(err) is surge.ExecutionError
    assert (err.reason, err.signal) == ("OOM_KILLED", signal.SIGKILL)
    assert "100 MiB" in str(err)
    row = context.get_client().get_call(call.object_id)["input_list"][0]
    assert (row["state"], row["reason"], row["container_id"]) == ("FAILED", "OOM_KILLED", small["container"])
    after = faults.hog.remote(1)
    assert after["container"] != small["container"] and after["held"] == 1 << 20


# -- concurrency -----------------------------------------------------------------------------------
def test_concurrent_inputs_overlap_in_one_container(faults: Any) -> None:
    out = list(faults.overlapping_sleep.map([1.0] * 4))
    assert len({o["container"] for o in out}) == 1
    # every input started before any finished: all four ran at the same time
    assert max(o["start"] for o in out) < min(o["end"] for o in out), out
