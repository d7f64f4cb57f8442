-- The node registry (issue 14): one row per node, refreshed by its heartbeat; a node whose
-- heartbeat is older than the node timeout is dead. On SQLite the one node of the file.
CREATE TABLE nodes (
    node_id        TEXT PRIMARY KEY,
    address        TEXT NOT NULL,
    started_ms     INTEGER NOT NULL,
    heartbeat_ms   INTEGER NOT NULL,
    warm           INTEGER NOT NULL,
    in_flight      INTEGER NOT NULL
);

-- The leases a node holds, found without a scan: its workers renew them while they run.
CREATE INDEX async_events_owner ON async_events(lease_owner) WHERE lease_owner IS NOT NULL;
