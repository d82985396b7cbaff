"""A private PostgreSQL server for scenario 4: initdb'd in a temporary directory, on its own port,
started and stopped by the test. The shared PostgreSQL at 127.0.0.1:5432 (other suites use it) is
never touched.

PostgreSQL refuses to run as root; when the suite runs as root, the server runs as the ``postgres``
system user (through ``runuser``), and the data directory is created outside pytest's root-only
temporary tree.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.chaos.checker import INPUTS_QUERY, StoreRow, function_ids, store_rows
from tests.chaos.harness import free_port


def postgres_binaries() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, if PostgreSQL is installed (and can be
    run as a non-root user when we are root)."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None
        if shutil.which("runuser") is None:
            return None
    candidates = [os.path.dirname(p) for p in (shutil.which("pg_ctl"),) if p]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for d in candidates:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    return None


class PrivatePostgres:
    def __init__(self, log_dir: Path) -> None:
        found = postgres_binaries()
        assert found is not None, "PostgreSQL binaries are not installed"
        self.bin = found
        self.log_dir = log_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="surge-chaos-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_root = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def __enter__(self) -> PrivatePostgres:
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        return self

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def __exit__(self, *exc: object) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if (self.root / "server.log").exists():
                shutil.copy(self.root / "server.log", self.log_dir / "postgres.log")
            shutil.rmtree(self.root, ignore_errors=True)

    def read_store(self, function_tag: str) -> dict[str, StoreRow]:
        with psycopg.connect(self.url, row_factory=dict_row, autocommit=True) as conn:
            fn_ids = function_ids(conn.execute("SELECT id, spec FROM functions").fetchall(), function_tag)
            rows: list[Any] = conn.execute(f"{INPUTS_QUERY} WHERE function_id = ANY(%s)", [fn_ids]).fetchall()
        return store_rows(rows)
