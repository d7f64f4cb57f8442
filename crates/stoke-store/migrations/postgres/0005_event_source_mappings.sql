-- Event source mappings (issue 15): the record as JSON text, beside the columns lists and
-- leases use. A mapping outlives its function, as Lambda's does. A poller holds an enabled
-- mapping through (lease_owner, lease_until_ms), renewed while it runs.
CREATE TABLE event_source_mappings (
    uuid           TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    source         TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    revision       TEXT NOT NULL,
    record         TEXT NOT NULL,
    lease_owner    TEXT,
    lease_until_ms BIGINT
);
CREATE INDEX event_source_mappings_by_account ON event_source_mappings (account_id, uuid);
