//! Key lifecycle notices already written, and the keys the notice job looks at.

use crate::db::models::ApiKey;
use crate::db::schema::{api_keys, key_notices, tenants};
use crate::db::DbConn;
use crate::domain::lifetime::LifetimePolicy;
use crate::domain::notices::{NoticeDays, NoticeKind};
use crate::domain::{KeyType, TenantStatus};
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Records a notice of `key_id`; false if it was already recorded (by
/// another pass or instance), which then writes no event: the primary key
/// (key, kind) decides, and a concurrent insert waits for the first to commit.
pub fn insert_notice(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    kind: NoticeKind,
    at: NaiveDateTime,
) -> AppResult<bool> {
    let values = (
        key_notices::key_id.eq(key_id),
        key_notices::kind.eq(kind),
        key_notices::tenant_id.eq(tenant_id),
        key_notices::created_at.eq(at),
    );
    let inserted = match conn {
        DbConn::Postgres(pg) => {
            diesel::insert_into(key_notices::table).values(values).on_conflict_do_nothing().execute(pg)?
        }
        DbConn::Sqlite(lite) => diesel::insert_or_ignore_into(key_notices::table).values(values).execute(lite)?,
    };
    Ok(inserted == 1)
}

/// The notices the tenant's keys `key_ids` already got.
pub fn notices_of(conn: &mut DbConn, tenant_id: &str, key_ids: &[String]) -> AppResult<Vec<(String, NoticeKind)>> {
    Ok(key_notices::table
        .filter(key_notices::tenant_id.eq(tenant_id))
        .filter(key_notices::key_id.eq_any(key_ids))
        .select((key_notices::key_id, key_notices::kind))
        .load(conn)?)
}

/// A page of active tenants with notices on, by id after `after`, with their
/// thresholds and maximum key lifetimes.
pub fn tenants_with_notices(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<(String, NoticeDays, LifetimePolicy)>> {
    let mut q = tenants::table
        .filter(tenants::status.eq(TenantStatus::Active))
        .filter(tenants::key_expiry_notice_days.ne(NoticeDays::off()))
        .select((tenants::id, tenants::key_expiry_notice_days, tenants::max_lifetime_days))
        .order(tenants::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(tenants::id.gt(after.to_string()));
    }
    Ok(q.load(conn)?)
}

/// Which keys a page query selects by time.
enum Near {
    /// Their own expiry is before the horizon.
    OwnExpiry(NaiveDateTime),
    /// Of `key_type`, issued before `created_before` (the tenant's maximum
    /// lifetime ends them before the horizon).
    Policy { key_type: KeyType, created_before: NaiveDateTime },
}

fn near_page(
    conn: &mut DbConn,
    tenant_id: &str,
    near: Near,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<ApiKey>> {
    let told_expired = key_notices::table
        .filter(key_notices::key_id.eq(api_keys::id))
        .filter(key_notices::kind.eq(NoticeKind::Expired));
    let mut q = api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::superseded_at.is_null())
        .filter(diesel::dsl::not(diesel::dsl::exists(told_expired)))
        .order(api_keys::id)
        .limit(limit)
        .into_boxed();
    q = match near {
        Near::OwnExpiry(horizon) => q.filter(api_keys::expires_at.le(horizon)),
        Near::Policy { key_type, created_before } => {
            q.filter(api_keys::key_type.eq(key_type)).filter(api_keys::created_at.le(created_before))
        }
    };
    if let Some(after) = after {
        q = q.filter(api_keys::id.gt(after.to_string()));
    }
    Ok(q.load(conn)?)
}

/// A page (by id after `after`) of the tenant's keys that may be due a
/// notice: not revoked, not replaced by a rotation (their successor carries
/// on), not yet told expired, and ending before `horizon` by their own expiry
/// or by the tenant's maximum lifetime for their type (`policy`).
pub fn keys_due_notices(
    conn: &mut DbConn,
    tenant_id: &str,
    horizon: NaiveDateTime,
    policy: &LifetimePolicy,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<ApiKey>> {
    // One query per way of ending, each by id: the first `limit` ids after
    // `after` of their union are among the first `limit` of each.
    let mut keys = near_page(conn, tenant_id, Near::OwnExpiry(horizon), after, limit)?;
    for (key_type, days) in policy {
        let created_before = horizon - chrono::Duration::days(*days);
        keys.extend(near_page(conn, tenant_id, Near::Policy { key_type: *key_type, created_before }, after, limit)?);
    }
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    keys.dedup_by(|a, b| a.id == b.id);
    keys.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(keys)
}
