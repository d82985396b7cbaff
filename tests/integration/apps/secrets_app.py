"""Functions for tests/integration/test_secrets.py. Values never appear in this file: the named
secret is created by the test, and the inline one comes from the test process's environment
(``SECRETS_TEST_INLINE``) when the test imports this module."""

from __future__ import annotations

import hashlib
import os

import surge

app = surge.App("secrets-integ")
INLINE = os.environ.get("SECRETS_TEST_INLINE", "unset-in-containers")


def _digest(key: str) -> str | None:
    value = os.environ.get(key)
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


@app.function(secrets=[surge.Secret.from_name("integ-named"), surge.Secret.from_dict({"INLINE_KEY": INLINE})])
def digest(key: str) -> str | None:
    """A hash of the variable (never the value itself), or None if it is not set."""
    return _digest(key)


@app.function(secrets=[surge.Secret.from_dict({"SHARED": INLINE}), surge.Secret.from_name("integ-named")])
def named_last(key: str) -> str | None:
    return _digest(key)


@app.function()
def no_secrets(key: str) -> str | None:
    return _digest(key)


@app.function(secrets=[surge.Secret.from_name("integ-named")])
def shout(key: str) -> str:
    """Prints the value (as a careless user might) and a marker; returns the marker."""
    print(f"the value is {os.environ[key]}!", flush=True)
    print("control-marker-7f3a", flush=True)
    return "printed"
