DROP INDEX audit_events_by_event_id;
