"""A submission retried with its idempotency key is one call; map inputs re-sent by index are one
input each. Runs through the real app in-process, with real worker processes; each function that
must prove how often it ran appends a line per execution to a file."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import surge
from surge.sdk import serialization
from surge.sdk.client import Client
from surge.sdk.serialization import b64


@pytest.fixture(scope="module")
def integ(sdk: Client, integration_apps: Path) -> Iterator[Any]:
    import integ_app

    with integ_app.app.run(show_logs=False):
        yield integ_app


def ref(integ: Any, tag: str) -> dict[str, str]:
    return {"function_id": integ.app._function_ids[tag]}


def args(*a: Any) -> bytes:
    return serialization.serialize_args(a, {})


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def all_outputs(client: Client, call_id: str, count: int, timeout: float = 30.0) -> dict[int, Any]:
    """idx -> decoded result, once ``count`` inputs are done."""
    got: dict[int, Any] = {}
    since, deadline = 0, time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {count} outputs after {timeout} s"
        page = client.outputs(call_id, since, wait=min(left, 5.0))
        for out in page["outputs"]:
            assert out["state"] == "SUCCEEDED", out
            got[out["idx"]] = serialization.loads(serialization.unb64(out["result"]) or b"")
        since = page["cursor"]
    return got


def test_same_key_twice_is_one_call_and_one_run(sdk: Client, integ: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    key = uuid.uuid4().hex
    first = sdk.submit(ref(integ, "record"), "spawn", [args(str(runs), "a")], idempotency_key=key)
    second = sdk.submit(ref(integ, "record"), "spawn", [args(str(runs), "a")], idempotency_key=key)
    assert first["created"] is True and second["created"] is False
    assert second["call_id"] == first["call_id"] and second["input_ids"] == first["input_ids"]
    assert surge.FunctionCall.from_id(first["call_id"]).get(timeout=30) == "a"
    # once it has finished, the same key still names the same call, and brings its result back
    third = sdk.submit(ref(integ, "record"), "spawn", [args(str(runs), "a")], idempotency_key=key, wait=5.0)
    assert third["created"] is False and third["call_id"] == first["call_id"]
    assert [o["state"] for o in third["outputs"]] == ["SUCCEEDED"]
    status = sdk.get_call(first["call_id"])
    assert status["inputs"] == 1 and [i["attempt"] for i in status["input_list"]] == [1]
    assert lines(runs) == ["a"]


def test_a_retried_remote_gets_the_first_submissions_result(sdk: Client, integ: Any, tmp_path: Path) -> None:
    """What the SDK does when a response is lost: it sends the same body (same key) again and waits."""
    runs = tmp_path / "runs"
    key = uuid.uuid4().hex
    body = {"kind": "remote", "inputs": [b64(args(str(runs), "r"))], "idempotency_key": key, "wait": 20.0}
    first = sdk.request("POST", "/v1/calls", json={**ref(integ, "record"), **body})
    again = sdk.request("POST", "/v1/calls", json={**ref(integ, "record"), **body})
    assert again["created"] is False and again["call_id"] == first["call_id"]
    def essentials(outputs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(o["input_id"], o["state"], o["result"], o["attempt"]) for o in outputs]

    assert essentials(again["outputs"]) == essentials(first["outputs"]) and len(first["outputs"]) == 1
    assert serialization.loads(serialization.unb64(again["outputs"][0]["result"]) or b"") == "r"
    assert lines(runs) == ["r"]


def test_concurrent_duplicates_race_to_one_call(sdk: Client, integ: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    key = uuid.uuid4().hex
    start = threading.Barrier(8)

    def submit(_: int) -> dict[str, Any]:
        start.wait(timeout=10)
        return sdk.submit(ref(integ, "record"), "spawn", [args(str(runs), "c")], idempotency_key=key)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(8)))
    assert sorted(a["created"] for a in answers) == [False] * 7 + [True]
    assert len({a["call_id"] for a in answers}) == 1
    assert len({tuple(a["input_ids"]) for a in answers}) == 1
    assert surge.FunctionCall.from_id(answers[0]["call_id"]).get(timeout=30) == "c"
    assert lines(runs) == ["c"]


def test_different_keys_are_different_calls(sdk: Client, integ: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = sdk.submit(ref(integ, "record"), "spawn", [args(str(runs), "k")], idempotency_key=uuid.uuid4().hex)
    b = sdk.submit(ref(integ, "record"), "spawn", [args(str(runs), "k")], idempotency_key=uuid.uuid4().hex)
    assert a["created"] and b["created"] and a["call_id"] != b["call_id"]
    for c in (a, b):
        surge.FunctionCall.from_id(c["call_id"]).get(timeout=30)
    assert lines(runs) == ["k", "k"]


def test_add_inputs_with_an_overlapping_start_idx_adds_only_new_indices(sdk: Client, integ: Any,
                                                                        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    call = sdk.submit(ref(integ, "record"), "map", [args(str(runs), "0"), args(str(runs), "1")],
                      idempotency_key=uuid.uuid4().hex)
    cid, ids = call["call_id"], call["input_ids"]
    assert len(ids) == 2

    def add(start: int, tags: list[str]) -> list[str]:
        resp = sdk.request("POST", f"/v1/calls/{cid}/inputs",
                           json={"start_idx": start, "inputs": [b64(args(str(runs), t)) for t in tags]})
        return list(resp["input_ids"])

    added = add(1, ["1-again", "2"])                  # idx 1 is already there: not replaced, not doubled
    assert added[0] == ids[1] and added[1] not in ids
    ids.append(added[1])
    assert add(0, ["0-again", "1-again", "2-again"]) == ids   # a whole batch re-sent: nothing new
    assert all_outputs(sdk, cid, 3) == {0: "0", 1: "1", 2: "2"}
    status = sdk.get_call(cid)
    assert [(i["idx"], i["input_id"]) for i in sorted(status["input_list"], key=lambda i: i["idx"])] == \
        list(enumerate(ids))
    assert sum(status["counts"].values()) == 3
    assert sorted(lines(runs)) == ["0", "1", "2"]
    # and after the inputs ran, re-sending one does not run it again
    assert add(2, ["2-late"]) == [ids[2]]
    time.sleep(0.5)
    assert sorted(lines(runs)) == ["0", "1", "2"]


def test_a_key_reused_for_another_function_is_refused(sdk: Client, integ: Any, tmp_path: Path) -> None:
    key = uuid.uuid4().hex
    first = sdk.submit(ref(integ, "record"), "spawn", [args(str(tmp_path / "runs"), "a")], idempotency_key=key)
    other = next(t for t in integ.app.registered_functions if t != "record")
    with pytest.raises(surge.ConflictError, match="already used for call"):
        sdk.submit(ref(integ, other), "spawn", [args(1)], idempotency_key=key)
    surge.FunctionCall.from_id(first["call_id"]).get(timeout=30)
