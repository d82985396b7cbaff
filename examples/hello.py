"""Hello, surge: one function called three ways.

Run it with `surge run examples/hello.py` (or `make demo`). No server to start: surge starts an
embedded control plane and worker processes for the run, and stops them afterwards.
"""

import os
import time

import surge

app = surge.App("hello")


@app.function(cpu=0.25, memory=256, timeout=60, retries=1, scaledown_window=10)
def square(x: int) -> int:
    # Runs in a worker process ("container") that surge starts, reuses and scales to zero.
    return x * x


@app.function()
def where() -> str:
    return f"pid {os.getpid()}, container {os.environ['SURGE_CONTAINER_ID']}"


@app.function()
def slow_add(a: int, b: int) -> int:
    time.sleep(0.5)
    return a + b


@app.local_entrypoint()
def main(n: int = 10) -> None:
    # .remote(): one call, waits for the result
    print("square(7) =", square.remote(7))
    print("ran in", where.remote())

    # .map(): parallel over an iterable, results in input order
    print(f"squares of 0..{n - 1}:", list(square.map(range(n))))

    # .spawn(): a durable call; its id can be handed to another process
    call = slow_add.spawn(2, 3)
    print("spawned", call.object_id)
    print("slow_add(2, 3) =", surge.FunctionCall.from_id(call.object_id).get(timeout=30))
