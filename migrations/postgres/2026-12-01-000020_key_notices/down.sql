DROP INDEX api_keys_by_expiry;
DROP TABLE key_notices;
ALTER TABLE tenants DROP COLUMN key_expiry_notice_days;
