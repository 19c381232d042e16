CREATE OR REPLACE FUNCTION audit_chain_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chains c
    SET last_seq = n.seq, last_hash = n.hash, last_at = n.occurred_at
    FROM (SELECT DISTINCT ON (chain_id) chain_id, seq, hash, occurred_at FROM appended ORDER BY chain_id, seq DESC) n
    WHERE c.chain_id = n.chain_id AND n.seq > c.last_seq;
    RETURN NULL;
END
$$;
ALTER TABLE audit_events
    ALTER COLUMN event_id TYPE text USING encode(event_id, 'hex')::uuid::text,
    ALTER COLUMN prev_hash TYPE text USING encode(prev_hash, 'hex'),
    ALTER COLUMN hash TYPE text USING encode(hash, 'hex');
