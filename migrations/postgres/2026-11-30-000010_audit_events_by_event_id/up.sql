-- PostgreSQL already finds events by id: event_id is audit_events' primary
-- key. (SQLite gets the index proofs by event id need; both backends carry
-- the same versions.)
SELECT 1;
