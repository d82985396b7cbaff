"""The embedded control plane: started on demand as a child process when no server is configured.

One control plane owns a ``SURGE_HOME`` at a time (it holds ``server.lock``) and advertises itself in
``server.json``; a second process on the same home reuses it instead of starting another. The child
exits when the process that started it goes away (its stdin closes), so nothing is left running.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from surge import errors
from surge.config import Settings

START_TIMEOUT = 60.0


@dataclass
class ServerInfo:
    url: str
    token: str | None
    process: subprocess.Popen[bytes] | None = None   # set when this process started it

    def stop(self, timeout: float = 15.0) -> None:
        p = self.process
        if p is None or p.poll() is not None:
            return
        try:
            assert p.stdin is not None
            p.stdin.close()          # the child's cue to shut down cleanly
            p.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, OSError):
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


_started: ServerInfo | None = None


def read_running(home: Path) -> ServerInfo | None:
    """The server already running on this home, if it answers."""
    try:
        info = json.loads((home / "server.json").read_text())
        os.kill(int(info["pid"]), 0)
    except (FileNotFoundError, ValueError, KeyError, ProcessLookupError, PermissionError):
        return None
    try:
        if httpx.get(info["url"] + "/health", timeout=2.0).status_code != 200:
            return None
    except httpx.HTTPError:
        return None
    token = Settings(home=home, server_url=info["url"]).read_token()
    return ServerInfo(info["url"], token)


def ensure_server(settings: Settings) -> ServerInfo:
    global _started
    if _started is not None and (_started.process is None or _started.process.poll() is None):
        return _started
    running = read_running(settings.home)
    if running is not None:
        return running
    _started = start(settings.home)
    atexit.register(_started.stop)
    return _started


def start(home: Path, *, gpus: str | None = None, extra_args: list[str] | None = None) -> ServerInfo:
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    state = home / "server.json"
    state.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "surge.server", "--home", str(home), "--port", "0", "--embedded"]
    if gpus:
        cmd += ["--gpus", gpus]
    cmd += extra_args or []
    log = open(home / "logs" / "server.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _close_stdin(proc)
            tail = (home / "logs" / "server.log").read_text(errors="replace")[-2000:]
            raise errors.UnavailableError(f"the embedded surge server exited with code {proc.returncode}:\n{tail}")
        try:
            info = json.loads(state.read_text())
            if info.get("pid") == proc.pid:
                token = Settings(home=home, server_url=info["url"]).read_token()
                return ServerInfo(info["url"], token, proc)
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    _close_stdin(proc)
    raise errors.UnavailableError(f"the embedded surge server did not start within {START_TIMEOUT:.0f} s "
                                  f"(log: {home / 'logs' / 'server.log'})")


def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
