"""Every example in ``examples/`` run the way its docstring says: ``surge run examples/X.py`` as a
subprocess, on its own embedded control plane (a fresh SURGE_HOME, no SURGE_SERVER_URL), with
assertions on the values it prints. ``test_make_demo`` runs what ``make demo`` runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RUN_TIMEOUT = 120.0   # a cold embedded server + a few containers takes ~5 s here

pytestmark = pytest.mark.slow


def surge_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "surge"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "surge.cli.main"]


def surge_run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``surge run ARGS`` on an embedded server of its own; fails with the output and server log."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SURGE_SERVER_URL", "SURGE_TOKEN", "SURGE_GPUS")}
    env["SURGE_HOME"] = str(home)
    proc = subprocess.run([*surge_cmd(), "run", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    return proc


def explain(proc: subprocess.CompletedProcess[str], home: Path) -> str:
    log = home / "logs" / "server.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no server log)"
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n--- server.log\n{tail}"


def ok(home: Path, *args: str) -> str:
    proc = surge_run(home, *args)
    assert proc.returncode == 0, explain(proc, home)
    assert not (home / "server.json").exists(), "the embedded server was left running"
    return proc.stdout


def test_every_example_has_a_test_and_a_readme_entry() -> None:
    tested = {"hello", "model_class", "gpu", "streaming"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested
    readme = (EXAMPLES / "README.md").read_text()
    for name in tested:
        assert f"{name}.py" in readme


def test_make_demo(tmp_path: Path) -> None:
    # `make demo` is `surge run examples/hello.py`
    assert "surge run examples/hello.py" in (ROOT / "Makefile").read_text()
    out = ok(tmp_path, "examples/hello.py")
    assert "square(7) = 49" in out
    assert re.search(r"ran in pid \d+, container ct-\S+", out)
    assert "squares of 0..9: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out
    assert re.search(r"spawned fc-\S+", out)
    assert "slow_add(2, 3) = 5" in out


def test_hello_takes_its_entrypoint_flag(tmp_path: Path) -> None:
    out = ok(tmp_path, "examples/hello.py", "--n", "4")
    assert "squares of 0..3: [0, 1, 4, 9]" in out


def test_model_class(tmp_path: Path) -> None:
    proc = surge_run(tmp_path, "examples/model_class.py")
    assert proc.returncode == 0, explain(proc, tmp_path)
    out = proc.stdout
    # the "small" pool: one container, loaded once, a call counter that survives between calls
    assert "small.predict(1.0) = 1.45  (call #1 on this container)" in out
    assert "small.predict(2.0) = 2.9  (call #2 on this container)" in out
    assert "small.predict(3.0) = 4.35  (call #3 on this container)" in out
    assert "small model: 1 container, loaded once, state kept across calls" in out
    # the "large" parameter value gets its own pool, with its own enter hook run
    assert "large.predict(1.0) = 6.78  (call #1 on this container)" in out
    assert "large model runs in its own container: True" in out
    # container logs are streamed: enter hooks ran once per pool, exit hooks at shutdown
    logs = proc.stdout + proc.stderr
    assert logs.count("loaded the small model") == 1
    assert logs.count("loaded the large model") == 1
    assert "unloading the small model after 3 calls" in logs
    assert "unloading the large model after 1 calls" in logs


def test_gpu_with_declared_inventory(tmp_path: Path) -> None:
    # exactly the command in the example's docstring
    assert 'surge run --gpus "A100-80GB:2,H100:1" examples/gpu.py' in (EXAMPLES / "gpu.py").read_text()
    out = ok(tmp_path, "--gpus", "A100-80GB:2,H100:1", "examples/gpu.py")
    a100 = re.search(r"on_a100: SURGE_GPU_TYPE=(\S+) CUDA_VISIBLE_DEVICES=(\S+)", out)
    pref = re.search(r"on_h100_or_a100: SURGE_GPU_TYPE=(\S+) CUDA_VISIBLE_DEVICES=(\S+)", out)
    assert a100 and pref, out
    # device indices follow the declaration order: A100s are 0 and 1, the H100 is 2
    assert a100.group(1) == "A100-80GB" and a100.group(2) in ("0", "1")
    assert pref.groups() == ("H100", "2")   # first preference, free


def test_gpu_without_gpus_fails_fast_and_says_how_to_declare_them(tmp_path: Path) -> None:
    from surge.agent.inventory import detect_gpus

    if detect_gpus():
        pytest.skip("this machine has real GPUs")
    proc = surge_run(tmp_path, "examples/gpu.py")
    assert proc.returncode == 1, explain(proc, tmp_path)
    assert "A100-80GB" in proc.stderr and "--gpus" in proc.stderr


def test_streaming_items_arrive_while_the_generator_runs(tmp_path: Path) -> None:
    out = ok(tmp_path, "examples/streaming.py", "--prompt", "one two three four")
    items = re.findall(r"\+\s*([\d.]+) s  item (\d): (\w+)", out)
    assert [(i, w) for _, i, w in items] == [("0", "ONE"), ("1", "TWO"), ("2", "THREE"), ("3", "FOUR")]
    assert "streamed: ONE TWO THREE FOUR" in out
    # 0.3 s between yields: had the items come at the end, they would all share one arrival time
    arrivals = [float(t) for t, _, _ in items]
    assert arrivals[-1] - arrivals[0] >= 0.6, arrivals
