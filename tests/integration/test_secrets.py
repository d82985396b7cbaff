"""Secrets through the real control-plane app in-process (real worker processes): the write-only
HTTP routes, deploy-time checks naming the secret, injection into only the functions that name
them, override order, encryption at rest, and failure when a secret is deleted after deploy."""

from __future__ import annotations

import hashlib
import importlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import surge
from surge.sdk.client import Client
from tests.integration.conftest import InProcess


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def raw_database(home: Path) -> bytes:
    """Every byte of the SQLite database, its WAL and shared memory, as they sit on disk."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("surge.db*")))


def test_routes_are_write_only(in_process: InProcess) -> None:
    http, value = in_process.http, f"route-canary-{secrets.token_hex(8)}"
    r = http.post("/v1/secrets", json={"name": "r1", "env": {"API_KEY": value, "B": "x"}}, headers=in_process.auth())
    assert r.status_code == 201, r.text
    assert r.json()["keys"] == ["API_KEY", "B"] and r.json()["created"] is True
    again = http.post("/v1/secrets", json={"name": "r1", "env": {"API_KEY": "y"}}, headers=in_process.auth())
    assert again.status_code == 409 and "--force" in again.json()["error"]["message"]
    replaced = http.post("/v1/secrets", json={"name": "r1", "env": {"C": value}, "overwrite": True},
                         headers=in_process.auth())
    assert replaced.status_code == 201 and replaced.json() == {**replaced.json(), "keys": ["C"], "created": False}
    listing = http.get("/v1/secrets", headers=in_process.auth())
    assert listing.status_code == 200 and [s["name"] for s in listing.json()["secrets"]] == ["r1"]
    for resp in (r, again, replaced, listing):
        assert value not in resp.text and "route-canary" not in resp.text
    # every route that mentions secrets, for a value: the OpenAPI schema has no response field for one
    schema = http.get("/openapi.json", headers=in_process.auth()).json()
    for path, ops in schema["paths"].items():
        if path.startswith("/v1/secrets"):
            for op in ops.values():
                assert "env" not in str(op.get("responses", {})), path
    assert http.delete("/v1/secrets/r1", headers=in_process.auth()).status_code == 200
    gone = http.delete("/v1/secrets/r1", headers=in_process.auth())
    assert gone.status_code == 404 and "'r1'" in gone.json()["error"]["message"]
    assert value.encode() not in raw_database(in_process.home)


@pytest.mark.parametrize("body, status, message", [
    ({"name": "bad name", "env": {"A": "1"}}, 400, "not valid"),
    ({"name": "ok", "env": {"1A": "hidden-value"}}, 400, "not a valid environment variable name"),
    ({"name": "ok", "env": {}}, 422, "env"),
    ({"name": "ok", "env": {"A": 5}}, 422, "env"),
])
def test_bad_bodies_are_4xx_without_values(in_process: InProcess, body: dict[str, Any], status: int,
                                           message: str) -> None:
    r = in_process.http.post("/v1/secrets", json=body, headers=in_process.auth())
    assert r.status_code == status and message in r.text, r.text
    assert "hidden-value" not in r.text


def test_secrets_need_the_token(in_process: InProcess) -> None:
    assert in_process.http.get("/v1/secrets").status_code == 401
    assert in_process.http.post("/v1/secrets", json={"name": "x", "env": {"A": "1"}}).status_code == 401
    assert in_process.http.get("/v1/secrets", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.fixture(scope="module")
def secrets_app(sdk: Client, in_process: InProcess, integration_apps: Path) -> Iterator[Any]:
    os.environ["SECRETS_TEST_INLINE"] = INLINE
    try:
        sys.modules.pop("secrets_app", None)
        yield importlib.import_module("secrets_app")
    finally:
        os.environ.pop("SECRETS_TEST_INLINE", None)


INLINE = f"inline-canary-{secrets.token_hex(8)}"
NAMED = f"named-canary-{secrets.token_hex(8)}"


def test_a_missing_named_secret_fails_the_deploy_naming_it(in_process: InProcess, secrets_app: Any) -> None:
    in_process.http.delete("/v1/secrets/integ-named", headers=in_process.auth())
    with pytest.raises(surge.NotFoundError, match=r"secret 'integ-named' not found.*surge secret create integ-named"):
        secrets_app.app.deploy(name="secrets-missing")
    import secrets_req_app

    in_process.http.post("/v1/secrets", json={"name": "integ-named", "env": {"OTHER": "1"}},
                         headers=in_process.auth())
    try:
        with pytest.raises(surge.NotFoundError, match=r"'integ-named' has no key.*NAMED_KEY.*it has: OTHER"):
            secrets_req_app.app.deploy()
    finally:
        in_process.http.delete("/v1/secrets/integ-named", headers=in_process.auth())


def test_injection_order_and_encryption_at_rest(in_process: InProcess, secrets_app: Any) -> None:
    r = in_process.http.post("/v1/secrets", json={"name": "integ-named", "env": {"NAMED_KEY": NAMED, "SHARED": NAMED}},
                             headers=in_process.auth())
    assert r.status_code == 201, r.text
    deployed = secrets_app.app.deploy(name="secrets-at-rest")
    try:
        digest = surge.Function.from_name("secrets-at-rest", "digest")
        assert digest.remote("NAMED_KEY") == sha(NAMED)
        assert digest.remote("INLINE_KEY") == sha(INLINE)
        assert digest.remote("NOT_SET") is None
        # from_dict then from_name: the later (named) value wins for SHARED
        assert surge.Function.from_name("secrets-at-rest", "named_last").remote("SHARED") == sha(NAMED)
        # a function that names no secret sees none of them
        none = surge.Function.from_name("secrets-at-rest", "no_secrets")
        assert [none.remote(k) for k in ("NAMED_KEY", "INLINE_KEY", "SHARED")] == [None, None, None]
        # the stored function spec holds names and sealed bytes, no values
        fns = in_process.http.get("/v1/apps/secrets-at-rest/functions", headers=in_process.auth())
        assert fns.status_code == 200 and INLINE not in fns.text and NAMED not in fns.text
        options = {f["tag"]: f["options"] for f in fns.json()["functions"]}
        assert options["digest"]["env"] == {}
        # a careless print of the value is redacted from the stored logs; other output stays
        assert surge.Function.from_name("secrets-at-rest", "shout").remote("NAMED_KEY") == "printed"
        logs = _logs(in_process, deployed["app_id"], "control-marker-7f3a")
        assert "the value is ***!" in logs and NAMED not in logs
        # ... and not a byte of either value is in the database in clear
        db = raw_database(in_process.home)
        assert INLINE.encode() not in db and NAMED.encode() not in db
        assert b"control-marker-7f3a" in db and b"NAMED_KEY" in db     # the search does find what is there
    finally:
        in_process.http.post("/v1/apps/secrets-at-rest/stop", headers=in_process.auth())


def test_a_secret_deleted_after_deploy_fails_new_containers_naming_it(in_process: InProcess,
                                                                      secrets_app: Any) -> None:
    in_process.http.post("/v1/secrets", json={"name": "integ-named", "env": {"NAMED_KEY": NAMED}, "overwrite": True},
                         headers=in_process.auth())
    secrets_app.app.deploy(name="secrets-deleted")
    try:
        assert in_process.http.delete("/v1/secrets/integ-named", headers=in_process.auth()).status_code == 200
        with pytest.raises(surge.Error, match="secret 'integ-named' not found") as err:
            surge.Function.from_name("secrets-deleted", "shout").remote("NAMED_KEY")
        assert NAMED not in str(err.value)
    finally:
        in_process.http.post("/v1/apps/secrets-deleted/stop", headers=in_process.auth())


def _logs(in_process: InProcess, app_id: str, marker: str) -> str:
    import time

    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        r = in_process.http.get("/v1/logs", params={"app_id": app_id, "wait": 1}, headers=in_process.auth())
        text = "\n".join(line["text"] for line in r.json()["lines"])
        if marker in text:
            return text
    raise AssertionError(f"marker not in logs: {text!r}")
