"""Bad requests get a 4xx with a message that says what is wrong, never a 500.

Everything here is refused before any container starts: the app the calls target is created with
real API calls (a source archive uploaded as a blob, then ``POST /v1/apps``) but never runs.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from surge import FunctionCall, OutputExpiredError
from surge.ids import new_id
from surge.sdk import source
from surge.sdk.client import Client
from surge.sdk.options import validate_options
from surge.server.routes import blobs
from tests.integration.conftest import InProcess

ARGS = base64.b64encode(b"opaque pickled args").decode()


@pytest.fixture(scope="module")
def api(in_process: InProcess) -> Iterator[Any]:
    """``api(method, path, **kw)`` with the token."""
    def call(method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return in_process.http.request(method, path, headers={**in_process.auth(), **(headers or {})}, **kw)

    yield call


def upload_source(api: Any, tmp: Path) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "errmod.py").write_text("def f(x):\n    return x\n\ndef g(x):\n    yield x\n")
    archive, sha = source.package(tmp)
    assert api("PUT", f"/v1/blobs/{sha}", content=archive).status_code == 201
    return sha


def function_spec(tag: str, *, generator: bool = False, **options: Any) -> dict[str, Any]:
    return {"tag": tag, "module": "errmod", "options": validate_options(**options).to_json(),
            "is_generator": generator, "is_async": False, "cls": None, "method": None}


@pytest.fixture(scope="module")
def source_sha(api: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    return upload_source(api, tmp_path_factory.mktemp("errsrc"))


@pytest.fixture(scope="module")
def deployed(api: Any, source_sha: str) -> dict[str, Any]:
    resp = api("POST", "/v1/apps", json={"name": "errors-app", "deployed": True, "source_hash": source_sha,
                                         "module": "errmod",
                                         "functions": [function_spec("f"), function_spec("g", generator=True)]})
    assert resp.status_code == 201, resp.text
    return resp.json()


def error_of(resp: Any, status: int) -> str:
    """The message of a JSON error answer with this status."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:500]}"
    err = resp.json()["error"]
    assert err["code"] and err["message"], resp.text
    return str(err["message"])


def submit_body(fid: str, **over: Any) -> dict[str, Any]:
    return {"function_id": fid, "inputs": [ARGS], **over}


# -- POST /v1/calls ------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "field"), [
    ({}, "inputs"),
    ({"function_id": "x"}, "inputs"),
    ({"function_id": "x", "inputs": "AAAA"}, "inputs"),               # not a list
    ({"function_id": "x", "inputs": [1, 2]}, "inputs"),               # not strings
    ({"function_id": "x", "inputs": []}, "inputs"),                   # empty
    ({"function_id": "x", "inputs": [ARGS], "wait": "soon"}, "wait"),
    ({"function_id": "x", "inputs": [ARGS], "wait": 301}, "wait"),   # over 300 s
    ({"function_id": "x", "inputs": [ARGS], "wait": -1}, "wait"),
    ({"function_id": "x", "inputs": [ARGS], "idempotency_key": "k" * 201}, "idempotency_key"),
    ({"function_id": ["x"], "inputs": [ARGS]}, "function_id"),
])
def test_submit_body_validation(api: Any, body: dict[str, Any], field: str) -> None:
    msg = error_of(api("POST", "/v1/calls", json=body), 422)
    assert msg.startswith("invalid request:") and field in msg, msg


def test_submit_body_that_is_not_json(api: Any) -> None:
    for content in (b"{not json", b"", b"[]", b"null"):
        resp = api("POST", "/v1/calls", content=content, headers={"content-type": "application/json"})
        assert 400 <= resp.status_code < 500, (content, resp.text)
        assert resp.json()["error"]["message"]


def test_submit_without_a_function(api: Any) -> None:
    msg = error_of(api("POST", "/v1/calls", json={"inputs": [ARGS]}), 400)
    assert "function_id" in msg and "app and function" in msg


def test_submit_to_an_unknown_function_id(api: Any) -> None:
    msg = error_of(api("POST", "/v1/calls", json=submit_body("fn-nope")), 404)
    assert "fn-nope" in msg


def test_submit_to_unknown_names(api: Any, deployed: dict[str, Any]) -> None:
    msg = error_of(api("POST", "/v1/calls", json={"app": "no-such-app", "function": "f", "inputs": [ARGS]}), 404)
    assert "no-such-app" in msg and "surge deploy" in msg
    msg = error_of(api("POST", "/v1/calls", json={"app": "errors-app", "function": "h", "inputs": [ARGS]}), 404)
    assert "'h'" in msg and "f, g" in msg     # lists the functions it does have


def test_submit_non_base64_input(api: Any, deployed: dict[str, Any]) -> None:
    fid = deployed["functions"]["f"]
    for bad in ("not base64!", "QUJD=extra", "é"):
        msg = error_of(api("POST", "/v1/calls", json=submit_body(fid, inputs=[ARGS, bad])), 400)
        assert "input #1" in msg and "base64" in msg


def test_submit_unknown_kind(api: Any, deployed: dict[str, Any]) -> None:
    msg = error_of(api("POST", "/v1/calls", json=submit_body(deployed["functions"]["f"], kind="bogus")), 400)
    assert "'bogus'" in msg and "remote" in msg and "spawn" in msg


def test_submit_generator_kind_mismatch(api: Any, deployed: dict[str, Any]) -> None:
    fns = deployed["functions"]
    assert "remote_gen" in error_of(api("POST", "/v1/calls", json=submit_body(fns["g"], kind="remote")), 400)
    assert ".remote()" in error_of(api("POST", "/v1/calls", json=submit_body(fns["f"], kind="generator")), 400)


def test_refused_submissions_left_no_call_behind(api: Any, deployed: dict[str, Any]) -> None:
    fid = deployed["functions"]["f"]
    api("POST", "/v1/calls", json=submit_body(fid, inputs=[ARGS, "not base64!"]))
    api("POST", "/v1/calls", json=submit_body(fid, kind="bogus"))
    calls = api("GET", "/v1/calls", params={"app": "errors-app"}).json()["calls"]
    assert calls == []


# -- other call routes -------------------------------------------------------------------------------
@pytest.mark.parametrize("query", [{"wait": 301}, {"wait": -1}, {"since": -1}, {"wait": "soon"}])
def test_outputs_query_validation(api: Any, query: dict[str, Any]) -> None:
    msg = error_of(api("GET", "/v1/calls/fc-nope/outputs", params=query), 422)
    assert next(iter(query)) in msg


@pytest.mark.parametrize("path", ["/v1/calls/fc-nope/outputs", "/v1/logs", "/v1/inputs/in-nope/events",
                                  "/v1/jobs/fc-nope/stream"])
def test_cursor_past_64_bits_is_refused_not_overflowed(api: Any, path: str) -> None:
    """Found by the API fuzzer: a ``since`` over 64 bits overflowed the store's integer (a 500)."""
    assert "since" in error_of(api("GET", path, params={"since": 2**120}), 422)


def test_add_inputs_validation(api: Any) -> None:
    for body, field in (({"inputs": [ARGS]}, "start_idx"), ({"start_idx": -1, "inputs": [ARGS]}, "start_idx"),
                        ({"start_idx": 0, "inputs": []}, "inputs")):
        assert field in error_of(api("POST", "/v1/calls/fc-nope/inputs", json=body), 422)


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 100_000}, {"limit": "many"}])
def test_list_query_validation(api: Any, query: dict[str, Any]) -> None:
    assert "limit" in error_of(api("GET", "/v1/calls", params=query), 422)
    assert "limit" in error_of(api("GET", "/v1/containers", params=query), 422)


# -- blobs ---------------------------------------------------------------------------------------
def test_blob_whose_content_does_not_match_its_sha(api: Any) -> None:
    sha = hashlib.sha256(b"the real content").hexdigest()
    msg = error_of(api("PUT", f"/v1/blobs/{sha}", content=b"other content"), 400)
    assert sha in msg and hashlib.sha256(b"other content").hexdigest() in msg
    assert api("GET", f"/v1/blobs/{sha}/exists").json() == {"exists": False}


def test_blob_named_by_something_not_a_sha256(api: Any) -> None:
    for name in ("abc", "G" * 64, "A" * 64):
        assert "sha256" in error_of(api("PUT", f"/v1/blobs/{name}", content=b"x"), 400)
        assert "sha256" in error_of(api("GET", f"/v1/blobs/{name}/exists"), 400)


def test_blob_over_the_size_limit(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "MAX_BLOB", 1000)
    data = b"x" * 1001
    sha = hashlib.sha256(data).hexdigest()
    # declared by Content-Length
    assert "1,000" in error_of(api("PUT", f"/v1/blobs/{sha}", content=data), 413)
    # streamed without a Content-Length (chunked): counted as it arrives
    chunks = iter([data[:600], data[600:]])
    assert "1,000" in error_of(api("PUT", f"/v1/blobs/{sha}", content=chunks), 413)
    assert api("GET", f"/v1/blobs/{sha}/exists").json() == {"exists": False}
    # at the limit it is accepted
    ok = data[:1000]
    assert api("PUT", f"/v1/blobs/{hashlib.sha256(ok).hexdigest()}", content=ok).status_code == 201


def test_blob_over_the_real_limit(api: Any) -> None:
    sha = "1" * 64
    # a false Content-Length over the limit: refused before a byte of the body is read
    resp = api("PUT", f"/v1/blobs/{sha}", content=b"tiny", headers={"content-length": str(blobs.MAX_BLOB + 1)})
    assert f"{blobs.MAX_BLOB + 1:,}" in error_of(resp, 413)
    # streamed in 1 MiB chunks with no length: refused once the count passes the limit
    mib = b"x" * (1 << 20)
    chunks = (mib if i < blobs.MAX_BLOB >> 20 else b"x" for i in range((blobs.MAX_BLOB >> 20) + 1))
    assert f"{blobs.MAX_BLOB:,}" in error_of(api("PUT", f"/v1/blobs/{sha}", content=chunks), 413)


# -- POST /v1/apps -------------------------------------------------------------------------------
def app_body(sha: str, **over: Any) -> dict[str, Any]:
    return {"name": "bad-app", "deployed": True, "source_hash": sha, "module": "errmod",
            "functions": [function_spec("f")], **over}


def test_create_app_whose_source_was_not_uploaded(api: Any) -> None:
    sha = hashlib.sha256(b"never uploaded").hexdigest()
    msg = error_of(api("POST", "/v1/apps", json=app_body(sha)), 400)
    assert sha in msg and "PUT /v1/blobs" in msg


@pytest.mark.parametrize("options", [
    {},                                                  # every key missing
    {"cpu": 1},
    "not an object",
    {**validate_options().to_json(), "retries": "three"},
    {**validate_options().to_json(), "gpu": "A100"},     # gpu must be {"types": [...], "count": n}
])
def test_create_app_with_options_json_that_does_not_parse(api: Any, source_sha: str, options: Any) -> None:
    fn = {**function_spec("f"), "options": options}
    msg = error_of(api("POST", "/v1/apps", json=app_body(source_sha, functions=[fn])), 400)
    assert "options" in msg


@pytest.mark.parametrize("bad", [{"cpu": "lots"}, {"timeout": -5}, {"max_inputs": 0}, {"memory": None},
                                 {"gpu": {"types": ["NOPE"], "count": 1}}])
def test_create_app_with_option_values_out_of_range(api: Any, source_sha: str, bad: dict[str, Any]) -> None:
    fn = {**function_spec("f"), "options": {**validate_options().to_json(), **bad}}
    msg = error_of(api("POST", "/v1/apps", json=app_body(source_sha, name="bad-values", functions=[fn])), 400)
    assert next(iter(bad)) in msg


@pytest.mark.parametrize(("over", "status", "words"), [
    ({"functions": []}, 422, "functions"),
    ({"name": ""}, 422, "name"),
    ({"source_hash": "abc"}, 422, "source_hash"),
    ({"functions": "f"}, 422, "functions"),
])
def test_create_app_body_validation(api: Any, source_sha: str, over: dict[str, Any], status: int,
                                    words: str) -> None:
    assert words in error_of(api("POST", "/v1/apps", json=app_body(source_sha, **over)), status)


def test_create_app_with_duplicate_function_tags(api: Any, source_sha: str) -> None:
    msg = error_of(api("POST", "/v1/apps", json=app_body(source_sha, functions=[function_spec("f")] * 2)), 400)
    assert "unique" in msg


def test_rollback_without_an_earlier_version(api: Any, source_sha: str) -> None:
    assert api("POST", "/v1/apps", json=app_body(source_sha, name="one-version")).status_code == 201
    msg = error_of(api("POST", "/v1/apps/one-version/rollback"), 409)
    assert "one-version" in msg
    msg = error_of(api("POST", "/v1/apps/one-version/rollback", json={"version": 7}), 404)
    assert "7" in msg and "versions: 1" in msg
    assert "version" in error_of(api("POST", "/v1/apps/one-version/rollback", json={"version": 0}), 422)


# -- the schema ----------------------------------------------------------------------------------
def test_openapi_documents_every_v1_route(api: Any, in_process: InProcess) -> None:
    from tests.integration.test_api_auth import inventory

    schema = api("GET", "/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    served = {(e.method, e.path) for e in inventory(in_process.app) if e.path.startswith("/v1/")}
    assert served, "no /v1 routes found"
    assert served <= documented, f"undocumented: {sorted(served - documented)}"
    submit = schema["paths"]["/v1/calls"]["post"]
    assert "requestBody" in submit and submit.get("description")


def test_unknown_recent_call_is_not_found(api: Any) -> None:
    assert "no call" in error_of(api("GET", f"/v1/calls/{new_id('fc')}/outputs"), 404)


def test_call_older_than_its_retention_is_expired_not_missing(api: Any, sdk: Client) -> None:
    """A call id carries its creation time: past the retention its absence means it was purged."""
    old = f"fc-{int((time.time() - 8 * 86400) * 1000):x}-{'0' * 16}"
    resp = api("GET", f"/v1/calls/{old}/outputs")
    assert resp.status_code == 410
    assert resp.json()["error"]["code"] == "expired"
    assert "retention" in resp.json()["error"]["message"]
    with pytest.raises(OutputExpiredError, match="retention"):
        FunctionCall.from_id(old).get(timeout=1)
