"""Every HTTP route needs a valid token, and a token sees only its own workspace; both read from
the live route table (reliability S2, issue 5).

The inventory is built from ``app.routes`` at test time, never typed by hand: a route added later
without auth makes ``test_every_route_refuses_a_missing_or_wrong_token`` fail, and one that lets a
token reach another workspace's data makes ``test_another_workspaces_token_sees_nothing_of_ours``
fail. The only routes answering without a token are ``/health`` (``PUBLIC``) and public web
endpoints under ``/web/``. The OpenAPI schema is served behind the token too, and the browser docs
UIs, which cannot send a bearer token, are not served at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from surge.sdk.client import Client
from surge.server import auth
from tests.integration.conftest import InProcess, serve_in_process

PUBLIC = {("GET", "/health")}
PUBLIC_PREFIXES = ("/web/",)     # public web endpoints decide their own access
WEB_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
WEB_ROUTES = ("/web/{app}/{label}", "/web/{app}/{label}/{path:path}")

# Dummy values for path parameters, by name ("sha" must at least look like a sha256).
DUMMY_PARAMS = {"sha": "0" * 64, "image_hash": "0" * 64}
DUMMY_ID = "does-not-exist-0123"

# A valid body for each route that requires one, so a request reaches the handler (and, with the
# right token, the lookup of the unknown id) instead of stopping at body validation.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/apps"): {"name": "x", "source_hash": "0" * 64, "module": "m",
                           "functions": [{"tag": "f", "options": {}}]},
    ("POST", "/v1/calls"): {"function_id": DUMMY_ID, "inputs": ["AA=="]},
    ("POST", "/v1/calls/{call_id}/inputs"): {"start_idx": 0, "inputs": ["AA=="]},
    ("POST", "/v1/volumes"): {"name": "x"},
    ("POST", "/v1/volumes/{name}/commit"): {"container_id": "ct-x"},
    ("POST", "/v1/volumes/{name}/reload"): {"container_id": "ct-x"},
    ("POST", "/v1/images"): {"hash": "0" * 64, "spec": {"v": 1, "python": None, "steps": []}},
    ("POST", "/v1/apps/{app}/functions/{function}/jobs"): {"input": {}},
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
        return self.url_with(DUMMY_PARAMS)

    def url_with(self, params: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: params.get(m.group(1), DUMMY_ID), self.path)

    @property
    def public(self) -> bool:
        return self.key in PUBLIC or self.path.startswith(PUBLIC_PREFIXES)

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
        if isinstance(original, Mount) and (original.path + "/").startswith(PUBLIC_PREFIXES):
            continue       # a public web app mounted under /web/: its own access rules
        if not isinstance(original, APIRoute | Route):
            pytest.fail(f"route {r!r} ({type(original).__name__}) is not an HTTP route this test knows how "
                        "to check: extend tests/integration/test_api_auth.py::inventory")
        methods = r.methods
        if methods is None and r.path.startswith(PUBLIC_PREFIXES):
            methods = WEB_METHODS    # the web gateway's proxy routes take every method
        for method in sorted(methods or ()):
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


def auth_failures(env: InProcess, endpoints: list[Endpoint], extra: dict[str, str] | None = None) -> list[str]:
    """What answers a request with a missing or wrong token otherwise than 401 + JSON error +
    ``WWW-Authenticate: Bearer`` (every endpoint but ``PUBLIC`` × every entry of ``WRONG_TOKENS``)."""
    failures = []
    for e in endpoints:
        if e.public:
            continue
        for label, authorization in {**WRONG_TOKENS, **(extra or {})}.items():
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


def test_every_route_refuses_a_missing_or_wrong_token(in_process: InProcess, endpoints: list[Endpoint],
                                                       revoked: str) -> None:
    assert auth_failures(in_process, endpoints, {"revoked": f"Bearer {revoked}"}) == []


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
        if e.public or e.method not in ("POST", "PUT", "PATCH"):
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
        if expected == 404 and e.method != "HEAD":     # a HEAD answer has no body to read
            assert err["code"] == "not_found"
            assert e.url.rsplit("/", 1)[-1] in err["message"] or DUMMY_ID in err["message"], \
                f"{e}: the message should name the id: {err['message']}"


def test_no_route_answers_500_to_an_authenticated_request(in_process: InProcess,
                                                          endpoints: list[Endpoint]) -> None:
    for e in endpoints:
        resp = e.send(in_process, f"Bearer {in_process.token}")
        assert resp.status_code < 500, f"{e}: {resp.status_code} {resp.text[:300]}"
        if resp.status_code >= 400 and e.method != "HEAD":
            _assert_json_error(resp, resp.status_code, str(e))


# -- workspaces: another workspace's token sees nothing of ours ---------------------------------

@dataclass
class Owned:
    """What the ``default`` workspace owns; another workspace must never see any of it."""

    app_id: str
    function_id: str
    call_id: str
    input_id: str
    source_hash: str
    token_id: str              # a member token of ``default``
    container_ids: list[str]

    @property
    def path_params(self) -> dict[str, str]:
        """Real ids of ours for each path parameter name the API uses."""
        return {"call_id": self.call_id, "input_id": self.input_id, "name": "authz", "app_ref": self.app_id,
                "sha": self.source_hash, "token_id": self.token_id, "container_id": self.container_ids[0]}

    @property
    def leaks(self) -> list[str]:
        """Strings that must not appear in any answer to another workspace."""
        return [self.app_id, self.function_id, self.call_id, self.input_id, self.token_id,
                "authz-log-marker", "authz-result", *self.container_ids]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _create_token(env: InProcess, workspace: str, name: str) -> dict[str, Any]:
    resp = env.http.post("/v1/tokens", json={"workspace": workspace, "name": name}, headers=env.auth())
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


@pytest.fixture(scope="module")
def revoked(in_process: InProcess) -> str:
    """The secret of a member token of ``default`` that has been revoked."""
    made = _create_token(in_process, "default", "to-revoke")
    resp = in_process.http.post(f"/v1/tokens/{made['token_id']}/revoke", headers=in_process.auth())
    assert resp.status_code == 200 and resp.json()["active"] is False, resp.text
    secret: str = made["token"]
    return secret


@pytest.fixture(scope="module")
def other(in_process: InProcess) -> str:
    """A member token of workspace ``other``."""
    resp = in_process.http.post("/v1/workspaces", json={"name": "other"}, headers=in_process.auth())
    assert resp.status_code == 201, resp.text
    secret: str = _create_token(in_process, "other", "other-member")["token"]
    return secret


@pytest.fixture(scope="module")
def owned(in_process: InProcess, sdk: Client, integration_apps: Path) -> Iterator[Owned]:
    import authz_app

    from surge.sdk import serialization

    deployed = authz_app.app.deploy("authz")
    fid = deployed["functions"]["shout"]
    sub = sdk.submit({"function_id": fid}, "spawn", [serialization.serialize_args(("x",), {})],
                     idempotency_key="authz-1", wait=60.0)
    assert sub["outputs"][0]["state"] == "SUCCEEDED", sub
    deadline = time.monotonic() + 30
    while "authz-log-marker" not in str(sdk.logs(app_id=deployed["app_id"], wait=2.0)):
        assert time.monotonic() < deadline, "the container's output never reached the logs"
    containers = sdk.request("GET", "/v1/containers", params={"all": True})["containers"]
    history = sdk.request("GET", "/v1/apps/authz/history")
    member = _create_token(in_process, "default", "default-member")
    yield Owned(deployed["app_id"], fid, sub["call_id"], sub["input_ids"][0],
                history["versions"][0]["source_hash"], member["token_id"],
                [c["container_id"] for c in containers])


# What another workspace's token gets from routes that are not plain lookups of one of our ids.
FOREIGN_EXPECT: dict[tuple[str, str], int] = {
    ("GET", "/v1/blobs/{sha}/exists"): 200,    # {"exists": false}: it did not upload it
    ("PUT", "/v1/blobs/{sha}"): 400,           # an upload whose bytes do not hash to the sha
    ("POST", "/v1/apps"): 400,                 # our source archive: not uploaded by this workspace
    ("POST", "/v1/workspaces"): 403,           # members cannot create workspaces
    ("POST", "/v1/tokens"): 404,               # a token for our workspace: "no workspace 'default'"
}


def _foreign_body(e: Endpoint, o: Owned) -> dict[str, Any] | None:
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/apps"): {**SAMPLE_BODIES[("POST", "/v1/apps")], "source_hash": o.source_hash},
        ("POST", "/v1/calls"): {"function_id": o.function_id, "inputs": ["AA=="]},
        ("POST", "/v1/tokens"): {"workspace": "default", "name": "sneaky"},
        ("POST", "/v1/workspaces"): {"name": "sneaky"},
    }
    return bodies.get(e.key, SAMPLE_BODIES.get(e.key))


def test_another_workspaces_token_sees_nothing_of_ours(in_process: InProcess, endpoints: list[Endpoint],
                                                       owned: Owned, other: str) -> None:
    """Every route × method with a valid token of workspace ``other`` and our real ids: lookups
    answer 404, lists answer without any of our ids or output, and nothing changes on our side."""
    failures = []
    for e in endpoints:
        if e.public:
            continue
        url, body = e.url_with(owned.path_params), _foreign_body(e, owned)
        if e.key in RAW_BODIES:
            resp = in_process.http.request(e.method, url, content=RAW_BODIES[e.key], headers=_bearer(other))
        else:
            resp = in_process.http.request(e.method, url, json=body, headers=_bearer(other))
        what = f"{e.method} {url} with another workspace's token"
        expected = FOREIGN_EXPECT.get(e.key, 404 if e.has_path_params else None)
        # a request refused by validation before any lookup (no sample body or query for a route
        # another issue added) proves less, but gives nothing away either
        refused = resp.status_code in (400, 422) and resp.json()["error"]["code"] == "invalid"
        if resp.status_code >= 500 or (expected is not None and resp.status_code != expected and not refused):
            failures.append(f"{what}: {resp.status_code} (expected {expected}) {resp.text[:200]}")
        if e.key == ("GET", "/v1/blobs/{sha}/exists") and resp.json() != {"exists": False}:
            failures.append(f"{what}: {resp.text[:200]}")
        sent = url + str(body)    # a 404 may name the id it was given; anything else is a leak
        leaked = [s for s in owned.leaks if s in resp.text and s not in sent]
        if leaked:
            failures.append(f"{what}: the answer contains {leaked}: {resp.text[:300]}")
    assert failures == [], "\n".join(failures)
    # nothing it tried changed our side
    h = in_process.auth()
    assert in_process.http.get("/v1/apps/authz/history", headers=h).json()["state"] == "deployed"
    assert in_process.http.get(f"/v1/calls/{owned.call_id}", headers=h).json()["cancelled"] is False
    tokens = in_process.http.get("/v1/tokens", headers=h).json()["tokens"]
    assert next(t for t in tokens if t["token_id"] == owned.token_id)["active"]
    assert "sneaky" not in str(tokens)


@pytest.mark.parametrize("query", [
    "/v1/logs?app=authz", "/v1/calls?app=authz", "/v1/usage?app=authz", "/v1/containers?all=true",
    "/v1/apps?all=true", "/v1/calls?limit=1000", "/v1/logs", "/v1/usage", "/v1/tokens",
    "/v1/tokens?workspace=default",
])
def test_filters_do_not_reach_into_another_workspace(in_process: InProcess, owned: Owned, other: str,
                                                     query: str) -> None:
    resp = in_process.http.get(query, headers=_bearer(other))
    assert resp.status_code in (200, 404), resp.text
    assert [s for s in owned.leaks if s in resp.text] == [], resp.text[:300]


def test_foreign_app_id_in_a_logs_query_is_404(in_process: InProcess, owned: Owned, other: str) -> None:
    resp = in_process.http.get(f"/v1/logs?app_id={owned.app_id}", headers=_bearer(other))
    err = _assert_json_error(resp, 404, "logs of another workspace's app")
    assert owned.app_id in err["message"]
    mine = in_process.http.get(f"/v1/logs?app_id={owned.app_id}", headers=in_process.auth())
    assert "authz-log-marker" in mine.text


def test_the_same_names_live_apart_in_two_workspaces(in_process: InProcess, owned: Owned, other: str) -> None:
    """``other`` names a function of ours: not found, whatever the name."""
    resp = in_process.http.post("/v1/calls", json={"app": "authz", "function": "shout", "inputs": ["AA=="]},
                                headers=_bearer(other))
    assert _assert_json_error(resp, 404, "a call by name into another workspace")["code"] == "not_found"


def test_roles(in_process: InProcess, other: str) -> None:
    """Members manage their own workspace's member tokens; only admins go further."""
    mine = in_process.http.post("/v1/tokens", json={"name": "ci"}, headers=_bearer(other))
    assert mine.status_code == 201 and mine.json()["workspace"] == "other", mine.text
    listed = in_process.http.get("/v1/tokens", headers=_bearer(other)).json()["tokens"]
    assert {t["workspace"] for t in listed} == {"other"}
    assert all("token" not in t for t in listed)           # secrets are never listed
    as_admin = in_process.http.post("/v1/tokens", json={"role": "admin"}, headers=_bearer(other))
    assert _assert_json_error(as_admin, 403, "member creating an admin token")["code"] == "forbidden"
    bad_role = in_process.http.post("/v1/tokens", json={"role": "root"}, headers=_bearer(other))
    _assert_json_error(bad_role, 422, "unknown role")
    # the bootstrap admin token is an admin of "default" and sees every workspace
    who = in_process.http.get("/v1/tokens/current", headers=in_process.auth()).json()
    assert (who["workspace"], who["role"]) == ("default", "admin")
    names = {w["name"] for w in in_process.http.get("/v1/workspaces", headers=in_process.auth()).json()["workspaces"]}
    assert {"default", "other"} <= names
    theirs = in_process.http.get("/v1/workspaces", headers=_bearer(other)).json()["workspaces"]
    assert [w["name"] for w in theirs] == ["other"]
    dup = in_process.http.post("/v1/workspaces", json={"name": "other"}, headers=in_process.auth())
    _assert_json_error(dup, 409, "a workspace created twice")
    bad = in_process.http.post("/v1/workspaces", json={"name": "Bad Name!"}, headers=in_process.auth())
    _assert_json_error(bad, 422, "a bad workspace name")


def test_a_revoked_token_is_refused_at_once(in_process: InProcess) -> None:
    made = _create_token(in_process, "default", "short-lived")
    assert in_process.http.get("/v1/apps", headers=_bearer(made["token"])).status_code == 200
    in_process.http.post(f"/v1/tokens/{made['token_id']}/revoke", headers=in_process.auth())
    _assert_json_error(in_process.http.get("/v1/apps", headers=_bearer(made["token"])), 401, "revoked token")


def test_the_last_admin_token_cannot_be_revoked(in_process: InProcess) -> None:
    me = in_process.http.get("/v1/tokens/current", headers=in_process.auth()).json()
    resp = in_process.http.post(f"/v1/tokens/{me['token_id']}/revoke", headers=in_process.auth())
    assert "last admin token" in _assert_json_error(resp, 409, "revoking the last admin")["message"]
    assert in_process.http.get("/v1/apps", headers=in_process.auth()).status_code == 200


# -- web endpoints (issue 4): public unless requires_auth=True, which the gateway enforces ---------
@pytest.fixture(scope="module")
def web_auth(in_process: InProcess, sdk: Client, integration_apps: Path) -> Iterator[str]:
    import web_auth_app

    web_auth_app.app.deploy("web-auth")
    yield "/web/web-auth"
    in_process.http.post("/v1/apps/web-auth/stop", headers=in_process.auth())


def test_the_web_proxy_routes_are_in_the_route_table(endpoints: list[Endpoint]) -> None:
    for path in WEB_ROUTES:
        assert {e.method for e in endpoints if e.path == path} == set(WEB_METHODS), path


def test_an_unknown_web_endpoint_is_404_with_or_without_a_token(in_process: InProcess,
                                                                 endpoints: list[Endpoint]) -> None:
    """No token is asked for (endpoints are public by default) and none is needed to learn that
    nothing is there; a token sent along is never echoed."""
    for e in endpoints:
        if not e.path.startswith(PUBLIC_PREFIXES):
            continue
        for label, authorization in {**WRONG_TOKENS, "valid": f"Bearer {in_process.token}"}.items():
            resp = e.send(in_process, authorization)
            err = _assert_json_error(resp, 404, f"{e} with {label} token")
            if e.method != "HEAD":
                assert err["code"] == "not_found" and in_process.token not in resp.text


def test_a_public_web_endpoint_needs_no_token(in_process: InProcess, web_auth: str) -> None:
    default = in_process.http.headers.pop("authorization", None)    # the sdk fixture's token
    try:
        resp = in_process.http.get(f"{web_auth}/open-door")
    finally:
        if default is not None:
            in_process.http.headers["authorization"] = default
    assert resp.status_code == 200 and resp.json() == {"door": "open"}, resp.text


def test_a_requires_auth_web_endpoint_refuses_missing_wrong_and_revoked_tokens(
        in_process: InProcess, web_auth: str, revoked: str, other: str) -> None:
    url = f"{web_auth}/locked"
    bad = {**WRONG_TOKENS, "revoked": f"Bearer {revoked}"}
    default = in_process.http.headers.pop("authorization", None)    # the sdk fixture's token
    try:
        for label, authorization in bad.items():
            headers = {"Authorization": authorization} if authorization is not None else {}
            resp = in_process.http.get(url, headers=headers)
            err = _assert_json_error(resp, 401, f"requires_auth endpoint with {label} token")
            assert err["code"] == "auth" and resp.headers.get("www-authenticate") == "Bearer"
    finally:
        if default is not None:
            in_process.http.headers["authorization"] = default
    foreign = in_process.http.get(url, headers=_bearer(other))
    assert _assert_json_error(foreign, 403, "another workspace's token")["code"] == "forbidden"
    ok = in_process.http.get(url, headers=in_process.auth())
    assert ok.status_code == 200 and ok.json() == {"door": "locked, but you have the key"}, ok.text
    member = _create_token(in_process, "default", "web-member")["token"]
    assert in_process.http.get(url, headers=_bearer(member)).status_code == 200
