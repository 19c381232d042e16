-- One counter that moves whenever anything a key check reads changes: a key's
-- row (but its last use) or its tenant's status and lifetime policy. Every
-- instance caches verified keys and compares this counter with the one it
-- last saw (instances poll it; the writer reads it after each change), so a
-- change made anywhere (another instance, the CLI, a hand edit) reaches every
-- cache. Triggers, not application code, keep it honest.
CREATE TABLE key_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO key_state (id, version) VALUES (1, 0);

CREATE FUNCTION key_state_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE key_state SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER key_state_after_keys AFTER INSERT OR DELETE OR UPDATE OF
    id, tenant_id, key_type, label, secret_hash, hint, created_by, created_at, expires_at, revoked_at,
    revoke_reason, superseded_at, rotated_from, rotated_to, chain_id, ip_allowlist
ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION key_state_bump();

CREATE TRIGGER key_state_after_tenants AFTER DELETE OR UPDATE OF id, status, max_lifetime_days
ON tenants FOR EACH STATEMENT EXECUTE FUNCTION key_state_bump();
