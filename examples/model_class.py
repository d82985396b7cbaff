"""A class that loads a "model" once per container and keeps it across calls.

Run it with `surge run examples/model_class.py`.

- `@surge.enter()` runs once when a container starts, before it takes inputs: the place to load
  weights. Every later call on that container finds them already in `self`.
- `@surge.exit()` runs when the container shuts down (scale-down, redeploy, `surge app stop`).
- `surge.parameter()` declares a constructor parameter: `Model(size="large")`. Each distinct set of
  parameter values gets its own pool of containers, so a "small" and a "large" model never share one.
- `@surge.method()` marks the methods callers may run remotely.
"""

import os

import surge

app = surge.App("model-class")

SIZES = {"small": 4, "large": 16}


@app.cls(cpu=0.5, memory=512, scaledown_window=10)
class Model:
    size: str = surge.parameter(default="small")

    @surge.enter()
    def load(self) -> None:
        # Stand-in for reading weights from disk: deterministic numbers, computed once per container.
        n = SIZES[self.size]
        self.weights = [((i * 7919) % 101) / 100 for i in range(n)]
        self.calls = 0
        self.container = os.environ["SURGE_CONTAINER_ID"]
        print(f"loaded the {self.size} model ({n} weights) in {self.container}")

    @surge.method()
    def predict(self, x: float) -> dict:
        # `self.calls` survives between inputs because the container (and this object) stays warm.
        self.calls += 1
        return {"size": self.size, "score": round(sum(w * x for w in self.weights), 3),
                "calls": self.calls, "container": self.container}

    @surge.exit()
    def unload(self) -> None:
        print(f"unloading the {self.size} model after {self.calls} calls")


@app.local_entrypoint()
def main() -> None:
    small = Model()  # size="small", the parameter's default
    seen = set()
    for x in (1.0, 2.0, 3.0):
        r = small.predict.remote(x)
        seen.add(r["container"])
        print(f"small.predict({x}) = {r['score']}  (call #{r['calls']} on this container)")
    print(f"small model: {len(seen)} container, loaded once, state kept across calls")

    large = Model(size="large")  # another parameter value: another pool of containers
    r = large.predict.remote(1.0)
    print(f"large.predict(1.0) = {r['score']}  (call #{r['calls']} on this container)")
    print("large model runs in its own container:", r["container"] not in seen)
