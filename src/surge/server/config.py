"""Settings of one control plane process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from surge.agent.sandbox import SandboxConfig

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
    # limits (surge.server.limits): generous defaults; 0 switches one off
    max_body_bytes: int = 256 << 20          # request bodies over this get 413
    rate_limit: float = 5000.0               # requests/s per API token (429 + Retry-After beyond)
    rate_burst: float = 10000.0
    max_queued: int = 100_000                # queued inputs per function (429 beyond)
    # webhooks of HTTP jobs (surge.server.webhooks): backoff doubles from `webhook_backoff` up to the
    # cap, for at most `webhook_window` after the first attempt
    allow_private_webhooks: bool = field(default_factory=lambda: _flag("SURGE_ALLOW_PRIVATE_WEBHOOKS"))
    webhook_backoff: float = 5.0
    webhook_backoff_cap: float = 3600.0
    webhook_window: float = DAY
    webhook_timeout: float = 10.0            # per delivery attempt (connect + send + answer)
    web_hold_timeout: float = 150.0          # longest a web request waits for a container (then 503)
    web_host: str | None = None              # endpoints also at {label}.{app}.{web_host} (core/vhost.py)
    embedded: bool = False
    # the container sandbox (surge.agent.sandbox, docs/reliability.md "Threat model"): `surge server`
    # passes auto (strict for a standalone server where the host allows it, basic for the embedded
    # one); a control plane built in-process (tests, embedding) gets basic unless it asks
    sandbox: str = "basic"                   # auto | strict | basic | off
    sandbox_user: str | None = None          # one account for every container (default: a uid per workspace)
    sandbox_pids: int = 4096                 # processes + threads per container (pids.max)
    sandbox_nofile: int = 65536              # RLIMIT_NOFILE
    sandbox_fsize_mib: int = 64 * 1024       # RLIMIT_FSIZE: the largest file a container may write
    sandbox_tmp_mib: int = 1024              # strict: size of the private /tmp, /var/tmp, /dev/shm (each)
    extra: dict[str, str] = field(default_factory=dict)

    def sandbox_config(self) -> SandboxConfig:
        from surge.agent.sandbox import SandboxConfig

        return SandboxConfig(level=self.sandbox, user=self.sandbox_user, pids_max=self.sandbox_pids,
                             nofile=self.sandbox_nofile, fsize_mib=self.sandbox_fsize_mib, tmp_mib=self.sandbox_tmp_mib)

    @property
    def db_url(self) -> str:
        return self.database_url or os.environ.get("SURGE_DATABASE_URL") or f"sqlite:///{self.home / 'surge.db'}"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
