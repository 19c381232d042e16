//! Tenants and their key policy.

use crate::crypto::GENESIS_HASH;
use crate::db::models::Tenant;
use crate::db::schema::{audit_chains, tenants};
use crate::db::DbConn;
use crate::domain::leaks::LeakedKeyAction;
use crate::domain::lifetime::LifetimePolicy;
use crate::domain::notices::NoticeDays;
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Creates a tenant with its audit chain. The caller's transaction also holds the owner.
pub fn insert_tenant(conn: &mut DbConn, tenant: &Tenant) -> AppResult<()> {
    diesel::insert_into(tenants::table).values(tenant).execute(conn)?;
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
    Ok(tenants::table.find(tenant_id).get_result(conn).optional()?)
}

/// Tenants with an audit retention set, and their retention in days.
pub fn tenants_with_retention(conn: &mut DbConn) -> AppResult<Vec<(String, i32)>> {
    let rows: Vec<(String, Option<i32>)> = tenants::table
        .filter(tenants::audit_retention_days.is_not_null())
        .select((tenants::id, tenants::audit_retention_days))
        .order(tenants::id)
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(id, d)| Some((id, d?))).collect())
}

/// A tenant's key policy, as `update_tenant_policy` stores it.
pub struct PolicyChange<'a> {
    pub max_lifetime_days: &'a LifetimePolicy,
    pub siem_tier2_enabled: bool,
    pub audit_retention_days: Option<i32>,
    pub leaked_key_action: LeakedKeyAction,
    pub key_expiry_notice_days: &'a NoticeDays,
}

pub fn update_tenant_policy(
    conn: &mut DbConn,
    tenant_id: &str,
    policy: &PolicyChange<'_>,
    at: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(tenants::table.find(tenant_id))
        .set((
            tenants::max_lifetime_days.eq(policy.max_lifetime_days),
            tenants::siem_tier2_enabled.eq(policy.siem_tier2_enabled),
            tenants::audit_retention_days.eq(policy.audit_retention_days),
            tenants::leaked_key_action.eq(policy.leaked_key_action),
            tenants::key_expiry_notice_days.eq(policy.key_expiry_notice_days),
            tenants::policy_updated_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(())
}
