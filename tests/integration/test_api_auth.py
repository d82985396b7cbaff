"""Every HTTP route needs the token, read from the live route table (reliability S2).

The inventory is built from ``app.routes`` at test time, never typed by hand: a route added later
without auth makes ``test_every_route_refuses_a_missing_or_wrong_token`` fail. The only route
answering without a token is ``/health`` (``PUBLIC``). The OpenAPI schema is served behind the
token too, and the browser docs UIs, which cannot send a bearer token, are not served at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from surge.server import auth
from tests.integration.conftest import InProcess, serve_in_process

PUBLIC = {("GET", "/health")}

# Dummy values for path parameters, by name ("sha" must at least look like a sha256).
DUMMY_PARAMS = {"sha": "0" * 64}
DUMMY_ID = "does-not-exist-0123"

# A valid body for each route that requires one, so a request reaches the handler (and, with the
# right token, the lookup of the unknown id) instead of stopping at body validation.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/apps"): {"name": "x", "source_hash": "0" * 64, "module": "m",
                           "functions": [{"tag": "f", "options": {}}]},
    ("POST", "/v1/calls"): {"function_id": DUMMY_ID, "inputs": ["AA=="]},
    ("POST", "/v1/calls/{call_id}/inputs"): {"start_idx": 0, "inputs": ["AA=="]},
}
RAW_BODIES = {("PUT", "/v1/blobs/{sha}"): b"not the bytes whose sha256 is in the path"}

# Routes with path parameters that legitimately answer something else than 404 for an unknown id.
NOT_LOOKUPS = {
    ("GET", "/v1/blobs/{sha}/exists"): 200,   # a membership test: {"exists": false}
    ("PUT", "/v1/blobs/{sha}"): 400,          # an upload: the content does not hash to the sha
}

WRONG_TOKENS = {
    "missing": None,
    "wrong": "Bearer not-the-token",
    "empty bearer": "Bearer ",
    "basic scheme": "Basic dXNlcjpwYXNz",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str                  # the template, e.g. /v1/calls/{call_id}
    route: Any

    @property
    def url(self) -> str:
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: DUMMY_PARAMS.get(m.group(1), DUMMY_ID), self.path)

    @property
    def has_path_params(self) -> bool:
        return "{" in self.path

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def send(self, env: InProcess, authorization: str | None) -> Any:
        headers = {"Authorization": authorization} if authorization is not None else {}
        if self.key in RAW_BODIES:
            return env.http.request(self.method, self.url, content=RAW_BODIES[self.key], headers=headers)
        return env.http.request(self.method, self.url, json=SAMPLE_BODIES.get(self.key), headers=headers)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _flat_routes(app: FastAPI) -> list[Any]:
    """``app.routes`` with included routers expanded (FastAPI ≥ 0.16x includes them lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:   # older FastAPI copies routes into the app when including a router
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def inventory(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app serves. Anything that is not a plain HTTP route (a mount, a
    websocket, a host) fails here: decide how it is authenticated and teach this test."""
    out = []
    for r in _flat_routes(app):
        original = getattr(r, "original_route", r)
        if not isinstance(original, APIRoute | Route):
            pytest.fail(f"route {r!r} ({type(original).__name__}) is not an HTTP route this test knows how "
                        "to check: extend tests/integration/test_api_auth.py::inventory")
        for method in sorted(r.methods or ()):
            out.append(Endpoint(method, r.path, original))
    return out


@pytest.fixture(scope="module")
def endpoints(in_process: InProcess) -> list[Endpoint]:
    found = inventory(in_process.app)
    paths = {e.path for e in found}
    # guard against an inventory that silently finds nothing (e.g. a routing change hiding routers)
    for known in ("/health", "/v1/apps", "/v1/calls", "/v1/calls/{call_id}", "/v1/blobs/{sha}",
                  "/v1/containers", "/v1/logs", "/openapi.json"):
        assert known in paths, f"{known} missing from the route inventory: {sorted(paths)}"
    return found


def _requires_body(route: Any) -> bool:
    field = getattr(route, "body_field", None)
    return field is not None and field.field_info.is_required()


def _assert_json_error(resp: Any, status: int, what: str) -> dict[str, Any]:
    assert resp.status_code == status, f"{what}: expected {status}, got {resp.status_code}: {resp.text[:300]}"
    if resp.request.method == "HEAD":
        return {}
    assert resp.headers["content-type"].startswith("application/json"), what
    err = resp.json().get("error")
    assert isinstance(err, dict) and err.get("code") and err.get("message"), f"{what}: body {resp.text[:300]}"
    return err


def auth_failures(env: InProcess, endpoints: list[Endpoint]) -> list[str]:
    """What answers a request with a missing or wrong token otherwise than 401 + JSON error +
    ``WWW-Authenticate: Bearer`` (every endpoint but ``PUBLIC`` × every entry of ``WRONG_TOKENS``)."""
    failures = []
    for e in endpoints:
        if e.key in PUBLIC:
            continue
        for label, authorization in WRONG_TOKENS.items():
            resp = e.send(env, authorization)
            what = f"{e} with {label} token"
            if resp.status_code != 401:
                failures.append(f"{what}: {resp.status_code} {resp.text[:200]}")
            elif resp.headers.get("www-authenticate") != "Bearer":
                failures.append(f"{what}: no 'WWW-Authenticate: Bearer' header")
            elif e.method != "HEAD":
                err = _assert_json_error(resp, 401, what)
                assert err["code"] == "auth" and env.token not in resp.text, what
    return failures


def test_every_route_refuses_a_missing_or_wrong_token(in_process: InProcess, endpoints: list[Endpoint]) -> None:
    assert auth_failures(in_process, endpoints) == []


def test_the_inventory_catches_a_route_added_without_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above reads the live route table: a new unprotected route makes it fail."""
    with serve_in_process(tmp_path / "home") as http:
        app = http.app
        assert isinstance(app, FastAPI)

        @app.get("/v1/leak")
        async def leak() -> dict[str, str]:
            return {"secret": "data"}

        monkeypatch.setattr(auth, "PUBLIC_PATHS", auth.PUBLIC_PATHS | {"/v1/leak"})
        env = InProcess(app, http, app.state.token, tmp_path / "home")
        failures = auth_failures(env, inventory(app))
    assert len(failures) == len(WRONG_TOKENS)
    assert all(f.startswith("GET /v1/leak with ") for f in failures), failures


def test_a_token_differing_in_one_character_is_refused(in_process: InProcess) -> None:
    t = in_process.token
    for bad in (t[:-1], t + "x", t[:-1] + ("A" if t[-1] != "A" else "B"), t.upper() if t != t.upper() else t.lower()):
        resp = in_process.http.get("/v1/calls", headers=in_process.auth(bad))
        _assert_json_error(resp, 401, f"token {bad[:4]}…")


def test_a_malformed_body_without_token_is_still_401(in_process: InProcess, endpoints: list[Endpoint]) -> None:
    """Auth is checked before the body is parsed: no route tells a stranger what it expects."""
    for e in endpoints:
        if e.key in PUBLIC or e.method not in ("POST", "PUT", "PATCH"):
            continue
        resp = in_process.http.request(e.method, e.url, content=b"{not json",
                                       headers={"content-type": "application/json"})
        _assert_json_error(resp, 401, f"{e} with a malformed body and no token")


def test_public_routes_answer_without_a_token(in_process: InProcess, endpoints: list[Endpoint]) -> None:
    served = {e.key for e in endpoints}
    assert served >= PUBLIC
    for method, path in PUBLIC:
        resp = in_process.http.request(method, path)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "ok"


def test_browser_docs_are_not_served(in_process: InProcess) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert in_process.http.get(path, headers=in_process.auth()).status_code == 404, path


def test_unknown_ids_answer_404_with_a_message(in_process: InProcess, endpoints: list[Endpoint]) -> None:
    for e in endpoints:
        if not e.has_path_params:
            continue
        if _requires_body(e.route) and e.key not in SAMPLE_BODIES:
            pytest.fail(f"{e} requires a body: add a valid one to SAMPLE_BODIES")
        resp = e.send(in_process, f"Bearer {in_process.token}")
        expected = NOT_LOOKUPS.get(e.key, 404)
        if expected == 200:
            assert resp.status_code == 200, f"{e}: {resp.status_code} {resp.text[:300]}"
            continue
        err = _assert_json_error(resp, expected, f"{e} with an unknown id")
        if expected == 404:
            assert err["code"] == "not_found"
            assert DUMMY_ID in err["message"], f"{e}: the message should name the id: {err['message']}"


def test_no_route_answers_500_to_an_authenticated_request(in_process: InProcess,
                                                          endpoints: list[Endpoint]) -> None:
    for e in endpoints:
        resp = e.send(in_process, f"Bearer {in_process.token}")
        assert resp.status_code < 500, f"{e}: {resp.status_code} {resp.text[:300]}"
        if resp.status_code >= 400 and e.method != "HEAD":
            _assert_json_error(resp, resp.status_code, str(e))
