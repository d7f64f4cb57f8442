-- The hop count of an async event: how many destination deliveries led to it (0 for an event
-- a caller enqueued). The engine stops a chain of destinations (A's destination is B, B's is A)
-- at its limit instead of enqueueing the next hop.
ALTER TABLE async_events ADD COLUMN hops INTEGER NOT NULL DEFAULT 0;
