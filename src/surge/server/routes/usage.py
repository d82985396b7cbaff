from __future__ import annotations

import dataclasses
import time
from typing import Any

from fastapi import APIRouter, Query

from surge.core.metering import (
    DEFAULT_PRICES,
    ContainerResources,
    UsageReport,
    cold_starts,
    segments,
    summarize,
)
from surge.server.routes.deps import Plane, Workspace

router = APIRouter(prefix="/v1", tags=["usage"])


def _report_json(r: UsageReport) -> dict[str, Any]:
    return {"phases": {k: dataclasses.asdict(v) for k, v in r.lines_by_phase.items()},
            "total": dataclasses.asdict(r.total), "billed_cost": r.billed_cost,
            "billed_seconds": sum(r.billed_seconds.values()), "containers": len(r.billed_seconds)}


@router.get("/usage")
async def usage(cp: Plane, ws: Workspace, since: float | None = Query(None, description="UNIX seconds"),
                until: float | None = Query(None, description="UNIX seconds"),
                app: str | None = Query(None, description="only this app (name)")) -> dict[str, Any]:
    """Per-second metering: GPU/CPU/memory seconds and cost, split into cold start, busy (inference)
    and idle (keep-warm), per function, from every container's recorded lifecycle."""
    now = time.time()
    rows = await cp.store.list_containers(ws, active_only=False, limit=100_000)
    names = {r.app_id: await cp.app_name(r.app_id) for r in rows}
    if app:
        rows = [r for r in rows if names[r.app_id] == app]
    since = now - 86400 if since is None else since
    rows = [r for r in rows if r.stopped_at is None or r.stopped_at >= since]
    resources = {r.id: ContainerResources(r.gpu_type, len(r.gpu_indices), r.cpu, r.memory) for r in rows}
    tags: dict[str, str] = {}
    for r in rows:
        h = cp.agent.containers.get(r.id)
        fn = None if h else await cp.store.get_function(r.function_id)
        tag = h.spec.function_tag if h else str((fn.spec.get("cls") or fn.spec.get("tag")) if fn else "?")
        # a memory snapshot's zygote holds the function's memory: billed beside it, apart
        tags[r.id] = f"{names[r.app_id]}::{tag}" + (" [snapshot]" if r.phases.get("start") == "zygote" else "")
    events = await cp.store.usage_events(container_ids=list(resources), since=0.0) if resources else []
    segs = segments([(e.container_id, e.kind, e.at) for e in events], now)
    report = summarize(segs, resources, DEFAULT_PRICES, since=since, until=until or now, group_by=lambda cid: tags.get(cid, "?"))
    out = _report_json(report)
    out["by_function"] = {k: _report_json(v) for k, v in sorted(report.by_group.items())}
    started = [r for r in rows if since <= r.created_at <= (until or now) and r.phases.get("start") != "zygote"]
    out["cold_starts"] = {
        kind: {"count": c.count, "ready": c.ready, "seconds": c.seconds, "mean_seconds": c.mean}
        for kind, c in cold_starts([(str(r.phases.get("start") or "fresh"),
                                     r.ready_at - r.created_at if r.ready_at else None) for r in started]).items()
        if kind != "zygote"}
    out["window"] = {"since": since, "until": until or now}
    out["prices"] = {"gpu_per_second": dict(DEFAULT_PRICES.gpu_per_second),
                     "cpu_core_per_second": DEFAULT_PRICES.cpu_core_per_second,
                     "memory_gib_per_second": DEFAULT_PRICES.memory_gib_per_second}
    return out
