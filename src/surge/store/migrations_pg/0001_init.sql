-- surge schema, version 1 (PostgreSQL). Times are UNIX seconds (DOUBLE PRECISION), payloads BYTEA, JSON as TEXT.

CREATE TABLE apps (
    id              TEXT PRIMARY KEY,
    workspace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    state           TEXT NOT NULL,
    -- Kind, fixed at creation: an ephemeral app stays ephemeral even once its state is "stopped".
    ephemeral       BOOLEAN NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    current_version INTEGER NOT NULL DEFAULT 0
);
-- One named (deployed or stopped) app per workspace and name; ephemeral apps may share names.
CREATE UNIQUE INDEX apps_named ON apps (workspace, name) WHERE NOT ephemeral;
CREATE INDEX apps_workspace ON apps (workspace, created_at);

CREATE TABLE app_versions (
    app_id      TEXT NOT NULL REFERENCES apps (id),
    version     INTEGER NOT NULL,
    source_hash TEXT NOT NULL,
    module      TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    spec        TEXT NOT NULL,
    PRIMARY KEY (app_id, version)
);

CREATE TABLE functions (
    id       TEXT PRIMARY KEY,
    app_id   TEXT NOT NULL,
    version  INTEGER NOT NULL,
    tag      TEXT NOT NULL,
    spec     TEXT NOT NULL,
    position INTEGER NOT NULL,
    FOREIGN KEY (app_id, version) REFERENCES app_versions (app_id, version)
);
CREATE UNIQUE INDEX functions_tag ON functions (app_id, version, tag);

CREATE TABLE calls (
    id              TEXT PRIMARY KEY,
    workspace       TEXT NOT NULL,
    function_id     TEXT NOT NULL REFERENCES functions (id),
    kind            TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    idempotency_key TEXT,
    params          BYTEA,
    pool_key        TEXT NOT NULL,
    input_count     INTEGER NOT NULL,
    cancelled       BOOLEAN NOT NULL,
    expires_at      DOUBLE PRECISION
);
CREATE UNIQUE INDEX calls_idempotency ON calls (workspace, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX calls_recent ON calls (workspace, created_at);
CREATE INDEX calls_expiry ON calls (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE inputs (
    id               TEXT PRIMARY KEY,
    call_id          TEXT NOT NULL REFERENCES calls (id),
    idx              INTEGER NOT NULL,
    function_id      TEXT NOT NULL,
    pool_key         TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    args             BYTEA NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    user_failures    INTEGER NOT NULL,
    infra_failures   INTEGER NOT NULL,
    next_run_at      DOUBLE PRECISION NOT NULL,
    started_at       DOUBLE PRECISION,
    finished_at      DOUBLE PRECISION,
    container_id     TEXT,
    lease_expires_at DOUBLE PRECISION,
    result           BYTEA,
    terminal_reason  TEXT,
    error_message    TEXT,
    exit_code        INTEGER,
    signal           INTEGER,
    done_seq         BIGINT,
    timeout          DOUBLE PRECISION,
    max_retries      INTEGER NOT NULL
);
CREATE UNIQUE INDEX inputs_call_idx ON inputs (call_id, idx);
CREATE INDEX inputs_runnable ON inputs (state, next_run_at);
-- Partial indexes: a new input enters neither, and the lease index holds only running inputs.
CREATE INDEX inputs_done ON inputs (call_id, done_seq) WHERE done_seq IS NOT NULL;
CREATE INDEX inputs_lease ON inputs (state, lease_expires_at) WHERE state = 'RUNNING';

CREATE TABLE events (
    input_id TEXT NOT NULL REFERENCES inputs (id),
    seq      INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    data     BYTEA NOT NULL,
    at       DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX events_input_seq ON events (input_id, seq);

CREATE TABLE containers (
    id          TEXT PRIMARY KEY,
    workspace   TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    function_id TEXT NOT NULL,
    pool_key    TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    pid         INTEGER,
    gpu_type    TEXT,
    gpu_indices TEXT NOT NULL,
    cpu         DOUBLE PRECISION NOT NULL,
    memory      INTEGER NOT NULL,
    ready_at    DOUBLE PRECISION,
    stopped_at  DOUBLE PRECISION,
    stop_reason TEXT,
    exit_code   INTEGER,
    signal      INTEGER,
    inputs_done INTEGER NOT NULL,
    phases      TEXT NOT NULL
);
CREATE INDEX containers_state ON containers (state);
CREATE INDEX containers_recent ON containers (workspace, created_at);

CREATE TABLE usage (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    container_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    at           DOUBLE PRECISION NOT NULL
);
CREATE INDEX usage_container_at ON usage (container_id, at);
CREATE INDEX usage_at ON usage (at);

-- ids come from counters ('log_id'), so they follow commit order like done_seq.
CREATE TABLE logs (
    id           BIGINT PRIMARY KEY,
    app_id       TEXT NOT NULL,
    function_tag TEXT NOT NULL,
    container_id TEXT NOT NULL,
    stream       TEXT NOT NULL,
    text         TEXT NOT NULL,
    at           DOUBLE PRECISION NOT NULL,
    input_id     TEXT
);
CREATE INDEX logs_app ON logs (app_id, id);
CREATE INDEX logs_input ON logs (input_id, id) WHERE input_id IS NOT NULL;

CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Monotonic counters handed out under the writer's lock (see surge.store.sqlstore._reserve). Not a SEQUENCE:
-- nextval() order is not commit order, so a reader paging by done_seq could skip a late commit;
-- the counter's row lock is held to commit, which makes the two orders agree.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('done_seq', 0), ('log_id', 0);
