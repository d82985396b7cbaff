"""Streams an app's container logs to this terminal while ``surge run`` / ``app.run()`` is active."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from surge.sdk import context


class LogFollower:
    def __init__(self, app_id: str, *, out: TextIO | None = None) -> None:
        self.app_id = app_id
        self._out = out or sys.stdout
        self._since = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="surge-logs", daemon=True)
        self._thread.start()

    def _fetch(self, wait: float) -> int:
        page = context.get_client().logs(app_id=self.app_id, since=self._since, wait=wait)
        for line in page["lines"]:
            self._since = max(self._since, line["id"])
            prefix = f"[{line['function']}]" if line["stream"] != "system" else "[surge]"
            print(f"{prefix} {line['text']}", file=self._out, flush=True)
        return len(page["lines"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._fetch(wait=1.0)
            except Exception:
                if self._stop.wait(0.5):
                    return

    def close(self) -> None:
        """Stop following, after printing what the server still holds."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            while self._fetch(wait=0.0):
                pass
        except Exception:
            pass
