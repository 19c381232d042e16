-- SCIM profile attributes (displayName, title, the enterprise extension, ...)
-- as one JSON object; and the email unique among the tenant's members that
-- are not removed, so that a person deprovisioned by an identity provider can
-- be provisioned again as a new member while the removed row stays as it was.
ALTER TABLE members ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';
ALTER TABLE members DROP CONSTRAINT members_tenant_id_email_key;
CREATE INDEX members_by_email ON members (tenant_id, email);
CREATE UNIQUE INDEX members_live_email ON members (tenant_id, email) WHERE status <> 'USER_STATUS_REMOVED';
