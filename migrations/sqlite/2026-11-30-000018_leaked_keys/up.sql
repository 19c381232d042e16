-- What keyward does with a key reported leaked: REVOKE it, or NOTIFY only (mark it).
ALTER TABLE tenants ADD COLUMN leaked_key_action TEXT NOT NULL DEFAULT 'REVOKE';

-- Keys reported leaked in public (the secret-scanning partner endpoint): one row a key, the first report.
CREATE TABLE key_leaks (
    key_id TEXT PRIMARY KEY NOT NULL REFERENCES api_keys(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    reported_at TIMESTAMP NOT NULL,
    url TEXT,
    source TEXT,
    action TEXT NOT NULL
);
CREATE INDEX key_leaks_by_tenant ON key_leaks (tenant_id, reported_at);

-- Signed reports already acted on, by the SHA-256 of their body: a replay is refused.
CREATE TABLE secret_scanning_reports (
    body_sha256 TEXT PRIMARY KEY NOT NULL,
    key_identifier TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
