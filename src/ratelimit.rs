//! Rate limits, per instance: per tenant and operation for identified callers
//! (`KEYWARD_RATE_LIMIT_READ_PER_MINUTE` / `…_WRITE_PER_MINUTE`, 0 turns a
//! limit off), and a refusal budget per client address for callers that do
//! not authenticate (bad keys, tokens, links, paths), so that a flood of
//! refusals costs neither database reads nor a row each.
//!
//! Limits are kept in each instance's memory: behind a load balancer with N
//! instances, a tenant may make up to N times the configured rate. That keeps
//! the check off the database and fails open to no one: a refused request is
//! still refused by the authorizer first.

use crate::domain::{Access, Method, Operation, Reach};
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default for `KEYWARD_REFUSALS_PER_MINUTE`: refusals recorded one event
/// each per client address and minute (and at once, as a burst).
pub const REFUSALS_PER_MINUTE: u32 = 600;
/// How long an answer over budget is held before it leaves: a flooding
/// client that waits for its answers (as HTTP/1.1 clients do) is slowed to a
/// few requests a second per connection, at the cost of a timer, not of CPU.
pub const OVER_BUDGET_DELAY: Duration = Duration::from_millis(500);
/// Addresses over budget tracked at most; past it, new ones share one entry
/// (the unspecified address), so that memory stays bounded under a spread flood.
const MAX_TRACKED: usize = 65_536;
/// How often (in checks) forgotten keys are swept from the limiters' maps.
const SWEEP_EVERY: u64 = 10_000;
/// The reason counted for a request refused up front, before anything was examined.
pub const OVER_BUDGET: &str = "over_refusal_budget";

pub struct RateLimits {
    read: Option<DefaultKeyedRateLimiter<(String, &'static str)>>,
    write: Option<DefaultKeyedRateLimiter<(String, &'static str)>>,
    pub refusals: std::sync::Arc<RefusalBudget>,
    checks: AtomicU64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// Whether an operation counts against the read or the write limit.
pub fn access_of(op: &Operation) -> Access {
    match op.reach {
        Reach::Key(_, access) | Reach::ConsoleOrKey(_, _, access) => access,
        _ if op.method == Method::Get => Access::Read,
        _ => Access::Write,
    }
}

impl RateLimits {
    pub fn new(read_per_minute: u32, write_per_minute: u32, refusals_per_minute: u32) -> RateLimits {
        RateLimits {
            read: limiter(read_per_minute),
            write: limiter(write_per_minute),
            refusals: std::sync::Arc::new(RefusalBudget::new(refusals_per_minute)),
            checks: AtomicU64::new(0),
        }
    }

    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for l in [&self.read, &self.write].into_iter().flatten() {
                l.retain_recent();
            }
            if let Some(l) = &self.refusals.limiter {
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
}

/// What happens to a refusal charged against its address's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Within budget: recorded as an event of its own.
    Record,
    /// Over budget: answered 429 (retry after so many seconds) and counted
    /// into the address's summary instead.
    Summarize { retry_after: u64 },
}

/// The refusals of one address over its budget, until they are summarized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalTally {
    pub count: u64,
    pub reasons: BTreeMap<&'static str, u64>,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

struct OverBudget {
    /// Every request from the address is refused up front until then.
    blocked_until: Instant,
    tally: Option<RefusalTally>,
}

/// Refusals per client address (IPv6 per /64, which one host can hold whole).
/// Within budget each refusal is an event of its own; past it, the address is
/// refused up front (429, before any lookup) until its budget refills, and
/// its refusals are tallied for one summary event per address and window.
pub struct RefusalBudget {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    over: Mutex<HashMap<IpAddr, OverBudget>>,
    /// Whether `over` may hold an entry: the check every request makes is one load while no address is over.
    any_over: AtomicBool,
}

/// The budget's key for an address.
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl RefusalBudget {
    pub fn new(per_minute: u32) -> RefusalBudget {
        let limiter = NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        RefusalBudget { limiter, over: Mutex::new(HashMap::new()), any_over: AtomicBool::new(false) }
    }

    /// `Some(seconds to wait)` while `ip` is refused up front. Counts the refusal in its tally.
    pub fn refuse_up_front(&self, ip: IpAddr) -> Option<u64> {
        if !self.any_over.load(Ordering::Acquire) {
            return None;
        }
        let key = budget_key(ip);
        let mut over = self.over.lock().unwrap_or_else(|e| e.into_inner());
        let entry = over.get_mut(&key)?;
        let wait = entry.blocked_until.checked_duration_since(Instant::now())?;
        tally(&mut entry.tally, OVER_BUDGET, Utc::now());
        Some(wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Charges one refusal, with its reason, to `ip`.
    pub fn charge(&self, ip: IpAddr, reason: &'static str) -> Charge {
        let Some(limiter) = &self.limiter else { return Charge::Record };
        let key = budget_key(ip);
        let Err(not_until) = limiter.check_key(&key) else { return Charge::Record };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut over = self.over.lock().unwrap_or_else(|e| e.into_inner());
        let key = if over.len() >= MAX_TRACKED && !over.contains_key(&key) {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            key
        };
        let entry = over.entry(key).or_insert(OverBudget { blocked_until: Instant::now(), tally: None });
        entry.blocked_until = entry.blocked_until.max(Instant::now() + wait.max(Duration::from_millis(1)));
        tally(&mut entry.tally, reason, Utc::now());
        self.any_over.store(true, Ordering::Release);
        Charge::Summarize { retry_after: wait.as_secs_f64().ceil().max(1.0) as u64 }
    }

    /// Takes every tally kept so far (one summary each), and forgets addresses
    /// no longer refused up front.
    pub fn take_tallies(&self) -> Vec<(IpAddr, RefusalTally)> {
        let mut over = self.over.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let taken = over.iter_mut().filter_map(|(ip, o)| o.tally.take().map(|t| (*ip, t))).collect();
        over.retain(|_, o| o.blocked_until > now);
        self.any_over.store(!over.is_empty(), Ordering::Release);
        taken
    }
}

fn tally(slot: &mut Option<RefusalTally>, reason: &'static str, now: DateTime<Utc>) {
    let t = slot.get_or_insert_with(|| RefusalTally { count: 0, reasons: BTreeMap::new(), first: now, last: now });
    t.count += 1;
    *t.reasons.entry(reason).or_insert(0) += 1;
    t.last = now;
}

fn retry_after(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    not_until.wait_time_from(DefaultClock::default().now()).as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::authz::Op;

    #[test]
    fn a_tenant_gets_its_quota_per_operation_then_a_retry_after() {
        let limits = RateLimits::new(3, 1, 0);
        let list = Op::TeamAssetList.spec();
        for _ in 0..3 {
            assert!(limits.check_tenant("t1", list).is_ok());
        }
        let wait = limits.check_tenant("t1", list).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limits.check_tenant("t2", list).is_ok(), "tenants are limited separately");
        let whoami = Op::AuthWhoami.spec();
        assert!(limits.check_tenant("t1", whoami).is_ok(), "operations are limited separately");
        let scope = Op::TeamAssetUpdateScope.spec();
        assert!(limits.check_tenant("t1", scope).is_ok());
        assert!(limits.check_tenant("t1", scope).is_err(), "writes have their own, smaller quota");
    }

    #[test]
    fn zero_turns_limiting_off() {
        let limits = RateLimits::new(0, 0, 0);
        let list = Op::TeamAssetList.spec();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10_000 {
            assert!(limits.check_tenant("t1", list).is_ok());
            assert_eq!(limits.refusals.charge(ip, "malformed"), Charge::Record);
        }
        assert_eq!(limits.refusals.refuse_up_front(ip), None);
    }

    #[test]
    fn refusals_over_budget_are_refused_up_front_and_tallied_per_address() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for budget in [5, REFUSALS_PER_MINUTE] {
            let limits = RateLimits::new(0, 0, budget);
            for _ in 0..budget {
                assert_eq!(limits.refusals.refuse_up_front(a), None);
                assert_eq!(limits.refusals.charge(a, "malformed"), Charge::Record);
            }
            let charged = limits.refusals.charge(a, "unknown_key");
            assert!(matches!(charged, Charge::Summarize { retry_after: 1..=60 }), "budget {budget}: {charged:?}");
            let wait = limits.refusals.refuse_up_front(a).expect("refused up front");
            assert!((1..=60).contains(&wait), "{wait}");
            assert_eq!(limits.refusals.refuse_up_front(b), None, "another address is not affected");
            assert_eq!(limits.refusals.charge(b, "malformed"), Charge::Record);
            let tallies = limits.refusals.take_tallies();
            assert_eq!(tallies.len(), 1);
            let (ip, t) = &tallies[0];
            assert_eq!(*ip, a);
            assert_eq!(t.count, 2);
            assert_eq!(t.reasons, BTreeMap::from([("unknown_key", 1), (OVER_BUDGET, 1)]));
            assert!(limits.refusals.take_tallies().is_empty(), "a tally is summarized once");
        }
    }

    #[test]
    fn an_ipv6_host_is_one_address_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(budget_key(a), budget_key(b));
        assert_ne!(budget_key(a), budget_key("2001:db8:1:3::1".parse().unwrap()));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(budget_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn reads_and_writes_follow_the_table() {
        assert_eq!(access_of(Op::TeamAssetList.spec()), Access::Read);
        assert_eq!(access_of(Op::TeamAssetUpdateScope.spec()), Access::Write);
        assert_eq!(access_of(Op::EnterpriseKeyCreate.spec()), Access::Write);
        assert_eq!(access_of(Op::EnterpriseKeyList.spec()), Access::Read);
    }
}
