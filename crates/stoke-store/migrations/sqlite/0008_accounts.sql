-- Accounts with names and limits; access keys with sealed secrets (issue 13).
--
-- An account has a unique name (the default account's is `admin`; accounts made before names
-- existed are named by their id) and an optional concurrency limit (NULL: the server's
-- default). An access key's secret is kept only sealed (`sealed_secret`: AES-256-GCM under the
-- master key, the access key id as associated data). The master key is not in the database,
-- so this migration cannot seal: it moves the clear-text secrets of existing keys to
-- `legacy_secret`, and the store seals them at its next open and clears that column (with
-- secure_delete on, so the clear text does not linger in freed pages).

ALTER TABLE accounts ADD COLUMN name TEXT;
ALTER TABLE accounts ADD COLUMN concurrency_limit INTEGER;
UPDATE accounts SET name = CASE WHEN is_default = 1 THEN 'admin' ELSE id END;
CREATE UNIQUE INDEX accounts_by_name ON accounts(name);

CREATE TABLE access_keys_sealed (
    access_key_id  TEXT PRIMARY KEY NOT NULL,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    created_at     TEXT NOT NULL,
    sealed_secret  BLOB,
    legacy_secret  TEXT,
    CHECK (sealed_secret IS NOT NULL OR legacy_secret IS NOT NULL)
);
INSERT INTO access_keys_sealed (access_key_id, account_id, created_at, legacy_secret)
    SELECT access_key_id, account_id, created_at, secret FROM access_keys;
DROP TABLE access_keys;
ALTER TABLE access_keys_sealed RENAME TO access_keys;
CREATE INDEX access_keys_by_account ON access_keys(account_id, created_at);
