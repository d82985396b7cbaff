"""A payload whose unpickling writes a marker file (a ``__reduce__`` gadget) produces the marker
only inside a container, never in the control plane (issue 5).

The gadget is the classic one: ``__reduce__`` returns ``(exec, (code,))``, so whoever unpickles
it runs ``code``, which appends its pid, parent pid and ``SURGE_CONTAINER_ID`` to a marker file.
Submitted as the arguments (or class parameters) of a real function, the marker must appear,
written by a container process. Submitted where the control plane refuses or never runs it (an
unknown function, a stopped app, a cancelled call, a call by a name that does not exist), it must
never appear: the control plane keeps arguments as opaque bytes.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from surge import errors
from surge.sdk import embedded
from surge.sdk.client import Client

WRITE_MARKER = """
import json, os
with open({path!r}, "a") as f:
    f.write(json.dumps({{"pid": os.getpid(), "ppid": os.getppid(),
                        "container": os.environ.get("SURGE_CONTAINER_ID")}}) + "\\n")
"""


class Gadget:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (WRITE_MARKER.format(path=self.path),)


def gadget_args(path: Path) -> bytes:
    """What the SDK would send for ``f(Gadget())``: pickled ``(args, kwargs)``."""
    return pickle.dumps(((Gadget(path),), {}))


def markers(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def gadget(server: embedded.ServerInfo, apps_path: Path) -> Iterator[Any]:
    import gadget_app

    with gadget_app.app.run(show_logs=False):
        yield gadget_app


@pytest.fixture
def client(server: embedded.ServerInfo) -> Client:
    from surge.sdk import context
    return context.get_client()


def server_pid(server: embedded.ServerInfo) -> int:
    assert server.process is not None
    return server.process.pid


def submit(client: Client, ref: dict[str, Any], args: bytes, *, params: bytes | None = None,
           kind: str = "spawn", wait: float = 0.0) -> dict[str, Any]:
    return client.submit(ref, kind, [args], idempotency_key=uuid.uuid4().hex, params=params, wait=wait)


def test_the_gadget_runs_only_inside_a_container(gadget: Any, client: Client, server: embedded.ServerInfo,
                                                 tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    out = submit(client, {"function_id": gadget.app._function_ids["take"]}, gadget_args(marker), wait=60)
    assert out["outputs"][0]["state"] == "SUCCEEDED", out
    [written] = markers(marker)
    assert written["pid"] != server_pid(server)
    assert written["container"], written          # a process the agent started as a container
    # ... a child of the node agent, or forked by a template/snapshot zygote the agent started (issue 3)
    assert server_pid(server) in (written["ppid"], psutil.Process(written["ppid"]).ppid())


def test_class_parameters_are_unpickled_only_inside_a_container(gadget: Any, client: Client,
                                                                server: embedded.ServerInfo, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    fid = gadget.app._function_ids["Keeper.get"]
    out = submit(client, {"function_id": fid}, pickle.dumps(((), {})),
                 params=pickle.dumps({"name": Gadget(marker)}), wait=60)
    assert out["outputs"][0]["state"] in ("SUCCEEDED", "FAILED"), out
    assert markers(marker) and all(m["pid"] != server_pid(server) and m["container"] for m in markers(marker))


@pytest.mark.parametrize("ref", [
    {"function_id": "fu-does-not-exist"},
    {"app": "gadget", "function": "take"},            # ephemeral, not deployed: no call by name
    {"app": "no-such-app", "function": "take"},
])
def test_refused_submissions_never_unpickle(ref: dict[str, Any], client: Client, server: embedded.ServerInfo,
                                            tmp_path: Path, gadget: Any) -> None:
    marker = tmp_path / "marker"
    with pytest.raises(errors.NotFoundError):
        submit(client, ref, gadget_args(marker), wait=5)
    with pytest.raises(errors.NotFoundError):
        submit(client, ref, b"\x80\x05" + gadget_args(marker)[2:], params=pickle.dumps(Gadget(marker)), wait=5)
    assert not marker.exists()


def test_a_cancelled_call_never_unpickles(gadget: Any, client: Client, tmp_path: Path) -> None:
    """``hold`` has one container, kept busy: the gadget waits in the queue and is cancelled there."""
    hold_fid = gadget.app._function_ids["hold"]
    busy = submit(client, {"function_id": hold_fid}, pickle.dumps(((3.0,), {})))
    deadline = time.monotonic() + 30
    while client.get_call(busy["call_id"])["state"] != "RUNNING":
        assert time.monotonic() < deadline, "hold never started"
        time.sleep(0.05)
    marker = tmp_path / "marker"
    queued = submit(client, {"function_id": hold_fid}, gadget_args(marker))
    assert client.get_call(queued["call_id"])["state"] == "QUEUED"
    client.cancel(queued["call_id"])
    with pytest.raises(errors.ConflictError):     # adding inputs to the cancelled call is refused too
        client.add_inputs(queued["call_id"], 1, [gadget_args(marker)])
    done = client.outputs(busy["call_id"], 0, wait=30.0)
    assert done["outputs"][0]["state"] == "SUCCEEDED"
    assert client.get_call(queued["call_id"])["counts"] == {"CANCELLED": 1}
    assert not marker.exists()


def test_a_stopped_apps_function_never_unpickles(gadget: Any, client: Client, tmp_path: Path) -> None:
    fid = gadget.app.deploy("gadget-stopped")["functions"]["take"]
    client.stop_app("gadget-stopped")
    marker = tmp_path / "marker"
    with pytest.raises(errors.ConflictError):
        submit(client, {"function_id": fid}, gadget_args(marker), wait=5)
    assert not marker.exists()
