"""Functions exercising the calling patterns (used by tests/e2e/test_calls.py)."""

from __future__ import annotations

import asyncio
import os
import time

import surge

app = surge.App("e2e-core", env={"GREETING": "hello"})


class CustomError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"custom failure {code}")
        self.code = code


@app.function()
def square(x: int) -> int:
    return x * x


@app.function()
def add(a: int, b: int = 0) -> int:
    return a + b


@app.function()
def identity(x: object) -> object:
    return x


@app.function()
def env_and_pid(name: str) -> dict[str, object]:
    return {"pid": os.getpid(), "value": os.environ.get(name), "container": os.environ.get("SURGE_CONTAINER_ID"),
            "input_id": surge.current_input_id()}


@app.function()
def boom(code: int) -> None:
    raise CustomError(code)


@app.function()
def value_error(msg: str) -> None:
    raise ValueError(msg)


@app.function()
def maybe_fail(x: int) -> int:
    if x % 3 == 0:
        raise ValueError(f"bad {x}")
    return x


@app.function()
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.function()
def countdown(n: int, delay: float = 0.0):  # a generator function
    for i in range(n, 0, -1):
        yield i
        if delay:
            time.sleep(delay)


@app.function()
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@app.function()
@surge.concurrent(max_inputs=4)
def concurrent_sleep(seconds: float) -> dict[str, object]:
    t0 = time.time()
    time.sleep(seconds)
    return {"container": os.environ["SURGE_CONTAINER_ID"], "start": t0}


@app.function()
def returns_lambda() -> object:
    import threading

    return threading.Lock()   # cannot be pickled


@app.function()
def big_result(n: int) -> bytes:
    return b"x" * n


@app.function()
def nested_call(x: int) -> int:
    return square.remote(x) + 1


@app.cls()
class Counter:
    start: int = surge.parameter(default=0)
    label: str = surge.parameter(default="c")

    @surge.enter()
    def setup(self) -> None:
        self.value = self.start
        self.pid = os.getpid()
        self.entered = True

    @surge.method()
    def incr(self, by: int = 1) -> dict[str, object]:
        self.value += by
        return {"value": self.value, "pid": self.pid, "label": self.label, "entered": self.entered}

    @surge.method()
    def stream(self, n: int):
        for i in range(n):
            yield f"{self.label}-{i}"

    @surge.exit()
    def teardown(self) -> None:
        print(f"exit hook ran for {self.label}", flush=True)
