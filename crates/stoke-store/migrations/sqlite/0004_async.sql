-- Asynchronous invocation: the durable queue of events, the dead letters, and each
-- function's event-invoke configuration (retries, maximum age, destinations).

-- One row per event that has not finished. An event is runnable when `next_run_ms` has come
-- and nobody holds a lease on it (or the lease has expired). `runs` counts the times a worker
-- took it (Lambda's approximateInvokeCount); `failures` the function errors so far;
-- `backoff_ms` the last delay after a throttle or a platform error (0 if none).
CREATE TABLE async_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      TEXT NOT NULL UNIQUE,
    account_id      TEXT NOT NULL,
    function_name   TEXT NOT NULL,
    qualifier       TEXT NOT NULL,
    payload         BLOB NOT NULL,
    trace_id        TEXT,
    enqueued_ms     INTEGER NOT NULL,
    next_run_ms     INTEGER NOT NULL,
    runs            INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    backoff_ms      INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until_ms  INTEGER
);
CREATE INDEX async_events_due ON async_events(next_run_ms);

-- Events that failed for good with no on-failure destination; a redrive moves one back into
-- async_events.
CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    function_name   TEXT NOT NULL,
    qualifier       TEXT NOT NULL,
    payload         BLOB NOT NULL,
    trace_id        TEXT,
    enqueued_ms     INTEGER NOT NULL,
    failed_ms       INTEGER NOT NULL,
    condition       TEXT NOT NULL,
    runs            INTEGER NOT NULL,
    error_type      TEXT,
    response        BLOB
);
CREATE INDEX dead_letters_account ON dead_letters(account_id, id);

CREATE TABLE event_invoke_configs (
    account_id              TEXT NOT NULL,
    function_name           TEXT NOT NULL,
    qualifier               TEXT NOT NULL,
    maximum_retry_attempts  INTEGER,
    maximum_event_age       INTEGER,
    on_success              TEXT,
    on_failure              TEXT,
    last_modified           REAL NOT NULL,
    PRIMARY KEY (account_id, function_name, qualifier)
);

-- A deleted function takes its configurations with it (its queued events stay: the workers
-- send them to the dead letters, so nothing acknowledged disappears silently).
CREATE TRIGGER functions_drop_event_invoke_configs AFTER DELETE ON functions
BEGIN
    DELETE FROM event_invoke_configs
     WHERE account_id = OLD.account_id AND function_name = OLD.name;
END;
