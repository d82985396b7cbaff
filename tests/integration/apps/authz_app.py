"""An app for the workspace-isolation tests: its output and ids must never reach another workspace."""

from __future__ import annotations

import surge

app = surge.App("authz")


@app.function()
def shout(x: str) -> str:
    print(f"authz-log-marker {x}", flush=True)
    return f"authz-result {x}"
