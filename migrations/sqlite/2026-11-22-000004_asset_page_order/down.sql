DROP INDEX assets_by_shared_at;
CREATE INDEX assets_by_shared_at ON assets (tenant_id, shared_at);
