-- Event ids and chain hashes as bytes (see migrations/sqlite): shown and
-- hashed as the same text as before. The chain heads keep their hex text.
ALTER TABLE audit_events
    ALTER COLUMN event_id TYPE bytea USING decode(replace(event_id, '-', ''), 'hex'),
    ALTER COLUMN prev_hash TYPE bytea USING decode(prev_hash, 'hex'),
    ALTER COLUMN hash TYPE bytea USING decode(hash, 'hex');
CREATE OR REPLACE FUNCTION audit_chain_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chains c
    SET last_seq = n.seq, last_hash = encode(n.hash, 'hex'), last_at = n.occurred_at
    FROM (SELECT DISTINCT ON (chain_id) chain_id, seq, hash, occurred_at FROM appended ORDER BY chain_id, seq DESC) n
    WHERE c.chain_id = n.chain_id AND n.seq > c.last_seq;
    RETURN NULL;
END
$$;
