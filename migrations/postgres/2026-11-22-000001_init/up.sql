CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    -- The key policy lives on the tenant row so that key verification reads it in the same lookup.
    max_lifetime_days TEXT NOT NULL DEFAULT '{}',
    siem_tier2_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    policy_updated_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE members (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    user_name TEXT,
    external_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key_type TEXT NOT NULL,
    label TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoke_reason TEXT,
    superseded_at TIMESTAMP,
    rotated_from TEXT,
    rotated_to TEXT,
    chain_id TEXT NOT NULL,
    ip_allowlist TEXT NOT NULL DEFAULT '[]',
    last_used_at TIMESTAMP,
    last_used_ip TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE audit_chains (
    chain_id TEXT PRIMARY KEY NOT NULL,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);

CREATE TABLE audit_events (
    event_id TEXT PRIMARY KEY NOT NULL,
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
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (chain_id, seq)
);
CREATE INDEX audit_events_by_key ON audit_events (chain_id, key_id);
CREATE INDEX audit_events_by_actor ON audit_events (chain_id, actor_id);

-- Events that no tenant can be told for (unknown keys, unknown routes) chain here.
INSERT INTO audit_chains (chain_id, last_seq, last_hash)
VALUES ('_system', 0, '0000000000000000000000000000000000000000000000000000000000000000');
