-- Concurrency slots (src/slots.rs): a limit of N is N numbered slots of a scope, each held by a
-- node's call (its token) until it is given back or expires.
CREATE TABLE concurrency_slots (
    scope       TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    owner       TEXT NOT NULL,
    token       TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    PRIMARY KEY (scope, slot)
);
CREATE INDEX concurrency_slots_owner ON concurrency_slots(owner);
CREATE INDEX concurrency_slots_token ON concurrency_slots(scope, token);
