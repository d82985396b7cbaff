"""Fixtures shared by integration and end-to-end tests.

``server``: a real control plane process (``python -m surge.server``) on 127.0.0.1 with its own
SURGE_HOME, a declared inventory of 2 × A100-80GB + 1 × H100, a 1 s kill grace and a 2 s lease, and
the SDK pointed at it. Tests import app modules from ``tests/e2e/apps``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from surge.sdk import context, embedded
from surge.sdk.client import Client

APPS = Path(__file__).parent / "e2e" / "apps"
TEST_GPUS = "A100-80GB:2,H100:1"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.ServerInfo]:
    home = tmp_path_factory.mktemp("surge-home")
    info = embedded.start(home, gpus=TEST_GPUS,
                          extra_args=["--kill-grace", "1", "--lease-ttl", "2", "--log-level", "warning"])
    client = Client(info.url, info.token)
    old = context.set_client(client)
    os.environ["SURGE_SERVER_URL"] = info.url
    os.environ["SURGE_TOKEN"] = info.token or ""
    info.home = home  # type: ignore[attr-defined]
    try:
        yield info
    finally:
        context.set_client(old)
        client.close()
        os.environ.pop("SURGE_SERVER_URL", None)
        os.environ.pop("SURGE_TOKEN", None)
        info.stop()


@pytest.fixture(scope="session")
def apps_path() -> Iterator[Path]:
    sys.path.insert(0, str(APPS))
    yield APPS
    sys.path.remove(str(APPS))


@pytest.fixture
def client(server: embedded.ServerInfo) -> Client:
    return context.get_client()
