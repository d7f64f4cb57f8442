-- Accounts, their access keys, functions and server settings.
-- Every resource carries the account it belongs to.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE access_keys (
    access_key_id  TEXT PRIMARY KEY NOT NULL,
    secret         TEXT NOT NULL,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    created_at     TEXT NOT NULL
);

-- One row per function ($LATEST). The record is the JSON of stoke_core::Function; the
-- columns beside it are what queries need.
CREATE TABLE functions (
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    name         TEXT NOT NULL,
    revision_id  TEXT NOT NULL,
    code_sha256  TEXT NOT NULL,
    code_size    INTEGER NOT NULL,
    record       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE INDEX functions_code ON functions(code_sha256);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);
