-- Pushed SIEM delivery: each sink follows its tenant's audit chain with a
-- cursor (delivered_through); the chain itself is the outbox.
CREATE TABLE siem_sinks (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    format TEXT NOT NULL,
    -- JSON arrays of names; NULL: every one.
    filter_operations TEXT,
    filter_outcomes TEXT,
    -- AES-256-GCM (nonce || ciphertext || tag), the sink id as associated data.
    secret_sealed BYTEA NOT NULL,
    state TEXT NOT NULL,
    delivered_through BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    failing_since TIMESTAMP,
    next_attempt_at TIMESTAMP,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
-- A name names one live sink of a tenant; a deleted sink's name is free again.
CREATE UNIQUE INDEX siem_sinks_name ON siem_sinks (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX siem_sinks_tenant ON siem_sinks (tenant_id, created_at);
-- The worker's question: which live sinks are due.
CREATE INDEX siem_sinks_due ON siem_sinks (state, next_attempt_at) WHERE deleted_at IS NULL;
