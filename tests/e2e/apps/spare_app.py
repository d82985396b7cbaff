"""Snapshot spares (children forked ahead of demand, already in their cgroups), used by
tests/e2e/test_spares.py. Each test passes a tag of its own, so it gets a pool, a zygote and a
spare of its own."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import surge

app = surge.App("e2e-spares")


@app.cls(enable_memory_snapshot=True, scaledown_window=30, memory=100,
         secrets=[surge.Secret.from_dict({"SPARE_SECRET": "s3cret"})], env={"SPARE_MARK": "marked"})
class Probe:
    tag: str = surge.parameter()

    @surge.enter(snap=True)
    def load(self) -> None:
        self.snap_pid = os.getpid()

    @surge.method()
    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "snap_pid": self.snap_pid, "container": os.environ["SURGE_CONTAINER_ID"],
                "mark": os.environ.get("SPARE_MARK"), "secret": os.environ.get("SPARE_SECRET"),
                "random": random.random(), "urandom": os.urandom(8).hex(),
                "cgroup": Path("/proc/self/cgroup").read_text()}

    @surge.method()
    def hog(self, mib: int) -> int:
        data = b"\x01" * (mib << 20)     # every page touched: past memory=100 the cgroup OOM-kills
        return len(data)


# run on a server with --sandbox strict: the zygote runs as the workspace's user, so the agent moves
# each spare into its cgroups from the outside
strict_app = surge.App("e2e-spares-strict")


@strict_app.function(enable_memory_snapshot=True, scaledown_window=30, memory=100)
def where() -> dict[str, Any]:
    return {"pid": os.getpid(), "uid": os.getuid(), "container": os.environ["SURGE_CONTAINER_ID"],
            "cgroup": Path("/proc/self/cgroup").read_text()}
