-- HTTP jobs, their webhooks and the per-input fields the job API sets (SQLite).

-- Queue order (higher first), how the runtime decodes the payload (NULL: cloudpickle from the SDK;
-- 'json': an HTTP job's JSON input), and the job's ttl deadline for its first start.
ALTER TABLE inputs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inputs ADD COLUMN codec TEXT;
ALTER TABLE inputs ADD COLUMN start_by REAL;
-- Only queued inputs with a deadline: what the ttl loop scans.
CREATE INDEX inputs_start_by ON inputs (start_by) WHERE state = 'QUEUED' AND start_by IS NOT NULL;

-- One row per HTTP job; the job's id is its call's id, and its one input is ``input_id``
-- (whose args are the JSON input as sent, kept for /retry).
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    input_id          TEXT NOT NULL,
    workspace         TEXT NOT NULL,
    app               TEXT NOT NULL,
    function          TEXT NOT NULL,
    execution_timeout REAL NOT NULL,
    ttl               REAL,
    priority          INTEGER NOT NULL,
    retry_of          TEXT,
    created_at        REAL NOT NULL,
    expires_at        REAL
);
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;

-- The durable outbox: a job's webhook waits (WAITING) until the job ends, then is delivered
-- (PENDING → DELIVERED) or given up (FAILED) after the retry window.
CREATE TABLE webhooks (
    job_id     TEXT PRIMARY KEY,
    input_id   TEXT NOT NULL,
    url        TEXT NOT NULL,
    signer     TEXT NOT NULL,                -- whose secret signs it (a credential id)
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    next_at    REAL,                         -- when PENDING: the next attempt is due then
    first_at   REAL,                         -- the first attempt (the retry window starts there)
    created_at REAL NOT NULL
);
CREATE INDEX webhooks_waiting ON webhooks (input_id) WHERE state = 'WAITING';
CREATE INDEX webhooks_due ON webhooks (next_at) WHERE state = 'PENDING';

-- Every delivery attempt, as the receiver answered it.
CREATE TABLE webhook_attempts (
    job_id      TEXT NOT NULL,
    n           INTEGER NOT NULL,
    at          REAL NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration    REAL NOT NULL,
    PRIMARY KEY (job_id, n)
);
