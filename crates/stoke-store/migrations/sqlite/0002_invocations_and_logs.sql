-- What each call did, and the log lines of functions (START/END/REPORT and their own).

CREATE TABLE invocations (
    request_id        TEXT PRIMARY KEY NOT NULL,
    account_id        TEXT NOT NULL,
    function_name     TEXT NOT NULL,
    version           TEXT NOT NULL,
    started_ms        INTEGER NOT NULL,
    cold              INTEGER NOT NULL,
    init_ms           REAL,
    duration_ms       REAL NOT NULL,
    billed_ms         INTEGER NOT NULL,
    memory_size_mb    INTEGER NOT NULL,
    max_memory_mb     INTEGER NOT NULL,
    outcome           TEXT NOT NULL,
    error_type        TEXT
);
CREATE INDEX invocations_function ON invocations(account_id, function_name, started_ms);

CREATE TABLE log_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    log_stream     TEXT NOT NULL,
    timestamp_ms   INTEGER NOT NULL,
    request_id     TEXT NOT NULL,
    message        TEXT NOT NULL
);
CREATE INDEX log_events_function ON log_events(account_id, function_name, id);
