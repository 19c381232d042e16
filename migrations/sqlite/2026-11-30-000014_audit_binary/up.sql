-- Event ids and chain hashes as bytes: a UUID is 16 bytes, not 36 characters
-- of text; a SHA-256 32, not 64 hex digits. Every event carries one id and
-- two hashes, and the unique index on event_id another copy of the id. They
-- are shown, and hashed into the chain, as the same text as before (the
-- canonical bytes do not change, so every chain still verifies).
CREATE TABLE audit_events_binary (
    event_id BLOB NOT NULL,
    chain_id TEXT NOT NULL,
    tenant_id TEXT,
    seq BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    operation TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    key_id TEXT,
    key_type TEXT,
    key_hint TEXT,
    request_id TEXT NOT NULL,
    client_ip TEXT,
    user_agent TEXT,
    status_code INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    payload TEXT,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    tree_hashes BLOB,
    PRIMARY KEY (chain_id, seq)
) WITHOUT ROWID;
INSERT INTO audit_events_binary (event_id, chain_id, tenant_id, seq, occurred_at, operation, outcome, reason, actor_type, actor_id, key_id, key_type, key_hint, request_id, client_ip, user_agent, status_code, metadata, payload, prev_hash, hash, tree_hashes)
SELECT unhex(replace(event_id, '-', '')), chain_id, tenant_id, seq, occurred_at, operation, outcome, reason, actor_type, actor_id, key_id, key_type, key_hint, request_id, client_ip, user_agent, status_code, metadata, payload, unhex(prev_hash), unhex(hash), tree_hashes FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_binary RENAME TO audit_events;
CREATE INDEX audit_events_by_key ON audit_events (chain_id, key_id);
CREATE INDEX audit_events_by_actor ON audit_events (chain_id, actor_id);
CREATE UNIQUE INDEX audit_events_by_event_id ON audit_events (event_id);
CREATE INDEX audit_events_by_operation ON audit_events (chain_id, operation);
CREATE INDEX audit_events_denied ON audit_events (chain_id, outcome) WHERE outcome = 'DENIED';
