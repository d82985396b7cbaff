"""The fault injector of scenarios 1 and 2: SIGKILLs one container, or all of a node's at once."""

from __future__ import annotations

import signal
import threading

import surge
from surge.sdk.client import Client
from tests.chaos import harness
from tests.chaos.harness import ChaosServer


class Killer:
    """The fault injector: SIGKILLs containers of ``server`` only, and notes what it killed."""

    def __init__(self, server: ChaosServer, client: Client, seed_name: str) -> None:
        self.server = server
        self.client = client
        self.r = harness.rng(seed_name)
        self.mu = threading.Lock()
        self.container_kills = 0
        self.busy_kills = 0
        self.node_kills = 0
        self.killed_pids: list[int] = []

    def _live(self) -> list[harness.Container]:
        try:
            return self.server.containers(self.client)
        except (surge.ConnectionError, surge.UnavailableError):
            return []        # the control plane is down (scenario 2): nothing to kill now

    def one(self) -> None:
        live = self._live()
        busy = [c for c in live if c.state == "BUSY"]
        pool = busy or live
        if not pool:
            return
        c = self.r.choice(pool)
        if self.server.signal_container(c.pid, signal.SIGKILL):
            with self.mu:
                self.container_kills += 1
                self.busy_kills += c.state == "BUSY"
                self.killed_pids.append(c.pid)

    def all(self) -> None:
        live = self._live()
        hit = [c for c in live if self.server.signal_container(c.pid, signal.SIGKILL)]
        with self.mu:
            self.node_kills += bool(hit)
            self.killed_pids.extend(c.pid for c in hit)
