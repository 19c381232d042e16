DROP TRIGGER key_state_after_tenants ON tenants;
DROP TRIGGER key_state_after_keys ON api_keys;
DROP FUNCTION key_state_bump();
DROP TABLE key_state;
