"""Schedules end to end: real control-plane processes, real workers, the ``surge`` CLI.

- a ``Period`` function fires, each run is a call of kind ``schedule`` in ``surge call list``,
  ``surge app schedules`` shows the next run, ``surge app stop`` ends it, ``surge run`` never fires;
- at most once across restarts: the control plane is SIGKILLed right after and right before fire
  times (and at a cron minute), restarted on the same SURGE_HOME each time; afterwards the store
  holds every scheduled call exactly once, tied to one fire time, and a 4 s outage is covered
  by one catch-up run, not four.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from surge.sdk import embedded
from surge.sdk.client import Client
from tests.e2e.test_cli import GPUS, Cli, wait_for

PERIOD_APP = '''
import time
import surge

app = surge.App("{name}")


@app.function(schedule=surge.Period(seconds=1), scaledown_window=30)
def beat() -> float:
    return time.time()


@app.function(schedule=surge.Cron("* * * * *"), scaledown_window=30)
def minutely() -> str:
    return "tick"


@app.local_entrypoint()
def main() -> None:
    time.sleep(3)   # an ephemeral run of an app with schedules: they must not fire
'''


def schedule_calls(cli: Cli, app: str, function: str | None = None) -> list[dict[str, Any]]:
    calls = cli.json("call", "list", "--limit", "1000")
    return [c for c in calls if c["app"] == app and c["kind"] == "schedule"
            and (function is None or c["function"] == function)]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("sched-home")
    workdir = tmp_path_factory.mktemp("sched-apps")
    info = embedded.start(home, gpus=GPUS, extra_args=["--kill-grace", "1", "--log-level", "info"])
    try:
        yield Cli(info, home, workdir)
    finally:
        info.stop()


def test_a_period_fires_shows_in_call_list_and_stops_with_the_app(cli: Cli) -> None:
    cli.run("deploy", cli.write("sched_app.py", PERIOD_APP.format(name="sched")))
    view = cli.json("app", "schedules", "sched")
    assert {s["function"]: s["schedule"] for s in view} == {"beat": "every 1 s", "minutely": "cron '* * * * *' (UTC)"}
    assert all(s["next_at"] > time.time() - 2 for s in view)
    done = wait_for("three scheduled runs of beat", lambda: [
        c for c in schedule_calls(cli, "sched", "beat") if c["state"] == "SUCCEEDED"][2:], timeout=30)
    assert done and all(c["inputs"] == 1 for c in schedule_calls(cli, "sched", "beat"))
    table = cli.run("call", "list").stdout
    assert "schedule" in table and "beat" in table
    # stop: no schedule fires afterwards
    cli.run("app", "stop", "sched")
    time.sleep(1.2)   # a tick that was already running may still finish
    before = len(schedule_calls(cli, "sched"))
    time.sleep(2.5)
    assert len(schedule_calls(cli, "sched")) == before
    assert cli.json("app", "schedules", "sched") == []


def test_surge_run_does_not_fire_schedules(cli: Cli) -> None:
    cli.run("run", cli.write("sched_eph.py", PERIOD_APP.format(name="sched-eph")))
    assert schedule_calls(cli, "sched-eph") == []


# -- at most once across SIGKILLs ------------------------------------------------------------------

class Plane:
    """One SURGE_HOME, whose control plane this test kills and restarts."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.info = self._start()

    def _start(self) -> embedded.ServerInfo:
        return embedded.start(self.home, gpus=GPUS, extra_args=["--kill-grace", "1", "--log-level", "info"])

    def client(self) -> Client:
        return Client(self.info.url, self.info.token)

    def next_fire(self, app: str, function: str) -> float:
        c = self.client()
        try:
            rows = c.request("GET", f"/v1/apps/{app}/schedules")["schedules"]
        finally:
            c.close()
        return float(next(s["next_at"] for s in rows if s["function"] == function))

    def kill_and_restart(self, down: float = 0.0) -> tuple[float, float]:
        p = self.info.process
        assert p is not None
        p.kill()                  # SIGKILL: no shutdown code runs
        p.wait(timeout=10)
        if p.stdin is not None:
            p.stdin.close()
        killed = time.time()
        time.sleep(down)
        self.info = self._start()
        return killed, time.time()

    def stop(self) -> None:
        self.info.stop()


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


@pytest.mark.slow
def test_each_fire_time_once_across_sigkill_restarts(tmp_path: Path) -> None:
    plane = Plane(tmp_path / "home")
    cli = Cli(plane.info, plane.home, tmp_path)
    try:
        cli.run("deploy", cli.write("kill_app.py", PERIOD_APP.format(name="killme")))
        wait_for("two beats", lambda: schedule_calls(cli, "killme", "beat")[1:], timeout=20)
        # right after a fire time (its call may or may not be committed), then right before one
        for offset in (0.03, -0.03, 0.0):
            sleep_until(plane.next_fire("killme", "beat") + offset)
            plane.kill_and_restart()
            cli.env["SURGE_SERVER_URL"] = plane.info.url
        # an outage of 4 s: one catch-up run
        killed, restarted = plane.kill_and_restart(down=4.0)
        cli.env["SURGE_SERVER_URL"] = plane.info.url
        # the cron's minute: kill just as it fires
        boundary = (int(time.time()) // 60 + 1) * 60
        sleep_until(boundary + 0.02)
        plane.kill_and_restart()
        cli.env["SURGE_SERVER_URL"] = plane.info.url
        wait_for("the minute's cron run", lambda: schedule_calls(cli, "killme", "minutely"), timeout=15)
        time.sleep(2.5)
        cli.run("app", "stop", "killme")
    finally:
        plane.stop()

    with sqlite3.connect(plane.home / "surge.db") as db:
        fires = db.execute("SELECT schedule_key, fire_at, call_id FROM schedule_fires ORDER BY fire_at").fetchall()
        calls = db.execute("SELECT c.id, f.tag FROM calls c JOIN functions f ON f.id = c.function_id "
                           "WHERE c.kind = 'schedule'").fetchall()
    assert len(calls) >= 10
    # every scheduled call belongs to exactly one fire time, and every fire time to one call
    fire_calls = [c for _, _, c in fires]
    assert sorted(fire_calls) == sorted(c for c, _ in calls)
    assert len(set(fire_calls)) == len(fire_calls)
    beats = [at for key, at, _ in fires if key.endswith("/beat")]
    assert len(beats) == len(set(beats)) and all((b - a) % 1000 == 0 for a, b in itertools.pairwise(beats))
    # the 4 s outage: the times that passed while it was down were covered by one run, not four
    (a, b), = [(a, b) for a, b in itertools.pairwise(beats) if a <= killed * 1000 < b]
    assert b - a >= 4000, (a, b, killed, restarted)
    assert b <= restarted * 1000           # ... run as a catch-up, before the restarted plane was up
    assert b + 1000 in beats               # ... and then on time again
    minutes = [at for key, at, _ in fires if key.endswith("/minutely")]
    assert minutes.count(boundary * 1000) == 1
    assert len(minutes) == len(set(minutes))
