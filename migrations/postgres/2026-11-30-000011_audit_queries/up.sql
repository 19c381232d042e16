-- enterprise.audit.list and the SIEM feed filter a chain by operation,
-- outcome, key, actor and time, in seq order, a page at a time. Without an
-- index for the filter, a page whose matches are rare reads the whole chain.
-- See migrations/sqlite for the time order (last_at, ordered_from).
ALTER TABLE audit_chains ADD COLUMN last_at TIMESTAMP;
ALTER TABLE audit_chains ADD COLUMN ordered_from BIGINT NOT NULL DEFAULT 1;
UPDATE audit_chains SET last_at = (
    SELECT occurred_at FROM audit_events e WHERE e.chain_id = audit_chains.chain_id AND e.seq = audit_chains.last_seq
);
UPDATE audit_chains SET ordered_from = COALESCE((
    SELECT MAX(seq) FROM (
        SELECT seq, occurred_at < LAG(occurred_at) OVER (ORDER BY seq) AS went_back
        FROM audit_events e WHERE e.chain_id = audit_chains.chain_id
    ) s WHERE went_back
), 1);
-- The heads move with the inserts (migration 000005), their time with them.
CREATE OR REPLACE FUNCTION audit_chain_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chains c
    SET last_seq = n.seq, last_hash = n.hash, last_at = n.occurred_at
    FROM (SELECT DISTINCT ON (chain_id) chain_id, seq, hash, occurred_at FROM appended ORDER BY chain_id, seq DESC) n
    WHERE c.chain_id = n.chain_id AND n.seq > c.last_seq;
    RETURN NULL;
END
$$;
-- A heap's index does not end with the chain's order as SQLite's do: seq is
-- spelled out, so that a page of a key's, an actor's or an operation's events
-- is an index range in seq order. Outcome: only the denied events (see
-- migrations/sqlite).
DROP INDEX audit_events_by_key;
DROP INDEX audit_events_by_actor;
CREATE INDEX audit_events_by_key ON audit_events (chain_id, key_id, seq);
CREATE INDEX audit_events_by_actor ON audit_events (chain_id, actor_id, seq);
CREATE INDEX audit_events_by_operation ON audit_events (chain_id, operation, seq);
CREATE INDEX audit_events_denied ON audit_events (chain_id, seq) WHERE outcome = 'DENIED';
