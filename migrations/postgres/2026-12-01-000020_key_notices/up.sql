-- Days before a key's expiry at which its tenant is told; a JSON array, largest first ('[]': no notices).
ALTER TABLE tenants ADD COLUMN key_expiry_notice_days TEXT NOT NULL DEFAULT '[14,1]';

-- Lifecycle notices already written, one row a key and kind ('expiring:14', 'expired'): the
-- primary key makes each notice once, whichever instance or pass gets there first.
CREATE TABLE key_notices (
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    kind TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, kind)
);

-- The notice job reads a tenant's keys by expiry.
CREATE INDEX api_keys_by_expiry ON api_keys (tenant_id, expires_at);

-- Keys that expired before notices existed are not announced now, all at once.
INSERT INTO key_notices (key_id, kind, tenant_id, created_at)
SELECT id, 'expired', tenant_id, now() AT TIME ZONE 'UTC'
FROM api_keys
WHERE expires_at IS NOT NULL AND expires_at <= now() AT TIME ZONE 'UTC';
