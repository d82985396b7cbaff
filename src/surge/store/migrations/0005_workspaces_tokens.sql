-- Workspaces, API tokens (stored as SHA-256 hashes) and which workspace uploaded which blob (SQLite).

CREATE TABLE workspaces (
    name       TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
-- Every workspace that already owns something, so existing rows keep a home.
INSERT INTO workspaces (name, created_at) VALUES ('default', 0) ON CONFLICT (name) DO NOTHING;
INSERT INTO workspaces (name, created_at)
SELECT DISTINCT workspace, 0 FROM apps WHERE TRUE ON CONFLICT (name) DO NOTHING;

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,          -- public id ("tk-..."), what `surge token revoke` takes
    workspace    TEXT NOT NULL REFERENCES workspaces (name),
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,             -- "admin" | "member"
    token_hash   TEXT NOT NULL,             -- sha256 hex of the secret; the secret itself is never stored
    hint         TEXT NOT NULL,             -- the secret's first characters, to recognise it
    created_at   REAL NOT NULL,
    last_used_at REAL,
    revoked_at   REAL
);
CREATE UNIQUE INDEX tokens_hash ON tokens (token_hash);
CREATE INDEX tokens_workspace ON tokens (workspace, created_at);

-- Blobs are content-addressed and stored once, but a workspace may reference only the blobs it
-- uploaded itself (proving it has the bytes), so `exists` is no oracle for other workspaces' files.
CREATE TABLE blob_owners (
    workspace  TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (workspace, sha256)
);
INSERT INTO blob_owners (workspace, sha256, created_at)
SELECT DISTINCT a.workspace, v.source_hash, 0 FROM app_versions AS v JOIN apps AS a ON a.id = v.app_id
WHERE TRUE ON CONFLICT (workspace, sha256) DO NOTHING;
