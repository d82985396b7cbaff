"""A function whose named secret must have a key (``required_keys``), for tests/integration/test_secrets.py."""

from __future__ import annotations

import surge

app = surge.App("secrets-req")


@app.function(secrets=[surge.Secret.from_name("integ-named", required_keys=["NAMED_KEY"])])
def needs_key() -> int:
    return 1
