"""Dynamic batching beyond plain SDK calls: batched class methods, batches of HTTP jobs (JSON in and
out, per item), HTTP jobs and SDK calls sharing a batch, and each job's own FAILED reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import surge
from surge.sdk import context

APP = "e2e-batch-more-jobs"


@pytest.fixture(scope="module")
def batch_more(server: Any, apps_path: Any) -> Iterator[Any]:
    import batch_more_app

    batch_more_app.app.deploy(name=APP)
    with batch_more_app.app.run(show_logs=False):
        yield batch_more_app
    context.get_client().request("POST", f"/v1/apps/{APP}/stop")


@pytest.fixture
def api(server: Any, batch_more: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                      timeout=60) as http:
        yield http


def submit(api: httpx.Client, fn: str, value: Any) -> str:
    r = api.post(f"/v1/apps/{APP}/functions/{fn}/jobs", json={"input": value})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def finished(api: httpx.Client, job: str) -> dict[str, Any]:
    view: dict[str, Any] = api.get(f"/v1/jobs/{job}", params={"wait": 60}).json()
    assert view["status"] not in ("QUEUED", "RUNNING"), view
    return view


# -- HTTP jobs to batched functions ---------------------------------------------------------------------

def test_http_jobs_fill_a_batch(api: httpx.Client) -> None:
    jobs = [submit(api, "square", {"x": i}) for i in range(4)]
    outputs = [finished(api, j)["output"] for j in jobs]
    assert outputs == [{"x": i, "square": i * i, "batch": 4} for i in range(4)]


def test_http_jobs_and_sdk_calls_share_a_batch(api: httpx.Client) -> None:
    square = surge.Function.from_name(APP, "square")
    calls = [square.spawn(7), square.spawn(x=8)]          # positional and keyword, pickled
    jobs = [submit(api, "square", {"x": 5}), submit(api, "square", 6)]   # keywords and a whole value, JSON
    assert [c.get(timeout=60) for c in calls] == [{"x": 7, "square": 49, "batch": 4},
                                                   {"x": 8, "square": 64, "batch": 4}]
    assert [finished(api, j)["output"] for j in jobs] == [{"x": 5, "square": 25, "batch": 4},
                                                           {"x": 6, "square": 36, "batch": 4}]


def test_each_job_of_a_batch_fails_alone(api: httpx.Client) -> None:
    square = surge.Function.from_name(APP, "square")
    bad_args = square.spawn(1, 2)                        # does not fit the signature: fails alone
    negative = submit(api, "square", {"x": -1})          # the function returns an exception for it
    ok = [submit(api, "square", {"x": 3}), submit(api, "square", {"x": 4})]
    with pytest.raises(TypeError, match=r"too many positional arguments .*one value per parameter"):
        bad_args.get(timeout=60)
    failed = finished(api, negative)
    assert failed["status"] == "FAILED" and failed["error"]["reason"] == "USER_EXCEPTION"
    assert "ValueError" in failed["error"]["message"] and "negative: -1" in failed["error"]["message"]
    # three inputs reached the function (the bad one never did)
    assert [finished(api, j)["output"] for j in ok] == [{"x": 3, "square": 9, "batch": 3},
                                                         {"x": 4, "square": 16, "batch": 3}]


def test_a_wrong_length_return_fails_every_job_of_the_batch(api: httpx.Client) -> None:
    jobs = [submit(api, "drops_one", {"x": i}) for i in range(3)]
    for j in jobs:
        view = finished(api, j)
        assert view["status"] == "FAILED" and view["error"]["reason"] == "USER_EXCEPTION"
        assert "returned 2 results for a batch of 3 inputs" in view["error"]["message"]


def test_a_result_that_is_not_json_fails_its_job_only(api: httpx.Client) -> None:
    bad, good = submit(api, "leaks_a_set", {"x": 1}), submit(api, "leaks_a_set", {"x": 2})
    view = finished(api, bad)
    assert view["status"] == "FAILED" and "not JSON-serializable" in view["error"]["message"]
    good_view = finished(api, good)
    assert good_view["status"] == "SUCCEEDED" and good_view["output"] == 2


# -- batched class methods --------------------------------------------------------------------------------

def test_batched_method_runs_with_the_objects_state(batch_more: Any) -> None:
    out = list(batch_more.Scaler().scale.map([1, 2, 3, 4]))
    assert [v for v, _, _ in out] == [10, 20, 30, 40]
    assert {size for _, size, _ in out} == {4} and len({pid for _, _, pid in out}) == 1
    other = list(batch_more.Scaler(factor=3).scale.map([1, 2, 3, 4]))
    assert [v for v, _, _ in other] == [3, 6, 9, 12]
    assert other[0][2] != out[0][2]                      # each parameter set has its own container


def test_batched_async_method_without_surge_method(batch_more: Any) -> None:
    assert list(batch_more.Counter().count.map(["a", "bb", "ccc"])) == [1, 2, 3]


def test_http_jobs_to_a_batched_method(api: httpx.Client) -> None:
    jobs = [submit(api, "Scaler.scale", {"xs": i}) for i in range(4)]
    outputs = [finished(api, j)["output"] for j in jobs]
    assert [v for v, _, _ in outputs] == [0, 10, 20, 30]   # the parameter's default applies
    assert {size for _, size, _ in outputs} == {4}


# -- declaration errors -------------------------------------------------------------------------------------

class TwoBatched:
    @surge.batched(max_batch_size=2, wait_ms=0)
    def a(self, xs: list[int]) -> list[int]:
        return xs

    @surge.batched(max_batch_size=2, wait_ms=0)
    def b(self, xs: list[int]) -> list[int]:
        return xs


class BatchedAndMethod:
    @surge.method()
    @surge.batched(max_batch_size=2, wait_ms=0)
    def a(self, xs: list[int]) -> list[int]:
        return xs

    @surge.method()
    def b(self, x: int) -> int:
        return x


@surge.concurrent(max_inputs=4)
class BatchedAndConcurrent:
    @surge.batched(max_batch_size=2, wait_ms=0)
    def a(self, xs: list[int]) -> list[int]:
        return xs


class BatchedGenerator:
    @surge.method(is_generator=True)
    @surge.batched(max_batch_size=2, wait_ms=0)
    def a(self, xs: list[int]) -> list[int]:
        return xs


@pytest.mark.parametrize(("user_cls", "match"), [
    (TwoBatched, r"class TwoBatched has 2 @surge.batched methods \(a, b\); a class can have one"),
    (BatchedAndMethod, r"has the @surge.batched method a, so it can have no other @surge.method\(\) .*found b"),
    (BatchedAndConcurrent, r"@surge.batched \(on a\) and @surge.concurrent cannot be combined"),
    (BatchedGenerator, r"cannot be combined with @surge.method\(is_generator=True\)"),
])
def test_batched_class_declaration_errors(user_cls: type, match: str) -> None:
    with pytest.raises(surge.InvalidError, match=match):
        surge.App("bad-batch-cls").cls()(user_cls)


def test_batched_function_cannot_take_star_args() -> None:
    def star(*xs: list[int]) -> list[int]:
        return list(xs)

    def double_star(xs: list[int], **extra: list[int]) -> list[int]:
        return xs

    with pytest.raises(surge.InvalidError, match=r"star takes \*xs, but a batched function receives one list"):
        surge.batched(max_batch_size=2, wait_ms=0)(star)
    with pytest.raises(surge.InvalidError, match=r"double_star takes \*\*extra"):
        surge.batched(max_batch_size=2, wait_ms=0)(double_star)
