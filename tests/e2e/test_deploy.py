"""Deployed apps looked up by name from the SDK: functions, classes with parameters, redeploys."""

from __future__ import annotations

from typing import Any

import pytest

import surge


@pytest.fixture(scope="module")
def deployed(server: Any, apps_path: Any) -> Any:
    import core_app

    result = core_app.app.deploy(name="e2e-deployed")
    yield result
    surge.sdk.context.get_client().request("POST", "/v1/apps/e2e-deployed/stop")


def test_function_from_name(deployed: Any) -> None:
    assert deployed["version"] >= 1
    assert surge.Function.from_name("e2e-deployed", "square").remote(9) == 81
    assert list(surge.Function.from_name("e2e-deployed", "square").map([1, 2])) == [1, 4]


def test_cls_from_name_with_parameters(deployed: Any) -> None:
    Counter = surge.Cls.from_name("e2e-deployed", "Counter")
    a = Counter(start=5, label="x")
    assert a.incr.remote(1)["value"] == 6
    assert a.incr.remote(1)["value"] == 7            # same parameter set, same container
    assert Counter(start=50).incr.remote(1)["value"] == 51
    assert list(a.stream.remote_gen(2)) == ["x-0", "x-1"]


def test_unknown_names(deployed: Any) -> None:
    with pytest.raises(surge.NotFoundError, match="has no function 'nope'"):
        surge.Function.from_name("e2e-deployed", "nope").remote()
    with pytest.raises(surge.NotFoundError, match="no deployed app named"):
        surge.Cls.from_name("missing-app", "Counter")().incr.remote()


def test_redeploy_moves_calls_to_the_new_version(deployed: Any) -> None:
    import core_app

    again = core_app.app.deploy(name="e2e-deployed")
    assert again["version"] == deployed["version"] + 1
    call = surge.Function.from_name("e2e-deployed", "add").spawn(1, b=2)
    assert call.get(timeout=30) == 3
    info = surge.sdk.context.get_client().get_call(call.object_id)
    assert info["version"] == again["version"]
