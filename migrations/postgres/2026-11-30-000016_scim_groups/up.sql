-- SCIM Groups (RFC 7643 §4.2) that the tenant's IdP pushes. `display_key` is
-- the displayName trimmed and lower-cased: names compare case-insensitively
-- (RFC 7643 §4.2 caseExact false) and are unique in a tenant.
CREATE TABLE scim_groups (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    display_name TEXT NOT NULL,
    display_key TEXT NOT NULL,
    external_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, display_key)
);

CREATE INDEX scim_groups_by_external_id ON scim_groups (tenant_id, external_id);

CREATE TABLE scim_group_members (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    group_id TEXT NOT NULL REFERENCES scim_groups(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    PRIMARY KEY (group_id, member_id)
);

CREATE INDEX scim_group_members_by_member ON scim_group_members (tenant_id, member_id);

-- An owner's mapping of a group to a console role: by group id
-- (`target_kind` 'group_id', `target` the id) or by display name
-- ('display_name', `target` the display key), which applies to any group of
-- that name, whenever it exists.
CREATE TABLE role_mappings (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    target_kind TEXT NOT NULL,
    target TEXT NOT NULL,
    display_name TEXT,
    role TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, target_kind, target)
);

-- The role a member was given directly, kept while a group mapping decides
-- `members.role` (which is always the effective role the console reads).
CREATE TABLE member_assigned_roles (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    role TEXT NOT NULL,
    PRIMARY KEY (tenant_id, member_id)
);
