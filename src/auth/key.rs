//! Enterprise key verification, in this order: header present →
//! format and checksum → known key → tenant active → not revoked → not
//! expired (own expiry, rotation grace, tenant policy) → client IP allowed →
//! type may call the operation. Every refusal carries its precise reason for
//! the audit log and one identical body for the caller.

use super::key_cache::Cached;
use super::key_cache::KeyCache;
use super::key_state::KeyStateReader;
use super::KeyCaller;
use crate::crypto::KeyHasher;
use crate::db::models::{now, to_utc, ApiKey, Tenant};
use crate::db::store;
use crate::db::Pool;
use crate::domain::allowlist::IpAllowlist;
use crate::domain::key_format::{self, SecretError};
use crate::domain::lifetime::{self, KeyClock, KeyStatus, LifetimePolicy, StatusReason};
use crate::domain::{authz, KeyType, Operation, TenantStatus};
use crate::error::AppError;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What is known about the key even when it is refused, for the audit event.
#[derive(Debug, Clone)]
pub struct KeyIdentity {
    pub tenant_id: String,
    pub key_id: String,
    pub key_type: KeyType,
    pub hint: String,
}

pub struct KeyVerdict {
    pub identity: Option<KeyIdentity>,
    pub result: Result<KeyCaller, AppError>,
}

impl KeyVerdict {
    fn refused(identity: Option<KeyIdentity>, reason: &'static str) -> KeyVerdict {
        KeyVerdict { identity, result: Err(AppError::key_refused(reason)) }
    }
}

pub fn clock_of(key: &ApiKey) -> KeyClock {
    KeyClock {
        key_type: key.key_type,
        created_at: to_utc(key.created_at),
        expires_at: key.expires_at.map(to_utc),
        revoked_at: key.revoked_at.map(to_utc),
        superseded_at: key.superseded_at.map(to_utc),
    }
}

/// What a key check reads from the database, parsed once: the unit the
/// verified-key cache keeps. Facts only; the verdict is decided per request.
#[derive(Debug)]
pub struct KeyRecord {
    identity: KeyIdentity,
    label: String,
    expires_at: Option<DateTime<Utc>>,
    clock: KeyClock,
    tenant_active: bool,
    policy: LifetimePolicy,
    allowlist: IpAllowlist,
}

impl KeyRecord {
    pub fn from_rows(key: &ApiKey, tenant: &Tenant) -> KeyRecord {
        KeyRecord {
            identity: KeyIdentity {
                tenant_id: key.tenant_id.clone(),
                key_id: key.id.clone(),
                key_type: key.key_type,
                hint: key.hint.clone(),
            },
            label: key.label.clone(),
            expires_at: key.expires_at.map(to_utc),
            clock: clock_of(key),
            tenant_active: tenant.status == TenantStatus::Active,
            policy: tenant.max_lifetime_days.clone(),
            allowlist: key.ip_allowlist.clone(),
        }
    }
}

/// Verifies keys: what a key check needs and nothing more, built at start-up.
pub struct KeyVerifier {
    pub hasher: KeyHasher,
    pub cache: Arc<KeyCache>,
    /// Shared reads of `key_state.version` when each key check needs one.
    pub key_state: Option<KeyStateReader>,
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
}

impl KeyVerifier {
    /// Verifies `presented` for `op` (None: any operation a key can reach, as for the gateway).
    pub async fn verify(
        &self,
        presented: Option<&str>,
        client_ip: Option<IpAddr>,
        op: Option<&Operation>,
    ) -> KeyVerdict {
        let started = Instant::now();
        let verdict = self.verify_inner(presented, client_ip, op).await;
        self.metrics.key_verification_seconds.observe(started.elapsed().as_secs_f64());
        verdict
    }

    async fn verify_inner(
        &self,
        presented: Option<&str>,
        client_ip: Option<IpAddr>,
        op: Option<&Operation>,
    ) -> KeyVerdict {
        let Some(secret) = presented else {
            return KeyVerdict::refused(None, "missing");
        };
        let parsed = match key_format::parse_secret(secret) {
            Ok(p) => p,
            Err(SecretError::Malformed) => return KeyVerdict::refused(None, "malformed"),
            Err(SecretError::BadChecksum) => return KeyVerdict::refused(None, "bad_checksum"),
        };
        let hash = self.hasher.hash(secret);
        let cached = match &self.key_state {
            Some(reader) => match reader.current().await {
                Ok(version) => self.cache.get_under(&hash, version),
                Err(e) => return KeyVerdict { identity: None, result: Err(e) },
            },
            None => self.cache.get(&hash),
        };
        let record = match cached {
            Cached::Hit(record) => {
                self.metrics.key_cache_hits.inc();
                record
            }
            Cached::Miss(generation) => {
                self.metrics.key_cache_misses.inc();
                let lookup = hash.clone();
                let found = match crate::db::read(&self.pool, move |conn| store::find_key_by_hash(conn, &lookup)).await
                {
                    Ok(found) => found,
                    Err(e) => return KeyVerdict { identity: None, result: Err(e) },
                };
                let record = found.map(|(key, tenant)| Arc::new(KeyRecord::from_rows(&key, &tenant)));
                self.cache.fill(hash, generation, record.clone());
                record
            }
        };
        match record {
            None => KeyVerdict::refused(None, "unknown_key"),
            Some(record) => decide(&record, parsed.key_type, client_ip, op, now()),
        }
    }
}

/// The checks after the lookup; pure given the stored facts and the clock.
fn decide(
    record: &KeyRecord,
    presented_type: KeyType,
    client_ip: Option<IpAddr>,
    op: Option<&Operation>,
    now: DateTime<Utc>,
) -> KeyVerdict {
    let identity = Some(record.identity.clone());
    // The stored type is authoritative; the tag is covered by the checksum and the HMAC.
    let key_type = record.clock.key_type;
    if key_type != presented_type {
        return KeyVerdict::refused(identity, "unknown_key");
    }
    if !record.tenant_active {
        return KeyVerdict::refused(identity, "tenant_inactive");
    }
    match lifetime::status(&record.clock, &record.policy, now) {
        (KeyStatus::Active, _) => {}
        (_, Some(StatusReason::Revoked)) => return KeyVerdict::refused(identity, "revoked"),
        _ => return KeyVerdict::refused(identity, "expired"),
    }
    let ip_ok = match client_ip {
        Some(ip) => record.allowlist.allows(ip),
        None => record.allowlist.is_empty(),
    };
    if !ip_ok {
        return KeyVerdict::refused(identity, "ip_not_allowed");
    }
    if let Some(op) = op {
        if !authz::key_may_call(key_type, op) {
            return KeyVerdict::refused(identity, "type_mismatch");
        }
    }
    KeyVerdict {
        identity,
        result: Ok(KeyCaller {
            tenant_id: record.identity.tenant_id.clone(),
            key_id: record.identity.key_id.clone(),
            key_type,
            label: record.label.clone(),
            hint: record.identity.hint.clone(),
            expires_at: record.expires_at,
        }),
    }
}
