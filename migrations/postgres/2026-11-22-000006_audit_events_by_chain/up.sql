-- On SQLite this migration makes audit_events one b-tree keyed by
-- (chain_id, seq) and drops the index on event_id (see migrations/sqlite).
-- PostgreSQL keeps its table as it is: a heap with its indexes, where the key
-- on event_id is what refuses a second copy of an event whose group is
-- retried after a commit whose outcome the network lost. The migration exists
-- so that both backends carry the same versions.
SELECT 1;
