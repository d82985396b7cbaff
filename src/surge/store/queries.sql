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
