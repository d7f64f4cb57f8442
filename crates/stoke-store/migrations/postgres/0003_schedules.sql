-- EventBridge Scheduler (issue 15): schedule groups and schedules. The `default` group is not
-- a row (every account has it). A schedule keeps its API record as JSON in `spec`; `next_ms`
-- is its next tick (NULL when none is left) and `last_tick_ms` the last one fired: a fire
-- moves `next_ms` with a compare-and-swap in the transaction that enqueues the tick's event.
CREATE TABLE schedule_groups (
    account_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    modified_ms  BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE schedules (
    account_id    TEXT NOT NULL,
    group_name    TEXT NOT NULL,
    name          TEXT NOT NULL,
    state         TEXT NOT NULL,
    spec          TEXT NOT NULL,
    next_ms       BIGINT,
    last_tick_ms  BIGINT,
    created_ms    BIGINT NOT NULL,
    modified_ms   BIGINT NOT NULL,
    PRIMARY KEY (account_id, group_name, name)
);
CREATE INDEX schedules_due ON schedules(next_ms) WHERE state = 'ENABLED' AND next_ms IS NOT NULL;
