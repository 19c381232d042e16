//! Legal holds: a held member can be made inactive but never removed.

use super::{meta, Meta};
use crate::db::models::{api_time, now, to_naive, LegalHold};
use crate::db::{store, DbConn};
use crate::error::{AppError, AppResult};
use serde_json::{json, Value};

pub const MAX_MEMBERS_PER_HOLD: usize = 100;
pub const HOLD_ACTIVE: &str = "HOLD_STATUS_ACTIVE";
pub const HOLD_RELEASED: &str = "HOLD_STATUS_RELEASED";

pub fn hold_json(h: &LegalHold, user_ids: &[String]) -> Value {
    json!({
        "uid": h.uid,
        "user_ids": user_ids,
        "reason": h.reason,
        "status": if h.released_at.is_some() { HOLD_RELEASED } else { HOLD_ACTIVE },
        "created_by": h.created_by,
        "created_at": api_time(h.created_at),
        "released_at": h.released_at.map(api_time),
        "released_by": h.released_by,
        "release_reason": h.release_reason,
    })
}

pub fn validate_reason(reason: &str) -> AppResult<String> {
    let r = reason.trim();
    if !(1..=500).contains(&r.chars().count()) {
        return Err(AppError::invalid("reason must be 1 to 500 characters"));
    }
    Ok(r.to_string())
}

/// Places the members under one hold. Every id must be a member of the tenant.
pub fn create_hold(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    user_ids: &[String],
    reason: &str,
) -> AppResult<(Value, Meta)> {
    let mut ids: Vec<String> = user_ids.to_vec();
    ids.sort();
    ids.dedup();
    if ids.is_empty() || ids.len() > MAX_MEMBERS_PER_HOLD {
        return Err(AppError::invalid(format!("user_ids must list 1 to {MAX_MEMBERS_PER_HOLD} members")));
    }
    for id in &ids {
        if store::find_member(conn, tenant_id, id)?.is_none() {
            return Err(AppError::not_found(format!("no team user with id {id}")));
        }
    }
    let hold = LegalHold {
        uid: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_string(),
        reason: reason.to_string(),
        created_by: key_id.to_string(),
        created_at: to_naive(now()),
        released_at: None,
        released_by: None,
        release_reason: None,
    };
    store::insert_hold(conn, &hold, &ids)?;
    let m = meta(json!({"hold_uid": hold.uid, "user_ids": ids, "reason": hold.reason}));
    Ok((hold_json(&hold, &ids), m))
}

pub fn release_hold(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    uid: &str,
    reason: Option<&str>,
) -> AppResult<(Value, Meta)> {
    let hold = store::find_hold(conn, tenant_id, uid)?.ok_or_else(|| AppError::not_found("no hold with this uid"))?;
    if hold.released_at.is_some() {
        return Err(AppError::precondition("the hold was already released"));
    }
    store::release_hold(conn, tenant_id, uid, to_naive(now()), key_id, reason)?;
    let after = store::find_hold(conn, tenant_id, uid)?.ok_or_else(AppError::internal)?;
    let ids = store::hold_member_ids(conn, tenant_id, uid)?;
    let m = meta(json!({"hold_uid": uid, "user_ids": ids, "release_reason": reason}));
    Ok((hold_json(&after, &ids), m))
}
