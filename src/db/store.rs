//! Every query keyward makes. Each one that touches tenant data takes the
//! tenant id and filters on it: tenant isolation is enforced here, once.

use super::models::{ApiKey, AuditRow, Member, Tenant};
use super::schema::{api_keys, audit_chains, audit_events, members, tenants};
use super::DbConn;
use crate::crypto::GENESIS_HASH;
use crate::error::{AppError, AppResult};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::BTreeMap;

// ---------------------------------------------------------------- tenants

/// Creates a tenant with its audit chain. The caller's transaction also holds the owner.
pub fn insert_tenant(conn: &mut DbConn, tenant: &Tenant) -> AppResult<()> {
    diesel::insert_into(tenants::table)
        .values(tenant)
        .execute(conn)?;
    diesel::insert_into(audit_chains::table)
        .values((
            audit_chains::chain_id.eq(&tenant.id),
            audit_chains::last_seq.eq(0i64),
            audit_chains::last_hash.eq(GENESIS_HASH),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find_tenant(conn: &mut DbConn, tenant_id: &str) -> AppResult<Option<Tenant>> {
    Ok(tenants::table.find(tenant_id).first(conn).optional()?)
}

pub fn update_tenant_policy(
    conn: &mut DbConn,
    tenant_id: &str,
    max_lifetime_days: &str,
    siem_tier2_enabled: bool,
    at: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(tenants::table.find(tenant_id))
        .set((
            tenants::max_lifetime_days.eq(max_lifetime_days),
            tenants::siem_tier2_enabled.eq(siem_tier2_enabled),
            tenants::policy_updated_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------- members

pub fn insert_member(conn: &mut DbConn, member: &Member) -> AppResult<()> {
    diesel::insert_into(members::table)
        .values(member)
        .execute(conn)
        .map_err(|e| match AppError::from(e) {
            e if e.code == crate::error::ErrorCode::AlreadyExists => {
                AppError::already_exists("a member with this email already exists in the tenant")
            }
            e => e,
        })?;
    Ok(())
}

pub fn find_member(
    conn: &mut DbConn,
    tenant_id: &str,
    member_id: &str,
) -> AppResult<Option<Member>> {
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(members::id.eq(member_id))
        .first(conn)
        .optional()?)
}

// ---------------------------------------------------------------- keys

pub fn insert_key(conn: &mut DbConn, key: &ApiKey) -> AppResult<()> {
    diesel::insert_into(api_keys::table)
        .values(key)
        .execute(conn)?;
    Ok(())
}

/// The hot-path lookup: a key by the HMAC of its secret, with its tenant.
pub fn find_key_by_hash(
    conn: &mut DbConn,
    secret_hash: &str,
) -> AppResult<Option<(ApiKey, Tenant)>> {
    Ok(api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::secret_hash.eq(secret_hash))
        .first::<(ApiKey, Tenant)>(conn)
        .optional()?)
}

pub fn find_key(conn: &mut DbConn, tenant_id: &str, key_id: &str) -> AppResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::id.eq(key_id))
        .first(conn)
        .optional()?)
}

/// A tenant's keys, newest first, optionally of one type and/or only (not) revoked.
pub fn tenant_keys(
    conn: &mut DbConn,
    tenant_id: &str,
    key_type: Option<&str>,
    revoked: Option<bool>,
) -> AppResult<Vec<ApiKey>> {
    let mut q = api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .into_boxed();
    if let Some(t) = key_type {
        q = q.filter(api_keys::key_type.eq(t.to_string()));
    }
    match revoked {
        Some(true) => q = q.filter(api_keys::revoked_at.is_not_null()),
        Some(false) => q = q.filter(api_keys::revoked_at.is_null()),
        None => {}
    }
    Ok(q.order((api_keys::created_at.desc(), api_keys::id.desc()))
        .load(conn)?)
}

/// Keys that may still be live by their own clock (tenant policy is applied by the caller).
pub fn unexpired_keys(
    conn: &mut DbConn,
    tenant_id: &str,
    at: NaiveDateTime,
) -> AppResult<Vec<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(at)),
        )
        .filter(
            api_keys::superseded_at
                .is_null()
                .or(api_keys::superseded_at.gt(at)),
        )
        .load(conn)?)
}

pub fn update_key_label(conn: &mut DbConn, key_id: &str, label: &str) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set(api_keys::label.eq(label))
        .execute(conn)?;
    Ok(())
}

pub fn update_key_allowlist(
    conn: &mut DbConn,
    key_id: &str,
    allowlist_json: &str,
) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set(api_keys::ip_allowlist.eq(allowlist_json))
        .execute(conn)?;
    Ok(())
}

pub fn revoke_key(
    conn: &mut DbConn,
    key_id: &str,
    at: NaiveDateTime,
    reason: &str,
) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((
            api_keys::revoked_at.eq(Some(at)),
            api_keys::revoke_reason.eq(Some(reason)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks a rotated key: it stops at `until` and names its successor.
pub fn supersede_key(
    conn: &mut DbConn,
    key_id: &str,
    until: NaiveDateTime,
    successor: Option<&str>,
) -> AppResult<()> {
    match successor {
        Some(s) => diesel::update(api_keys::table.find(key_id))
            .set((
                api_keys::superseded_at.eq(Some(until)),
                api_keys::rotated_to.eq(Some(s)),
            ))
            .execute(conn)?,
        None => diesel::update(api_keys::table.find(key_id))
            .set(api_keys::superseded_at.eq(Some(until)))
            .execute(conn)?,
    };
    Ok(())
}

pub fn chain_keys(conn: &mut DbConn, tenant_id: &str, chain_id: &str) -> AppResult<Vec<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::chain_id.eq(chain_id))
        .load(conn)?)
}

pub fn touch_key(
    conn: &mut DbConn,
    key_id: &str,
    at: NaiveDateTime,
    ip: Option<&str>,
) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((
            api_keys::last_used_at.eq(Some(at)),
            api_keys::last_used_ip.eq(ip),
        ))
        .execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------- audit

/// Loads and (on PostgreSQL) row-locks the heads of the given chains, in the
/// order given (sorted by the caller, so concurrent writers cannot deadlock).
/// The lock also serializes every change of a tenant across instances.
pub fn lock_chain_heads(
    conn: &mut DbConn,
    chain_ids: &[String],
) -> AppResult<BTreeMap<String, (i64, String)>> {
    let q = audit_chains::table
        .filter(audit_chains::chain_id.eq_any(chain_ids))
        .order(audit_chains::chain_id)
        .select((
            audit_chains::chain_id,
            audit_chains::last_seq,
            audit_chains::last_hash,
        ));
    let rows: Vec<(String, i64, String)> = match conn {
        DbConn::Postgres(pg) => q.for_update().load(pg)?,
        // SQLite has one writer at a time: the transaction itself is the lock.
        DbConn::Sqlite(lite) => q.load(lite)?,
    };
    Ok(rows
        .into_iter()
        .map(|(id, seq, hash)| (id, (seq, hash)))
        .collect())
}

pub fn load_chain_head(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<(i64, String)>> {
    Ok(audit_chains::table
        .find(chain_id)
        .select((audit_chains::last_seq, audit_chains::last_hash))
        .first(conn)
        .optional()?)
}

pub fn save_chain_heads(
    conn: &mut DbConn,
    heads: &BTreeMap<String, (i64, String)>,
) -> AppResult<()> {
    for (chain_id, (seq, hash)) in heads {
        diesel::update(audit_chains::table.find(chain_id))
            .set((
                audit_chains::last_seq.eq(seq),
                audit_chains::last_hash.eq(hash),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn insert_events(conn: &mut DbConn, rows: &[AuditRow]) -> AppResult<()> {
    // Multi-row inserts are backend-specific in diesel; chunk to stay under parameter limits.
    for chunk in rows.chunks(40) {
        match conn {
            DbConn::Postgres(pg) => diesel::insert_into(audit_events::table)
                .values(chunk)
                .execute(pg)?,
            DbConn::Sqlite(lite) => diesel::insert_into(audit_events::table)
                .values(chunk)
                .execute(lite)?,
        };
    }
    Ok(())
}

pub fn chain_ids(conn: &mut DbConn) -> AppResult<Vec<String>> {
    Ok(audit_chains::table
        .select(audit_chains::chain_id)
        .order(audit_chains::chain_id)
        .load(conn)?)
}

pub fn chain_events_after(
    conn: &mut DbConn,
    chain_id: &str,
    after_seq: i64,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    Ok(audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .order(audit_events::seq.asc())
        .limit(limit)
        .load(conn)?)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub operation: Option<String>,
    pub key_id: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

/// A chain's events after `after_seq` that match `filter`, in sequence order.
pub fn filtered_events(
    conn: &mut DbConn,
    chain_id: &str,
    filter: &EventFilter,
    after_seq: i64,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    let mut q = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .into_boxed();
    if let Some(v) = &filter.operation {
        q = q.filter(audit_events::operation.eq(v.clone()));
    }
    if let Some(v) = &filter.key_id {
        q = q.filter(audit_events::key_id.eq(v.clone()));
    }
    if let Some(v) = &filter.actor_id {
        q = q.filter(audit_events::actor_id.eq(v.clone()));
    }
    if let Some(v) = &filter.outcome {
        q = q.filter(audit_events::outcome.eq(v.clone()));
    }
    if let Some(v) = filter.since {
        q = q.filter(audit_events::occurred_at.ge(v));
    }
    if let Some(v) = filter.until {
        q = q.filter(audit_events::occurred_at.lt(v));
    }
    Ok(q.order(audit_events::seq.asc()).limit(limit).load(conn)?)
}

/// Readiness probe query.
pub fn ping(conn: &mut DbConn) -> AppResult<()> {
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}
