"""Dynamic batching: callers send single items, the function sees lists."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import surge
from surge.sdk import context


@pytest.fixture(scope="module")
def batch(server: Any, apps_path: Any) -> Iterator[Any]:
    import batch_app

    with batch_app.app.run(show_logs=False):
        yield batch_app


def test_full_batches_run_together(batch: Any) -> None:
    out = list(batch.sizes.map(range(8)))
    assert [x for x, _, _ in out] == list(range(8))               # each caller gets its own item
    assert Counter(size for _, size, _ in out) == {4: 8}          # two full batches of 4
    assert len({pid for _, _, pid in out}) == 1


def test_a_partial_batch_runs_after_wait_ms(batch: Any) -> None:
    batch.lonely.remote(0)     # warm the container so the timing below is the batch window only
    t0 = time.monotonic()
    assert batch.lonely.remote(1) == 1                              # a batch of one
    assert time.monotonic() - t0 >= 0.2                              # ... after waiting wait_ms for more


def test_wrong_length_fails_every_item_of_the_batch(batch: Any) -> None:
    out = list(batch.wrong_length.map(range(4), return_exceptions=True))
    assert len(out) == 4 and all(isinstance(e, ValueError) for e in out)
    assert "returned 3 results for a batch of 4 inputs" in str(out[0])


def test_exception_instances_fail_single_items(batch: Any) -> None:
    out = list(batch.odd_fails.map(range(4), return_exceptions=True))
    assert out[0] == 0 and out[2] == 20
    assert isinstance(out[1], ValueError) and str(out[1]) == "odd 1"
    assert isinstance(out[3], ValueError) and str(out[3]) == "odd 3"
    with pytest.raises(ValueError, match="odd 5"):
        batch.odd_fails.remote(5)


def test_several_parameters_and_keywords(batch: Any) -> None:
    assert list(batch.weighted.map([1, 2, 3], [10, 20, 30])) == [10, 40, 90]
    assert batch.weighted.remote(7, weight=3) == 21


def test_async_batched_function(batch: Any) -> None:
    assert list(batch.async_double.map(range(5))) == [0, 2, 4, 6, 8]


def test_batched_declaration_errors() -> None:
    app = surge.App("bad-batch")
    with pytest.raises(surge.InvalidError, match="did you forget parentheses"):
        surge.batched(lambda xs: xs)
    with pytest.raises(surge.InvalidError, match="needs both"):
        surge.batched(max_batch_size=4)
    with pytest.raises(surge.InvalidError, match=r"max_batch_size=0"):
        surge.batched(max_batch_size=0, wait_ms=10)
    with pytest.raises(surge.InvalidError, match=r"wait_ms=-1"):
        surge.batched(max_batch_size=4, wait_ms=-1)
    with pytest.raises(surge.InvalidError, match="generator"):
        surge.batched(max_batch_size=4, wait_ms=1)(_gen)
    with pytest.raises(surge.InvalidError, match="cannot be combined"):
        app.function()(surge.batched(max_batch_size=4, wait_ms=1)(surge.concurrent(max_inputs=2)(_plain)))


def _gen(xs: list[int]) -> Iterator[int]:
    yield from xs


def _plain(xs: list[int]) -> list[int]:
    return xs


def test_an_item_waiting_for_its_batch_longer_than_a_lease_keeps_its_attempt(batch: Any) -> None:
    """The container's heartbeat renews the leases of inputs it holds but has not started, so the
    reaper does not take back an item that is only waiting for ``wait_ms``."""
    call = batch.patient.spawn(1)
    assert call.get(timeout=60) == 1
    (row,) = context.get_client().get_call(call.object_id)["input_list"]
    assert (row["state"], row["attempt"]) == ("SUCCEEDED", 1)
