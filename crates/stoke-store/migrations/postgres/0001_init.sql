-- The PostgreSQL schema: the same tables and columns as SQLite's after its migrations 0001 to
-- 0009, in PostgreSQL's types (see docs/decisions.md, "The PostgreSQL schema"). Names that are
-- listed in order compare byte by byte (COLLATE "C"), as SQLite's do, whatever the database's
-- locale. Records
-- (functions, versions, aliases, policies) are the JSON text of their stoke_core type beside
-- the columns that queries need; times are what SQLite holds (milliseconds since the epoch as
-- BIGINT, Lambda's timestamp text for created_at, seconds as DOUBLE PRECISION for
-- last_modified). Where SQLite orders by rowid, a table has an identity column `seq`.

CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    is_default         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         TEXT NOT NULL,
    concurrency_limit  BIGINT,
    seq                BIGINT GENERATED ALWAYS AS IDENTITY
);

-- An access key's secret is kept only sealed (AES-256-GCM under the master key, the access
-- key id as associated data): a PostgreSQL store never held one in clear.
CREATE TABLE access_keys (
    access_key_id  TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    created_at     TEXT NOT NULL,
    sealed_secret  BYTEA NOT NULL,
    seq            BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX access_keys_by_account ON access_keys(account_id, created_at, seq);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE functions (
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    name            TEXT COLLATE "C" NOT NULL,
    revision_id     TEXT NOT NULL,
    code_sha256     TEXT NOT NULL,
    serving_sha256  TEXT,
    code_size       BIGINT NOT NULL,
    last_version    BIGINT NOT NULL DEFAULT 0,
    record          TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE INDEX functions_code ON functions(code_sha256);
CREATE INDEX functions_serving_code ON functions(serving_sha256);

CREATE TABLE versions (
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    version        BIGINT NOT NULL,
    code_sha256    TEXT NOT NULL,
    code_size      BIGINT NOT NULL,
    revision_id    TEXT NOT NULL,
    record         TEXT NOT NULL,
    PRIMARY KEY (account_id, function_name, version),
    FOREIGN KEY (account_id, function_name) REFERENCES functions(account_id, name) ON DELETE CASCADE
);
CREATE INDEX versions_code ON versions(code_sha256);

CREATE TABLE aliases (
    account_id          TEXT NOT NULL,
    function_name       TEXT NOT NULL,
    name                TEXT COLLATE "C" NOT NULL,
    function_version    TEXT NOT NULL,
    additional_version  TEXT,
    revision_id         TEXT NOT NULL,
    record              TEXT NOT NULL,
    PRIMARY KEY (account_id, function_name, name),
    FOREIGN KEY (account_id, function_name) REFERENCES functions(account_id, name) ON DELETE CASCADE
);

CREATE TABLE policies (
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    qualifier      TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    record         TEXT NOT NULL,
    PRIMARY KEY (account_id, function_name, qualifier),
    FOREIGN KEY (account_id, function_name) REFERENCES functions(account_id, name) ON DELETE CASCADE
);

-- Invocation records, one per attempt, keyed by an identity (SQLite's rowid): appends land at
-- the end of the table and its key.
CREATE TABLE invocations (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id         TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    caller_account_id  TEXT,
    function_name      TEXT NOT NULL,
    version            TEXT NOT NULL,
    started_ms         BIGINT NOT NULL,
    cold               BOOLEAN NOT NULL,
    init_ms            DOUBLE PRECISION,
    duration_ms        DOUBLE PRECISION NOT NULL,
    billed_ms          BIGINT NOT NULL,
    memory_size_mb     BIGINT NOT NULL,
    max_memory_mb      BIGINT NOT NULL,
    outcome            TEXT NOT NULL,
    error_type         TEXT
);
CREATE INDEX invocations_function ON invocations(account_id, function_name, started_ms);

CREATE TABLE log_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    log_stream     TEXT NOT NULL,
    timestamp_ms   BIGINT NOT NULL,
    request_id     TEXT NOT NULL,
    message        TEXT NOT NULL
);
CREATE INDEX log_events_function ON log_events(account_id, function_name, id);
CREATE INDEX log_events_account ON log_events(account_id, id);

-- Bytes and lines of stored log lines per function (a line counts its message's UTF-8 bytes
-- plus 26, as CloudWatch Logs counts an event), kept exact by triggers whoever writes.
CREATE TABLE log_usage (
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    bytes          BIGINT NOT NULL,
    lines          BIGINT NOT NULL,
    PRIMARY KEY (account_id, function_name)
);

CREATE FUNCTION log_events_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO log_usage (account_id, function_name, bytes, lines)
            SELECT account_id, function_name, SUM(octet_length(message) + 26), COUNT(*)
            FROM new_rows GROUP BY account_id, function_name
            ON CONFLICT (account_id, function_name)
            DO UPDATE SET bytes = log_usage.bytes + excluded.bytes,
                          lines = log_usage.lines + excluded.lines;
    ELSE
        UPDATE log_usage u SET bytes = u.bytes - d.bytes, lines = u.lines - d.lines
            FROM (SELECT account_id, function_name, SUM(octet_length(message) + 26) AS bytes,
                         COUNT(*) AS lines
                  FROM old_rows GROUP BY account_id, function_name) d
            WHERE u.account_id = d.account_id AND u.function_name = d.function_name;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER log_events_usage_insert AFTER INSERT ON log_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_events_usage();
CREATE TRIGGER log_events_usage_delete AFTER DELETE ON log_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION log_events_usage();

-- The durable queue of async events (see SQLite's 0004): a row per unfinished event, its
-- lease (owner, expiry) in the row. Workers claim with FOR UPDATE SKIP LOCKED.
CREATE TABLE async_events (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id         TEXT NOT NULL UNIQUE,
    account_id         TEXT NOT NULL,
    caller_account_id  TEXT,
    function_name      TEXT NOT NULL,
    qualifier          TEXT NOT NULL,
    payload            BYTEA NOT NULL,
    trace_id           TEXT,
    enqueued_ms        BIGINT NOT NULL,
    next_run_ms        BIGINT NOT NULL,
    runs               BIGINT NOT NULL DEFAULT 0,
    failures           BIGINT NOT NULL DEFAULT 0,
    backoff_ms         BIGINT NOT NULL DEFAULT 0,
    hops               BIGINT NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_until_ms     BIGINT
);
CREATE INDEX async_events_due ON async_events(next_run_ms);
CREATE INDEX async_events_owner ON async_events(lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE dead_letters (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id     TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    qualifier      TEXT NOT NULL,
    payload        BYTEA NOT NULL,
    trace_id       TEXT,
    enqueued_ms    BIGINT NOT NULL,
    failed_ms      BIGINT NOT NULL,
    condition      TEXT NOT NULL,
    runs           BIGINT NOT NULL,
    error_type     TEXT,
    response       BYTEA
);
CREATE INDEX dead_letters_account ON dead_letters(account_id, id);

CREATE TABLE event_invoke_configs (
    account_id              TEXT NOT NULL,
    function_name           TEXT NOT NULL,
    qualifier               TEXT COLLATE "C" NOT NULL,
    maximum_retry_attempts  BIGINT,
    maximum_event_age       BIGINT,
    on_success              TEXT,
    on_failure              TEXT,
    last_modified           DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (account_id, function_name, qualifier)
);

-- A deleted function takes its configurations with it (its queued events stay).
CREATE FUNCTION functions_drop_event_invoke_configs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_invoke_configs
     WHERE account_id = OLD.account_id AND function_name = OLD.name;
    RETURN NULL;
END;
$$;
CREATE TRIGGER functions_drop_event_invoke_configs AFTER DELETE ON functions
    FOR EACH ROW EXECUTE FUNCTION functions_drop_event_invoke_configs();

-- Code blobs, content-addressed: a blob row (its digest and size) once every chunk of it is
-- written, in the same transaction; chunks of at most 1 MiB in order.
CREATE TABLE code_blobs (
    sha256  TEXT PRIMARY KEY,
    size    BIGINT NOT NULL
);
CREATE TABLE code_blob_chunks (
    sha256  TEXT NOT NULL REFERENCES code_blobs(sha256) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (sha256, seq)
);
