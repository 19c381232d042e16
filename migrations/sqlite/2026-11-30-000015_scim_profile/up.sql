-- SCIM profile attributes (displayName, title, the enterprise extension, ...)
-- as one JSON object; and the email unique among the tenant's members that
-- are not removed, so that a person deprovisioned by an identity provider can
-- be provisioned again as a new member while the removed row stays as it was.
-- SQLite keeps a table's UNIQUE constraint for life: the table is rebuilt
-- (foreign keys off, so that legal_hold_members keeps pointing at members).
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
    profile TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO members_rebuilt (id, tenant_id, email, role, status, first_name, last_name, user_name, external_id, created_at, updated_at)
    SELECT id, tenant_id, email, role, status, first_name, last_name, user_name, external_id, created_at, updated_at FROM members;
DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;
CREATE INDEX members_by_external_id ON members (tenant_id, external_id);
CREATE INDEX members_by_user_name ON members (tenant_id, user_name);
CREATE INDEX members_by_email ON members (tenant_id, email);
CREATE UNIQUE INDEX members_live_email ON members (tenant_id, email) WHERE status <> 'USER_STATUS_REMOVED';
COMMIT;
PRAGMA foreign_keys = ON;
