//! Key lifecycle and tenant key policy: domain rules applied to rows, run by
//! the audit writer inside the same transaction as their event.

use crate::crypto::{self, KeyHasher};
use crate::db::models::{api_time, now, to_naive, ApiKey, Tenant};
use crate::db::{store, DbConn};
use crate::domain::allowlist::IpAllowlist;
use crate::domain::leaks::LeakedKeyAction;
use crate::domain::lifetime::{self, KeyStatus, LifetimePolicy, StatusReason};
use crate::domain::notices::NoticeDays;
use crate::domain::tenant::AuditRetention;
use crate::domain::{key_format, text, KeyType};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

/// At most this many live (not revoked, not expired) keys per tenant.
pub const MAX_LIVE_KEYS: usize = 50;
/// At most this many live keys per rotation chain (the new key and the one in grace).
pub const MAX_LIVE_PER_CHAIN: usize = 2;

use super::{meta, Meta};

/// A key's label, trimmed: 1 to 100 characters, none of them control characters.
fn validate_label(label: &str) -> AppResult<String> {
    let label = label.trim();
    let n = label.chars().count();
    if !(1..=100).contains(&n) || label.chars().any(char::is_control) {
        return Err(AppError::invalid("label must be 1 to 100 characters with no control characters"));
    }
    Ok(label.to_string())
}

/// An allowlist as given (CIDR blocks or bare addresses), normalized to CIDR blocks.
fn validate_allowlist(entries: &[String]) -> AppResult<IpAllowlist> {
    IpAllowlist::parse(entries).map_err(AppError::invalid)
}

// ---------------------------------------------------------------- keys: views

fn opt_time(t: Option<chrono::NaiveDateTime>) -> Option<String> {
    t.map(api_time)
}

pub fn key_status(key: &ApiKey, policy: &LifetimePolicy, at: DateTime<Utc>) -> (KeyStatus, Option<StatusReason>) {
    lifetime::status(&crate::auth::key::clock_of(key), policy, at)
}

/// The key as the API shows it. Never includes the hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub key_id: String,
    pub key_type: KeyType,
    pub label: String,
    pub hint: String,
    pub status: KeyStatus,
    pub status_reason: Option<&'static str>,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoke_reason: Option<String>,
    pub ip_allowlist: Vec<String>,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub rotated_from: Option<String>,
    pub rotated_to: Option<String>,
    pub grace_ends_at: Option<String>,
}

pub fn key_view(key: &ApiKey, policy: &LifetimePolicy, at: DateTime<Utc>) -> KeyView {
    let (status, reason) = key_status(key, policy, at);
    KeyView {
        key_id: key.id.clone(),
        key_type: key.key_type,
        label: key.label.clone(),
        hint: key.hint.clone(),
        status,
        status_reason: reason.map(StatusReason::as_str),
        created_at: api_time(key.created_at),
        created_by: key.created_by.clone(),
        expires_at: opt_time(key.expires_at),
        revoked_at: opt_time(key.revoked_at),
        revoke_reason: key.revoke_reason.clone(),
        ip_allowlist: key.ip_allowlist.entries(),
        last_used_at: opt_time(key.last_used_at),
        last_used_ip: key.last_used_ip.clone(),
        rotated_from: key.rotated_from.clone(),
        rotated_to: key.rotated_to.clone(),
        grace_ends_at: opt_time(key.superseded_at),
    }
}

/// The tenant's keys, newest first, as the API shows them: of one type and in
/// one status if asked.
pub fn list_keys(
    conn: &mut DbConn,
    tenant_id: &str,
    key_type: Option<KeyType>,
    status: Option<KeyStatus>,
) -> AppResult<Vec<KeyView>> {
    let revoked = status.map(|s| s == KeyStatus::Revoked);
    let keys = store::tenant_keys(conn, tenant_id, key_type, revoked)?;
    let policy = load_tenant(conn, tenant_id)?.max_lifetime_days;
    let at = now();
    Ok(keys.iter().map(|k| key_view(k, &policy, at)).filter(|v| status.is_none_or(|s| v.status == s)).collect())
}

/// The type of a key of the tenant (`not_found` for another tenant's).
pub fn key_type_of(conn: &mut DbConn, tenant_id: &str, key_id: &str) -> AppResult<KeyType> {
    Ok(load_key(conn, tenant_id, key_id)?.key_type)
}

pub fn key_detail(conn: &mut DbConn, tenant_id: &str, key_id: &str) -> AppResult<KeyView> {
    let key = load_key(conn, tenant_id, key_id)?;
    Ok(key_view(&key, &load_tenant(conn, tenant_id)?.max_lifetime_days, now()))
}

fn load_tenant(conn: &mut DbConn, tenant_id: &str) -> AppResult<Tenant> {
    store::find_tenant(conn, tenant_id)?.ok_or_else(|| AppError::not_found("no such tenant"))
}

fn load_key(conn: &mut DbConn, tenant_id: &str, key_id: &str) -> AppResult<ApiKey> {
    store::find_key(conn, tenant_id, key_id)?.ok_or_else(|| AppError::not_found("no key with this key_id"))
}

fn live_count(conn: &mut DbConn, tenant_id: &str, policy: &LifetimePolicy, at: DateTime<Utc>) -> AppResult<usize> {
    let candidates = store::unexpired_keys(conn, tenant_id, to_naive(at))?;
    Ok(candidates.iter().filter(|k| key_status(k, policy, at).0 == KeyStatus::Active).count())
}

// ---------------------------------------------------------------- keys: changes

/// What is stored about a new key's secret: prepared outside the
/// transaction, so the secret itself never enters it.
pub struct NewSecret {
    hash: String,
    hint: String,
}

/// A fresh secret for a key of `key_type`: the secret, to be shown once, and
/// what is stored about it (its pepper-keyed hash and its hint).
pub fn new_secret(hasher: &KeyHasher, key_type: KeyType) -> (String, NewSecret) {
    let secret = crypto::new_key_secret(key_type);
    let stored = NewSecret { hash: hasher.hash(&secret), hint: key_format::hint(&secret, key_type) };
    (secret, stored)
}

pub struct CreatedKey {
    pub key: KeyView,
    pub key_id: String,
}

/// Creates a key labelled `label` (see `validate_label`) that will answer to `secret`.
pub fn create_key(
    conn: &mut DbConn,
    tenant_id: &str,
    member_id: &str,
    key_type: KeyType,
    label: &str,
    expires_at: Option<DateTime<Utc>>,
    secret: NewSecret,
) -> AppResult<(CreatedKey, Meta)> {
    let label = validate_label(label)?;
    let at = now();
    let policy = load_tenant(conn, tenant_id)?.max_lifetime_days;
    let expires_at =
        lifetime::resolve_expiry(key_type, expires_at, &policy, at).map_err(|e| AppError::invalid(e.to_string()))?;
    // Race-free: the writer holds this tenant's chain lock (PostgreSQL) or the only write transaction (SQLite).
    if live_count(conn, tenant_id, &policy, at)? >= MAX_LIVE_KEYS {
        return Err(AppError::precondition(format!(
            "the tenant already has {MAX_LIVE_KEYS} live keys; revoke one first"
        )));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let key = ApiKey {
        id: id.clone(),
        tenant_id: tenant_id.to_string(),
        key_type,
        label,
        secret_hash: secret.hash,
        hint: secret.hint,
        created_by: member_id.to_string(),
        created_at: to_naive(at),
        expires_at: expires_at.map(to_naive),
        revoked_at: None,
        revoke_reason: None,
        superseded_at: None,
        rotated_from: None,
        rotated_to: None,
        chain_id: id.clone(),
        ip_allowlist: IpAllowlist::default(),
        last_used_at: None,
        last_used_ip: None,
    };
    store::insert_key(conn, &key)?;
    let m = meta(json!({
        "key_id": id, "new_key_id": id, "key_type": key.key_type, "label": key.label, "hint": key.hint,
        "expires_at": opt_time(key.expires_at),
    }));
    Ok((CreatedKey { key: key_view(&key, &policy, at), key_id: id }, m))
}

/// Relabels a key and/or replaces its IP allowlist (see `validate_label`, `allowlist::parse`).
pub fn update_key(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    label: Option<&str>,
    allowlist: Option<&[String]>,
) -> AppResult<(KeyView, Meta)> {
    let label = label.map(validate_label).transpose()?;
    let allowlist = allowlist.map(validate_allowlist).transpose()?;
    let tenant = load_tenant(conn, tenant_id)?;
    let before = load_key(conn, tenant_id, key_id)?;
    let mut changes = Meta::new();
    changes.insert("key_id".into(), json!(key_id));
    if let Some(label) = label {
        store::update_key_label(conn, key_id, &label)?;
        changes.insert("label".into(), json!({"old": before.label, "new": label}));
    }
    if let Some(list) = allowlist {
        store::update_key_allowlist(conn, key_id, &list)?;
        changes.insert("ip_allowlist".into(), json!({"old": before.ip_allowlist.entries(), "new": list.entries()}));
    }
    let after = load_key(conn, tenant_id, key_id)?;
    Ok((key_view(&after, &tenant.max_lifetime_days, now()), changes))
}

/// Revokes a key, for a reason (trimmed, 1 to 500 characters).
pub fn revoke_key(conn: &mut DbConn, tenant_id: &str, key_id: &str, reason: &str) -> AppResult<(KeyView, Meta)> {
    let reason = text::reason(reason).map_err(AppError::invalid)?;
    let reason = reason.as_str();
    let tenant = load_tenant(conn, tenant_id)?;
    let key = load_key(conn, tenant_id, key_id)?;
    if key.revoked_at.is_some() {
        return Err(AppError::precondition("the key is already revoked"));
    }
    let at = now();
    store::revoke_key(conn, key_id, to_naive(at), reason)?;
    let after = load_key(conn, tenant_id, key_id)?;
    let m = meta(json!({"key_id": key_id, "revoked_key_id": key_id, "reason": reason, "label": key.label}));
    Ok((key_view(&after, &tenant.max_lifetime_days, at), m))
}

pub struct Rotated {
    pub key: KeyView,
    pub previous_key: KeyView,
}

pub fn rotate_key(
    conn: &mut DbConn,
    tenant_id: &str,
    member_id: &str,
    key_id: &str,
    grace_seconds: i64,
    secret: NewSecret,
) -> AppResult<(Rotated, Meta)> {
    let at = now();
    let policy = load_tenant(conn, tenant_id)?.max_lifetime_days;
    let old = load_key(conn, tenant_id, key_id)?;
    match key_status(&old, &policy, at) {
        (KeyStatus::Active, _) if old.rotated_to.is_none() => {}
        (KeyStatus::Active, _) => {
            return Err(AppError::precondition("the key was already rotated; rotate its successor"))
        }
        (KeyStatus::Revoked, _) => return Err(AppError::precondition("a revoked key cannot be rotated")),
        (KeyStatus::Expired, _) => return Err(AppError::precondition("an expired key cannot be rotated")),
    }
    let clock = crate::auth::key::clock_of(&old);
    let grace_end = lifetime::grace_end(&clock, grace_seconds, at).map_err(|e| AppError::invalid(e.to_string()))?;
    // At most two live keys per chain: any older key still in its grace stops now.
    for k in store::chain_keys(conn, tenant_id, &old.chain_id)? {
        if k.id != old.id && key_status(&k, &policy, at).0 == KeyStatus::Active {
            store::supersede_key(conn, &k.id, to_naive(at), None)?;
        }
    }
    let new_id = uuid::Uuid::now_v7().to_string();
    // Supersede first: with no grace the old key stops now and makes room for
    // its successor; with a grace it stays live and the new one must fit under the cap.
    store::supersede_key(conn, &old.id, to_naive(grace_end), Some(&new_id))?;
    if live_count(conn, tenant_id, &policy, at)? >= MAX_LIVE_KEYS {
        return Err(AppError::precondition(format!(
            "the tenant already has {MAX_LIVE_KEYS} live keys; revoke one, or rotate with no grace"
        )));
    }
    let new_key = ApiKey {
        id: new_id.clone(),
        tenant_id: tenant_id.to_string(),
        key_type: old.key_type,
        label: old.label.clone(),
        secret_hash: secret.hash,
        hint: secret.hint,
        created_by: member_id.to_string(),
        created_at: to_naive(at),
        expires_at: lifetime::rotated_expiry(&clock, &policy, at).map(to_naive),
        revoked_at: None,
        revoke_reason: None,
        superseded_at: None,
        rotated_from: Some(old.id.clone()),
        rotated_to: None,
        chain_id: old.chain_id.clone(),
        ip_allowlist: old.ip_allowlist.clone(),
        last_used_at: None,
        last_used_ip: None,
    };
    store::insert_key(conn, &new_key)?;
    let previous = load_key(conn, tenant_id, key_id)?;
    // `key_id` is the key rotated (the one the request names); its successor is `new_key_id`.
    let m = meta(json!({
        "key_id": old.id, "old_key_id": old.id, "new_key_id": new_id, "key_type": old.key_type,
        "grace_seconds": grace_seconds, "old_key_stops_at": api_time(to_naive(grace_end)),
    }));
    Ok((Rotated { key: key_view(&new_key, &policy, at), previous_key: key_view(&previous, &policy, at) }, m))
}

// ---------------------------------------------------------------- policy

/// The tenant key policy as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    pub max_lifetime_days: LifetimePolicy,
    pub siem_tier2_enabled: bool,
    /// Days an audit event stays in the database before it moves to an archive segment; null: kept.
    pub audit_retention_days: Option<i64>,
    /// What happens to a key reported leaked in public: REVOKE (default) or NOTIFY.
    pub leaked_key_action: LeakedKeyAction,
    /// Days before a key's expiry at which an `enterprise.key.expiring` notice is written; []: no notices.
    pub key_expiry_notice_days: NoticeDays,
    pub updated_at: Option<String>,
}

pub fn policy_view(tenant: &Tenant) -> PolicyView {
    PolicyView {
        max_lifetime_days: tenant.max_lifetime_days.clone(),
        siem_tier2_enabled: tenant.siem_tier2_enabled,
        audit_retention_days: AuditRetention::from_stored(tenant.audit_retention_days).days(),
        leaked_key_action: tenant.leaked_key_action,
        key_expiry_notice_days: tenant.key_expiry_notice_days.clone(),
        updated_at: opt_time(tenant.policy_updated_at),
    }
}

pub fn policy(conn: &mut DbConn, tenant_id: &str) -> AppResult<PolicyView> {
    Ok(policy_view(&load_tenant(conn, tenant_id)?))
}

pub fn update_policy(
    conn: &mut DbConn,
    tenant_id: &str,
    max_lifetime_days: Option<LifetimePolicy>,
    siem_tier2_enabled: Option<bool>,
    audit_retention_days: Option<Option<i64>>,
    leaked_key_action: Option<LeakedKeyAction>,
    key_expiry_notice_days: Option<&[i64]>,
) -> AppResult<(PolicyView, Meta)> {
    let tenant = load_tenant(conn, tenant_id)?;
    let old_policy = &tenant.max_lifetime_days;
    let new_policy = max_lifetime_days.unwrap_or_else(|| old_policy.clone());
    lifetime::validate_policy(&new_policy).map_err(|e| AppError::invalid(e.to_string()))?;
    let tier2 = siem_tier2_enabled.unwrap_or(tenant.siem_tier2_enabled);
    let old_retention = AuditRetention::from_stored(tenant.audit_retention_days);
    let retention = match audit_retention_days {
        Some(days) => AuditRetention::parse(days).map_err(AppError::invalid)?,
        None => old_retention,
    };
    let leaked = leaked_key_action.unwrap_or(tenant.leaked_key_action);
    let notice_days = match key_expiry_notice_days {
        Some(days) => NoticeDays::parse(days).map_err(AppError::invalid)?,
        None => tenant.key_expiry_notice_days.clone(),
    };
    let change = store::PolicyChange {
        max_lifetime_days: &new_policy,
        siem_tier2_enabled: tier2,
        audit_retention_days: retention.stored(),
        leaked_key_action: leaked,
        key_expiry_notice_days: &notice_days,
    };
    store::update_tenant_policy(conn, tenant_id, &change, to_naive(now()))?;
    let after = load_tenant(conn, tenant_id)?;
    let m = meta(json!({
        "max_lifetime_days": {"old": old_policy, "new": new_policy},
        "siem_tier2_enabled": {"old": tenant.siem_tier2_enabled, "new": tier2},
        "audit_retention_days": {"old": old_retention.days(), "new": retention.days()},
        "leaked_key_action": {"old": tenant.leaked_key_action, "new": leaked},
        "key_expiry_notice_days": {"old": tenant.key_expiry_notice_days, "new": notice_days},
    }));
    Ok((policy_view(&after), m))
}
