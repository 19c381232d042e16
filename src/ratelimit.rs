//! Rate limits, per instance: per tenant and operation for identified callers
//! (`KEYWARD_RATE_LIMIT_READ_PER_MINUTE` / `…_WRITE_PER_MINUTE`, 0 turns a
//! limit off), and per client address for refusals that no tenant can be told
//! for (unknown or malformed keys), so that a flood of bad keys cannot fill
//! the audit log or the database's time.
//!
//! Limits are kept in each instance's memory: behind a load balancer with N
//! instances, a tenant may make up to N times the configured rate. That keeps
//! the check off the database and fails open to no one: a refused request is
//! still refused by the authorizer first.

use crate::domain::{Access, Method, Operation, Reach};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most refusals with no tenant per client address and minute. The budget is the
/// larger tenant limit under this cap, and off when both tenant limits are off.
pub const ANONYMOUS_REFUSALS_PER_MINUTE: u32 = 600;
/// How often (in checks) forgotten keys are swept from the limiters' maps.
const SWEEP_EVERY: u64 = 10_000;

pub struct RateLimits {
    read: Option<DefaultKeyedRateLimiter<(String, &'static str)>>,
    write: Option<DefaultKeyedRateLimiter<(String, &'static str)>>,
    anonymous: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// Whether an operation counts against the read or the write limit.
pub fn access_of(op: &Operation) -> Access {
    match op.reach {
        Reach::Key(_, access) => access,
        _ if op.method == Method::Get => Access::Read,
        _ => Access::Write,
    }
}

impl RateLimits {
    pub fn new(read_per_minute: u32, write_per_minute: u32) -> RateLimits {
        let anonymous = read_per_minute.max(write_per_minute).min(ANONYMOUS_REFUSALS_PER_MINUTE);
        RateLimits {
            read: limiter(read_per_minute),
            write: limiter(write_per_minute),
            anonymous: limiter(anonymous),
            checks: AtomicU64::new(0),
        }
    }

    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for l in [&self.read, &self.write].into_iter().flatten() {
                l.retain_recent();
            }
            if let Some(l) = &self.anonymous {
                l.retain_recent();
            }
        }
    }

    /// `Err(seconds to wait)` when the tenant is over its limit for this operation.
    pub fn check_tenant(&self, tenant_id: &str, op: &Operation) -> Result<(), u64> {
        self.sweep();
        let limiter = match access_of(op) {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        match limiter {
            Some(l) => l.check_key(&(tenant_id.to_string(), op.name)).map_err(|nu| retry_after(&nu)),
            None => Ok(()),
        }
    }

    /// `Err(seconds to wait)` when a client address has been refused too often.
    pub fn check_anonymous(&self, ip: IpAddr) -> Result<(), u64> {
        self.sweep();
        match &self.anonymous {
            Some(l) => l.check_key(&ip).map_err(|nu| retry_after(&nu)),
            None => Ok(()),
        }
    }
}

fn retry_after(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    not_until.wait_time_from(DefaultClock::default().now()).as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::authz::find;

    #[test]
    fn a_tenant_gets_its_quota_per_operation_then_a_retry_after() {
        let limits = RateLimits::new(3, 1);
        let list = find("team.asset.list").unwrap();
        for _ in 0..3 {
            assert!(limits.check_tenant("t1", list).is_ok());
        }
        let wait = limits.check_tenant("t1", list).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limits.check_tenant("t2", list).is_ok(), "tenants are limited separately");
        let whoami = find("auth.whoami").unwrap();
        assert!(limits.check_tenant("t1", whoami).is_ok(), "operations are limited separately");
        let scope = find("team.asset.update_scope").unwrap();
        assert!(limits.check_tenant("t1", scope).is_ok());
        assert!(limits.check_tenant("t1", scope).is_err(), "writes have their own, smaller quota");
    }

    #[test]
    fn zero_turns_limiting_off() {
        let limits = RateLimits::new(0, 0);
        let list = find("team.asset.list").unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10_000 {
            assert!(limits.check_tenant("t1", list).is_ok());
            assert!(limits.check_anonymous(ip).is_ok());
        }
    }

    #[test]
    fn anonymous_refusals_are_limited_per_address() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for (read, write, budget) in [(2, 5, 5), (6000, 3000, ANONYMOUS_REFUSALS_PER_MINUTE)] {
            let limits = RateLimits::new(read, write);
            for _ in 0..budget {
                assert!(limits.check_anonymous(a).is_ok());
            }
            assert!(limits.check_anonymous(a).is_err(), "budget {budget}");
            assert!(limits.check_anonymous(b).is_ok());
        }
    }

    #[test]
    fn reads_and_writes_follow_the_table() {
        assert_eq!(access_of(find("team.asset.list").unwrap()), Access::Read);
        assert_eq!(access_of(find("team.asset.update_scope").unwrap()), Access::Write);
        assert_eq!(access_of(find("enterprise.key.create").unwrap()), Access::Write);
        assert_eq!(access_of(find("enterprise.key.list").unwrap()), Access::Read);
    }
}
