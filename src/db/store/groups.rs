//! SCIM Groups, their members, the owner's group → role mappings, and the
//! roles members were assigned directly while a mapping decides theirs.

use crate::db::models::Member;
use crate::db::schema::{member_assigned_roles, members, role_mappings, scim_group_members, scim_groups};
use crate::db::DbConn;
use crate::domain::Role;
use crate::error::{AppError, AppResult, ErrorCode};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Most ids one `IN (…)` list carries (SQLite bounds bound parameters).
const ID_CHUNK: usize = 500;

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = scim_groups)]
pub struct GroupRow {
    pub id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub display_key: String,
    pub external_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

fn name_taken(e: diesel::result::Error) -> AppError {
    match AppError::from(e) {
        e if e.code == ErrorCode::AlreadyExists => {
            AppError::already_exists("a Group with this displayName already exists")
        }
        e => e,
    }
}

pub fn insert_group(conn: &mut DbConn, g: &GroupRow) -> AppResult<()> {
    diesel::insert_into(scim_groups::table).values(g).execute(conn).map_err(name_taken)?;
    Ok(())
}

pub fn find_group(conn: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<Option<GroupRow>> {
    Ok(scim_groups::table
        .filter(scim_groups::tenant_id.eq(tenant_id))
        .filter(scim_groups::id.eq(id))
        .first(conn)
        .optional()?)
}

pub fn find_group_by_display_key(conn: &mut DbConn, tenant_id: &str, key: &str) -> AppResult<Option<GroupRow>> {
    Ok(scim_groups::table
        .filter(scim_groups::tenant_id.eq(tenant_id))
        .filter(scim_groups::display_key.eq(key))
        .first(conn)
        .optional()?)
}

/// Rewrites a group's name and externalId.
pub fn update_group(conn: &mut DbConn, g: &GroupRow) -> AppResult<()> {
    diesel::update(
        scim_groups::table.filter(scim_groups::tenant_id.eq(&g.tenant_id)).filter(scim_groups::id.eq(&g.id)),
    )
    .set((
        scim_groups::display_name.eq(&g.display_name),
        scim_groups::display_key.eq(&g.display_key),
        scim_groups::external_id.eq(&g.external_id),
        scim_groups::updated_at.eq(g.updated_at),
    ))
    .execute(conn)
    .map_err(name_taken)?;
    Ok(())
}

/// Deletes a group with its memberships.
pub fn delete_group(conn: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<()> {
    diesel::delete(
        scim_group_members::table
            .filter(scim_group_members::tenant_id.eq(tenant_id))
            .filter(scim_group_members::group_id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(scim_groups::table.filter(scim_groups::tenant_id.eq(tenant_id)).filter(scim_groups::id.eq(id)))
        .execute(conn)?;
    Ok(())
}

/// What a Groups list selects (all given clauses must match).
#[derive(Debug, Default, Clone)]
pub struct GroupQuery {
    pub id: Option<String>,
    pub display_key: Option<String>,
    pub external_id: Option<String>,
}

/// A page of a tenant's groups in creation order, and the total that match.
pub fn list_groups(
    conn: &mut DbConn,
    tenant_id: &str,
    q: &GroupQuery,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<GroupRow>, i64)> {
    let build = || {
        let mut b = scim_groups::table.filter(scim_groups::tenant_id.eq(tenant_id.to_string())).into_boxed();
        if let Some(v) = &q.id {
            b = b.filter(scim_groups::id.eq(v.clone()));
        }
        if let Some(v) = &q.display_key {
            b = b.filter(scim_groups::display_key.eq(v.clone()));
        }
        if let Some(v) = &q.external_id {
            b = b.filter(scim_groups::external_id.eq(v.clone()));
        }
        b
    };
    let total: i64 = build().count().get_result(conn)?;
    let rows =
        build().order((scim_groups::created_at.asc(), scim_groups::id.asc())).offset(offset).limit(limit).load(conn)?;
    Ok((rows, total))
}

/// `(group_id, member_id)` of the given groups' members.
pub fn members_of_groups(conn: &mut DbConn, tenant_id: &str, group_ids: &[String]) -> AppResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for chunk in group_ids.chunks(ID_CHUNK) {
        let rows: Vec<(String, String)> = scim_group_members::table
            .filter(scim_group_members::tenant_id.eq(tenant_id))
            .filter(scim_group_members::group_id.eq_any(chunk))
            .select((scim_group_members::group_id, scim_group_members::member_id))
            .order(scim_group_members::member_id.asc())
            .load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

pub fn add_group_member(conn: &mut DbConn, tenant_id: &str, group_id: &str, member_id: &str) -> AppResult<()> {
    diesel::insert_into(scim_group_members::table)
        .values((
            scim_group_members::tenant_id.eq(tenant_id),
            scim_group_members::group_id.eq(group_id),
            scim_group_members::member_id.eq(member_id),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn remove_group_member(conn: &mut DbConn, tenant_id: &str, group_id: &str, member_id: &str) -> AppResult<()> {
    diesel::delete(
        scim_group_members::table
            .filter(scim_group_members::tenant_id.eq(tenant_id))
            .filter(scim_group_members::group_id.eq(group_id))
            .filter(scim_group_members::member_id.eq(member_id)),
    )
    .execute(conn)?;
    Ok(())
}

/// `(member_id, group_id, display_key)` of every group the given members belong to.
pub fn groups_of_members(
    conn: &mut DbConn,
    tenant_id: &str,
    member_ids: &[String],
) -> AppResult<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for chunk in member_ids.chunks(ID_CHUNK) {
        let rows: Vec<(String, String, String)> = scim_group_members::table
            .inner_join(scim_groups::table)
            .filter(scim_group_members::tenant_id.eq(tenant_id))
            .filter(scim_groups::tenant_id.eq(tenant_id))
            .filter(scim_group_members::member_id.eq_any(chunk))
            .select((scim_group_members::member_id, scim_groups::id, scim_groups::display_key))
            .load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

/// Takes a member out of every group; returns the groups they were in.
pub fn remove_member_from_groups(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<Vec<String>> {
    let filter = scim_group_members::table
        .filter(scim_group_members::tenant_id.eq(tenant_id))
        .filter(scim_group_members::member_id.eq(member_id));
    let groups: Vec<String> = filter.select(scim_group_members::group_id).load(conn)?;
    diesel::delete(filter).execute(conn)?;
    Ok(groups)
}

/// The tenant's members among `ids` (any status).
pub fn members_by_ids(conn: &mut DbConn, tenant_id: &str, ids: &[String]) -> AppResult<Vec<Member>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(ID_CHUNK) {
        let rows: Vec<Member> =
            members::table.filter(members::tenant_id.eq(tenant_id)).filter(members::id.eq_any(chunk)).load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

/// Sets a member's effective role.
pub fn set_member_role(conn: &mut DbConn, tenant_id: &str, id: &str, role: Role, at: NaiveDateTime) -> AppResult<()> {
    diesel::update(members::table.filter(members::tenant_id.eq(tenant_id)).filter(members::id.eq(id)))
        .set((members::role.eq(role), members::updated_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

// ------------------------------------------------------------------ role mappings

/// What a mapping names: one group by id, or every group of a display name.
pub const TARGET_GROUP_ID: &str = "group_id";
pub const TARGET_DISPLAY_NAME: &str = "display_name";

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = role_mappings)]
pub struct RoleMappingRow {
    pub tenant_id: String,
    pub target_kind: String,
    /// The group id, or the display key.
    pub target: String,
    /// The display name as the owner gave it (display-name mappings).
    pub display_name: Option<String>,
    pub role: Role,
    pub updated_at: NaiveDateTime,
}

pub fn list_role_mappings(conn: &mut DbConn, tenant_id: &str) -> AppResult<Vec<RoleMappingRow>> {
    Ok(role_mappings::table
        .filter(role_mappings::tenant_id.eq(tenant_id))
        .order((role_mappings::target_kind.asc(), role_mappings::target.asc()))
        .load(conn)?)
}

pub fn find_role_mapping(
    conn: &mut DbConn,
    tenant_id: &str,
    kind: &str,
    target: &str,
) -> AppResult<Option<RoleMappingRow>> {
    Ok(role_mappings::table
        .filter(role_mappings::tenant_id.eq(tenant_id))
        .filter(role_mappings::target_kind.eq(kind))
        .filter(role_mappings::target.eq(target))
        .first(conn)
        .optional()?)
}

pub fn delete_role_mapping(conn: &mut DbConn, tenant_id: &str, kind: &str, target: &str) -> AppResult<()> {
    diesel::delete(
        role_mappings::table
            .filter(role_mappings::tenant_id.eq(tenant_id))
            .filter(role_mappings::target_kind.eq(kind))
            .filter(role_mappings::target.eq(target)),
    )
    .execute(conn)?;
    Ok(())
}

/// Inserts or replaces a mapping.
pub fn put_role_mapping(conn: &mut DbConn, m: &RoleMappingRow) -> AppResult<()> {
    delete_role_mapping(conn, &m.tenant_id, &m.target_kind, &m.target)?;
    diesel::insert_into(role_mappings::table).values(m).execute(conn)?;
    Ok(())
}

// ------------------------------------------------------------------ assigned roles

pub fn find_assigned_role(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<Option<Role>> {
    Ok(member_assigned_roles::table
        .filter(member_assigned_roles::tenant_id.eq(tenant_id))
        .filter(member_assigned_roles::member_id.eq(member_id))
        .select(member_assigned_roles::role)
        .first(conn)
        .optional()?)
}

pub fn set_assigned_role(conn: &mut DbConn, tenant_id: &str, member_id: &str, role: Role) -> AppResult<()> {
    clear_assigned_role(conn, tenant_id, member_id)?;
    diesel::insert_into(member_assigned_roles::table)
        .values((
            member_assigned_roles::tenant_id.eq(tenant_id),
            member_assigned_roles::member_id.eq(member_id),
            member_assigned_roles::role.eq(role),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn clear_assigned_role(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<()> {
    diesel::delete(
        member_assigned_roles::table
            .filter(member_assigned_roles::tenant_id.eq(tenant_id))
            .filter(member_assigned_roles::member_id.eq(member_id)),
    )
    .execute(conn)?;
    Ok(())
}
