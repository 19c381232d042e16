DROP TABLE secret_scanning_reports;
DROP TABLE key_leaks;
ALTER TABLE tenants DROP COLUMN leaked_key_action;
