ALTER TABLE audit_events ADD COLUMN tenant_id TEXT;
UPDATE audit_events SET tenant_id = CASE WHEN chain_id = '_system' THEN NULL ELSE chain_id END;
