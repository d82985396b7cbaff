-- Schedules (at-most-once fire times) and secrets (encrypted at rest) (PostgreSQL).

-- One row per scheduled time that started a call. The primary key is the at-most-once guarantee:
-- the row is inserted in the same transaction as the call it starts, so a fire time has exactly
-- one call or none, whatever restarts happen around it.
CREATE TABLE schedule_fires (
    schedule_key TEXT NOT NULL,          -- app id + "/" + function tag
    fire_at      BIGINT NOT NULL,        -- ms since the epoch: integers compare exactly
    call_id      TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    fired_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (schedule_key, fire_at)
);

-- Named secrets of a workspace. Values are only in `ciphertext`: AES-GCM of the JSON object
-- {key: value} under SURGE_HOME/secrets.key (outside the database), a fresh nonce each write,
-- and the workspace and name as associated data (surge.server.secretbox).
CREATE TABLE secrets (
    workspace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    key_names  TEXT NOT NULL,            -- JSON list of the variable names (names are not secret)
    ciphertext BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace, name)
);
