-- team.asset.list pages in (shared_at, uid) order, newest first. With uid in
-- the index the database walks it backwards and stops after the page, instead
-- of sorting every asset of the tenant for each page (shares often have equal
-- shared_at, e.g. a bulk import).
DROP INDEX assets_by_shared_at;
CREATE INDEX assets_by_shared_at ON assets (tenant_id, shared_at, uid);
