-- An event's tenant is its chain's (see migrations/sqlite): the column held a
-- copy of the chain id in every event. New rows no longer carry it; rows
-- written before keep their bytes until the table is rewritten
-- (VACUUM FULL or pg_repack, at the operator's choice).
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM audit_events
        WHERE tenant_id IS DISTINCT FROM (CASE WHEN chain_id = '_system' THEN NULL ELSE chain_id END)
    ) THEN
        RAISE EXCEPTION 'an audit event''s tenant_id is not its chain''s: not dropping the column';
    END IF;
END
$$;
ALTER TABLE audit_events DROP COLUMN tenant_id;
