"""Two workspaces on one real server cannot see each other's apps, calls, logs, usage or
containers, through the CLI and the SDK alike, nor from inside their containers (issue 5).

The admin (the bootstrap token in SURGE_HOME/token) deploys ``iso`` in ``default``; a member token
of workspace ``blue`` deploys its own ``iso`` under the same name. Every CLI command and SDK call is
a separate process, pointed at the server exactly as a user would (SURGE_SERVER_URL, SURGE_TOKEN).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from surge.sdk import embedded
from tests.e2e.test_cli import GPUS, Cli, wait_for

ISO_APP = '''
import os
import surge

app = surge.App("iso")
WHO = "{who}"


@app.function(scaledown_window=30)
def hello(x: str) -> str:
    print(f"{{WHO}}-log-marker {{x}}", flush=True)
    return f"{{WHO}}-result {{x}}"


@app.function(scaledown_window=30)
def peek(app_name: str, fn: str) -> str:
    """Calls by name from inside a container, with the container's own token."""
    try:
        return surge.Function.from_name(app_name, fn).remote("from-inside")
    except surge.NotFoundError as exc:
        return f"not found: {{exc}}"
'''


class Env:
    def __init__(self, admin: Cli, blue: Cli, blue_token: dict[str, Any]) -> None:
        self.admin, self.blue, self.blue_token = admin, blue, blue_token


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("ws-home")
    info = embedded.start(home, gpus=GPUS, extra_args=["--kill-grace", "1", "--log-level", "warning"])
    try:
        admin = Cli(info, home, tmp_path_factory.mktemp("ws-default"))
        admin.run("workspace", "create", "blue")
        made = admin.json("token", "create", "--workspace", "blue", "--name", "blue-ci")
        blue = Cli(info, home, tmp_path_factory.mktemp("ws-blue"))
        blue.env["SURGE_TOKEN"] = made["token"]
        admin.run("deploy", admin.write("iso.py", ISO_APP.format(who="default")))
        blue.run("deploy", blue.write("iso.py", ISO_APP.format(who="blue")))
        yield Env(admin, blue, made)
    finally:
        info.stop()


def test_the_same_app_name_runs_each_workspaces_own_code(env: Env) -> None:
    assert env.admin.call("iso", "hello", "a") == "default-result a"
    assert env.blue.call("iso", "hello", "b") == "blue-result b"


def test_cli_lists_show_only_the_callers_workspace(env: Env) -> None:
    env.admin.call("iso", "hello", "seen")
    env.blue.call("iso", "hello", "seen")
    for cli, mine, theirs in ((env.admin, "default", "blue"), (env.blue, "blue", "default")):
        apps = cli.json("app", "list")
        assert [a["name"] for a in apps] == ["iso"]
        ids = {a["app_id"] for a in apps}
        assert ids.isdisjoint({a["app_id"] for a in (env.blue if cli is env.admin else env.admin).json("app", "list")})
        calls = cli.json("call", "list")
        assert calls and all(c["app"] == "iso" for c in calls)
        lines = wait_for(f"{mine}'s log lines", lambda cli=cli, mine=mine: [
            ln for ln in cli.run("logs", "iso", "--json").stdout.splitlines() if f"{mine}-log-marker" in ln])
        everything = cli.run("logs", "iso", "--json").stdout
        assert lines and f"{theirs}-log-marker" not in everything
        containers = cli.json("container", "list", "--all")
        assert containers and all(c["app"] == "iso" for c in containers)
        usage = json.dumps(cli.json("usage"))
        assert "iso::" in usage
    own = {c["container_id"] for c in env.admin.json("container", "list", "--all")}
    assert own.isdisjoint({c["container_id"] for c in env.blue.json("container", "list", "--all")})
    assert {c["call_id"] for c in env.admin.json("call", "list")}.isdisjoint(
        {c["call_id"] for c in env.blue.json("call", "list")})


def test_sdk_cannot_reach_another_workspaces_calls(env: Env) -> None:
    spawned = env.admin.python("import surge; c = surge.Function.from_name('iso', 'hello').spawn('s'); "
                               "print(c.object_id); print(c.get(timeout=30))").stdout.split()
    call_id = spawned[0]
    assert spawned[1:] == ["default-result", "s"]
    out = env.blue.python(f"""
import surge
try:
    surge.FunctionCall.from_id({call_id!r}).get(timeout=5)
    print("LEAK")
except surge.NotFoundError as exc:
    print("not found:", exc)
""").stdout
    assert out.startswith("not found:") and "default-result" not in out
    shown = env.blue.run("call", "show", call_id, rc=1)
    assert "no call" in shown.stderr and "default" not in shown.stdout


def test_containers_call_back_with_their_own_workspaces_token(env: Env) -> None:
    """Inside blue's container, a call by name reaches blue's app, never default's."""
    assert env.blue.call("iso", "peek", "iso", "hello") == "blue-result from-inside"
    assert env.admin.call("iso", "peek", "iso", "hello") == "default-result from-inside"
    # default has an app blue does not: from inside blue's container it does not exist
    env.admin.run("deploy", env.admin.write("only_default.py", ISO_APP.format(who="only").replace(
        'App("iso")', 'App("only-default")')))
    assert env.blue.call("iso", "peek", "only-default", "hello").startswith("not found:")
    assert env.admin.call("iso", "peek", "only-default", "hello") == "only-result from-inside"


def test_tokens_and_workspaces_from_the_cli(env: Env) -> None:
    assert [t["workspace"] for t in env.blue.json("token", "list")] == ["blue"]
    assert {t["workspace"] for t in env.admin.json("token", "list")} >= {"default", "blue"}
    assert [w["name"] for w in env.blue.json("workspace", "list")] == ["blue"]
    refused = env.blue.run("workspace", "create", "red", rc=1)
    assert "only an admin" in refused.stderr
    table = env.admin.run("token", "list").stdout
    assert "blue-ci" in table and env.blue_token["token"] not in table     # never the secret
    who = env.blue.json("token", "current")
    assert (who["workspace"], who["role"]) == ("blue", "member")


def test_a_revoked_token_is_refused_by_the_next_command(env: Env) -> None:
    made = env.admin.json("token", "create", "--workspace", "blue", "--name", "temp")
    temp = Cli(env.admin.info, env.admin.home, env.blue.workdir)
    temp.env["SURGE_TOKEN"] = made["token"]
    assert [a["name"] for a in temp.json("app", "list")] == ["iso"]
    env.admin.run("token", "revoke", made["token_id"])
    refused = temp.run("app", "list", rc=1)
    assert "invalid token" in refused.stderr
    listed = {t["token_id"]: t for t in env.admin.json("token", "list")}
    assert listed[made["token_id"]]["active"] is False and listed[made["token_id"]]["last_used_at"]
