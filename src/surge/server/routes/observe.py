from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query

from surge.errors import NotFoundError
from surge.server.routes.deps import CURSOR_MAX, Plane, Workspace

router = APIRouter(prefix="/v1", tags=["observability"])


@router.get("/containers")
async def containers(cp: Plane, ws: Workspace, all: bool = False,
                     limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    # containers, and the snapshot zygotes metered like containers of their function (agent/starts.py)
    live = {h.id: h for h in [*cp.agent.containers.values(), *cp.agent.starts.meters.values()]}
    rows = await cp.store.list_containers(ws, active_only=not all, limit=limit)
    seen = {r.id for r in rows}
    rows += [cp.container_row(h) for h in live.values() if h.id not in seen and h.spec.workspace == ws]
    out = []
    for r in rows:
        h = live.get(r.id)
        if h is not None:
            r = cp.container_row(h)      # the stored row may lag the live container
        if h is not None:
            tag = h.spec.function_tag
        else:
            fn = await cp.store.get_function(r.function_id)
            tag = str((fn.spec.get("cls") or fn.spec.get("tag")) if fn else r.function_id)
        phases = dict(h.phases if h else r.phases)
        out.append({"container_id": r.id, "app": await cp.app_name(r.app_id), "function": tag,
                    # how it started: fresh | template | snapshot (a fork of a zygote) | zygote (one)
                    "start": phases.pop("start", None), "fallback": phases.pop("fallback", None),
                    "zygote": phases.pop("zygote", None),
                    "state": h.state.value if h else r.state, "pid": r.pid, "node": r.node_id,
                    "gpu": r.gpu_type, "gpu_indices": r.gpu_indices, "cpu": r.cpu, "memory_mib": r.memory,
                    "created_at": r.created_at, "ready_at": r.ready_at, "stopped_at": r.stopped_at,
                    "stop_reason": r.stop_reason, "exit_code": r.exit_code, "signal": r.signal,
                    "inputs_done": h.inputs_done if h else r.inputs_done,
                    "inflight": len(h.inflight) if h else 0, "phases": phases})
    return {"containers": out}


@router.post("/containers/{container_id}/stop")
async def stop_container(container_id: str, cp: Plane, ws: Workspace,
                         wait: float = Query(30.0, ge=0, le=300)) -> dict[str, Any]:
    """Stop a running container (like ``modal container stop``): it takes no new inputs, finishes
    the ones it holds, runs its exit hooks and exits; past the grace period it is killed and its
    unfinished inputs are retried elsewhere (WORKER_LOST). Waits up to ``wait`` s for the exit."""
    h = cp.agent.containers.get(container_id)
    if h is None or h.spec.workspace != ws:
        raise NotFoundError(f"no running container {container_id!r}; `surge container list` shows them")
    cp.agent.shutdown(h)
    if wait > 0:
        try:
            await asyncio.wait_for(h.exited.wait(), timeout=wait)
        except TimeoutError:
            pass
    return {"container_id": h.id, "state": h.state.value, "stopped": h.exited.is_set()}


@router.get("/logs")
async def logs(cp: Plane, ws: Workspace, app_id: str | None = None, app: str | None = None,
               function: str | None = None, since: int = Query(0, ge=0, le=CURSOR_MAX),
               wait: float = Query(0.0, ge=0, le=300)) -> dict[str, Any]:
    """Container output lines after cursor ``since`` (long-polls up to ``wait`` seconds)."""
    if app and not app_id:
        found = await cp.store.find_app(ws, app)
        if found is None:   # an empty page would read as "no output yet" for a mistyped name
            raise NotFoundError(f"no deployed app named {app!r}; `surge app list` shows the apps")
        app_id = found.id
    elif app_id:
        row = await cp.app_row(app_id)
        if row is None or row.workspace != ws:
            raise NotFoundError(f"no app {app_id!r}")
    return await cp.logs_page(app_id=app_id, function=function, since=since, wait=wait, workspace=ws)
