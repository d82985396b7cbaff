"""Container and input lifecycle with real worker processes: cancelling queued and running inputs,
scale to zero after the scaledown window, and ``min_containers`` keeping a container warm."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import surge
from surge.sdk import context


@pytest.fixture(scope="module")
def faults(server: Any, apps_path: Any) -> Iterator[Any]:
    import faults_app

    with faults_app.app.run(show_logs=False):
        yield faults_app


def live(function: str) -> list[dict[str, Any]]:
    """This app's containers of ``function`` that have not stopped (the containers API)."""
    rows = context.get_client().request("GET", "/v1/containers", params={"all": True})["containers"]
    return [c for c in rows if (c["app"], c["function"]) == ("e2e-faults", function) and c["state"] != "STOPPED"]


def poll(until: Any, *, seconds: float, step: float = 0.05) -> float:
    """Seconds it took for ``until()`` to hold; fails the test past ``seconds``."""
    t0 = time.monotonic()
    while not until():
        assert time.monotonic() - t0 < seconds, f"{until.__doc__ or until} did not happen within {seconds} s"
        time.sleep(step)
    return time.monotonic() - t0


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def input_of(call: surge.FunctionCall) -> dict[str, Any]:
    (row,) = context.get_client().get_call(call.object_id)["input_list"]
    return row


# -- cancellation ----------------------------------------------------------------------------------
def test_cancel_a_queued_then_a_running_input(faults: Any, tmp_path: Path) -> None:
    first = faults.long_sleep.spawn(str(tmp_path), "first")
    poll((tmp_path / "first").exists, seconds=30)
    second = faults.long_sleep.spawn(str(tmp_path), "second")   # max_containers=1: it waits
    assert input_of(second)["state"] == "QUEUED"

    second.cancel()
    row = input_of(second)
    assert (row["state"], row["reason"], row["attempt"]) == ("CANCELLED", "CANCELLED", 0)
    with pytest.raises(surge.InputCancelledError):
        second.get(timeout=5)
    assert input_of(first)["state"] == "RUNNING"     # cancelling one call leaves the other alone

    (ct,) = live("long_sleep")
    pid = ct["pid"]
    assert pid == int((tmp_path / "first").read_text())
    t0 = time.monotonic()
    first.cancel()
    poll(lambda: gone(pid), seconds=5)
    took = time.monotonic() - t0
    assert took < 2.0, f"the container process outlived the cancel by {took:.2f} s"
    row = input_of(first)
    assert (row["state"], row["reason"], row["attempt"]) == ("CANCELLED", "CANCELLED", 1)
    with pytest.raises(surge.InputCancelledError):
        first.get(timeout=5)
    # the slot the first call held is free now: a still-queued second call would start here
    time.sleep(1.0)
    assert not (tmp_path / "second").exists()
    assert input_of(second)["attempt"] == 0


# -- scaling ---------------------------------------------------------------------------------------
def test_idle_container_scales_to_zero_after_the_window(faults: Any) -> None:
    where = faults.short_lived.remote()
    assert [c["container_id"] for c in live("short_lived")] == [where["container"]]
    idle = poll(lambda: not live("short_lived"), seconds=8)
    assert 1.5 <= idle <= 5.0, f"scaledown_window=2 but the container stopped after {idle:.2f} s idle"
    assert gone(where["pid"])
    rows = context.get_client().request("GET", "/v1/containers", params={"all": True})["containers"]
    (stopped,) = [c for c in rows if c["container_id"] == where["container"]]
    assert (stopped["stop_reason"], stopped["exit_code"], stopped["signal"]) == ("STOP", 0, None)


@pytest.mark.slow
def test_min_containers_keeps_one_warm(faults: Any) -> None:
    # started with the app, before any call
    poll(lambda: len(live("kept_warm")) == 1, seconds=15)
    (warm,) = live("kept_warm")
    assert faults.kept_warm.remote()["container"] == warm["container_id"]
    time.sleep(3.5)     # past scaledown_window=2
    assert [c["container_id"] for c in live("kept_warm")] == [warm["container_id"]]
    assert not gone(warm["pid"])


def test_cancelling_one_input_requeues_the_others_sharing_its_container(faults: Any) -> None:
    """A cancel kills the container; inputs running beside the cancelled one run again at once
    (an infrastructure retry), instead of waiting for their leases to run out."""
    victim = faults.overlapping_sleep.spawn(3.0)
    poll(lambda: input_of(victim)["state"] == "RUNNING", seconds=30)
    bystander = faults.overlapping_sleep.spawn(1.0)
    poll(lambda: input_of(bystander)["state"] == "RUNNING", seconds=10)
    assert input_of(bystander)["container_id"] == input_of(victim)["container_id"]   # @concurrent(4)
    victim.cancel()
    result = bystander.get(timeout=30)
    row = input_of(bystander)
    assert (row["state"], row["attempt"]) == ("SUCCEEDED", 2)
    assert row["container_id"] == result["container"] != input_of(victim)["container_id"]
    assert "another input on it was cancelled" in str(row.get("error_message") or row.get("message"))
