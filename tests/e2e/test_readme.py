"""Every Python snippet in the README runs, with the command the README gives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_an_app() -> None:
    assert python_blocks(), "README lost its example"


@pytest.mark.slow
def test_readme_app_runs_as_documented(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    script = tmp_path / "app" / "readme_app.py"
    script.write_text(python_blocks()[0])
    command = re.search(r"surge run readme_app\.py ([^#\n]*)", (ROOT / "README.md").read_text())
    assert command is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURGE_")}
    env["SURGE_HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, "-m", "surge.cli.main", "run", str(script), *command.group(1).split()],
                         capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    hello = [5.0, float(sum(map(ord, "hello")) % 97)]
    lines = out.stdout.splitlines()
    assert str(hello) in lines
    assert str([[1.0, 97 % 97 * 1.0], [2.0, float(98 * 2 % 97)], [3.0, float(99 * 3 % 97)]]) in lines
    assert "20.0" in lines     # Model(size="large").predict.remote(2.0)
