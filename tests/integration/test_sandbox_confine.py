"""The sandbox's child-side mechanics on this host, in real child processes (issue 5):
``pidinit`` (a PID namespace whose container is pid 2, exit statuses mirrored, nothing left behind)
and ``Confinement`` (the file-system view, the user, the limits). Skipped with the reason where the
host lacks the mechanism (not root, no namespaces)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from surge.agent import pidinit
from surge.agent.hostcheck import PROBE_UID, probe

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (it drops to another user)")


def _probed() -> dict[str, str | None]:
    out = subprocess.run([sys.executable, "-m", "surge.agent.hostcheck"], capture_output=True, text=True, timeout=60)
    result: dict[str, str | None] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


PROBED = _probed() if os.geteuid() == 0 else {"strict": "not root"}
needs_strict = pytest.mark.skipif(PROBED["strict"] is not None, reason=f"strict sandbox unavailable: {PROBED['strict']}")


def run_pidinit(code: str, *, uid: str = "-") -> subprocess.CompletedProcess[str]:
    """``code`` as the container under pidinit, in a private mount namespace (``unshare -m``)."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-I", "-S",
                           pidinit.__file__, uid, uid, "--", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)


@needs_strict
def test_the_container_is_pid_2_and_sees_only_its_namespace() -> None:
    proc = run_pidinit("import os; print(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(None, 1)[0] == "2"
    assert set(json.loads(proc.stdout.split(None, 1)[1])) <= {1, 2}


@needs_strict
@pytest.mark.parametrize(("code", "returncode"), [
    ("raise SystemExit(3)", 3),
    ("import os, signal; os.kill(os.getpid(), signal.SIGABRT)", -signal.SIGABRT),   # not init: it dies
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
])
def test_the_outer_process_ends_the_way_the_container_did(code: str, returncode: int) -> None:
    assert run_pidinit(code).returncode == returncode


@needs_strict
def test_nothing_the_container_started_outlives_it(tmp_path: Path) -> None:
    """A daemon in a new session escapes a process-group kill, but not the end of the namespace."""
    code = textwrap.dedent("""
        import os, subprocess
        p = subprocess.Popen(["sleep", "60"], start_new_session=True)
        print(open(f"/proc/{p.pid}/stat").read().split()[21])   # its start time, to find it on the host
    """)
    proc = run_pidinit(code)
    assert proc.returncode == 0, proc.stderr
    start = proc.stdout.strip()
    survivors = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                if stat.split(") ", 1)[1].split()[19] == start and "(sleep)" in stat:
                    survivors.append(d.name)
            except (OSError, IndexError):
                pass
    assert survivors == []


CONFINED = textwrap.dedent("""
    import os, sys
    from surge.agent.sandbox import Confinement, _prefix, _traversable
    from surge.agent import pidinit
    from surge.core.sandbox import plan_view
    uid = int(sys.argv[1])
    needed = [(p, False) for p in {*_prefix(sys.executable), sys.base_prefix, *[p for p in sys.path if p]}]
    view = plan_view(needed, {"/tmp": "mode=1777,size=1m", sys.argv[2]: "size=64k"},
                     lambda d: not _traversable(d, uid, uid))
    conf = Confinement("strict", uid=uid, gid=uid, mount_ns=True, pid_ns=True, view=view,
                       rlimits={"NOFILE": 64, "FSIZE": 1 << 20, "CORE": 0}, workdir="/tmp")
    conf.setup()
    pidinit.split(conf.uid, conf.gid)
    import json                                   # not imported yet: the interpreter's files are visible
    out = {"ids": [os.getuid(), os.getgid(), os.getgroups()], "pid": os.getpid(), "tmp": os.listdir("/tmp"),
           "hidden": os.listdir(sys.argv[2]), "nofile": __import__("resource").getrlimit(7)}
    try:
        os.setuid(0)
        out["root"] = "became root"
    except PermissionError:
        out["root"] = "refused"
    print(json.dumps(out))
""")


@needs_strict
def test_a_confined_process_is_the_sandbox_user_in_its_own_view(tmp_path: Path) -> None:
    secret = tmp_path / "state"
    secret.mkdir()
    (secret / "surge.db").write_text("rows")
    (Path("/tmp") / f"host-scratch-{os.getpid()}").write_text("x")
    try:
        proc = subprocess.run([sys.executable, "-c", CONFINED, str(PROBE_UID), str(secret)],
                              capture_output=True, text=True, timeout=30)
    finally:
        (Path("/tmp") / f"host-scratch-{os.getpid()}").unlink()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ids"] == [PROBE_UID, PROBE_UID, []] and out["root"] == "refused" and out["pid"] == 2
    assert out["hidden"] == [] and f"host-scratch-{os.getpid()}" not in out["tmp"]
    assert out["nofile"] == [64, 64]


def test_pidinit_refuses_to_remount_the_hosts_proc() -> None:
    proc = subprocess.run([sys.executable, "-I", "-S", pidinit.__file__, "-", "-", "--", "/bin/true"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "host's mount namespace" in proc.stderr


def test_the_probe_and_doctor_agree_on_this_host() -> None:
    """The agent's probe (a fresh interpreter) and an in-process probe give the same answers."""
    forked = subprocess.run([sys.executable, "-c", "import json; from surge.agent.hostcheck import probe; "
                             "print(json.dumps(probe()))"], capture_output=True, text=True, timeout=60)
    assert json.loads(forked.stdout.strip().splitlines()[-1]) == PROBED
    assert callable(probe)
