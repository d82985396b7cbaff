"""The cron loop: starts the scheduled runs of deployed apps, each scheduled time at most once.

Every tick (1 s) it reads which apps are deployed and, for each function of their current version
that has a ``schedule``, asks ``surge.core.schedule.decide`` what is due. A due time becomes a
call (kind ``schedule``) through ``Store.create_scheduled_call``, which records
``(schedule, fire_at)`` under a unique key *in the same transaction* as the call: a control
plane killed at any point, then restarted, either finds the fire recorded (and its call queued)
or finds nothing and fires it then, never both. After downtime, one catch-up run covers the
missed times (they are logged as missed).

Schedules belong to the deployed version: a redeploy replaces them (a ``Period`` restarts from
the new deploy, as in Modal; a ``Cron`` keeps to the wall clock), ``surge app stop`` ends them,
and ephemeral apps (``surge run``) never fire them.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.core import schedule as sched
from surge.core.models import CallKind
from surge.ids import new_id
from surge.server.pools import Work
from surge.store.base import AppRow, CallRow, FunctionRow, NewInput, ScheduleFire

if TYPE_CHECKING:
    from surge.server.controlplane import ControlPlane

log = logging.getLogger("surge.cron")

INTERVAL = 1.0                   # seconds between ticks
# A Cron's times count from its version's deploy less this slack, so a time that falls between
# the old version's last tick and the deploy still fires (once: the key is per app and function).
ANCHOR_SLACK = 2 * INTERVAL
PURGE_EVERY = 3600.0
FIRE_RETENTION = 30 * 86400.0    # fire records kept this long (each schedule's latest: forever)


def schedule_key(app_id: str, tag: str) -> str:
    return f"{app_id}/{tag}"


@dataclass
class Entry:
    """One active schedule: a function of a deployed app's current version."""

    key: str
    workspace: str
    app_name: str
    function: FunctionRow
    spec: sched.Schedule
    anchor: float
    args: bytes
    last_fired: float | None = None
    next_at: float | None = None
    missed: int = 0


def check_schedules(functions: list[dict[str, Any]]) -> None:
    """Validate ``schedule`` in function specs from a client, as strictly as the SDK does."""
    for f in functions:
        raw = f.get("schedule")
        if raw is None:
            continue
        tag = f.get("tag")
        try:
            sched.from_json(raw)
        except errors.InvalidError as exc:
            raise errors.InvalidError(f"function {tag!r}: invalid schedule: {exc}") from None
        if f.get("cls") or f.get("is_generator"):
            raise errors.InvalidError(f"function {tag!r}: schedules are supported on plain (non-generator) "
                                      "functions, not class methods or generators")
        try:
            base64.b64decode(str(raw.get("args", "")), validate=True)
        except ValueError:
            raise errors.InvalidError(f"function {tag!r}: schedule.args must be base64 bytes") from None


class CronLoop:
    def __init__(self, cp: ControlPlane, *, catchup: int = 1) -> None:
        self.cp = cp
        self.catchup = catchup
        self.entries: dict[str, Entry] = {}
        self._versions: dict[tuple[str, int], list[Entry]] = {}   # (app id, version) -> its schedules
        self._purged_at = 0.0
        self.fired = 0

    async def tick(self, now: float) -> None:
        await self._refresh()
        for e in list(self.entries.values()):
            if e.next_at is None or now >= e.next_at:
                try:
                    await self._run(e, now)
                except Exception:   # one schedule's failure must not stop the others
                    log.exception("schedule %s failed", e.key)
        if now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            await self.cp.store.purge_schedule_fires(now - FIRE_RETENTION)

    async def _refresh(self) -> None:
        """The schedules of every deployed app's current version (each new version read once;
        an entry lives as long as its version is current, keeping its next fire time)."""
        store = self.cp.store
        live: dict[str, Entry] = {}
        current: dict[tuple[str, int], list[Entry]] = {}
        for ws in await store.list_workspaces():
            for app in await store.list_apps(ws.name):
                if app.state != "deployed" or not app.current_version:
                    continue
                key = (app.id, app.current_version)
                found = self._versions.get(key)
                if found is None:
                    found = await self._load(app.id, app.name, app.workspace, app.current_version)
                current[key] = found
                live.update((e.key, e) for e in found)
        self._versions = current
        self.entries = live

    async def _load(self, app_id: str, app_name: str, workspace: str, version: int) -> list[Entry]:
        row = await self.cp.store.get_version(app_id, version)
        out = []
        for fn in await self.cp.store.list_functions(app_id, version):
            raw = fn.spec.get("schedule")
            if not raw or row is None:
                continue
            try:
                spec = sched.from_json(raw)
            except errors.InvalidError as exc:   # stored by an older server with laxer checks
                log.warning("%s/%s: ignoring its schedule: %s", app_name, fn.tag, exc)
                continue
            anchor = row.created_at if isinstance(spec, sched.PeriodSpec) else row.created_at - ANCHOR_SLACK
            key = schedule_key(app_id, fn.tag)
            out.append(Entry(key=key, workspace=workspace, app_name=app_name, function=fn, spec=spec,
                             anchor=anchor, args=base64.b64decode(raw.get("args") or ""),
                             last_fired=await self.cp.store.last_schedule_fire(key)))
        return out

    async def _run(self, e: Entry, now: float) -> None:
        d = sched.decide(e.spec, anchor=e.anchor, last_fired=e.last_fired, now=now, catchup=self.catchup)
        if d.missed:
            log.warning("%s/%s: %d scheduled run(s) missed while the control plane was down; "
                        "running %d catch-up run(s)", e.app_name, e.function.tag, d.missed, len(d.fire))
        for fire_at in d.fire:
            await self._fire(e, fire_at, now)
            e.last_fired = fire_at
        e.missed += d.missed
        e.next_at = d.next_at

    async def _fire(self, e: Entry, fire_at: float, now: float) -> None:
        cp, fn = self.cp, e.function
        opts = fn.spec.get("options", {})
        new_input = NewInput(idx=0, args=e.args, timeout=float(opts.get("timeout", 300)),
                             max_retries=int((opts.get("retries") or {}).get("max_retries", 0)))
        call = CallRow(id=new_id("fc"), workspace=e.workspace, function_id=fn.id, kind=CallKind.SCHEDULE.value,
                       created_at=now, pool_key=fn.id, input_count=1,
                       expires_at=now + cp.config.result_retention)
        fire = ScheduleFire(schedule_key=e.key, fire_at=fire_at, call_id=call.id, workspace=e.workspace,
                            fired_at=now)
        created = await cp.store.create_scheduled_call(fire, call, [new_input], now)
        if created is None:
            log.info("%s/%s: the run for %.3f was already started", e.app_name, fn.tag, fire_at)
            return
        call, rows = created
        pool = await cp.pool(fn, fn.id, None, e.workspace)
        cp.dispatcher.enqueue(pool, [Work.from_row(r, fn) for r in rows], now)
        self.fired += 1
        log.info("%s/%s: scheduled run for %.3f started (call %s)", e.app_name, fn.tag, fire_at, call.id)

    async def describe(self, app: AppRow) -> list[dict[str, Any]]:
        """The app's active schedules with their next and last fire times."""
        if app.state != "deployed" or not app.current_version:
            return []
        found = self._versions.get((app.id, app.current_version))
        if found is None:
            found = await self._load(app.id, app.name, app.workspace, app.current_version)
        now = time.time()
        return [{"function": e.function.tag, "schedule": e.spec.describe(), "spec": e.spec.to_json(),
                 "next_at": e.next_at if e.next_at is not None else
                 sched.next_fire(e.spec, anchor=e.anchor, after=max(now, e.last_fired or 0.0)),
                 "last_fired": e.last_fired, "missed": e.missed} for e in found]
