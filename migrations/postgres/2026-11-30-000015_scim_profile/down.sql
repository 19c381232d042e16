-- Fails if a removed member and a live one share an email (the old rule cannot hold them both).
DROP INDEX members_live_email;
DROP INDEX members_by_email;
ALTER TABLE members ADD CONSTRAINT members_tenant_id_email_key UNIQUE (tenant_id, email);
ALTER TABLE members DROP COLUMN profile;
