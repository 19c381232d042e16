-- The audit writer appends a group's events with one INSERT per 40 rows and
-- used to move each chain's head (audit_chains.last_seq, last_hash) with an
-- UPDATE of its own: one more round trip per group, while the chain heads are
-- row-locked and every other writer waits. This statement trigger moves the
-- heads as part of the INSERT, to the last event of each chain it inserted.
-- (SQLite has no statement triggers with transition tables; there the
-- writer's in-process UPDATE stays.)
CREATE FUNCTION audit_chain_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chains c
    SET last_seq = n.seq, last_hash = n.hash
    FROM (SELECT DISTINCT ON (chain_id) chain_id, seq, hash FROM appended ORDER BY chain_id, seq DESC) n
    WHERE c.chain_id = n.chain_id AND n.seq > c.last_seq;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_events_advance_chain AFTER INSERT ON audit_events
REFERENCING NEW TABLE AS appended
FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_advance();
