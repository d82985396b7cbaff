"""The store interface: the only durable state of the platform.

Every method is async so a network database (PostgreSQL) can implement it without blocking the
control plane's event loop; the SQLite implementation runs its statements on one dedicated thread.
Callers never see SQL. Times are UNIX seconds (float). Payloads (args, results) are opaque bytes.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from surge.core.models import InputState

DEFAULT_WORKSPACE = "default"


@dataclass(slots=True)
class AppRow:
    id: str
    workspace: str
    name: str
    state: str                   # "ephemeral" | "deployed" | "stopped"
    created_at: float
    current_version: int = 0     # 0 = no version yet


@dataclass(slots=True)
class AppVersionRow:
    app_id: str
    version: int                 # 1, 2, 3 ... per app
    source_hash: str             # sha256 of the source archive in the blob store
    module: str                  # importable module name of the app file, e.g. "hello"
    created_at: float
    spec: dict[str, Any] = field(default_factory=dict)   # free-form JSON (client version, ...)


@dataclass(slots=True)
class FunctionRow:
    id: str
    app_id: str
    version: int
    tag: str                     # "embed" or "Model.predict"
    spec: dict[str, Any]         # validated options as JSON (see surge.sdk.options.FunctionOptions.to_json)


@dataclass(slots=True)
class CallRow:
    id: str
    workspace: str
    function_id: str
    kind: str                    # surge.core.models.CallKind value
    created_at: float
    idempotency_key: str | None = None
    params: bytes | None = None  # pickled class-constructor parameters (for @app.cls), or None
    pool_key: str = ""           # function_id + hash of params: containers are pooled by this
    input_count: int = 0
    cancelled: bool = False
    expires_at: float | None = None   # results kept until then


@dataclass(slots=True)
class NewInput:
    idx: int                     # position inside its call (map order)
    args: bytes                  # pickled (args, kwargs)
    timeout: float | None = None
    max_retries: int = 0


@dataclass(slots=True)
class InputRow:
    id: str
    call_id: str
    idx: int
    function_id: str
    pool_key: str
    state: InputState
    attempt: int                 # 0 before the first run; the running/last attempt number after
    args: bytes
    created_at: float
    user_failures: int = 0
    infra_failures: int = 0
    next_run_at: float = 0.0     # not before (retry backoff)
    started_at: float | None = None
    finished_at: float | None = None
    container_id: str | None = None
    lease_expires_at: float | None = None
    result: bytes | None = None  # pickled value on success, pickled exception on USER_EXCEPTION
    terminal_reason: str | None = None
    error_message: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    done_seq: int | None = None  # store-assigned, strictly increasing across completions
    timeout: float | None = None
    max_retries: int = 0
    # set by the job API (surge.server.jobs) after the insert: queue order (higher first), how the
    # runtime decodes args (None: cloudpickle from the SDK; "json"), the ttl deadline of the first start
    priority: int = 0
    codec: str | None = None
    start_by: float | None = None


# Columns a Transition may set. Anything else is refused (ValueError).
TRANSITION_COLUMNS = frozenset({
    "attempt", "user_failures", "infra_failures", "next_run_at", "started_at", "finished_at",
    "container_id", "lease_expires_at", "result", "terminal_reason", "error_message", "exit_code",
    "signal",
})


@dataclass(slots=True)
class Transition:
    """One conditional update of an input: applies only if its state is in ``from_states``
    and (when given) its attempt equals ``expect_attempt``. This is how a stale attempt's late
    result is refused. Moving into a terminal state assigns ``done_seq``."""

    input_id: str
    from_states: tuple[InputState, ...]
    to_state: InputState
    expect_attempt: int | None = None
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InputEvent:
    input_id: str
    seq: int                     # per input, from 0; (input_id, seq) unique, duplicates ignored
    kind: str                    # "item" (generator output) | "done" | "progress"
    data: bytes
    at: float


@dataclass(slots=True)
class ContainerRow:
    id: str
    workspace: str
    app_id: str
    function_id: str
    pool_key: str
    node_id: str
    state: str                   # surge.core.models.ContainerState value
    created_at: float
    pid: int | None = None
    gpu_type: str | None = None
    gpu_indices: list[int] = field(default_factory=list)
    cpu: float = 0.0
    memory: int = 0
    ready_at: float | None = None
    stopped_at: float | None = None
    stop_reason: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    inputs_done: int = 0
    # start-up phases in seconds, plus "start" (fresh | template | snapshot | zygote) and "fallback"
    phases: dict[str, float | str] = field(default_factory=dict)


@dataclass(slots=True)
class UsageEvent:
    """Append-only metering log: ``kind`` in started | ready | busy | idle | stopped."""

    container_id: str
    kind: str
    at: float


@dataclass(slots=True)
class LogLine:
    app_id: str
    function_tag: str
    container_id: str
    stream: str                  # "stdout" | "stderr" | "system"
    text: str
    at: float
    input_id: str | None = None
    id: int = 0                  # store-assigned, increasing


class Store(abc.ABC):
    """Durable state. One instance per control plane process."""

    # -- lifecycle ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending numbered migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise (``StoreUnavailable``) if the database cannot take a write now (used by /health)."""

    # -- apps, versions, functions -------------------------------------------------------------
    @abc.abstractmethod
    async def create_version(self, workspace: str, name: str, *, deployed: bool, source_hash: str,
                             module: str, spec: dict[str, Any],
                             functions: Sequence[tuple[str, dict[str, Any]]],
                             now: float) -> tuple[AppRow, AppVersionRow, list[FunctionRow]]:
        """Create a new immutable version.

        ``deployed=True``: the app named ``name`` in ``workspace`` (created if missing, revived if
        stopped) gets version = previous + 1, state "deployed", current_version = the new one.
        ``deployed=False``: a fresh ephemeral app row (names need not be unique among those).
        ``functions`` is ``[(tag, spec), ...]``; each gets a new FunctionRow id."""

    @abc.abstractmethod
    async def get_app(self, app_id: str) -> AppRow | None: ...

    @abc.abstractmethod
    async def find_app(self, workspace: str, name: str) -> AppRow | None:
        """The non-ephemeral app with this name (deployed or stopped), or None."""

    @abc.abstractmethod
    async def list_apps(self, workspace: str, *, include_ephemeral: bool = False) -> list[AppRow]: ...

    @abc.abstractmethod
    async def set_app_state(self, app_id: str, state: str, *, current_version: int | None = None) -> None: ...

    @abc.abstractmethod
    async def list_versions(self, app_id: str) -> list[AppVersionRow]:
        """Oldest first."""

    @abc.abstractmethod
    async def get_version(self, app_id: str, version: int) -> AppVersionRow | None: ...

    @abc.abstractmethod
    async def get_function(self, function_id: str) -> FunctionRow | None: ...

    @abc.abstractmethod
    async def list_functions(self, app_id: str, version: int) -> list[FunctionRow]: ...

    # -- calls and inputs ----------------------------------------------------------------------
    @abc.abstractmethod
    async def create_call(self, call: CallRow, inputs: Sequence[NewInput],
                          now: float) -> tuple[CallRow, list[InputRow], bool]:
        """Insert a call and its first inputs in one transaction.

        If ``call.idempotency_key`` is set and a call with that key exists in the workspace, nothing
        is inserted and ``(existing_call, its_inputs, False)`` is returned. Otherwise
        ``(call, new_inputs, True)``. New inputs start QUEUED, attempt 0, next_run_at = now."""

    @abc.abstractmethod
    async def add_inputs(self, call_id: str, inputs: Sequence[NewInput], now: float) -> list[InputRow]:
        """Append inputs to an existing call. An ``idx`` already present is not inserted again
        (the existing row is returned in its place), so a retried batch is harmless."""

    @abc.abstractmethod
    async def get_call(self, call_id: str) -> CallRow | None: ...

    @abc.abstractmethod
    async def list_calls(self, workspace: str, *, limit: int = 50,
                         function_ids: Sequence[str] | None = None) -> list[CallRow]:
        """Newest first."""

    @abc.abstractmethod
    async def set_call_cancelled(self, call_id: str) -> None: ...

    @abc.abstractmethod
    async def call_counts(self, call_id: str) -> dict[str, int]:
        """Number of inputs of the call in each state, e.g. {"QUEUED": 3, "SUCCEEDED": 10}."""

    @abc.abstractmethod
    async def get_input(self, input_id: str) -> InputRow | None: ...

    @abc.abstractmethod
    async def get_inputs(self, input_ids: Sequence[str]) -> list[InputRow]: ...

    @abc.abstractmethod
    async def list_inputs(self, call_id: str, *, states: Sequence[InputState] | None = None,
                          limit: int | None = None) -> list[InputRow]:
        """By idx."""

    @abc.abstractmethod
    async def inputs_in_state(self, states: Sequence[InputState], *, limit: int | None = None) -> list[InputRow]:
        """Across all calls, oldest first (recovery after a restart)."""

    @abc.abstractmethod
    async def transition(self, transitions: Sequence[Transition], now: float) -> list[bool]:
        """Apply conditional updates in ONE transaction; result[i] tells whether transitions[i]
        applied. A terminal ``to_state`` sets ``done_seq`` (and ``finished_at`` = now unless set)."""

    @abc.abstractmethod
    async def renew_leases(self, leases: Sequence[tuple[str, int]], expires_at: float) -> int:
        """Set lease_expires_at for RUNNING inputs matching (input_id, attempt). Returns count."""

    @abc.abstractmethod
    async def expired_leases(self, now: float, *, limit: int = 1000) -> list[InputRow]:
        """RUNNING inputs whose lease_expires_at < now."""

    @abc.abstractmethod
    async def outputs_since(self, call_id: str, since_seq: int, *, limit: int = 1000) -> list[InputRow]:
        """Terminal inputs of the call with done_seq > since_seq, by done_seq."""

    @abc.abstractmethod
    async def purge_expired(self, now: float) -> int:
        """Delete calls (with their inputs and events) whose expires_at < now and all of whose
        inputs are terminal. Returns the number of calls deleted."""

    # -- events (generator items, progress) ----------------------------------------------------
    @abc.abstractmethod
    async def append_events(self, events: Sequence[InputEvent]) -> None: ...

    @abc.abstractmethod
    async def events_since(self, input_id: str, since_seq: int, *, limit: int = 1000) -> list[InputEvent]:
        """Events with seq > since_seq (pass -1 for all), by seq."""

    # -- containers, usage, logs ---------------------------------------------------------------
    @abc.abstractmethod
    async def upsert_container(self, row: ContainerRow) -> None: ...

    @abc.abstractmethod
    async def get_container(self, container_id: str) -> ContainerRow | None: ...

    @abc.abstractmethod
    async def list_containers(self, workspace: str | None = None, *, active_only: bool = True,
                              limit: int = 500) -> list[ContainerRow]:
        """active_only: state != STOPPED. Newest first."""

    @abc.abstractmethod
    async def record_usage(self, events: Sequence[UsageEvent]) -> None: ...

    @abc.abstractmethod
    async def usage_events(self, *, container_ids: Sequence[str] | None = None, since: float = 0.0,
                           until: float | None = None) -> list[UsageEvent]:
        """By (container_id, at)."""

    @abc.abstractmethod
    async def append_logs(self, lines: Sequence[LogLine]) -> None: ...

    @abc.abstractmethod
    async def logs_since(self, *, app_id: str | None = None, function_tag: str | None = None,
                         input_id: str | None = None, since_id: int = 0, limit: int = 1000,
                         workspace: str | None = None) -> list[LogLine]:
        """By id, id > since_id; only lines of ``workspace``'s apps when given."""

    # -- key/value (server settings, schema-free small state) ---------------------------------
    @abc.abstractmethod
    async def kv_get(self, key: str) -> str | None: ...

    @abc.abstractmethod
    async def kv_set(self, key: str, value: str) -> None: ...

    # -- workspaces, tokens, blob ownership (issue 5: security) ------------------------------
    @abc.abstractmethod
    async def create_workspace(self, name: str, now: float) -> bool:
        """Create the workspace; False if it already exists."""

    @abc.abstractmethod
    async def list_workspaces(self) -> list[WorkspaceRow]:
        """By name."""

    @abc.abstractmethod
    async def create_token(self, row: TokenRow) -> None:
        """Insert a token (its workspace must exist: NotFoundError otherwise)."""

    @abc.abstractmethod
    async def list_tokens(self, workspace: str | None = None) -> list[TokenRow]:
        """All tokens (revoked too), oldest first; only ``workspace``'s when given."""

    @abc.abstractmethod
    async def revoke_token(self, token_id: str, now: float) -> bool:
        """Set revoked_at; False if the token is unknown or already revoked."""

    @abc.abstractmethod
    async def touch_tokens(self, used: Sequence[tuple[str, float]]) -> None:
        """Record ``(token_id, last_used_at)`` (a later time only ever replaces an earlier one)."""

    @abc.abstractmethod
    async def add_blob_owner(self, workspace: str, sha256: str, now: float) -> None: ...

    @abc.abstractmethod
    async def blob_owned(self, workspace: str, sha256: str) -> bool:
        """Whether ``workspace`` uploaded the blob (it may reference only those)."""

    # -- HTTP jobs and webhooks (issue 4: job API) ---------------------------------------------
    @abc.abstractmethod
    async def create_job(self, call: CallRow, new_input: NewInput, job: JobRow, webhook: WebhookRow | None,
                         *, priority: int, codec: str, start_by: float | None,
                         now: float) -> tuple[CallRow, InputRow, JobRow | None, bool]:
        """Insert a job's call, its one input (with ``priority``, ``codec`` and ``start_by``), the
        job row and its webhook, in ONE transaction. ``job.id``/``job.input_id`` are filled in
        from the call and input. With an idempotency key already taken: nothing is inserted and
        ``(existing_call, its_first_input, its_job_or_None, False)`` is returned."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> JobRow | None: ...

    @abc.abstractmethod
    async def get_webhook(self, job_id: str) -> WebhookRow | None: ...

    @abc.abstractmethod
    async def webhook_attempts(self, job_id: str) -> list[WebhookAttempt]:
        """By attempt number."""

    @abc.abstractmethod
    async def webhooks_due(self, now: float, *, limit: int = 200) -> list[WebhookRow]:
        """Webhooks to send now: WAITING ones whose job has ended, and PENDING ones whose
        ``next_at`` has come (earliest first)."""

    @abc.abstractmethod
    async def record_webhook_attempt(self, attempt: WebhookAttempt, *, state: str, next_at: float | None,
                                     first_at: float) -> None:
        """Append the attempt and move the webhook to ``state`` (PENDING with ``next_at``,
        DELIVERED or FAILED), in one transaction."""

    @abc.abstractmethod
    async def queued_past_start_by(self, now: float, *, limit: int = 1000) -> list[InputRow]:
        """QUEUED inputs never started (attempt 0) whose ``start_by`` <= now (ttl passed)."""

    @abc.abstractmethod
    async def purge_jobs(self, now: float) -> int:
        """Delete job rows (with their webhooks and attempts) whose ``expires_at`` < now and
        whose call is gone (``purge_expired`` removed it). Returns the number deleted."""

    # -- volumes (issue 3) -----------------------------------------------------------------------
    @abc.abstractmethod
    async def create_volume(self, workspace: str, name: str, now: float) -> tuple[VolumeRow, bool]:
        """The volume ``name`` of ``workspace``, created (version 0) if missing; ``created`` says
        whether this call created it."""

    @abc.abstractmethod
    async def find_volume(self, workspace: str, name: str) -> VolumeRow | None: ...

    @abc.abstractmethod
    async def get_volume(self, volume_id: str) -> VolumeRow | None: ...

    @abc.abstractmethod
    async def list_volumes(self, workspace: str | None) -> list[VolumeRow]:
        """By name; every workspace's (by workspace, then name) when ``workspace`` is None."""

    @abc.abstractmethod
    async def delete_volume(self, workspace: str, name: str) -> bool: ...

    @abc.abstractmethod
    async def set_volume_version(self, volume_id: str, *, expect: int, version: int, now: float,
                                 size_bytes: int, files: int) -> bool:
        """Move the committed version from ``expect`` to ``version``; False (nothing changed) if
        the volume is gone or its version is no longer ``expect``."""

    # -- schedules and secrets (issue 4: schedules, issue 5: secrets) ----------------------------
    @abc.abstractmethod
    async def create_scheduled_call(self, fire: ScheduleFire, call: CallRow, inputs: Sequence[NewInput],
                                    now: float) -> tuple[CallRow, list[InputRow]] | None:
        """Record the fire time and insert its call and inputs, in ONE transaction; None (nothing
        inserted) if ``(fire.schedule_key, fire.fire_at)`` already fired. ``fire.call_id`` is
        taken from ``call``."""

    @abc.abstractmethod
    async def last_schedule_fire(self, schedule_key: str) -> float | None:
        """The latest fire time (UNIX seconds) recorded for the schedule, or None."""

    @abc.abstractmethod
    async def schedule_fires(self, schedule_key: str, *, limit: int = 100) -> list[ScheduleFire]:
        """Newest first."""

    @abc.abstractmethod
    async def purge_schedule_fires(self, before: float) -> int:
        """Delete fire records older than ``before``, except each schedule's latest (which the
        catch-up decision needs). Returns the number deleted."""

    @abc.abstractmethod
    async def put_secret(self, row: SecretRow, *, overwrite: bool) -> bool:
        """Insert a secret; True if created. If the name exists: with ``overwrite`` its keys and
        ciphertext are replaced (created_at kept) and False returned, else ConflictError."""

    @abc.abstractmethod
    async def get_secrets(self, workspace: str, names: Sequence[str]) -> list[SecretRow]:
        """The named secrets of the workspace that exist (any order)."""

    @abc.abstractmethod
    async def list_secrets(self, workspace: str) -> list[SecretRow]:
        """By name."""

    @abc.abstractmethod
    async def delete_secret(self, workspace: str, name: str) -> bool:
        """False if there was no such secret."""

    # -- progress reports (issue 4: surge.progress; seq ranges in surge.core.progress) -------------
    @abc.abstractmethod
    async def events_between(self, input_id: str, after_seq: int, before_seq: int, *,
                             limit: int = 1000) -> list[InputEvent]:
        """Events with after_seq < seq < before_seq, by seq (items and progress reports keep
        separate seq ranges, so each can be read on its own)."""

    @abc.abstractmethod
    async def last_event(self, input_id: str, *, min_seq: int) -> InputEvent | None:
        """The event with the largest seq ≥ min_seq (the newest progress report), if any."""


@dataclass(slots=True)
class WorkspaceRow:
    name: str
    created_at: float


@dataclass(slots=True)
class TokenRow:
    """An API token. Only the SHA-256 of its secret is stored; ``hint`` is the secret's start."""

    id: str
    workspace: str
    name: str
    role: str                    # "admin" | "member" (see surge.server.tokens)
    token_hash: str
    hint: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass(slots=True)
class JobRow:
    """An HTTP job: a call with one JSON input, submitted by ``POST /v1/apps/{app}/functions/{fn}/jobs``."""

    id: str                      # the call's id
    input_id: str
    workspace: str
    app: str                     # names as submitted (the function row has the version)
    function: str
    execution_timeout: float
    ttl: float | None
    priority: int
    created_at: float
    retry_of: str | None = None  # the job this one re-runs (POST /v1/jobs/{id}/retry)
    expires_at: float | None = None


WEBHOOK_STATES = ("WAITING", "PENDING", "DELIVERED", "FAILED")


@dataclass(slots=True)
class WebhookRow:
    """A job's webhook in the durable outbox (state in ``WEBHOOK_STATES``)."""

    job_id: str
    input_id: str
    url: str
    signer: str                  # whose secret signs the deliveries (a credential id)
    state: str
    attempts: int
    created_at: float
    next_at: float | None = None
    first_at: float | None = None


@dataclass(slots=True)
class WebhookAttempt:
    job_id: str
    n: int                       # 1, 2, ...
    at: float
    duration: float
    status_code: int | None = None   # None: no HTTP answer (refused, timeout, connection error)
    error: str | None = None


@dataclass(slots=True)
class VolumeRow:
    """A named volume; its files live under ``SURGE_HOME/volumes/<id>/`` (see ``surge.server.volumes``)."""

    id: str
    workspace: str
    name: str
    created_at: float
    version: int                 # the committed version containers mount; 0 = empty
    committed_at: float | None = None
    size_bytes: int = 0
    files: int = 0


@dataclass(slots=True)
class ScheduleFire:
    """A scheduled time that started a call; ``(schedule_key, fire_at)`` is unique."""

    schedule_key: str            # app id + "/" + function tag
    fire_at: float               # the scheduled time (UNIX seconds; stored to the millisecond)
    call_id: str
    workspace: str
    fired_at: float              # when the call was created


@dataclass(slots=True)
class SecretRow:
    """A named secret. Only ``ciphertext`` holds values (see ``surge.server.secretbox``)."""

    workspace: str
    name: str
    key_names: list[str]
    ciphertext: bytes
    created_at: float
    updated_at: float
