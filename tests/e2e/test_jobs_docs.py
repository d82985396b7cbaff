"""docs/jobs.md runs as written: its app deploys with `surge deploy`, and its curl examples, run
in order as one shell script, succeed against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.skipif(not all(map(Path.exists, (Path("/usr/bin/curl"), Path("/usr/bin/jq")))),
                    reason="needs curl and jq")
def test_the_curl_examples_run(server: Any, tmp_path: Path) -> None:
    app = tmp_path / "jobs_demo.py"
    app.write_text(blocks("python")[0])
    env = {**os.environ, "SURGE_SERVER_URL": server.url, "SURGE_TOKEN": server.token, "PYTHONPATH": ""}
    deploy = subprocess.run([sys.executable, "-m", "surge.cli.main", "deploy", str(app)], capture_output=True,
                            text=True, timeout=120, env=env, cwd=tmp_path)
    assert deploy.returncode == 0, deploy.stderr
    script = "set -euo pipefail\n" + "\n".join(blocks("bash"))
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert '"output":[47.0,94.0]' in text                               # embed, answered inline
    assert '"SUCCEEDED"\n{\n  "keys": [\n    "n",\n    "prompt"' in text  # summarize got the whole object
    assert '"CANCELLED"' in text and '"retry_of": "fc-' in text           # cancel, then retry
    assert text.count("event: item") == 3 and "event: end" in text       # the stream
    assert text.count("event: progress") == 3 and '"message": "epoch 3"' in text   # progress
    subprocess.run([sys.executable, "-m", "surge.cli.main", "app", "stop", "jobs-demo"], capture_output=True,
                   timeout=60, env=env)
