-- Shared team assets, registered by the platform and governed with asset keys.
CREATE TABLE assets (
    uid TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    asset_type TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    asset_name TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    session_id TEXT,
    shared_at TIMESTAMP NOT NULL,
    permission TEXT NOT NULL,
    asset_exists BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, asset_type, asset_id)
);
CREATE INDEX assets_by_shared_at ON assets (tenant_id, shared_at);
CREATE INDEX assets_by_name ON assets (tenant_id, asset_name);
CREATE INDEX assets_by_owner ON assets (tenant_id, owner_id);

-- Legal holds: a held member cannot be removed by any path.
CREATE TABLE legal_holds (
    uid TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    released_at TIMESTAMP,
    released_by TEXT,
    release_reason TEXT
);
CREATE INDEX legal_holds_by_tenant ON legal_holds (tenant_id, created_at);

CREATE TABLE legal_hold_members (
    hold_uid TEXT NOT NULL REFERENCES legal_holds(uid),
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL REFERENCES members(id),
    PRIMARY KEY (hold_uid, member_id)
);
CREATE INDEX legal_hold_members_by_member ON legal_hold_members (tenant_id, member_id);

-- Export jobs (e-Discovery archives and SIEM bulk exports), run in the background.
CREATE TABLE exports (
    uid TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    member_id TEXT,
    scope TEXT,
    include_files BOOLEAN NOT NULL DEFAULT FALSE,
    include_payload BOOLEAN NOT NULL DEFAULT FALSE,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    file_name TEXT,
    file_size BIGINT,
    file_sha256 TEXT
);
CREATE INDEX exports_by_tenant ON exports (tenant_id, kind, created_at);
CREATE INDEX exports_by_status ON exports (status, created_at);

CREATE INDEX members_by_external_id ON members (tenant_id, external_id);
CREATE INDEX members_by_user_name ON members (tenant_id, user_name);
