DROP INDEX audit_events_denied;
DROP INDEX audit_events_by_operation;
DROP INDEX audit_events_by_actor;
DROP INDEX audit_events_by_key;
CREATE INDEX audit_events_by_key ON audit_events (chain_id, key_id);
CREATE INDEX audit_events_by_actor ON audit_events (chain_id, actor_id);
CREATE OR REPLACE FUNCTION audit_chain_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chains c
    SET last_seq = n.seq, last_hash = n.hash
    FROM (SELECT DISTINCT ON (chain_id) chain_id, seq, hash FROM appended ORDER BY chain_id, seq DESC) n
    WHERE c.chain_id = n.chain_id AND n.seq > c.last_seq;
    RETURN NULL;
END
$$;
ALTER TABLE audit_chains DROP COLUMN ordered_from;
ALTER TABLE audit_chains DROP COLUMN last_at;
