DROP TRIGGER key_state_after_tenant_delete;
DROP TRIGGER key_state_after_tenant_update;
DROP TRIGGER key_state_after_key_update;
DROP TRIGGER key_state_after_key_delete;
DROP TRIGGER key_state_after_key_insert;
DROP TABLE key_state;
