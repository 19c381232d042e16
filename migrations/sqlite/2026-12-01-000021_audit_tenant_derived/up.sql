-- An event's tenant is its chain's: a tenant's chain is named by its tenant
-- id, the system chain (`_system`) has none. The column held a 36-character
-- copy of the chain id in every event; the canonical form still hashes the
-- tenant, derived from the chain id, where it always did, so every chain
-- still verifies. Should any event's tenant not be its chain's, the CHECK
-- below fails and nothing changes (the migration's transaction rolls back).
CREATE TEMP TABLE every_event_tenant_is_its_chain (holds INTEGER NOT NULL CHECK (holds = 1));
INSERT INTO every_event_tenant_is_its_chain
SELECT NOT EXISTS (
    SELECT 1 FROM audit_events
    WHERE tenant_id IS NOT (CASE WHEN chain_id = '_system' THEN NULL ELSE chain_id END)
);
DROP TABLE every_event_tenant_is_its_chain;
ALTER TABLE audit_events DROP COLUMN tenant_id;
