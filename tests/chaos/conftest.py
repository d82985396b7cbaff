"""Fixtures of the chaos suite: the probe app, and the seed and scale shown in the report header.

``SURGE_CHAOS_SEED`` replays a run; ``SURGE_CHAOS_SCALE=full`` runs the sizes of issue #5 (``make
chaos``), the default ``ci`` a reduced size that fits ``make test``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.chaos import harness

# read by chaos_app at import time (decorator options are fixed when the module is imported)
os.environ.setdefault("SURGE_CHAOS_WORK_CONTAINERS", str(harness.sized(6, 8)))


def pytest_report_header(config: pytest.Config) -> str:
    return (f"chaos: seed={harness.SEED} scale={harness.SCALE_NAME} "
            f"(replay with SURGE_CHAOS_SEED={harness.SEED} SURGE_CHAOS_SCALE={harness.SCALE_NAME})")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if harness.PUBLISHED:
        terminalreporter.section("chaos figures")
        for scenario, figures in harness.PUBLISHED:
            terminalreporter.write_line(harness.table(scenario, figures))
        terminalreporter.write_line(f"(JSON in {harness.RESULTS})")


@pytest.fixture(scope="session")
def chaos_app() -> Iterator[ModuleType]:
    sys.path.insert(0, str(harness.APPS))
    try:
        import chaos_app

        yield chaos_app
    finally:
        sys.path.remove(str(harness.APPS))


@pytest.fixture
def chaos_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home
