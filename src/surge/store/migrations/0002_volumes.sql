-- Volumes (SQLite): named per workspace; the data lives under SURGE_HOME/volumes/<id>/. ``version``
-- is the committed version containers mount (0: empty, never committed); each commit adds one.

CREATE TABLE volumes (
    id           TEXT PRIMARY KEY,
    workspace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   REAL NOT NULL,
    version      INTEGER NOT NULL,
    committed_at REAL,
    size_bytes   INTEGER NOT NULL,
    files        INTEGER NOT NULL
);
CREATE UNIQUE INDEX volumes_name ON volumes (workspace, name);
