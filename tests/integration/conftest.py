"""Fixtures for the integration tests: the real control-plane app served in-process.

``in_process``: ``create_app`` on its own SURGE_HOME, driven by Starlette's ``TestClient`` (entered
as a context manager, so the lifespan starts the ControlPlane: store, dispatcher, scaler and a
LocalAgent whose workers are real processes). ``sdk`` points the SDK at it, so ``f.remote()`` goes
through the app in-process. App modules for these tests live in ``tests/integration/apps``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from surge.sdk import context
from surge.sdk.client import Client
from surge.server.app import create_app
from surge.server.config import ServerConfig

with warnings.catch_warnings():
    # Starlette 1.x would rather drive its TestClient with httpx2; the SDK's transport seam is
    # httpx's, which the TestClient still accepts (and is an ``httpx.Client`` then).
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

INTEGRATION_APPS = Path(__file__).parent / "apps"
GPUS = "A100-80GB:2,H100:1"


class InProcessHTTP(TestClient):
    """A TestClient that drops per-request timeouts: the SDK gives one to each long poll (for real
    sockets), which an in-process app does not need and Starlette warns about."""

    def request(self, method: str, url: Any, *, timeout: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().request(method, url, **kwargs)


@dataclass
class InProcess:
    app: FastAPI
    http: TestClient
    token: str
    home: Path

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


def serve_in_process(home: Path) -> TestClient:
    """The control plane on ``home`` behind a TestClient (not yet entered)."""
    config = ServerConfig(home=home, gpus=GPUS, kill_grace=1.0, lease_ttl=2.0)
    return InProcessHTTP(create_app(config), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    home = tmp_path_factory.mktemp("surge-inproc")
    with serve_in_process(home) as http:
        app = http.app
        assert isinstance(app, FastAPI)
        yield InProcess(app, http, app.state.token, home)


@pytest.fixture(scope="session")
def integration_apps() -> Iterator[Path]:
    sys.path.insert(0, str(INTEGRATION_APPS))
    yield INTEGRATION_APPS
    sys.path.remove(str(INTEGRATION_APPS))


@pytest.fixture(scope="module")
def sdk(in_process: InProcess) -> Iterator[Client]:
    """The SDK's process-wide client, talking to ``in_process`` (its requests carry the token)."""
    client = Client("http://testserver", in_process.token, http=in_process.http)
    old = context.set_client(client)
    try:
        yield client
    finally:
        context.set_client(old)
        in_process.http.headers.pop("authorization", None)
