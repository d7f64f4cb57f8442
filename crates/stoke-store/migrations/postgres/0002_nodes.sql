-- The node registry (issue 14): one row per node sharing the database, refreshed by its
-- heartbeat; a node whose heartbeat is older than the node timeout is dead.
CREATE TABLE nodes (
    node_id        TEXT PRIMARY KEY,
    address        TEXT NOT NULL,
    started_ms     BIGINT NOT NULL,
    heartbeat_ms   BIGINT NOT NULL,
    warm           BIGINT NOT NULL,
    in_flight      BIGINT NOT NULL
);
