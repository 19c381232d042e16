//! Legal holds: a held member can be made inactive but never removed.

use super::{meta, Meta};
use crate::db::models::{api_time, now, to_naive, LegalHold};
use crate::db::{store, DbConn};
use crate::domain::text;
use crate::error::{AppError, AppResult};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const MAX_MEMBERS_PER_HOLD: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    #[serde(rename = "HOLD_STATUS_ACTIVE")]
    Active,
    #[serde(rename = "HOLD_STATUS_RELEASED")]
    Released,
}

/// A legal hold as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub uid: String,
    pub user_ids: Vec<String>,
    pub reason: String,
    pub status: HoldStatus,
    pub created_by: String,
    pub created_at: String,
    pub released_at: Option<String>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
}

pub fn hold_view(h: &LegalHold, user_ids: Vec<String>) -> HoldView {
    HoldView {
        uid: h.uid.clone(),
        user_ids,
        reason: h.reason.clone(),
        status: if h.released_at.is_some() { HoldStatus::Released } else { HoldStatus::Active },
        created_by: h.created_by.clone(),
        created_at: api_time(h.created_at),
        released_at: h.released_at.map(api_time),
        released_by: h.released_by.clone(),
        release_reason: h.release_reason.clone(),
    }
}

/// One page of the tenant's holds (in one status if asked), and how many there are in all.
pub fn list_holds(
    conn: &mut DbConn,
    tenant_id: &str,
    status: Option<HoldStatus>,
    offset: usize,
    limit: usize,
) -> AppResult<(Vec<HoldView>, usize)> {
    let all = store::list_holds(conn, tenant_id, status == Some(HoldStatus::Active))?;
    let matching: Vec<_> =
        all.into_iter().filter(|h| status != Some(HoldStatus::Released) || h.released_at.is_some()).collect();
    let mut page = Vec::new();
    // Members are read for the page's holds only.
    for h in matching.iter().skip(offset).take(limit) {
        let ids = store::hold_member_ids(conn, tenant_id, &h.uid)?;
        page.push(hold_view(h, ids));
    }
    Ok((page, matching.len()))
}

fn validate_reason(reason: &str) -> AppResult<String> {
    text::reason(reason).map_err(AppError::invalid)
}

/// Places the members under one hold, for a reason (trimmed, 1 to 500
/// characters). Every id must be a member of the tenant.
pub fn create_hold(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    user_ids: &[String],
    reason: &str,
) -> AppResult<(HoldView, Meta)> {
    let reason = validate_reason(reason)?;
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
        reason,
        created_by: key_id.to_string(),
        created_at: to_naive(now()),
        released_at: None,
        released_by: None,
        release_reason: None,
    };
    store::insert_hold(conn, &hold, &ids)?;
    let m = meta(json!({"hold_uid": hold.uid, "user_ids": ids, "reason": hold.reason}));
    Ok((hold_view(&hold, ids), m))
}

/// Releases a hold, for a reason if given (trimmed, 1 to 500 characters).
pub fn release_hold(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    uid: &str,
    reason: Option<&str>,
) -> AppResult<(HoldView, Meta)> {
    let reason = reason.map(validate_reason).transpose()?;
    let reason = reason.as_deref();
    let hold = store::find_hold(conn, tenant_id, uid)?.ok_or_else(|| AppError::not_found("no hold with this uid"))?;
    if hold.released_at.is_some() {
        return Err(AppError::precondition("the hold was already released"));
    }
    store::release_hold(conn, tenant_id, uid, to_naive(now()), key_id, reason)?;
    let after = store::find_hold(conn, tenant_id, uid)?.ok_or_else(AppError::internal)?;
    let ids = store::hold_member_ids(conn, tenant_id, uid)?;
    let m = meta(json!({"hold_uid": uid, "user_ids": ids, "release_reason": reason}));
    Ok((hold_view(&after, ids), m))
}
