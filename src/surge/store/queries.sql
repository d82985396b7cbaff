-- Named queries shared by the SQLite and PostgreSQL stores, loaded by surge.store._sql.load_queries.
--
-- One dialect for both: `?` placeholders (PostgreSQL gets `%s`), and `col = ANY(?)` takes a
-- Python list (SQLite gets `col IN (SELECT value FROM json_each(?))` with the list as JSON).
-- `(? OR cond)` is an optional filter: pass True to switch the condition off.
-- `{where}` is filled with conditions joined by AND, for filters that must reach an index.
-- Batch inserts and guarded input updates are rendered by each store (see _sql.Insert, _sql.Guarded).

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at DOUBLE PRECISION NOT NULL
);

-- name: applied_migrations
SELECT version FROM schema_migrations ORDER BY version;

-- name: migration_applied
SELECT version FROM schema_migrations WHERE version = ?;

-- name: record_migration
INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?);

-- name: ping
SELECT 1 AS one;

-- name: reserve
-- Takes the counter row's write lock until commit: ids are handed out in commit order.
UPDATE counters SET value = value + ? WHERE name = ? RETURNING value;

-- apps, versions, functions ------------------------------------------------------------------

-- name: get_app
SELECT * FROM apps WHERE id = ?;

-- name: find_app
SELECT * FROM apps WHERE workspace = ? AND name = ? AND NOT ephemeral;

-- name: list_apps
SELECT * FROM apps WHERE workspace = ? AND (? OR NOT ephemeral) ORDER BY created_at DESC, id DESC;

-- name: deploy_named_app
-- Also locks the row (PostgreSQL), so concurrent deploys of one app number versions in turn.
UPDATE apps SET state = 'deployed' WHERE workspace = ? AND name = ? AND NOT ephemeral RETURNING *;

-- name: insert_app
INSERT INTO apps (id, workspace, name, state, ephemeral, created_at, current_version)
VALUES (?, ?, ?, ?, ?, ?, 0)
ON CONFLICT (workspace, name) WHERE NOT ephemeral DO NOTHING
RETURNING *;

-- name: next_version
SELECT COALESCE(MAX(version), 0) + 1 AS version FROM app_versions WHERE app_id = ?;

-- name: insert_version
INSERT INTO app_versions (app_id, version, source_hash, module, created_at, spec)
VALUES (?, ?, ?, ?, ?, ?);

-- name: set_current_version
UPDATE apps SET current_version = ? WHERE id = ?;

-- name: set_app_state
UPDATE apps SET state = ?, current_version = COALESCE(?, current_version) WHERE id = ?;

-- name: list_versions
SELECT * FROM app_versions WHERE app_id = ? ORDER BY version;

-- name: get_version
SELECT * FROM app_versions WHERE app_id = ? AND version = ?;

-- name: get_function
SELECT * FROM functions WHERE id = ?;

-- name: list_functions
SELECT * FROM functions WHERE app_id = ? AND version = ? ORDER BY position;

-- calls and inputs ---------------------------------------------------------------------------

-- name: insert_call
INSERT INTO calls (id, workspace, function_id, kind, created_at, idempotency_key, params, pool_key,
                   input_count, cancelled, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workspace, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- name: call_by_key
SELECT * FROM calls WHERE workspace = ? AND idempotency_key = ?;

-- name: get_call
SELECT * FROM calls WHERE id = ?;

-- name: list_calls
SELECT * FROM calls WHERE workspace = ? AND (? OR function_id = ANY(?))
ORDER BY created_at DESC, id DESC LIMIT ?;

-- name: count_inputs
UPDATE calls SET input_count = input_count + ? WHERE id = ?;

-- name: cancel_call
UPDATE calls SET cancelled = TRUE WHERE id = ?;

-- name: call_counts
SELECT state, COUNT(*) AS n FROM inputs WHERE call_id = ? GROUP BY state;

-- name: get_input
SELECT * FROM inputs WHERE id = ?;

-- name: get_inputs
SELECT * FROM inputs WHERE id = ANY(?);

-- name: inputs_at
SELECT * FROM inputs WHERE call_id = ? AND idx = ANY(?);

-- name: list_inputs
SELECT * FROM inputs WHERE call_id = ? AND (? OR state = ANY(?)) ORDER BY idx LIMIT ?;

-- name: inputs_in_state
SELECT * FROM inputs WHERE state = ANY(?) ORDER BY created_at, id LIMIT ?;

-- name: expired_leases
SELECT * FROM inputs WHERE state = 'RUNNING' AND lease_expires_at < ?
ORDER BY lease_expires_at LIMIT ?;

-- name: outputs_since
SELECT * FROM inputs
WHERE call_id = ? AND done_seq > ? AND state NOT IN ('QUEUED', 'RUNNING')
ORDER BY done_seq LIMIT ?;

-- name: purgeable_calls
SELECT id FROM calls AS c
WHERE c.expires_at < ?
  AND NOT EXISTS (SELECT 1 FROM inputs AS i WHERE i.call_id = c.id AND i.state IN ('QUEUED', 'RUNNING'));

-- name: purge_events
DELETE FROM events WHERE input_id IN (SELECT id FROM inputs WHERE call_id = ANY(?));

-- name: purge_inputs
DELETE FROM inputs WHERE call_id = ANY(?);

-- name: purge_calls
DELETE FROM calls WHERE id = ANY(?);

-- events, containers, usage, logs, kv --------------------------------------------------------

-- name: events_since
SELECT * FROM events WHERE input_id = ? AND seq > ? ORDER BY seq LIMIT ?;

-- name: get_container
SELECT * FROM containers WHERE id = ?;

-- name: list_containers
SELECT * FROM containers WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?;

-- name: usage_events
SELECT * FROM usage WHERE {where} ORDER BY container_id, at, id;

-- name: logs_since
SELECT * FROM logs WHERE {where} ORDER BY id LIMIT ?;

-- name: kv_get
SELECT value FROM kv WHERE key = ?;

-- name: kv_set
INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- workspaces, tokens, blob ownership (issue 5: security) -------------------------------------

-- name: insert_workspace
INSERT INTO workspaces (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING;

-- name: list_workspaces
SELECT * FROM workspaces ORDER BY name;

-- name: workspace_exists
SELECT name FROM workspaces WHERE name = ?;

-- name: insert_token
INSERT INTO tokens (id, workspace, name, role, token_hash, hint, created_at, last_used_at, revoked_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: list_tokens
SELECT * FROM tokens WHERE (? OR workspace = ?) ORDER BY created_at, id;

-- name: revoke_token
UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL;

-- name: touch_token
UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?);

-- name: insert_blob_owner
INSERT INTO blob_owners (workspace, sha256, created_at) VALUES (?, ?, ?)
ON CONFLICT (workspace, sha256) DO NOTHING;

-- name: blob_owned
SELECT sha256 FROM blob_owners WHERE workspace = ? AND sha256 = ?;

-- HTTP jobs and webhooks (issue 4: job API) --------------------------------------------------

-- name: set_job_input_fields
UPDATE inputs SET priority = ?, codec = ?, start_by = ? WHERE id = ?;

-- name: insert_job
INSERT INTO jobs (id, input_id, workspace, app, function, execution_timeout, ttl, priority, created_at,
                  retry_of, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_webhook
INSERT INTO webhooks (job_id, input_id, url, signer, state, attempts, created_at, next_at, first_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: get_job
SELECT * FROM jobs WHERE id = ?;

-- name: get_webhook
SELECT * FROM webhooks WHERE job_id = ?;

-- name: webhook_attempts
SELECT * FROM webhook_attempts WHERE job_id = ? ORDER BY n;

-- name: webhooks_ended
-- WAITING webhooks whose job has ended (the partial index holds only WAITING rows).
SELECT w.* FROM webhooks AS w JOIN inputs AS i ON i.id = w.input_id
WHERE w.state = 'WAITING' AND i.state NOT IN ('QUEUED', 'RUNNING')
ORDER BY i.done_seq LIMIT ?;

-- name: webhooks_pending
SELECT * FROM webhooks WHERE state = 'PENDING' AND next_at <= ? ORDER BY next_at LIMIT ?;

-- name: insert_webhook_attempt
INSERT INTO webhook_attempts (job_id, n, at, status_code, error, duration) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id, n) DO NOTHING;

-- name: update_webhook
UPDATE webhooks SET state = ?, attempts = ?, next_at = ?, first_at = ? WHERE job_id = ?;

-- name: queued_past_start_by
SELECT * FROM inputs WHERE state = 'QUEUED' AND start_by IS NOT NULL AND start_by <= ? AND attempt = 0
ORDER BY start_by LIMIT ?;

-- name: purgeable_jobs
SELECT id FROM jobs AS j
WHERE j.expires_at < ? AND NOT EXISTS (SELECT 1 FROM calls AS c WHERE c.id = j.id);

-- name: purge_webhook_attempts
DELETE FROM webhook_attempts WHERE job_id = ANY(?);

-- name: purge_webhooks
DELETE FROM webhooks WHERE job_id = ANY(?);

-- name: purge_jobs
DELETE FROM jobs WHERE id = ANY(?);

-- volumes (issue 3) -----------------------------------------------------------------------------

-- name: insert_volume
INSERT INTO volumes (id, workspace, name, created_at, version, committed_at, size_bytes, files)
VALUES (?, ?, ?, ?, 0, NULL, 0, 0)
ON CONFLICT (workspace, name) DO NOTHING;

-- name: find_volume
SELECT * FROM volumes WHERE workspace = ? AND name = ?;

-- name: get_volume
SELECT * FROM volumes WHERE id = ?;

-- name: list_volumes
SELECT * FROM volumes WHERE workspace = ? ORDER BY name;

-- name: all_volumes
SELECT * FROM volumes ORDER BY workspace, name;

-- name: delete_volume
DELETE FROM volumes WHERE workspace = ? AND name = ?;

-- name: set_volume_version
-- Compare-and-set on the version: a commit based on a stale version changes nothing.
UPDATE volumes SET version = ?, committed_at = ?, size_bytes = ?, files = ? WHERE id = ? AND version = ?;

-- schedules and secrets (issue 4: schedules, issue 5: secrets) --------------------------------

-- name: insert_schedule_fire
-- The primary key refuses a fire time that already fired (the at-most-once guarantee).
INSERT INTO schedule_fires (schedule_key, fire_at, call_id, workspace, fired_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (schedule_key, fire_at) DO NOTHING;

-- name: last_schedule_fire
SELECT MAX(fire_at) AS fire_at FROM schedule_fires WHERE schedule_key = ?;

-- name: schedule_fires
SELECT * FROM schedule_fires WHERE schedule_key = ? ORDER BY fire_at DESC LIMIT ?;

-- name: purge_schedule_fires
-- Each schedule's latest fire stays: the catch-up decision counts from it.
DELETE FROM schedule_fires
WHERE fire_at < ?
  AND fire_at < (SELECT MAX(g.fire_at) FROM schedule_fires AS g
                 WHERE g.schedule_key = schedule_fires.schedule_key);

-- name: insert_secret
INSERT INTO secrets (workspace, name, key_names, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (workspace, name) DO NOTHING;

-- name: replace_secret
UPDATE secrets SET key_names = ?, ciphertext = ?, updated_at = ? WHERE workspace = ? AND name = ?;

-- name: get_secrets
SELECT * FROM secrets WHERE workspace = ? AND name = ANY(?);

-- name: list_secrets
SELECT * FROM secrets WHERE workspace = ? ORDER BY name;

-- name: delete_secret
DELETE FROM secrets WHERE workspace = ? AND name = ?;

-- progress reports (issue 4: surge.progress) ----------------------------------------------------

-- name: events_between
SELECT * FROM events WHERE input_id = ? AND seq > ? AND seq < ? ORDER BY seq LIMIT ?;

-- name: last_event
SELECT * FROM events WHERE input_id = ? AND seq >= ? ORDER BY seq DESC LIMIT 1;
