-- Published versions and aliases of functions, and what $LATEST serves while an update runs.

-- The code calls of $LATEST run (the last generation prepared successfully); it may differ
-- from code_sha256 while an update is in progress or after one failed.
ALTER TABLE functions ADD COLUMN serving_sha256 TEXT;
-- The highest version number ever published: numbers are never reused, even after a delete.
ALTER TABLE functions ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX functions_serving_code ON functions(serving_sha256);

-- One row per published version; the record is the JSON of stoke_core::Function and never
-- changes after publishing but for its state (Pending → Active or Failed).
CREATE TABLE versions (
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    version        INTEGER NOT NULL,
    code_sha256    TEXT NOT NULL,
    code_size      INTEGER NOT NULL,
    revision_id    TEXT NOT NULL,
    record         TEXT NOT NULL,
    PRIMARY KEY (account_id, function_name, version),
    FOREIGN KEY (account_id, function_name) REFERENCES functions(account_id, name) ON DELETE CASCADE
);
CREATE INDEX versions_code ON versions(code_sha256);

-- Aliases; the record is the JSON of stoke_core::Alias. The two version columns are what the
-- alias routes to, for ListAliases' FunctionVersion filter.
CREATE TABLE aliases (
    account_id          TEXT NOT NULL,
    function_name       TEXT NOT NULL,
    name                TEXT NOT NULL,
    function_version    TEXT NOT NULL,
    additional_version  TEXT,
    revision_id         TEXT NOT NULL,
    record              TEXT NOT NULL,
    PRIMARY KEY (account_id, function_name, name),
    FOREIGN KEY (account_id, function_name) REFERENCES functions(account_id, name) ON DELETE CASCADE
);
