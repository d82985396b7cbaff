"""Settings of one control plane process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DAY = 86400.0


@dataclass
class ServerConfig:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8765
    database_url: str | None = None          # default: sqlite at home/surge.db
    gpus: str | None = None                  # declared inventory, e.g. "A100-80GB:2,H100:1"
    node_id: str | None = None
    cpu: float | None = None                 # override detected cores
    memory_mib: int | None = None            # override detected memory
    result_retention: float = 7 * DAY        # spawned calls' results
    call_retention: float = DAY              # .remote / .map results (already delivered)
    max_input_bytes: int = 64 << 20
    max_result_bytes: int = 256 << 20
    kill_grace: float = 3.0
    lease_ttl: float = 15.0                  # seconds without a heartbeat before a worker is lost
    embedded: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.database_url or os.environ.get("SURGE_DATABASE_URL") or f"sqlite:///{self.home / 'surge.db'}"
