//! Key lifetimes: expiry caps, tenant policy, rotation grace and the status a
//! key shows. Pure functions of time; the caller passes `now`.

use super::key_type::KeyType;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_GRACE_SECONDS: i64 = 604_800;

/// A tenant's per-type maximum lifetimes, in days (never above the type's cap).
/// Its own type rather than an alias of the map, so the storage layer can keep
/// it in a column; it reads, serializes and compares as the map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LifetimePolicy(BTreeMap<KeyType, i64>);

impl LifetimePolicy {
    pub fn new() -> LifetimePolicy {
        LifetimePolicy::default()
    }
}

impl std::ops::Deref for LifetimePolicy {
    type Target = BTreeMap<KeyType, i64>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a LifetimePolicy {
    type Item = (&'a KeyType, &'a i64);
    type IntoIter = std::collections::btree_map::Iter<'a, KeyType, i64>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<const N: usize> From<[(KeyType, i64); N]> for LifetimePolicy {
    fn from(days: [(KeyType, i64); N]) -> LifetimePolicy {
        LifetimePolicy(BTreeMap::from(days))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "ACTIVE",
            KeyStatus::Expired => "EXPIRED",
            KeyStatus::Revoked => "REVOKED",
        }
    }

    pub fn parse(s: &str) -> Option<KeyStatus> {
        [KeyStatus::Active, KeyStatus::Expired, KeyStatus::Revoked].into_iter().find(|k| k.as_str() == s)
    }
}

/// Why a key is not active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusReason {
    /// Its own `expires_at` passed.
    Expired,
    /// It was rotated and the grace period ended.
    Rotated,
    /// A tightened tenant policy put it past its lifetime (blocked, not deleted).
    TenantPolicy,
    Revoked,
}

impl StatusReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::Expired => "expired",
            StatusReason::Rotated => "rotated",
            StatusReason::TenantPolicy => "tenant_policy",
            StatusReason::Revoked => "revoked",
        }
    }
}

/// The time facts about a key that decide its status.
#[derive(Debug, Clone, Copy)]
pub struct KeyClock {
    pub key_type: KeyType,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When a rotation's grace period ends for this (old) key.
    pub superseded_at: Option<DateTime<Utc>>,
}

pub fn status(key: &KeyClock, policy: &LifetimePolicy, now: DateTime<Utc>) -> (KeyStatus, Option<StatusReason>) {
    if key.revoked_at.is_some_and(|t| t <= now) {
        return (KeyStatus::Revoked, Some(StatusReason::Revoked));
    }
    if key.expires_at.is_some_and(|t| t <= now) {
        return (KeyStatus::Expired, Some(StatusReason::Expired));
    }
    if key.superseded_at.is_some_and(|t| t <= now) {
        return (KeyStatus::Expired, Some(StatusReason::Rotated));
    }
    if let Some(days) = policy.get(&key.key_type) {
        if key.created_at + Duration::days(*days) <= now {
            return (KeyStatus::Expired, Some(StatusReason::TenantPolicy));
        }
    }
    (KeyStatus::Active, None)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("expires_at must be in the future")]
    InThePast,
    #[error("expires_at exceeds the maximum lifetime of {max_days} days for {key_type}")]
    TooLong { key_type: KeyType, max_days: i64 },
    #[error("max_lifetime_days for {key_type} must be between 1 and {cap}")]
    PolicyOutOfRange { key_type: KeyType, cap: i64 },
    #[error("grace_seconds must be between 0 and {MAX_GRACE_SECONDS}")]
    GraceOutOfRange,
}

/// When a key stops working by time, and why: its own expiry, or its
/// creation plus the tenant's maximum lifetime for its type when that comes
/// first (a policy tightened after the key was issued). None: it never expires.
pub fn effective_expiry(key: &KeyClock, policy: &LifetimePolicy) -> Option<(DateTime<Utc>, StatusReason)> {
    let by_policy =
        policy.get(&key.key_type).map(|days| (key.created_at + Duration::days(*days), StatusReason::TenantPolicy));
    let own = key.expires_at.map(|t| (t, StatusReason::Expired));
    match (own, by_policy) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The strictest cap for a type: its own, tightened by the tenant policy.
pub fn effective_cap_days(key_type: KeyType, policy: &LifetimePolicy) -> i64 {
    let own = key_type.max_lifetime_days();
    policy.get(&key_type).map_or(own, |p| (*p).min(own))
}

/// The expiry a new key gets: the requested one if it fits, else the default.
/// With no request, a type with a default lifetime or a tenant policy gets the cap.
pub fn resolve_expiry(
    key_type: KeyType,
    requested: Option<DateTime<Utc>>,
    policy: &LifetimePolicy,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, LifetimeError> {
    let cap = effective_cap_days(key_type, policy);
    match requested {
        Some(t) if t <= now => Err(LifetimeError::InThePast),
        Some(t) if t > now + Duration::days(cap) => Err(LifetimeError::TooLong { key_type, max_days: cap }),
        Some(t) => Ok(Some(t)),
        None if key_type.default_lifetime_days().is_some() || policy.contains_key(&key_type) => {
            Ok(Some(now + Duration::days(cap)))
        }
        None => Ok(None),
    }
}

/// The replacement key of a rotation keeps the old key's lifetime length, within today's caps.
pub fn rotated_expiry(old: &KeyClock, policy: &LifetimePolicy, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cap = now + Duration::days(effective_cap_days(old.key_type, policy));
    match old.expires_at {
        Some(exp) => Some((now + (exp - old.created_at)).min(cap)),
        None if old.key_type.default_lifetime_days().is_some() || policy.contains_key(&old.key_type) => Some(cap),
        None => None,
    }
}

/// When the old key of a rotation stops: now + grace, never later than its own expiry.
pub fn grace_end(old: &KeyClock, grace_seconds: i64, now: DateTime<Utc>) -> Result<DateTime<Utc>, LifetimeError> {
    if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        return Err(LifetimeError::GraceOutOfRange);
    }
    let end = now + Duration::seconds(grace_seconds);
    Ok(old.expires_at.map_or(end, |exp| end.min(exp)))
}

pub fn validate_policy(policy: &LifetimePolicy) -> Result<(), LifetimeError> {
    for (key_type, days) in policy {
        let cap = key_type.max_lifetime_days();
        if !(1..=cap).contains(days) {
            return Err(LifetimeError::PolicyOutOfRange { key_type: *key_type, cap });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn clock(key_type: KeyType) -> KeyClock {
        KeyClock { key_type, created_at: now(), expires_at: None, revoked_at: None, superseded_at: None }
    }

    #[test]
    fn user_management_defaults_to_and_is_capped_at_365_days() {
        let none = LifetimePolicy::new();
        let t = KeyType::TeamUserMgmt;
        assert_eq!(resolve_expiry(t, None, &none, now()), Ok(Some(now() + Duration::days(365))));
        assert!(resolve_expiry(t, Some(now() + Duration::days(365)), &none, now()).is_ok());
        assert_eq!(
            resolve_expiry(t, Some(now() + Duration::days(366)), &none, now()),
            Err(LifetimeError::TooLong { key_type: t, max_days: 365 })
        );
    }

    #[test]
    fn other_types_may_have_no_expiry_but_never_a_past_one() {
        let none = LifetimePolicy::new();
        assert_eq!(resolve_expiry(KeyType::Siem, None, &none, now()), Ok(None));
        assert_eq!(resolve_expiry(KeyType::Siem, Some(now()), &none, now()), Err(LifetimeError::InThePast));
    }

    #[test]
    fn tenant_policy_tightens_and_sets_the_default() {
        let policy = LifetimePolicy::from([(KeyType::Siem, 30)]);
        assert_eq!(resolve_expiry(KeyType::Siem, None, &policy, now()), Ok(Some(now() + Duration::days(30))));
        assert!(resolve_expiry(KeyType::Siem, Some(now() + Duration::days(31)), &policy, now()).is_err());
        assert_eq!(effective_cap_days(KeyType::Siem, &policy), 30);
    }

    #[test]
    fn a_tightened_policy_expires_old_keys() {
        let key = clock(KeyType::Siem);
        let later = now() + Duration::days(40);
        assert_eq!(status(&key, &LifetimePolicy::new(), later), (KeyStatus::Active, None));
        let policy = LifetimePolicy::from([(KeyType::Siem, 30)]);
        assert_eq!(status(&key, &policy, later), (KeyStatus::Expired, Some(StatusReason::TenantPolicy)));
    }

    #[test]
    fn status_precedence_is_revoked_then_expired_then_rotated() {
        let mut key = clock(KeyType::Siem);
        key.expires_at = Some(now() + Duration::days(1));
        key.superseded_at = Some(now() + Duration::hours(1));
        let none = LifetimePolicy::new();
        assert_eq!(status(&key, &none, now()).0, KeyStatus::Active);
        assert_eq!(status(&key, &none, now() + Duration::hours(2)).1, Some(StatusReason::Rotated));
        assert_eq!(status(&key, &none, now() + Duration::days(2)).1, Some(StatusReason::Expired));
        key.revoked_at = Some(now());
        assert_eq!(status(&key, &none, now()).0, KeyStatus::Revoked);
    }

    #[test]
    fn grace_never_outlives_the_old_key() {
        let mut key = clock(KeyType::Siem);
        assert_eq!(grace_end(&key, 60, now()), Ok(now() + Duration::seconds(60)));
        key.expires_at = Some(now() + Duration::seconds(10));
        assert_eq!(grace_end(&key, 60, now()), Ok(now() + Duration::seconds(10)));
        assert_eq!(grace_end(&key, -1, now()), Err(LifetimeError::GraceOutOfRange));
        assert_eq!(grace_end(&key, MAX_GRACE_SECONDS + 1, now()), Err(LifetimeError::GraceOutOfRange));
    }

    #[test]
    fn rotation_keeps_the_lifetime_length() {
        let mut key = clock(KeyType::Siem);
        key.expires_at = Some(now() + Duration::days(10));
        let later = now() + Duration::days(5);
        assert_eq!(rotated_expiry(&key, &LifetimePolicy::new(), later), Some(later + Duration::days(10)));
        assert_eq!(rotated_expiry(&clock(KeyType::Siem), &LifetimePolicy::new(), later), None);
    }

    #[test]
    fn policy_values_stay_within_type_caps() {
        assert!(validate_policy(&LifetimePolicy::from([(KeyType::TeamUserMgmt, 365)])).is_ok());
        assert!(validate_policy(&LifetimePolicy::from([(KeyType::TeamUserMgmt, 366)])).is_err());
        assert!(validate_policy(&LifetimePolicy::from([(KeyType::Siem, 0)])).is_err());
    }

    #[test]
    fn the_effective_expiry_is_the_earlier_of_the_key_and_the_tenant_policy() {
        let mut key = clock(KeyType::Siem);
        assert_eq!(effective_expiry(&key, &LifetimePolicy::new()), None);
        let policy = LifetimePolicy::from([(KeyType::Siem, 30)]);
        let by_policy = (key.created_at + Duration::days(30), StatusReason::TenantPolicy);
        assert_eq!(effective_expiry(&key, &policy), Some(by_policy));
        key.expires_at = Some(key.created_at + Duration::days(10));
        assert_eq!(effective_expiry(&key, &policy), Some((key.created_at + Duration::days(10), StatusReason::Expired)));
        key.expires_at = Some(key.created_at + Duration::days(90));
        assert_eq!(effective_expiry(&key, &policy), Some(by_policy));
        assert_eq!(
            effective_expiry(&key, &LifetimePolicy::from([(KeyType::Ediscovery, 1)])).map(|e| e.1),
            Some(StatusReason::Expired)
        );
    }
}
