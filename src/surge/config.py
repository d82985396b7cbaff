"""Where surge keeps its state and how the SDK/CLI find a control plane.

``SURGE_HOME`` (default ``~/.surge``) holds ``surge.db``, ``blobs/``, ``sources/``, ``token``;
``SURGE_SERVER_URL`` points the SDK and CLI at a running server; ``SURGE_TOKEN`` overrides the
token file.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8765


@dataclass(frozen=True)
class Settings:
    home: Path
    server_url: str | None
    token: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("SURGE_HOME") or Path.home() / ".surge").expanduser()
        return cls(home=home, server_url=os.environ.get("SURGE_SERVER_URL") or None,
                   token=os.environ.get("SURGE_TOKEN") or None)

    @property
    def token_path(self) -> Path:
        return self.home / "token"

    def read_token(self) -> str | None:
        if self.token:
            return self.token
        try:
            return self.token_path.read_text().strip() or None
        except FileNotFoundError:
            return None


def ensure_token(home: Path) -> str:
    """The server's API token, created (mode 0600) on first start."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "token"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = "sg-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token
