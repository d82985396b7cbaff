"""Scenario 4: the database unavailable for 10 s.

- SQLite: another process holds the database's write lock (``BEGIN IMMEDIATE``) for the whole outage.
- PostgreSQL: a private PostgreSQL server (initdb'd for this test, never the shared one) is stopped
  and started again. Skipped, with the reason, where PostgreSQL's binaries are not installed.

While it lasts, three probers submit raw ``POST /v1/calls`` (no SDK retries) every 0.2 s: each must be
answered ``503`` with ``Retry-After`` within 2 s — no hang, no 500; ``/health`` must say
``degraded``. Meanwhile SDK clients keep spawning (the SDK retries 503s): they see no error. After
the outage: a submission succeeds again within 5 s and ``/health`` says ``ok``; every accepted input
completes once and nothing refused was created (the checker).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from surge.sdk import serialization
from tests.chaos import harness
from tests.chaos.checker import classify, read_probe_log, read_store
from tests.chaos.harness import ChaosServer, pct
from tests.chaos.pgserver import PrivatePostgres, postgres_binaries

OUTAGE = 10.0
ANSWER_WITHIN = 2.0
RECOVER_WITHIN = 5.0


@dataclass
class Probe:
    at: float
    latency: float
    status: int | None
    retry_after: str | None = None
    error: str = ""
    call_id: str | None = None


@dataclass
class Observed:
    posts: list[Probe] = field(default_factory=list)
    health: list[tuple[float, str]] = field(default_factory=list)
    sdk_calls: list[str] = field(default_factory=list)
    sdk_errors: list[str] = field(default_factory=list)


@contextmanager
def observing(server: ChaosServer, chaos_app: ModuleType, log: Path, function_id: str) -> Iterator[Observed]:
    obs = Observed()
    stop = threading.Event()
    headers = {"Authorization": f"Bearer {server.token()}"}
    data = serialization.serialize_args((str(log), 0.05, -1), {})

    def post() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            while not stop.wait(0.2):
                body = {"function_id": function_id, "kind": "spawn", "inputs": [serialization.b64(data)],
                        "idempotency_key": uuid.uuid4().hex}
                t = time.time()
                try:
                    r = http.post("/v1/calls", json=body)
                except httpx.HTTPError as exc:
                    obs.posts.append(Probe(t, time.time() - t, None, error=type(exc).__name__))
                    continue
                cid = r.json().get("call_id") if r.status_code == 201 else None
                obs.posts.append(Probe(t, time.time() - t, r.status_code, r.headers.get("Retry-After"),
                                       call_id=cid))

    def health() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.wait(0.25):
                try:
                    obs.health.append((time.time(), http.get("/health").json()["status"]))
                except httpx.HTTPError as exc:
                    obs.health.append((time.time(), f"error {type(exc).__name__}"))

    def sdk() -> None:
        i = 0
        while not stop.wait(0.3):
            i += 1
            try:
                obs.sdk_calls.append(chaos_app.work.spawn(str(log), 0.05, i).object_id)
            except Exception as exc:
                obs.sdk_errors.append(f"{type(exc).__name__}: {exc}")

    # three raw posters: more answers timed during the outage (each waits out the store's budget)
    threads = [threading.Thread(target=f, daemon=True) for f in (post, post, post, health, sdk)]
    for t in threads:
        t.start()
    try:
        yield obs
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)


def run_outage(name: str, server: ChaosServer, chaos_app: ModuleType, log: Path, *,
               db_reader: Callable[[], dict[str, Any]],
               down: Callable[[], None], up: Callable[[], None]) -> None:
    with harness.sdk(server), chaos_app.app.run(show_logs=False):
        warm = chaos_app.work.spawn(str(log), 0.01, 0)      # a warm container before the outage
        warm.get(timeout=60)
        function_id = chaos_app.work._ref()["function_id"]
        with observing(server, chaos_app, log, function_id) as obs:
            time.sleep(2.0)
            began = time.time()
            down()
            time.sleep(OUTAGE)
            ended = time.time()
            up()
            time.sleep(RECOVER_WITHIN + 2.0)
        accepted = [warm.object_id] + [p.call_id for p in obs.posts if p.call_id] + obs.sdk_calls
        wait_terminal_for = 60.0
        store = db_reader()
        deadline = time.monotonic() + wait_terminal_for
        while any(r.state in ("QUEUED", "RUNNING") for r in store.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
            store = db_reader()
    during = [p for p in obs.posts if began + ANSWER_WITHIN < p.at < ended - ANSWER_WITHIN]
    after = [p for p in obs.posts if p.at >= ended and p.status == 201]
    health_during = {s for t, s in obs.health if began + ANSWER_WITHIN < t < ended - ANSWER_WITHIN}
    health_ok_at = next((t for t, s in obs.health if t >= ended and s == "ok"), None)
    statuses: dict[str, int] = {}
    for p in obs.posts:
        key = str(p.status) if p.status is not None else p.error
        statuses[key] = statuses.get(key, 0) + 1
    verdict = classify(accepted, store, read_probe_log(log))
    latencies = [p.latency for p in during]
    figures = {
        "outage_s": OUTAGE, "raw_posts": len(obs.posts), "statuses": statuses,
        "during_outage": {"posts": len(during), "503_with_retry_after": sum(
            1 for p in during if p.status == 503 and p.retry_after)},
        "answer_s_p50_during": pct(latencies, 0.5), "answer_s_max_during": round(max(latencies), 3),
        "health_during": sorted(health_during),
        "first_201_after_recovery_s": round(min(p.at + p.latency for p in after) - ended, 2) if after else None,
        "health_ok_after_recovery_s": round(health_ok_at - ended, 2) if health_ok_at else None,
        "sdk_spawns": len(obs.sdk_calls), "sdk_errors": len(obs.sdk_errors), **verdict.summary(),
    }
    harness.publish(name, figures)
    assert not obs.sdk_errors, obs.sdk_errors[:3]
    assert during, "no probe ran during the outage"
    assert not [p for p in obs.posts if p.status is None or (p.status >= 500 and p.status != 503)], statuses
    assert all(p.status == 503 and p.retry_after for p in during), [(p.status, p.retry_after) for p in during]
    assert max(latencies) <= ANSWER_WITHIN, latencies
    assert health_during == {"degraded"}, health_during
    assert after and min(p.at + p.latency for p in after) - ended <= RECOVER_WITHIN
    assert health_ok_at is not None and health_ok_at - ended <= RECOVER_WITHIN
    verdict.assert_clean()


@pytest.mark.timeout(120)
def test_sqlite_write_lock_held_by_another_process(chaos_app: ModuleType, chaos_home: Path, tmp_path: Path) -> None:
    server = ChaosServer(chaos_home)
    server.start()
    holder: list[subprocess.Popen[str]] = []

    def down() -> None:
        # another process takes the write lock and keeps it (WAL: readers go on, writers wait)
        p = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(server.db)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        holder.append(p)

    def up() -> None:
        p = holder.pop()
        assert p.stdin is not None
        p.stdin.close()           # the holder rolls back and exits
        p.wait(timeout=10)
        assert p.stdout is not None
        p.stdout.close()

    try:
        run_outage("4-store-outage-sqlite", server, chaos_app, tmp_path / "probe.log",
                   db_reader=lambda: read_store(server.db, "work"), down=down, up=up)
    finally:
        for p in holder:
            p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                if f is not None:
                    f.close()
        server.stop()


_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@pytest.mark.timeout(180)
@pytest.mark.skipif(not postgres_binaries(), reason="PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
def test_postgresql_stopped(chaos_app: ModuleType, chaos_home: Path, tmp_path: Path) -> None:
    with PrivatePostgres(tmp_path / "pg") as pg:
        server = ChaosServer(chaos_home, extra=["--database-url", pg.url])
        server.start()
        try:
            run_outage("4-store-outage-postgres", server, chaos_app, tmp_path / "probe.log",
                       db_reader=lambda: pg.read_store("work"), down=pg.stop, up=pg.start)
        finally:
            server.stop()
