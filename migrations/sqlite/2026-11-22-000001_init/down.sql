DROP TABLE audit_events;
DROP TABLE audit_chains;
DROP TABLE api_keys;
DROP TABLE members;
DROP TABLE tenants;
