//! Members of a tenant.

use super::lower;
use crate::db::models::Member;
use crate::db::schema::members;
use crate::db::DbConn;
use crate::domain::{MemberStatus, Role};
use crate::error::{AppError, AppResult};
use diesel::prelude::*;

pub fn insert_member(conn: &mut DbConn, member: &Member) -> AppResult<()> {
    diesel::insert_into(members::table).values(member).execute(conn).map_err(|e| match AppError::from(e) {
        e if e.code == crate::error::ErrorCode::AlreadyExists => {
            AppError::already_exists("a member with this email already exists in the tenant")
        }
        e => e,
    })?;
    Ok(())
}

pub fn find_member(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<Option<Member>> {
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(members::id.eq(member_id))
        .first(conn)
        .optional()?)
}

/// The member with this email: the live one (emails are unique among members
/// not removed), else the latest removed one (a removed member's email may
/// have been provisioned again).
pub fn find_member_by_email(conn: &mut DbConn, tenant_id: &str, email: &str) -> AppResult<Option<Member>> {
    if let Some(live) = find_live_member_by_email(conn, tenant_id, email)? {
        return Ok(Some(live));
    }
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(members::email.eq(email))
        .order((members::created_at.desc(), members::id.desc()))
        .first(conn)
        .optional()?)
}

/// The member not removed with this email, if any.
pub fn find_live_member_by_email(conn: &mut DbConn, tenant_id: &str, email: &str) -> AppResult<Option<Member>> {
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(members::email.eq(email))
        .filter(members::status.ne(MemberStatus::Removed))
        .first(conn)
        .optional()?)
}

/// The member not removed with this userName (SCIM compares it case-insensitively).
pub fn find_live_member_by_user_name(conn: &mut DbConn, tenant_id: &str, user_name: &str) -> AppResult<Option<Member>> {
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(lower(members::user_name.assume_not_null()).eq(user_name.to_lowercase()))
        .filter(members::status.ne(MemberStatus::Removed))
        .first(conn)
        .optional()?)
}

/// Rewrites a member's mutable fields.
pub fn update_member(conn: &mut DbConn, m: &Member) -> AppResult<()> {
    diesel::update(members::table.filter(members::tenant_id.eq(&m.tenant_id)).filter(members::id.eq(&m.id)))
        .set((
            members::email.eq(&m.email),
            members::role.eq(&m.role),
            members::status.eq(&m.status),
            members::first_name.eq(&m.first_name),
            members::last_name.eq(&m.last_name),
            members::user_name.eq(&m.user_name),
            members::external_id.eq(&m.external_id),
            members::profile.eq(&m.profile),
            members::updated_at.eq(m.updated_at),
        ))
        .execute(conn)
        .map_err(|e| match AppError::from(e) {
            e if e.code == crate::error::ErrorCode::AlreadyExists => {
                AppError::already_exists("a member with this email already exists in the tenant")
            }
            e => e,
        })?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct MemberFilter {
    pub status: Option<MemberStatus>,
    pub role: Option<Role>,
    pub email: Option<String>,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    /// Leave out removed members (SCIM serves deactivated users, not removed ones).
    pub hide_removed: bool,
}

/// A page of a tenant's members in creation order, and the total that match.
pub fn list_members(
    conn: &mut DbConn,
    tenant_id: &str,
    filter: &MemberFilter,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<Member>, i64)> {
    let build = || {
        let mut q = members::table.filter(members::tenant_id.eq(tenant_id.to_string())).into_boxed();
        if let Some(v) = filter.status {
            q = q.filter(members::status.eq(v));
        }
        if let Some(v) = filter.role {
            q = q.filter(members::role.eq(v));
        }
        if let Some(v) = &filter.email {
            q = q.filter(members::email.eq(v.clone()));
        }
        if let Some(v) = &filter.user_name {
            q = q.filter(lower(members::user_name.assume_not_null()).eq(v.to_lowercase()));
        }
        if let Some(v) = &filter.external_id {
            q = q.filter(members::external_id.eq(v.clone()));
        }
        if filter.hide_removed {
            q = q.filter(members::status.ne(MemberStatus::Removed));
        }
        q
    };
    let total: i64 = build().count().get_result(conn)?;
    let rows = build().order((members::created_at.asc(), members::id.asc())).offset(offset).limit(limit).load(conn)?;
    Ok((rows, total))
}
