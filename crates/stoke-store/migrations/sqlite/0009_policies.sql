-- Functions' resource-based policies, one per qualifier ('' for the function's own, which covers
-- $LATEST; a version number or an alias name otherwise), the statements as JSON. They go with
-- their function (ON DELETE CASCADE); a version's or alias's goes when the control plane deletes
-- it.
CREATE TABLE policies (
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    qualifier      TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    record         TEXT NOT NULL,
    PRIMARY KEY (account_id, function_name, qualifier),
    FOREIGN KEY (account_id, function_name) REFERENCES functions(account_id, name) ON DELETE CASCADE
);

-- The account whose key signed a call, beside the owner's (account_id): another account's call
-- of a function it was granted runs, logs and is recorded in the owner's account. NULL for
-- records written before this column, which were all the owner's own.
ALTER TABLE invocations ADD COLUMN caller_account_id TEXT;
-- The same for an async event queued by another account (NULL: the owner's own).
ALTER TABLE async_events ADD COLUMN caller_account_id TEXT;
