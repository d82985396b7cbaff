"""The ``surge`` command line as a user drives it: every command a subprocess, against a real control
plane process started for this module (its own SURGE_HOME, a declared 2 × A100-80GB + 1 × H100
inventory), found through SURGE_SERVER_URL / SURGE_HOME exactly as a user would point it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from surge.sdk import embedded

GPUS = "A100-80GB:2,H100:1"
TIMEOUT = 60.0   # per CLI/python subprocess; a cold container start is well under a second here

WORKER_APP = '''
import time
import surge

app = surge.App("cli-worker")


@app.function(scaledown_window=60)
def hello(name: str) -> str:
    print(f"hello, {name}!", flush=True)
    return f"hi {name}"


@app.function(gpu="A100-80GB", scaledown_window=60)
def on_gpu() -> str:
    import os
    return os.environ["CUDA_VISIBLE_DEVICES"]


@app.function(timeout=120)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
'''

VERSIONED_APP = '''
import surge

app = surge.App("versioned")
VERSION = "{version}"


@app.function(scaledown_window=5)
def version() -> str:
    return VERSION
'''

RUNNER_APP = '''
import surge

app = surge.App("runner")


@app.function()
def triple(x: int) -> int:
    return 3 * x


@app.local_entrypoint()
def main(n: int, flag: bool = False, label: str = "sum") -> None:
    print(f"{label}={sum(triple.map(range(n)))} flag={flag}")
'''

BARE_DECORATOR_APP = '''
import surge

app = surge.App("bare")


@app.function
def f() -> int:
    return 1
'''


def surge_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "surge"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "surge.cli.main"]


class Cli:
    """Runs ``surge ...`` and ``python -c ...`` with the environment a user of this server has."""

    def __init__(self, info: embedded.ServerInfo, home: Path, workdir: Path) -> None:
        self.info, self.home, self.workdir = info, home, workdir
        self.env = {k: v for k, v in os.environ.items() if k not in ("SURGE_TOKEN", "SURGE_GPUS")}
        self.env.update(SURGE_SERVER_URL=info.url, SURGE_HOME=str(home))

    def run(self, *args: str, rc: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*surge_cmd(), *args], cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=TIMEOUT)
        if rc is not None:
            assert proc.returncode == rc, self.explain(proc)
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def python(self, code: str, rc: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        if rc is not None:
            assert proc.returncode == rc, self.explain(proc)
        return proc

    def call(self, app: str, fn: str, *args: Any) -> str:
        """Call a deployed function from a separate process; returns what it printed."""
        code = f"import surge; print(surge.Function.from_name({app!r}, {fn!r}).remote(*{args!r}))"
        return self.python(code).stdout.strip()

    def write(self, name: str, text: str) -> str:
        (self.workdir / name).write_text(text)
        return name

    def explain(self, proc: subprocess.CompletedProcess[str]) -> str:
        log = self.home / "logs" / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return (f"{proc.args!r} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n"
                f"{proc.stderr}\n--- server.log\n{tail}")


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("cli-home")
    workdir = tmp_path_factory.mktemp("cli-apps")
    info = embedded.start(home, gpus=GPUS, extra_args=["--kill-grace", "1", "--log-level", "warning"])
    try:
        yield Cli(info, home, workdir)
    finally:
        info.stop()


@pytest.fixture(scope="module")
def worker(cli: Cli) -> str:
    """The ``cli-worker`` app, deployed once for the tests that only need something to call."""
    cli.run("deploy", cli.write("worker_app.py", WORKER_APP))
    return "cli-worker"


# -- without a server -------------------------------------------------------------------------------

def test_help_lists_the_command_groups() -> None:
    out = subprocess.run([*surge_cmd(), "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
    for command in ("run", "deploy", "server", "logs", "app", "call", "container", "token"):
        assert re.search(rf"\b{command}\b", out), command
    sub = subprocess.run([*surge_cmd(), "app", "--help"], capture_output=True, text=True, timeout=TIMEOUT,
                         check=True).stdout
    for command in ("list", "history", "stop", "rollback"):
        assert command in sub


def test_commands_without_a_server_say_how_to_start_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SURGE_SERVER_URL", "SURGE_TOKEN")}
    env["SURGE_HOME"] = str(tmp_path)
    proc = subprocess.run([*surge_cmd(), "app", "list"], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 2
    assert "no surge server is running" in proc.stderr and "surge server" in proc.stderr
    assert not (tmp_path / "server.json").exists()   # a read-only command started nothing


# -- token -----------------------------------------------------------------------------------------

def test_token_show_prints_the_servers_token(cli: Cli) -> None:
    assert cli.info.token and cli.info.token.startswith("sg-")
    assert cli.run("token", "show").stdout.strip() == cli.info.token


# -- deploy, versions, rollback --------------------------------------------------------------------

@pytest.mark.slow
def test_deploy_redeploy_and_rollback(cli: Cli) -> None:
    path = cli.write("versioned.py", VERSIONED_APP.format(version="v1"))
    out = cli.run("deploy", path)
    assert "deployed versioned v1" in out.stderr
    [app] = [a for a in cli.json("app", "list") if a["name"] == "versioned"]
    assert (app["version"], app["versions"], app["state"]) == (1, 1, "deployed")
    assert cli.call("versioned", "version") == "v1"

    cli.write("versioned.py", VERSIONED_APP.format(version="v2"))
    deployed = json.loads(cli.run("deploy", path, "--json").stdout)
    assert (deployed["name"], deployed["version"]) == ("versioned", 2)
    assert set(deployed["functions"]) == {"version"}
    assert cli.call("versioned", "version") == "v2"   # a by-name handle follows the current version

    history = cli.json("app", "history", "versioned")
    assert [(v["version"], v["current"]) for v in history["versions"]] == [(2, True), (1, False)]
    v2, v1 = history["versions"]
    assert v1["source_hash"] != v2["source_hash"] and v1["functions"] == ["version"]

    out = cli.run("app", "rollback", "versioned")
    assert "versioned is now v3 (same code as v1)" in out.stderr
    assert cli.call("versioned", "version") == "v1"
    v3 = cli.json("app", "history", "versioned")["versions"][0]
    assert (v3["version"], v3["current"], v3["rollback_of"], v3["source_hash"]) == (3, True, 1, v1["source_hash"])

    out = cli.run("app", "rollback", "versioned", "2")   # an explicit version
    assert "versioned is now v4 (same code as v2)" in out.stderr
    assert cli.call("versioned", "version") == "v2"

    bad = cli.run("app", "rollback", "versioned", "99", rc=None)
    assert bad.returncode == 1
    assert "has no version 99" in bad.stderr and "1, 2, 3, 4" in bad.stderr
    assert "Traceback" not in bad.stderr
    [app] = [a for a in cli.json("app", "list") if a["name"] == "versioned"]
    assert app["version"] == 4   # the failed rollback changed nothing


@pytest.mark.slow
def test_unknown_app_errors_name_it(cli: Cli) -> None:
    for args in (("app", "history", "no-such-app"), ("app", "rollback", "no-such-app"),
                 ("app", "stop", "no-such-app"), ("logs", "no-such-app")):
        proc = cli.run(*args, rc=1)
        assert "no-such-app" in proc.stderr and "Traceback" not in proc.stderr, args


# -- calls --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_call_list_show_and_cancel_a_running_call(cli: Cli, worker: str) -> None:
    code = "import surge; print(surge.Function.from_name('cli-worker', 'sleepy').spawn(60).object_id)"
    call_id = cli.python(code).stdout.strip()
    assert call_id.startswith("fc-")

    listed = {c["call_id"]: c for c in cli.json("call", "list", "--app", worker)}
    assert listed[call_id]["function"] == "sleepy" and listed[call_id]["kind"] == "spawn"

    def running() -> dict[str, Any] | None:
        shown = cli.json("call", "show", call_id)
        return shown if shown["input_list"][0]["state"] == "RUNNING" else None

    shown = wait_for("the spawned call to run", running)
    assert (shown["app"], shown["function"], shown["inputs"]) == ("cli-worker", "sleepy", 1)
    assert shown["input_list"][0]["container_id"].startswith("ct-")

    started = time.monotonic()
    out = cli.run("call", "cancel", call_id)
    assert f"cancelled 1 input(s) of {call_id}" in out.stderr
    done = wait_for("the call to be cancelled", lambda: (lambda s: s if s["state"] == "CANCELLED" else None)(
        cli.json("call", "show", call_id)), timeout=10)
    assert time.monotonic() - started < 10   # not the 60 s the function sleeps
    assert done["input_list"][0]["reason"] == "CANCELLED"
    # a second cancel is harmless and says so
    assert "cancelled 0 input(s)" in cli.run("call", "cancel", call_id).stderr


def test_call_show_unknown_id(cli: Cli) -> None:
    proc = cli.run("call", "show", "fc-does-not-exist", rc=1)
    assert "no call 'fc-does-not-exist'" in proc.stderr


# -- containers and logs ----------------------------------------------------------------------------

@pytest.mark.slow
def test_container_list_shows_gpu_and_state(cli: Cli, worker: str) -> None:
    visible = cli.call(worker, "on_gpu")
    assert visible in ("0", "1")   # an A100-80GB of the declared inventory
    containers = cli.json("container", "list")
    assert containers and all({"container_id", "gpu", "gpu_indices", "state"} <= set(c) for c in containers)
    [gpu_ct] = [c for c in containers if c["function"] == "on_gpu"]
    assert gpu_ct["gpu"] == "A100-80GB" and gpu_ct["gpu_indices"] == [int(visible)]
    assert gpu_ct["state"] not in ("STOPPED", "FAILED") and gpu_ct["inputs_done"] >= 1
    assert any(c["container_id"] == gpu_ct["container_id"] for c in cli.json("container", "list", "--all"))
    table = cli.run("container", "list").stdout
    assert "A100-80GB" in table and "on_gpu" in table


def test_logs_show_what_the_function_printed(cli: Cli, worker: str) -> None:
    assert cli.call(worker, "hello", "logs-test") == "hi logs-test"
    out = wait_for("the printed line in `surge logs`",
                   lambda: (lambda o: o if "hello, logs-test!" in o else None)(cli.run("logs", worker).stdout))
    assert re.search(r"\[hello \w+\] hello, logs-test!", out)
    lines = [json.loads(line) for line in cli.run("logs", f"{worker}::hello", "--json").stdout.splitlines()]
    assert any(ln["text"] == "hello, logs-test!" and ln["function"] == "hello" for ln in lines)
    assert all(ln["function"] == "hello" for ln in lines)


# -- stop ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_stopped_app_refuses_calls_with_a_clear_error(cli: Cli) -> None:
    path = cli.write("stoppable.py", WORKER_APP.replace('"cli-worker"', '"stoppable"'))
    cli.run("deploy", path)
    assert cli.call("stoppable", "hello", "x") == "hi x"
    out = cli.run("app", "stop", "stoppable")
    assert "stopped stoppable" in out.stderr
    [app] = [a for a in cli.json("app", "list") if a["name"] == "stoppable"]
    assert app["state"] == "stopped"
    code = "import surge; surge.Function.from_name('stoppable', 'hello').remote('x')"
    proc = cli.python(code, rc=None)
    assert proc.returncode != 0
    assert "surge.errors.NotFoundError" in proc.stderr and "'stoppable' (it is stopped)" in proc.stderr
    # deploying again brings it back
    cli.run("deploy", path)
    assert cli.call("stoppable", "hello", "y") == "hi y"


# -- surge run against the configured server ------------------------------------------------------------

@pytest.mark.slow
def test_run_typed_entrypoint_flags(cli: Cli) -> None:
    path = cli.write("runner.py", RUNNER_APP)
    assert "sum=30 flag=False" in cli.run("run", path, "--n", "5").stdout
    assert "total=30 flag=True" in cli.run("run", path, "--n", "5", "--flag", "--label", "total").stdout
    assert "sum=9 flag=False" in cli.run("run", path, "--n=3", "--no-flag").stdout
    # an ephemeral run is not a deployment
    assert "runner" not in {a["name"] for a in cli.json("app", "list")}


def test_run_usage_errors_exit_2_naming_the_option(cli: Cli) -> None:
    path = cli.write("runner.py", RUNNER_APP)
    missing = cli.run("run", path, rc=2)
    assert "missing required option(s): --n" in missing.stderr
    unknown = cli.run("run", path, "--n", "1", "--bogus", "7", rc=2)
    assert "unknown option --bogus" in unknown.stderr
    assert "--n, --flag/--no-flag, --label" in unknown.stderr   # and what it does accept
    bad_type = cli.run("run", path, "--n", "five", rc=2)
    assert "--n expects int, got 'five'" in bad_type.stderr
    no_target = cli.run("run", f"{path}::nope", rc=2)
    assert "no entrypoint or function named 'nope'" in no_target.stderr and "main, triple" in no_target.stderr
    for proc in (missing, unknown, bad_type, no_target):
        assert "Traceback" not in proc.stderr


def test_run_a_single_function(cli: Cli) -> None:
    path = cli.write("runner.py", RUNNER_APP)
    assert cli.run("run", f"{path}::triple", "--x", "4").stdout.strip() == "12"


def test_bare_decorator_fails_at_import_with_the_fix(cli: Cli) -> None:
    path = cli.write("bare.py", BARE_DECORATOR_APP)
    for command in ("run", "deploy"):
        proc = cli.run(command, path, rc=None)
        assert proc.returncode != 0
        assert "did you forget parentheses?" in proc.stderr and "@app.function()" in proc.stderr


def test_import_error_in_the_app_shows_the_users_traceback(cli: Cli) -> None:
    path = cli.write("broken.py", "import surge\n\nimport no_such_module_here\n")
    proc = cli.run("run", path, rc=2)
    assert f"importing {path} failed" in proc.stderr
    assert 'broken.py", line 3' in proc.stderr and "No module named 'no_such_module_here'" in proc.stderr
    assert "importlib" not in proc.stderr and "loader.py" not in proc.stderr


def test_run_warns_that_gpus_do_not_change_a_running_server(cli: Cli) -> None:
    path = cli.write("runner.py", RUNNER_APP)
    proc = cli.run("run", "--gpus", "H100:8", path, "--n", "1")
    assert "--gpus is ignored" in proc.stderr and "sum=0" in proc.stdout


# -- every --json parses --------------------------------------------------------------------------------

@pytest.mark.slow
def test_every_json_output_parses(cli: Cli, worker: str) -> None:
    cli.call(worker, "hello", "json")
    call_id = cli.json("call", "list")[0]["call_id"]
    for args in (("app", "list"), ("app", "list", "--all"), ("app", "history", worker), ("call", "list"),
                 ("call", "show", call_id), ("container", "list"), ("container", "list", "--all")):
        data = cli.json(*args)
        assert isinstance(data, list | dict) and data, args
