"""Web endpoints for the auth tests: one public, one that demands a surge token."""

from __future__ import annotations

import surge

app = surge.App("web-auth")


@app.function()
@surge.fastapi_endpoint()
def open_door() -> dict[str, str]:
    return {"door": "open"}


@app.function()
@surge.fastapi_endpoint(requires_auth=True)
def locked() -> dict[str, str]:
    return {"door": "locked, but you have the key"}
