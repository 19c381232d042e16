DROP INDEX audit_events_denied;
DROP INDEX audit_events_by_operation;
ALTER TABLE audit_chains DROP COLUMN ordered_from;
ALTER TABLE audit_chains DROP COLUMN last_at;
