DROP TRIGGER audit_events_advance_chain ON audit_events;
DROP FUNCTION audit_chain_advance();
