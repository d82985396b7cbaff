-- Volumes (PostgreSQL): named per workspace; the data lives under SURGE_HOME/volumes/<id>/. ``version``
-- is the committed version containers mount (0: empty, never committed); each commit adds one.

CREATE TABLE volumes (
    id           TEXT PRIMARY KEY,
    workspace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    version      BIGINT NOT NULL,
    committed_at DOUBLE PRECISION,
    size_bytes   BIGINT NOT NULL,
    files        BIGINT NOT NULL
);
CREATE UNIQUE INDEX volumes_name ON volumes (workspace, name);
