//! Enterprise keys and the key_state version that key checks read.
//!
//! Lookups of one row by a unique key use `get_result`, not `first` (see
//! `audit::load_head`): no `LIMIT ?` for SQLite to re-prepare on every run.

use crate::db::models::{ApiKey, Tenant};
use crate::db::schema::{api_keys, key_state, tenants};
use crate::db::DbConn;
use crate::domain::KeyType;
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

pub fn insert_key(conn: &mut DbConn, key: &ApiKey) -> AppResult<()> {
    diesel::insert_into(api_keys::table).values(key).execute(conn)?;
    Ok(())
}

/// The hot-path lookup: a key by the HMAC of its secret, with its tenant.
pub fn find_key_by_hash(conn: &mut DbConn, secret_hash: &str) -> AppResult<Option<(ApiKey, Tenant)>> {
    Ok(api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::secret_hash.eq(secret_hash))
        .get_result::<(ApiKey, Tenant)>(conn)
        .optional()?)
}

/// The counter that moves with every change a key check reads (see the
/// `key_state` migration); the verified-key cache compares it.
pub fn key_state_version(conn: &mut DbConn) -> AppResult<i64> {
    Ok(key_state::table.find(1).select(key_state::version).get_result(conn)?)
}

pub fn find_key(conn: &mut DbConn, tenant_id: &str, key_id: &str) -> AppResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::id.eq(key_id))
        .get_result(conn)
        .optional()?)
}

/// A tenant's keys, newest first, optionally of one type and/or only (not) revoked.
pub fn tenant_keys(
    conn: &mut DbConn,
    tenant_id: &str,
    key_type: Option<KeyType>,
    revoked: Option<bool>,
) -> AppResult<Vec<ApiKey>> {
    let mut q = api_keys::table.filter(api_keys::tenant_id.eq(tenant_id)).into_boxed();
    if let Some(t) = key_type {
        q = q.filter(api_keys::key_type.eq(t));
    }
    match revoked {
        Some(true) => q = q.filter(api_keys::revoked_at.is_not_null()),
        Some(false) => q = q.filter(api_keys::revoked_at.is_null()),
        None => {}
    }
    Ok(q.order((api_keys::created_at.desc(), api_keys::id.desc())).load(conn)?)
}

/// Keys that may still be live by their own clock (tenant policy is applied by the caller).
pub fn unexpired_keys(conn: &mut DbConn, tenant_id: &str, at: NaiveDateTime) -> AppResult<Vec<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::expires_at.is_null().or(api_keys::expires_at.gt(at)))
        .filter(api_keys::superseded_at.is_null().or(api_keys::superseded_at.gt(at)))
        .load(conn)?)
}

pub fn update_key_label(conn: &mut DbConn, key_id: &str, label: &str) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id)).set(api_keys::label.eq(label)).execute(conn)?;
    Ok(())
}

pub fn update_key_allowlist(
    conn: &mut DbConn,
    key_id: &str,
    allowlist: &crate::domain::allowlist::IpAllowlist,
) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id)).set(api_keys::ip_allowlist.eq(allowlist)).execute(conn)?;
    Ok(())
}

pub fn revoke_key(conn: &mut DbConn, key_id: &str, at: NaiveDateTime, reason: &str) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((api_keys::revoked_at.eq(Some(at)), api_keys::revoke_reason.eq(Some(reason))))
        .execute(conn)?;
    Ok(())
}

/// Marks a rotated key: it stops at `until` and names its successor.
pub fn supersede_key(conn: &mut DbConn, key_id: &str, until: NaiveDateTime, successor: Option<&str>) -> AppResult<()> {
    match successor {
        Some(s) => diesel::update(api_keys::table.find(key_id))
            .set((api_keys::superseded_at.eq(Some(until)), api_keys::rotated_to.eq(Some(s))))
            .execute(conn)?,
        None => {
            diesel::update(api_keys::table.find(key_id)).set(api_keys::superseded_at.eq(Some(until))).execute(conn)?
        }
    };
    Ok(())
}

pub fn chain_keys(conn: &mut DbConn, tenant_id: &str, chain_id: &str) -> AppResult<Vec<ApiKey>> {
    Ok(api_keys::table.filter(api_keys::tenant_id.eq(tenant_id)).filter(api_keys::chain_id.eq(chain_id)).load(conn)?)
}

pub fn touch_key(conn: &mut DbConn, key_id: &str, at: NaiveDateTime, ip: Option<&str>) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((api_keys::last_used_at.eq(Some(at)), api_keys::last_used_ip.eq(ip)))
        .execute(conn)?;
    Ok(())
}
