//! Legal holds and the members they hold.

use crate::db::models::LegalHold;
use crate::db::schema::{legal_hold_members, legal_holds};
use crate::db::DbConn;
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

pub fn insert_hold(conn: &mut DbConn, hold: &LegalHold, member_ids: &[String]) -> AppResult<()> {
    diesel::insert_into(legal_holds::table).values(hold).execute(conn)?;
    for m in member_ids {
        diesel::insert_into(legal_hold_members::table)
            .values((
                legal_hold_members::hold_uid.eq(&hold.uid),
                legal_hold_members::tenant_id.eq(&hold.tenant_id),
                legal_hold_members::member_id.eq(m),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn find_hold(conn: &mut DbConn, tenant_id: &str, uid: &str) -> AppResult<Option<LegalHold>> {
    Ok(legal_holds::table
        .filter(legal_holds::tenant_id.eq(tenant_id))
        .filter(legal_holds::uid.eq(uid))
        .first(conn)
        .optional()?)
}

pub fn hold_member_ids(conn: &mut DbConn, tenant_id: &str, uid: &str) -> AppResult<Vec<String>> {
    Ok(legal_hold_members::table
        .filter(legal_hold_members::tenant_id.eq(tenant_id))
        .filter(legal_hold_members::hold_uid.eq(uid))
        .select(legal_hold_members::member_id)
        .order(legal_hold_members::member_id)
        .load(conn)?)
}

pub fn list_holds(conn: &mut DbConn, tenant_id: &str, active_only: bool) -> AppResult<Vec<LegalHold>> {
    let mut q = legal_holds::table.filter(legal_holds::tenant_id.eq(tenant_id.to_string())).into_boxed();
    if active_only {
        q = q.filter(legal_holds::released_at.is_null());
    }
    Ok(q.order((legal_holds::created_at.desc(), legal_holds::uid.desc())).load(conn)?)
}

pub fn release_hold(
    conn: &mut DbConn,
    tenant_id: &str,
    uid: &str,
    at: NaiveDateTime,
    by: &str,
    reason: Option<&str>,
) -> AppResult<()> {
    diesel::update(legal_holds::table.filter(legal_holds::tenant_id.eq(tenant_id)).filter(legal_holds::uid.eq(uid)))
        .set((
            legal_holds::released_at.eq(Some(at)),
            legal_holds::released_by.eq(Some(by)),
            legal_holds::release_reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whether an active (unreleased) hold covers the member.
pub fn member_is_held(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<bool> {
    let n: i64 = legal_hold_members::table
        .inner_join(legal_holds::table)
        .filter(legal_hold_members::tenant_id.eq(tenant_id))
        .filter(legal_hold_members::member_id.eq(member_id))
        .filter(legal_holds::released_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
