-- Bytes and lines of stored log lines per function, for the log byte budgets. Triggers keep it
-- exact whoever writes or deletes lines (the log writer, the async queue's commits, retention).
-- A line counts its message's UTF-8 bytes plus 26, as CloudWatch Logs counts an event.

CREATE TABLE log_usage (
    account_id     TEXT NOT NULL,
    function_name  TEXT NOT NULL,
    bytes          INTEGER NOT NULL,
    lines          INTEGER NOT NULL,
    PRIMARY KEY (account_id, function_name)
) WITHOUT ROWID;

INSERT INTO log_usage (account_id, function_name, bytes, lines)
    SELECT account_id, function_name, SUM(octet_length(message) + 26), COUNT(*)
    FROM log_events GROUP BY account_id, function_name;

CREATE TRIGGER log_events_usage_insert AFTER INSERT ON log_events BEGIN
    INSERT INTO log_usage (account_id, function_name, bytes, lines)
        VALUES (NEW.account_id, NEW.function_name, octet_length(NEW.message) + 26, 1)
        ON CONFLICT (account_id, function_name)
        DO UPDATE SET bytes = bytes + excluded.bytes, lines = lines + 1;
END;

CREATE TRIGGER log_events_usage_delete AFTER DELETE ON log_events BEGIN
    UPDATE log_usage SET bytes = bytes - (octet_length(OLD.message) + 26), lines = lines - 1
        WHERE account_id = OLD.account_id AND function_name = OLD.function_name;
END;

-- The oldest lines of an account, for its budget.
CREATE INDEX log_events_account ON log_events(account_id, id);
