"""``SqlStore``: the store's logic, written once for SQLite and PostgreSQL.

Every public method is one transaction generator (see ``surge.store._sql``) handed to ``_run``,
which the concrete store implements; reads run outside explicit transactions.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

from surge.core.models import ContainerState, InputState
from surge.errors import ConflictError, NotFoundError
from surge.ids import new_id
from surge.store import _codec as C
from surge.store._sql import (
    NO_LIMIT,
    Exec,
    Guarded,
    Insert,
    MigrationLock,
    Row,
    Rows,
    Script,
    Tx,
    load_migrations,
    single,
)
from surge.store._sql import (
    QUERIES as Q,
)
from surge.store.base import (
    TRANSITION_COLUMNS,
    WEBHOOK_STATES,
    AppRow,
    AppVersionRow,
    CallRow,
    ContainerRow,
    FunctionRow,
    InputEvent,
    InputRow,
    JobRow,
    LogLine,
    NewInput,
    ScheduleFire,
    SecretRow,
    Store,
    TokenRow,
    Transition,
    UsageEvent,
    VolumeRow,
    WebhookAttempt,
    WebhookRow,
    WorkspaceRow,
)

T = TypeVar("T")

_ACTIVE_CONTAINER_STATES = [str(s) for s in ContainerState if s is not ContainerState.STOPPED]
_UPSERT_CONTAINER = "ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in C.CONTAINER.columns if c != "id")
_LOG_ID = C.LOG.columns.index("id")


class SqlStore(Store):
    """Store logic over a SQL database; subclasses supply ``_run`` and the connection."""

    migrations_dir: ClassVar[str]

    @abc.abstractmethod
    async def _run(self, tx: Tx[T], *, write: bool) -> T:
        """Run ``tx`` in one transaction if ``write``, else as plain reads."""

    async def _read(self, sql: str, *params: Any) -> list[Row]:
        rows: list[Row] = await self._run(single(Rows(sql, params)), write=False)
        return rows

    async def _migrate(self) -> list[int]:
        """Apply pending migrations in order, each in its own transaction; returns the versions."""
        await self._run(single(Exec(Q["create_schema_migrations"])), write=True)
        applied = {r["version"] for r in await self._read(Q["applied_migrations"])}
        done = []
        for version, script in load_migrations(self.migrations_dir):
            if version not in applied and await self._run(_migration(version, script), write=True):
                done.append(version)
        return done

    async def ping(self) -> None:
        # a write transaction: SQLite answers reads while another process holds its write lock
        await self._run(single(Rows(Q["ping"], ())), write=True)

    # -- apps, versions, functions -------------------------------------------------------------
    async def create_version(self, workspace: str, name: str, *, deployed: bool, source_hash: str,
                             module: str, spec: dict[str, Any],
                             functions: Sequence[tuple[str, dict[str, Any]]],
                             now: float) -> tuple[AppRow, AppVersionRow, list[FunctionRow]]:
        tx = _create_version(workspace, name, deployed, source_hash, module, spec, functions, now)
        return await self._run(tx, write=True)

    async def get_app(self, app_id: str) -> AppRow | None:
        return _first(C.APP, await self._read(Q["get_app"], app_id))

    async def find_app(self, workspace: str, name: str) -> AppRow | None:
        return _first(C.APP, await self._read(Q["find_app"], workspace, name))

    async def list_apps(self, workspace: str, *, include_ephemeral: bool = False) -> list[AppRow]:
        return C.APP.rows(await self._read(Q["list_apps"], workspace, include_ephemeral))

    async def set_app_state(self, app_id: str, state: str, *, current_version: int | None = None) -> None:
        await self._run(single(Exec(Q["set_app_state"], (state, current_version, app_id))), write=True)

    async def list_versions(self, app_id: str) -> list[AppVersionRow]:
        return C.VERSION.rows(await self._read(Q["list_versions"], app_id))

    async def get_version(self, app_id: str, version: int) -> AppVersionRow | None:
        return _first(C.VERSION, await self._read(Q["get_version"], app_id, version))

    async def get_function(self, function_id: str) -> FunctionRow | None:
        return _first(C.FUNCTION, await self._read(Q["get_function"], function_id))

    async def list_functions(self, app_id: str, version: int) -> list[FunctionRow]:
        return C.FUNCTION.rows(await self._read(Q["list_functions"], app_id, version))

    # -- calls and inputs ----------------------------------------------------------------------
    async def create_call(self, call: CallRow, inputs: Sequence[NewInput],
                          now: float) -> tuple[CallRow, list[InputRow], bool]:
        return await self._run(_create_call(call, inputs, now), write=True)

    async def add_inputs(self, call_id: str, inputs: Sequence[NewInput], now: float) -> list[InputRow]:
        if not inputs:
            return []
        return await self._run(_add_inputs(call_id, inputs, now), write=True)

    async def get_call(self, call_id: str) -> CallRow | None:
        return _first(C.CALL, await self._read(Q["get_call"], call_id))

    async def list_calls(self, workspace: str, *, limit: int = 50,
                         function_ids: Sequence[str] | None = None) -> list[CallRow]:
        rows = await self._read(Q["list_calls"], workspace, function_ids is None,
                                list(function_ids or ()), limit)
        return C.CALL.rows(rows)

    async def set_call_cancelled(self, call_id: str) -> None:
        await self._run(single(Exec(Q["cancel_call"], (call_id,))), write=True)

    async def call_counts(self, call_id: str) -> dict[str, int]:
        return {r["state"]: int(r["n"]) for r in await self._read(Q["call_counts"], call_id)}

    async def get_input(self, input_id: str) -> InputRow | None:
        return _first(C.INPUT, await self._read(Q["get_input"], input_id))

    async def get_inputs(self, input_ids: Sequence[str]) -> list[InputRow]:
        """In the order of ``input_ids``; unknown ids are left out."""
        if not input_ids:
            return []
        found = {r.id: r for r in C.INPUT.rows(await self._read(Q["get_inputs"], list(input_ids)))}
        return [found[i] for i in input_ids if i in found]

    async def list_inputs(self, call_id: str, *, states: Sequence[InputState] | None = None,
                          limit: int | None = None) -> list[InputRow]:
        rows = await self._read(Q["list_inputs"], call_id, states is None, _strs(states or ()),
                                NO_LIMIT if limit is None else limit)
        return C.INPUT.rows(rows)

    async def inputs_in_state(self, states: Sequence[InputState], *,
                              limit: int | None = None) -> list[InputRow]:
        rows = await self._read(Q["inputs_in_state"], _strs(states), NO_LIMIT if limit is None else limit)
        return C.INPUT.rows(rows)

    async def transition(self, transitions: Sequence[Transition], now: float) -> list[bool]:
        for t in transitions:
            bad = set(t.set) - TRANSITION_COLUMNS
            if bad:
                raise ValueError(f"Transition.set may not set {sorted(bad)} (input {t.input_id}); "
                                 f"allowed columns: {sorted(TRANSITION_COLUMNS)}")
        if not transitions:
            return []
        return await self._run(_transition(transitions, now), write=True)

    async def renew_leases(self, leases: Sequence[tuple[str, int]], expires_at: float) -> int:
        if not leases:
            return 0
        items = [(("lease_expires_at",), (input_id, ("RUNNING",), attempt, expires_at))
                 for input_id, attempt in leases]
        return sum(await self._run(_guarded(items), write=True))

    async def expired_leases(self, now: float, *, limit: int = 1000) -> list[InputRow]:
        return C.INPUT.rows(await self._read(Q["expired_leases"], now, limit))

    async def outputs_since(self, call_id: str, since_seq: int, *, limit: int = 1000) -> list[InputRow]:
        return C.INPUT.rows(await self._read(Q["outputs_since"], call_id, since_seq, limit))

    async def purge_expired(self, now: float) -> int:
        return await self._run(_purge_expired(now), write=True)

    # -- events --------------------------------------------------------------------------------
    async def append_events(self, events: Sequence[InputEvent]) -> None:
        if events:
            op = Insert("events", C.EVENT.columns, [C.EVENT.values(e) for e in events],
                        "ON CONFLICT (input_id, seq) DO NOTHING")
            await self._run(single(op), write=True)

    async def events_since(self, input_id: str, since_seq: int, *, limit: int = 1000) -> list[InputEvent]:
        return C.EVENT.rows(await self._read(Q["events_since"], input_id, since_seq, limit))

    # -- containers, usage, logs ---------------------------------------------------------------
    async def upsert_container(self, row: ContainerRow) -> None:
        op = Insert("containers", C.CONTAINER.columns, [C.CONTAINER.values(row)], _UPSERT_CONTAINER)
        await self._run(single(op), write=True)

    async def get_container(self, container_id: str) -> ContainerRow | None:
        return _first(C.CONTAINER, await self._read(Q["get_container"], container_id))

    async def list_containers(self, workspace: str | None = None, *, active_only: bool = True,
                              limit: int = 500) -> list[ContainerRow]:
        where, params = _where(("workspace = ?", workspace),
                               ("state = ANY(?)", _ACTIVE_CONTAINER_STATES if active_only else None))
        return C.CONTAINER.rows(await self._read(Q["list_containers"].format(where=where), *params, limit))

    async def record_usage(self, events: Sequence[UsageEvent]) -> None:
        if events:
            op = Insert("usage", C.USAGE.columns, [C.USAGE.values(e) for e in events])
            await self._run(single(op), write=True)

    async def usage_events(self, *, container_ids: Sequence[str] | None = None, since: float = 0.0,
                           until: float | None = None) -> list[UsageEvent]:
        """Events with ``since <= at < until``, by (container_id, at)."""
        where, params = _where(("at >= ?", since), ("at < ?", until),
                               ("container_id = ANY(?)", None if container_ids is None else list(container_ids)))
        return C.USAGE.rows(await self._read(Q["usage_events"].format(where=where), *params))

    async def append_logs(self, lines: Sequence[LogLine]) -> None:
        """Assigns ids (increasing in commit order); the given LogLine objects are not changed."""
        if lines:
            await self._run(_append_logs(lines), write=True)

    async def logs_since(self, *, app_id: str | None = None, function_tag: str | None = None,
                         input_id: str | None = None, since_id: int = 0, limit: int = 1000,
                         workspace: str | None = None) -> list[LogLine]:
        where, params = _where(("id > ?", since_id), ("app_id = ?", app_id),
                               ("function_tag = ?", function_tag), ("input_id = ?", input_id),
                               ("app_id IN (SELECT id FROM apps WHERE workspace = ?)", workspace))
        return C.LOG.rows(await self._read(Q["logs_since"].format(where=where), *params, limit))

    # -- key/value -----------------------------------------------------------------------------
    async def kv_get(self, key: str) -> str | None:
        rows = await self._read(Q["kv_get"], key)
        return rows[0]["value"] if rows else None

    async def kv_set(self, key: str, value: str) -> None:
        await self._run(single(Exec(Q["kv_set"], (key, value))), write=True)

    # -- workspaces, tokens, blob ownership (issue 5: security) ------------------------------
    async def create_workspace(self, name: str, now: float) -> bool:
        created: int = await self._run(single(Exec(Q["insert_workspace"], (name, now))), write=True)
        return created > 0

    async def list_workspaces(self) -> list[WorkspaceRow]:
        return _WORKSPACE.rows(await self._read(Q["list_workspaces"]))

    async def create_token(self, row: TokenRow) -> None:
        await self._run(_create_token(row), write=True)

    async def list_tokens(self, workspace: str | None = None) -> list[TokenRow]:
        return _TOKEN.rows(await self._read(Q["list_tokens"], workspace is None, workspace or ""))

    async def revoke_token(self, token_id: str, now: float) -> bool:
        changed: int = await self._run(single(Exec(Q["revoke_token"], (now, token_id))), write=True)
        return changed > 0

    async def touch_tokens(self, used: Sequence[tuple[str, float]]) -> None:
        if used:
            await self._run(_touch_tokens(used), write=True)

    async def add_blob_owner(self, workspace: str, sha256: str, now: float) -> None:
        await self._run(single(Exec(Q["insert_blob_owner"], (workspace, sha256, now))), write=True)

    async def blob_owned(self, workspace: str, sha256: str) -> bool:
        return bool(await self._read(Q["blob_owned"], workspace, sha256))

    # -- HTTP jobs and webhooks (issue 4: job API) ---------------------------------------------
    async def create_job(self, call: CallRow, new_input: NewInput, job: JobRow, webhook: WebhookRow | None,
                         *, priority: int, codec: str, start_by: float | None,
                         now: float) -> tuple[CallRow, InputRow, JobRow | None, bool]:
        tx = _create_job(call, new_input, job, webhook, priority, codec, start_by, now)
        return await self._run(tx, write=True)

    async def get_job(self, job_id: str) -> JobRow | None:
        return _first(_JOB, await self._read(Q["get_job"], job_id))

    async def get_webhook(self, job_id: str) -> WebhookRow | None:
        return _first(_WEBHOOK, await self._read(Q["get_webhook"], job_id))

    async def webhook_attempts(self, job_id: str) -> list[WebhookAttempt]:
        return _WEBHOOK_ATTEMPT.rows(await self._read(Q["webhook_attempts"], job_id))

    async def webhooks_due(self, now: float, *, limit: int = 200) -> list[WebhookRow]:
        ended = _WEBHOOK.rows(await self._read(Q["webhooks_ended"], limit))
        pending = _WEBHOOK.rows(await self._read(Q["webhooks_pending"], now, limit))
        return ended + pending

    async def record_webhook_attempt(self, attempt: WebhookAttempt, *, state: str, next_at: float | None,
                                     first_at: float) -> None:
        if state not in WEBHOOK_STATES:
            raise ValueError(f"webhook state {state!r}; expected one of {WEBHOOK_STATES}")
        await self._run(_record_webhook_attempt(attempt, state, next_at, first_at), write=True)

    async def queued_past_start_by(self, now: float, *, limit: int = 1000) -> list[InputRow]:
        return C.INPUT.rows(await self._read(Q["queued_past_start_by"], now, limit))

    async def purge_jobs(self, now: float) -> int:
        return await self._run(_purge_jobs(now), write=True)

    # -- volumes (issue 3) -----------------------------------------------------------------------
    async def create_volume(self, workspace: str, name: str, now: float) -> tuple[VolumeRow, bool]:
        return await self._run(_create_volume(workspace, name, now), write=True)

    async def find_volume(self, workspace: str, name: str) -> VolumeRow | None:
        return _first(_VOLUME, await self._read(Q["find_volume"], workspace, name))

    async def get_volume(self, volume_id: str) -> VolumeRow | None:
        return _first(_VOLUME, await self._read(Q["get_volume"], volume_id))

    async def list_volumes(self, workspace: str | None) -> list[VolumeRow]:
        if workspace is None:
            return _VOLUME.rows(await self._read(Q["all_volumes"]))
        return _VOLUME.rows(await self._read(Q["list_volumes"], workspace))

    async def delete_volume(self, workspace: str, name: str) -> bool:
        changed: int = await self._run(single(Exec(Q["delete_volume"], (workspace, name))), write=True)
        return changed > 0

    async def set_volume_version(self, volume_id: str, *, expect: int, version: int, now: float,
                                 size_bytes: int, files: int) -> bool:
        op = Exec(Q["set_volume_version"], (version, now, size_bytes, files, volume_id, expect))
        changed: int = await self._run(single(op), write=True)
        return changed > 0

    # -- schedules and secrets (issue 4: schedules, issue 5: secrets) ----------------------------
    async def create_scheduled_call(self, fire: ScheduleFire, call: CallRow, inputs: Sequence[NewInput],
                                    now: float) -> tuple[CallRow, list[InputRow]] | None:
        return await self._run(_create_scheduled_call(fire, call, inputs, now), write=True)

    async def last_schedule_fire(self, schedule_key: str) -> float | None:
        rows = await self._read(Q["last_schedule_fire"], schedule_key)
        ms = rows[0]["fire_at"] if rows else None
        return None if ms is None else int(ms) / 1000.0

    async def schedule_fires(self, schedule_key: str, *, limit: int = 100) -> list[ScheduleFire]:
        return [ScheduleFire(r["schedule_key"], int(r["fire_at"]) / 1000.0, r["call_id"], r["workspace"],
                             float(r["fired_at"]))
                for r in await self._read(Q["schedule_fires"], schedule_key, limit)]

    async def purge_schedule_fires(self, before: float) -> int:
        op = Exec(Q["purge_schedule_fires"], (_ms(before),))
        deleted: int = await self._run(single(op), write=True)
        return deleted

    async def put_secret(self, row: SecretRow, *, overwrite: bool) -> bool:
        return await self._run(_put_secret(row, overwrite), write=True)

    async def get_secrets(self, workspace: str, names: Sequence[str]) -> list[SecretRow]:
        if not names:
            return []
        return _SECRET.rows(await self._read(Q["get_secrets"], workspace, list(names)))

    async def list_secrets(self, workspace: str) -> list[SecretRow]:
        return _SECRET.rows(await self._read(Q["list_secrets"], workspace))

    async def delete_secret(self, workspace: str, name: str) -> bool:
        changed: int = await self._run(single(Exec(Q["delete_secret"], (workspace, name))), write=True)
        return changed > 0

    # -- progress reports (issue 4: surge.progress) ------------------------------------------------
    async def events_between(self, input_id: str, after_seq: int, before_seq: int, *,
                             limit: int = 1000) -> list[InputEvent]:
        return C.EVENT.rows(await self._read(Q["events_between"], input_id, after_seq, before_seq, limit))

    async def last_event(self, input_id: str, *, min_seq: int) -> InputEvent | None:
        return _first(C.EVENT, await self._read(Q["last_event"], input_id, min_seq))


# -- transactions --------------------------------------------------------------------------------

_WORKSPACE = C.Codec(WorkspaceRow, decode={"created_at": float})
_TOKEN = C.Codec(TokenRow, decode={"created_at": float})


def _create_token(row: TokenRow) -> Tx[None]:
    if not (yield Rows(Q["workspace_exists"], (row.workspace,))):
        raise NotFoundError(f"no workspace {row.workspace!r}; create it with `surge workspace create`")
    yield Exec(Q["insert_token"], _TOKEN.values(row))


def _touch_tokens(used: Sequence[tuple[str, float]]) -> Tx[None]:
    for token_id, at in used:
        yield Exec(Q["touch_token"], (at, token_id, at))


def _migration(version: int, script: str) -> Tx[bool]:
    yield MigrationLock()
    if (yield Rows(Q["migration_applied"], (version,))):
        return False   # another process applied it meanwhile
    yield Script(script)
    yield Exec(Q["record_migration"], (version, time.time()))
    return True


def _create_version(workspace: str, name: str, deployed: bool, source_hash: str, module: str,
                    spec: dict[str, Any], functions: Sequence[tuple[str, dict[str, Any]]],
                    now: float) -> Tx[tuple[AppRow, AppVersionRow, list[FunctionRow]]]:
    if deployed:
        app = yield from _deploy_named_app(workspace, name, now)
    else:
        rows = yield Rows(Q["insert_app"], (new_id("ap"), workspace, name, "ephemeral", True, now))
        app = C.APP.row(rows[0])
    rows = yield Rows(Q["next_version"], (app.id,))
    version = AppVersionRow(app.id, int(rows[0]["version"]), source_hash, module, now, spec)
    yield Exec(Q["insert_version"], (app.id, version.version, source_hash, module, now, C.dumps(spec)))
    yield Exec(Q["set_current_version"], (version.version, app.id))
    app.current_version = version.version
    fns = [FunctionRow(new_id("fu"), app.id, version.version, tag, fspec) for tag, fspec in functions]
    if fns:
        yield Insert("functions", (*C.FUNCTION.columns, "position"),
                     [(*C.FUNCTION.values(f), i) for i, f in enumerate(fns)])
    return app, version, fns


def _deploy_named_app(workspace: str, name: str, now: float) -> Tx[AppRow]:
    """The named app, created or revived, in state "deployed" (and locked until commit)."""
    for _ in range(2):   # a second round only if a concurrent deploy created the app first
        rows = yield Rows(Q["deploy_named_app"], (workspace, name))
        if not rows:
            rows = yield Rows(Q["insert_app"], (new_id("ap"), workspace, name, "deployed", False, now))
        if rows:
            return C.APP.row(rows[0])
    raise RuntimeError(f"app {workspace}/{name} could be neither created nor found")


def _create_call(call: CallRow, inputs: Sequence[NewInput],
                 now: float) -> Tx[tuple[CallRow, list[InputRow], bool]]:
    call = replace(call, input_count=len(inputs))
    if not (yield Exec(Q["insert_call"], C.CALL.values(call))):
        # The idempotency key is taken: the unique index refused the row, we return the winner's.
        rows = yield Rows(Q["call_by_key"], (call.workspace, call.idempotency_key))
        existing = C.CALL.row(rows[0])
        rows = yield Rows(Q["list_inputs"], (existing.id, True, [], NO_LIMIT))
        return existing, C.INPUT.rows(rows), False
    new, values = C.new_inputs(call, inputs, now)
    if new:
        yield Insert("inputs", C.NEW_INPUT_COLUMNS, values)
    return call, new, True


def _add_inputs(call_id: str, inputs: Sequence[NewInput], now: float) -> Tx[list[InputRow]]:
    rows = yield Rows(Q["get_call"], (call_id,))
    if not rows:
        raise NotFoundError(f"call {call_id!r} not found")
    new, values = C.new_inputs(C.CALL.row(rows[0]), inputs, now)
    inserted = yield Insert("inputs", C.NEW_INPUT_COLUMNS, values,
                            "ON CONFLICT (call_id, idx) DO NOTHING")
    if inserted:
        yield Exec(Q["count_inputs"], (inserted, call_id))
    if inserted == len(new):
        return new
    rows = yield Rows(Q["inputs_at"], (call_id, [i.idx for i in inputs]))
    stored = {r.idx: r for r in C.INPUT.rows(rows)}
    return [stored[i.idx] for i in inputs]


def _transition(transitions: Sequence[Transition], now: float) -> Tx[list[bool]]:
    ends = [t.to_state.terminal for t in transitions]
    terminal = sum(ends)
    seq = (yield from _reserve("done_seq", terminal)) if terminal else 0
    states: dict[tuple[InputState, ...], list[str]] = {}
    items = []
    for t, end in zip(transitions, ends, strict=True):
        # Columns in the order given (state, *set, then done_seq/finished_at for a terminal state).
        columns: tuple[str, ...] = ("state", *t.set)
        values: tuple[Any, ...] = (t.to_state.value, *t.set.values())
        if end:
            columns, values = (*columns, "done_seq"), (*values, seq)
            seq += 1
            if "finished_at" not in t.set:
                columns, values = (*columns, "finished_at"), (*values, now)
        from_states = states.get(t.from_states) or states.setdefault(t.from_states, _strs(t.from_states))
        items.append((columns, (t.input_id, from_states, t.expect_attempt, *values)))
    return (yield from _guarded(items))


def _guarded(items: Sequence[tuple[tuple[str, ...], tuple[Any, ...]]]) -> Tx[list[bool]]:
    """Apply ``(columns, guarded row)`` updates, batched into as few ``Guarded`` operations as
    possible: one per set of columns, and a later round for a second update of the same input,
    so that the updates of one input apply in the order given. Rows go in by input id so that
    concurrent batches tend to lock rows in the same order."""
    rounds: list[dict[tuple[str, ...], list[int]]] = []
    seen: dict[str, int] = {}
    ids = [row[0] for _, row in items]
    for i in sorted(range(len(items)), key=ids.__getitem__):
        columns = items[i][0]
        depth = seen[ids[i]] = seen.get(ids[i], -1) + 1
        if depth == len(rounds):
            rounds.append({})
        rounds[depth].setdefault(columns, []).append(i)
    applied = [False] * len(items)
    for groups in rounds:
        for columns, indices in groups.items():
            flags = yield Guarded(columns, [items[i][1] for i in indices])
            for i, flag in zip(indices, flags, strict=True):
                applied[i] = flag
    return applied


def _reserve(counter: str, n: int) -> Tx[int]:
    """Take ``n`` consecutive values of ``counter``; returns the first."""
    rows = yield Rows(Q["reserve"], (n, counter))
    return int(rows[0]["value"]) - n + 1


def _purge_expired(now: float) -> Tx[int]:
    ids = [r["id"] for r in (yield Rows(Q["purgeable_calls"], (now,)))]
    if ids:
        for query in ("purge_events", "purge_inputs", "purge_calls"):
            yield Exec(Q[query], (ids,))
    return len(ids)


def _append_logs(lines: Sequence[LogLine]) -> Tx[None]:
    first = yield from _reserve("log_id", len(lines))
    rows = []
    for i, line in enumerate(lines):
        values = list(C.LOG.values(line))
        values[_LOG_ID] = first + i
        rows.append(tuple(values))
    yield Insert("logs", C.LOG.columns, rows)


# -- helpers -------------------------------------------------------------------------------------

def _first(codec: C.Codec[T], rows: list[Row]) -> T | None:
    return codec.row(rows[0]) if rows else None


def _strs(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """AND the conditions whose value is not None (keeps each filter able to use its index)."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    return " AND ".join(sql for sql, _ in kept) or "TRUE", [value for _, value in kept]


# -- HTTP jobs and webhooks (issue 4: job API) ----------------------------------------------------

_JOB = C.Codec(JobRow, decode={"created_at": float})
_WEBHOOK = C.Codec(WebhookRow, decode={"created_at": float})
_WEBHOOK_ATTEMPT = C.Codec(WebhookAttempt, decode={"at": float, "duration": float})


def _create_job(call: CallRow, new_input: NewInput, job: JobRow, webhook: WebhookRow | None, priority: int,
                codec: str, start_by: float | None,
                now: float) -> Tx[tuple[CallRow, InputRow, JobRow | None, bool]]:
    call, rows, created = yield from _create_call(call, [new_input], now)
    if not created:
        found = yield Rows(Q["get_job"], (call.id,))
        return call, rows[0], _first(_JOB, found), False
    row = rows[0]
    yield Exec(Q["set_job_input_fields"], (priority, codec, start_by, row.id))
    row.priority, row.codec, row.start_by = priority, codec, start_by
    job = replace(job, id=call.id, input_id=row.id)
    yield Exec(Q["insert_job"], (job.id, job.input_id, job.workspace, job.app, job.function,
                                 job.execution_timeout, job.ttl, job.priority, job.created_at, job.retry_of,
                                 job.expires_at))
    if webhook is not None:
        w = replace(webhook, job_id=call.id, input_id=row.id)
        yield Exec(Q["insert_webhook"], (w.job_id, w.input_id, w.url, w.signer, w.state, w.attempts,
                                         w.created_at, w.next_at, w.first_at))
    return call, row, job, True


def _record_webhook_attempt(a: WebhookAttempt, state: str, next_at: float | None, first_at: float) -> Tx[None]:
    yield Exec(Q["insert_webhook_attempt"], (a.job_id, a.n, a.at, a.status_code, a.error, a.duration))
    yield Exec(Q["update_webhook"], (state, a.n, next_at, first_at, a.job_id))


def _purge_jobs(now: float) -> Tx[int]:
    ids = [r["id"] for r in (yield Rows(Q["purgeable_jobs"], (now,)))]
    if ids:
        for query in ("purge_webhook_attempts", "purge_webhooks", "purge_jobs"):
            yield Exec(Q[query], (ids,))
    return len(ids)


# -- volumes (issue 3) ----------------------------------------------------------------------------

_VOLUME = C.Codec(VolumeRow, decode={"created_at": float, "committed_at": float})


def _create_volume(workspace: str, name: str, now: float) -> Tx[tuple[VolumeRow, bool]]:
    created = yield Exec(Q["insert_volume"], (new_id("vo"), workspace, name, now))
    rows = yield Rows(Q["find_volume"], (workspace, name))
    return _VOLUME.row(rows[0]), bool(created)


# -- schedules and secrets (issue 4: schedules, issue 5: secrets) --------------------------------

_SECRET = C.Codec(SecretRow, encode={"key_names": C.dumps},
                  decode={"key_names": json.loads, "ciphertext": bytes, "created_at": float,
                          "updated_at": float})


def _ms(t: float) -> int:
    return round(t * 1000)


def _create_scheduled_call(fire: ScheduleFire, call: CallRow, inputs: Sequence[NewInput],
                           now: float) -> Tx[tuple[CallRow, list[InputRow]] | None]:
    if not (yield Exec(Q["insert_schedule_fire"], (fire.schedule_key, _ms(fire.fire_at), call.id,
                                                   fire.workspace, fire.fired_at))):
        return None
    call, rows, _ = yield from _create_call(call, inputs, now)
    return call, rows


def _put_secret(row: SecretRow, overwrite: bool) -> Tx[bool]:
    if (yield Exec(Q["insert_secret"], _SECRET.values(row))):
        return True
    if not overwrite:
        raise ConflictError(f"secret {row.name!r} already exists; pass --force (overwrite=True) to replace it")
    yield Exec(Q["replace_secret"], (C.dumps(row.key_names), row.ciphertext, row.updated_at, row.workspace,
                                     row.name))
    return False
