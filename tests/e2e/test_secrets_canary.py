"""The secrets canary: a unique random value goes in through ``surge secret create`` (and a second
one inline, through ``Secret.from_local_environ`` at deploy), functions use them, and afterwards
not one file under SURGE_HOME (server log at debug level, the raw SQLite database and WAL, blobs,
unpacked sources) nor any captured CLI output holds either value — in clear or base64-encoded.
The same search finds control strings that were written, so it is able to fail."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from surge.sdk import embedded
from tests.e2e.test_cli import GPUS, Cli

CANARY_APP = '''
import hashlib
import os
import surge

app = surge.App("canary")


@app.function(secrets=[surge.Secret.from_name("canary-secret"), surge.Secret.from_local_environ(["CANARY_INLINE"])])
def check(key: str) -> str:
    """A hash of the variable, never the value."""
    value = os.environ.get(key)
    return hashlib.sha256(value.encode()).hexdigest() if value else "missing"


@app.function(secrets=[surge.Secret.from_name("canary-secret")])
def careless() -> str:
    print("leaking " + os.environ["CANARY_NAMED"], flush=True)     # redacted to *** in the logs
    print("control-log-{marker}", flush=True)
    return "printed"


@app.function()
def unnamed() -> bool:
    return "CANARY_NAMED" in os.environ or "CANARY_INLINE" in os.environ
'''


def encodings(value: str) -> list[bytes]:
    """The value, and its base64 forms at each of the three alignments inside a longer string."""
    raw = value.encode()
    forms = [raw]
    for pad in (b"", b"x", b"xy"):
        enc = base64.b64encode(pad + raw)
        forms.append(enc[len(pad) * 4 // 3 + 2: -4])   # the part that depends only on the value
    return forms


def find(haystacks: dict[str, bytes], value: str) -> list[str]:
    return [name for name, data in haystacks.items() for form in encodings(value) if form in data]


def home_files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.endswith(".sock")}


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    home, workdir = tmp_path / "home", tmp_path / "apps"
    workdir.mkdir()
    info = embedded.start(home, gpus=GPUS, extra_args=["--kill-grace", "1", "--log-level", "debug"])
    try:
        yield Cli(info, home, workdir)
    finally:
        info.stop()


def test_no_secret_value_anywhere_at_rest(cli: Cli) -> None:
    named, inline = f"cAnArY{secrets.token_hex(16)}", f"iNlInE{secrets.token_hex(16)}"
    marker = secrets.token_hex(8)
    outputs: dict[str, bytes] = {}

    def run(*args: str, rc: int | None = 0) -> str:
        proc = cli.run(*args, rc=rc)
        outputs[" ".join(args)] = (proc.stdout + proc.stderr).encode()
        return proc.stdout

    dotenv = cli.workdir.parent / "canary.env"        # outside the app's directory (not uploaded)
    dotenv.write_text(f"CANARY_NAMED={named}\n")
    run("secret", "create", "canary-secret", "--from-dotenv", str(dotenv), "CONTROL_KEY=control-value-" + marker)
    dotenv.unlink()
    run("secret", "list")
    run("secret", "list", "--json")
    cli.env["CANARY_INLINE"] = inline                   # the deploying process has it; the server never does
    run("deploy", cli.write("canary_app.py", CANARY_APP.format(marker=marker)))
    del cli.env["CANARY_INLINE"]

    check = cli.python("import surge; f = surge.Function.from_name('canary', 'check'); "
                       "print(f.remote('CANARY_NAMED'), f.remote('CANARY_INLINE'))")
    outputs["check"] = (check.stdout + check.stderr).encode()
    assert check.stdout.split() == [hashlib.sha256(v.encode()).hexdigest() for v in (named, inline)]
    assert cli.call("canary", "unnamed") == "False"      # a function that names no secret gets none
    assert cli.call("canary", "careless") == "printed"
    run("logs", "canary")
    run("call", "list")
    run("call", "list", "--json")
    run("app", "list")

    live = home_files(cli.home)                          # while running: the WAL holds the recent writes
    assert {"surge.db", "surge.db-wal", "logs/server.log"} <= set(live)
    cli.info.stop()
    at_rest = home_files(cli.home)
    everything = {**{f"live:{k}": v for k, v in live.items()}, **at_rest, **outputs}

    # the search works: what was written is found
    assert find(everything, f"control-log-{marker}"), "the control log line should be in the database"
    assert find(everything, "canary-secret") and find(everything, "CONTROL_KEY")
    assert "leaking ***" in outputs["logs canary"].decode()
    assert len([n for n in everything if "DEBUG" in everything[n].decode(errors="replace")]) >= 1
    # ... and the canaries are not, anywhere
    assert find(everything, named) == []
    assert find(everything, inline) == []
    assert find(everything, "control-value-" + marker) == []   # the second key's value, likewise


def test_a_readable_key_file_stops_the_server_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    key = home / "secrets.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o644)
    proc = subprocess.run([sys.executable, "-m", "surge.server", "--home", str(home), "--port", "0"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert f"has mode 0644: group and others can read it. Make it private with `chmod 600 {key}`" in proc.stderr
    assert "Traceback" not in proc.stderr
    key.chmod(0o600)
    info = embedded.start(home, extra_args=["--log-level", "warning"])   # fixed: it starts
    info.stop()
