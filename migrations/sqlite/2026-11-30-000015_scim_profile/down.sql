-- Fails if a removed member and a live one share an email (the old rule cannot hold them both).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE members_rebuilt (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    user_name TEXT,
    external_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, email)
);
INSERT INTO members_rebuilt (id, tenant_id, email, role, status, first_name, last_name, user_name, external_id, created_at, updated_at)
    SELECT id, tenant_id, email, role, status, first_name, last_name, user_name, external_id, created_at, updated_at FROM members;
DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;
CREATE INDEX members_by_external_id ON members (tenant_id, external_id);
CREATE INDEX members_by_user_name ON members (tenant_id, user_name);
COMMIT;
PRAGMA foreign_keys = ON;
