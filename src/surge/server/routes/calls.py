from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from surge.core.models import InputState
from surge.server.calls import output_json
from surge.server.routes.deps import CURSOR_MAX, Plane, Workspace

router = APIRouter(prefix="/v1", tags=["calls"])


class Submit(BaseModel):
    function_id: str | None = None
    app: str | None = None
    function: str | None = None
    kind: str = "remote"
    inputs: list[str] = Field(min_length=1, max_length=10_000,
                              description="base64 of each input's pickled (args, kwargs)")
    params: str | None = Field(default=None, description="base64 of pickled class parameters")
    idempotency_key: str | None = Field(default=None, max_length=200)
    wait: float = Field(default=0.0, ge=0, le=300, description="seconds to wait for the outputs")


class AddInputs(BaseModel):
    start_idx: int = Field(ge=0)
    inputs: list[str] = Field(min_length=1, max_length=10_000)


@router.post("/calls", status_code=201)
async def submit(body: Submit, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Create a call with its inputs. Answers after they are committed (accepted = durable);
    with ``wait`` > 0 the outputs finished by then are included."""
    return await cp.submit(ws, body.model_dump())


@router.get("/calls")
async def list_calls(cp: Plane, ws: Workspace, limit: int = Query(50, ge=1, le=1000),
                     app: str | None = None) -> dict[str, Any]:
    fids = None
    if app:
        found = await cp.store.find_app(ws, app)
        fids = [f.id for v in (await cp.store.list_versions(found.id) if found else [])
                for f in await cp.store.list_functions(found.id, v.version)] if found else []
    calls = await cp.store.list_calls(ws, limit=limit, function_ids=fids)
    return {"calls": [await cp.call_summary(c) for c in calls]}


@router.get("/calls/{call_id}")
async def get_call(call_id: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    call = await cp.get_call_row(ws, call_id)
    out = await cp.call_summary(call)
    rows = await cp.store.list_inputs(call_id, limit=1000)
    out["input_list"] = [{"input_id": r.id, "idx": r.idx, "state": r.state.value, "attempt": r.attempt,
                          "reason": r.terminal_reason if r.state != InputState.SUCCEEDED else None,
                          "message": output_json(r)["message"], "container_id": r.container_id,
                          "started_at": r.started_at, "finished_at": r.finished_at,
                          "user_failures": r.user_failures, "infra_failures": r.infra_failures}
                         for r in rows]
    return out


@router.post("/calls/{call_id}/inputs", status_code=201)
async def add_inputs(call_id: str, body: AddInputs, cp: Plane, ws: Workspace) -> dict[str, Any]:
    """Append inputs to a map call (idempotent per index)."""
    return await cp.add_inputs(ws, call_id, body.model_dump())


@router.get("/calls/{call_id}/outputs")
async def outputs(call_id: str, cp: Plane, ws: Workspace, since: int = Query(0, ge=0, le=CURSOR_MAX),
                  wait: float = Query(0.0, ge=0, le=300)) -> dict[str, Any]:
    """Outputs completed after cursor ``since`` (long-polls up to ``wait`` seconds)."""
    return await cp.outputs(ws, call_id, since, wait)


@router.post("/calls/{call_id}/cancel")
async def cancel(call_id: str, cp: Plane, ws: Workspace) -> dict[str, Any]:
    return await cp.cancel(ws, call_id)


@router.get("/inputs/{input_id}/events")
async def events(input_id: str, cp: Plane, ws: Workspace, since: int = Query(-1, ge=-1, le=CURSOR_MAX),
                 wait: float = Query(0.0, ge=0, le=300)) -> dict[str, Any]:
    """Generator items (and the final output once the input is terminal)."""
    return await cp.events(ws, input_id, since, wait)
