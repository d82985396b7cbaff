"""What the chaos scenarios share: the seed and scale, a control plane they may kill, a recording
HTTP transport, a probe-log reader, and the figures each scenario publishes.

Only processes this suite started are ever signalled: the control plane is the child this harness
spawned (``embedded.start``), and a container is signalled only when its pid is a descendant of that
control plane's process (checked with psutil just before the signal).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from surge.sdk import context, embedded
from surge.sdk.client import Client

RESULTS = Path(__file__).parent / "results"
APPS = Path(__file__).parent / "apps"


# -- seed and scale ---------------------------------------------------------------------------------
def _seed() -> int:
    raw = os.environ.get("SURGE_CHAOS_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


SEED = _seed()
SCALE_NAME = os.environ.get("SURGE_CHAOS_SCALE", "ci").strip().lower() or "ci"
if SCALE_NAME not in ("ci", "full"):
    raise SystemExit(f"SURGE_CHAOS_SCALE={SCALE_NAME!r}: expected 'ci' (default) or 'full'")
FULL = SCALE_NAME == "full"


def sized(ci: Any, full: Any) -> Any:
    """The value for the current scale."""
    return full if FULL else ci


def rng(scenario: str) -> random.Random:
    """A generator for one scenario, derived from the suite's seed (replay: SURGE_CHAOS_SEED=...)."""
    return random.Random(f"{SEED}:{scenario}")


# -- figures ----------------------------------------------------------------------------------------
PUBLISHED: list[tuple[str, dict[str, Any]]] = []


def publish(scenario: str, figures: dict[str, Any]) -> None:
    """Print a scenario's figures as a small table and write them to ``results/<scenario>.json``."""
    RESULTS.mkdir(exist_ok=True)
    record = {"scenario": scenario, "scale": SCALE_NAME, "seed": SEED, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]},
              "figures": figures}
    (RESULTS / f"{scenario}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    PUBLISHED.append((scenario, figures))
    print("\n" + table(scenario, figures), flush=True)


def table(scenario: str, figures: dict[str, Any]) -> str:
    width = max([len(k) for k in figures] + [10])
    lines = [f"chaos {scenario} (scale={SCALE_NAME}, seed={SEED})"]
    for k, v in figures.items():
        lines.append(f"  {k:<{width}}  {json.dumps(v) if isinstance(v, dict | list) else v}")
    return "\n".join(lines)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


# -- HTTP -------------------------------------------------------------------------------------------
class RecordingTransport(httpx.BaseTransport):
    """Counts every response status and transport error the SDK meets (the SDK hides its retries)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                                          limits=httpx.Limits(max_keepalive_connections=64))
        self._mu = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.post_retries = 0           # POST /v1/calls sent again after an error or a 503

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            resp = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            with self._mu:
                self.errors[type(exc).__name__] += 1
                if request.method == "POST" and request.url.path == "/v1/calls":
                    self.post_retries += 1
            raise
        with self._mu:
            self.statuses[resp.status_code] += 1
            if resp.status_code == 503 and request.method == "POST" and request.url.path == "/v1/calls":
                self.post_retries += 1
        return resp

    def close(self) -> None:
        self._inner.close()

    def unexpected(self) -> dict[str, int]:
        """Statuses a client must never see under these faults: anything but 2xx and 503."""
        return {str(s): n for s, n in self.statuses.items() if not (200 <= s < 300 or s == 503)}


# -- the control plane ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Container:
    container_id: str
    pid: int
    state: str
    function: str


class ChaosServer:
    """A control plane (``python -m surge.server``) on a fixed port and SURGE_HOME, which the
    scenario may SIGKILL and restart in place."""

    def __init__(self, home: Path, *, lease_ttl: float = 2.0, kill_grace: float = 1.0,
                 extra: list[str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        extra = list(extra or [])
        if "--database-url" not in extra:      # never one inherited from SURGE_DATABASE_URL
            extra += ["--database-url", f"sqlite:///{home / 'surge.db'}"]
        # The suite tests delivery, not isolation (the sandbox has its own tests): at ``strict`` a
        # container's /tmp is private, so the probe log (under pytest's tmp_path) would be out of
        # its reach, and a PID namespace's init would stand between a SIGSTOP and the worker.
        extra += ["--sandbox", "basic"]
        self.args = ["--port", str(self.port), "--kill-grace", str(kill_grace), "--lease-ttl", str(lease_ttl),
                     "--log-level", "warning", *extra]
        self.info: embedded.ServerInfo | None = None
        self.kills = 0
        self.start_seconds: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.home / "surge.db"

    @property
    def pid(self) -> int | None:
        p = self.info.process if self.info else None
        return p.pid if p is not None and p.poll() is None else None

    def start(self) -> None:
        t0 = time.monotonic()
        self.info = embedded.start(self.home, extra_args=self.args)
        self.start_seconds.append(time.monotonic() - t0)

    def token(self) -> str | None:
        return self.info.token if self.info else None

    def sigkill(self) -> list[int]:
        """SIGKILL the control plane (and with it, for the local backend, the node agent). Returns
        the pids of the containers it had, which must then exit by themselves."""
        assert self.info is not None and self.info.process is not None
        p = self.info.process
        children = self.descendants()
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        if p.stdin is not None:
            with contextlib.suppress(OSError):
                p.stdin.close()
        self.kills += 1
        return children

    def stop(self) -> None:
        if self.info is not None:
            self.info.stop(timeout=20)
            p = self.info.process
            if p is not None and p.stdin is not None:
                with contextlib.suppress(OSError):
                    p.stdin.close()

    def descendants(self) -> list[int]:
        pid = self.pid
        if pid is None:
            return []
        try:
            return [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def containers(self, client: Client) -> list[Container]:
        """Live containers (from the API), only those whose process descends from this server."""
        mine = set(self.descendants())
        rows = client.request("GET", "/v1/containers", retry=False)["containers"]
        return [Container(r["container_id"], r["pid"], r["state"], r["function"]) for r in rows
                if r.get("pid") in mine and r["state"] in ("IDLE", "BUSY")]

    def signal_container(self, pid: int, sig: int) -> bool:
        """Signal one container process — after checking it descends from this server."""
        if pid not in self.descendants():
            return False
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/health", timeout=5).json())


@contextlib.contextmanager
def sdk(server: ChaosServer, transport: RecordingTransport | None = None,
        connect_retries: float = 60.0) -> Iterator[Client]:
    """Point the SDK (this process's client) at ``server`` for the duration of the block."""
    client = Client(server.url, server.token(), transport=transport, connect_retries=connect_retries)
    old = context.set_client(client)
    try:
        yield client
    finally:
        context.set_client(old)
        client.close()


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Ticker:
    """Runs ``action`` every ``period`` seconds on a thread until stopped (the fault injectors)."""

    def __init__(self, name: str, period: float, action: Callable[[], None]) -> None:
        self.period = period
        self.action = action
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.action()
            except Exception as exc:        # a failed injection is reported, never silently lost
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
