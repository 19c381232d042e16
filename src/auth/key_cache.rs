//! The verified-key cache: what a key check reads from the database (the key's
//! row and its tenant's status and policy), kept in memory by secret hash so
//! that a known key, or a key known not to exist, costs no round trip.
//!
//! Only the stored facts are cached, never a verdict: expiry, rotation grace,
//! the allowlist and the type check are decided afresh on every request.
//!
//! Why a cached entry cannot outlive a change:
//! - Each entry carries the cache's generation from *before* its database
//!   read; it is used only while the generation is unchanged.
//! - The database keeps a counter, `key_state.version`, that triggers move on
//!   every change a key check reads (migration `000003_key_state`).
//! - On this instance, the audit writer reads that counter inside every group
//!   that changed something and hands it here after the commit and before the
//!   caller is answered: a revocation is refused from the very next request.
//! - Changes made elsewhere (another instance, the CLI, a hand edit) are seen
//!   in one of two ways ([`KeyCacheMode`]):
//!   - `CheckEachRequest` (PostgreSQL's default): every key check first reads
//!     the counter (one row by primary key, instead of the key and tenant
//!     rows) and uses an entry only if it has not moved, so a change anywhere
//!     reaches the next request on every instance;
//!   - `Poll` (SQLite's default): [`spawn_sync`] polls the counter every
//!     interval. If that poll has not succeeded for [`KeyCache::stale_after`]
//!     (database unreachable), entries are not trusted and every check reads
//!     the database.

use crate::auth::key::KeyRecord;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Known keys held at most; beyond it the map starts over (memory stays bounded).
const MAX_KNOWN: usize = 65_536;
/// Unknown secrets held at most, apart from known keys so a flood of made-up
/// secrets cannot evict real ones.
const MAX_UNKNOWN: usize = 4_096;

struct Entry {
    generation: u64,
    record: Option<Arc<KeyRecord>>,
}

pub use crate::config::KeyCacheMode;

pub struct KeyCache {
    mode: KeyCacheMode,
    generation: AtomicU64,
    /// The last `key_state.version` seen; -1 before the first.
    version: AtomicI64,
    /// Milliseconds after `origin` of the last successful poll; 0: never.
    synced_at_ms: AtomicU64,
    origin: Instant,
    known: RwLock<HashMap<String, Entry>>,
    unknown: RwLock<HashMap<String, Entry>>,
}

/// A cache answer: the stored facts (None: no such key), or a miss to fill
/// with [`KeyCache::fill`] under the generation it carries.
pub enum Cached {
    Hit(Option<Arc<KeyRecord>>),
    Miss(u64),
}

impl KeyCache {
    pub fn new(mode: KeyCacheMode) -> KeyCache {
        KeyCache {
            mode,
            generation: AtomicU64::new(0),
            version: AtomicI64::new(-1),
            synced_at_ms: AtomicU64::new(0),
            origin: Instant::now(),
            known: RwLock::new(HashMap::new()),
            unknown: RwLock::new(HashMap::new()),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.mode != KeyCacheMode::Off
    }

    /// Whether each check must read the version and call [`KeyCache::get_under`].
    pub fn checks_each_request(&self) -> bool {
        self.mode == KeyCacheMode::CheckEachRequest
    }

    /// The poll interval, in `Poll` mode.
    pub fn poll_interval(&self) -> Option<Duration> {
        match self.mode {
            KeyCacheMode::Poll(interval) => Some(interval),
            _ => None,
        }
    }

    /// How long entries stay trusted without a successful poll.
    pub fn stale_after(&self) -> Duration {
        (self.poll_interval().unwrap_or_default() * 5).max(Duration::from_millis(500))
    }

    /// `Poll` mode: the entry for a secret hash if polls are succeeding. In
    /// the other modes always a miss: nothing is trusted without a version.
    pub fn get(&self, secret_hash: &str) -> Cached {
        let generation = self.generation.load(Ordering::Acquire);
        if self.poll_interval().is_none() || !self.is_fresh() {
            return Cached::Miss(generation);
        }
        self.lookup(secret_hash, generation)
    }

    /// `CheckEachRequest` mode: the entry for a secret hash, given the
    /// `key_state.version` this request has just read from the database. An
    /// entry that is hit was read from the database after that version was
    /// first seen here, so after the change that made it.
    pub fn get_under(&self, secret_hash: &str, version: i64) -> Cached {
        self.observe_version(version);
        let generation = self.generation.load(Ordering::Acquire);
        if !self.checks_each_request() {
            return Cached::Miss(generation);
        }
        self.lookup(secret_hash, generation)
    }

    fn lookup(&self, secret_hash: &str, generation: u64) -> Cached {
        for map in [&self.known, &self.unknown] {
            let map = map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get(secret_hash).filter(|e| e.generation == generation) {
                return Cached::Hit(e.record.clone());
            }
        }
        Cached::Miss(generation)
    }

    /// Keeps what a database read found, unless something changed since `generation` was taken.
    pub fn fill(&self, secret_hash: String, generation: u64, record: Option<Arc<KeyRecord>>) {
        if !self.is_enabled() || self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let (map, max) = if record.is_some() { (&self.known, MAX_KNOWN) } else { (&self.unknown, MAX_UNKNOWN) };
        let mut map = map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= max {
            map.clear();
        }
        // Checked again under the lock: `invalidate` clears after moving the generation.
        if self.generation.load(Ordering::Acquire) == generation {
            map.insert(secret_hash, Entry { generation, record });
        }
    }

    /// Forgets every entry.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for map in [&self.known, &self.unknown] {
            map.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Takes a `key_state.version` read from the database; a different one
    /// than last time means something a key check reads has changed.
    pub fn observe_version(&self, version: i64) {
        if self.version.swap(version, Ordering::AcqRel) != version {
            self.invalidate();
        }
    }

    /// The last version seen (for `/metrics`); -1 before the first poll.
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Acquire)
    }

    fn mark_synced(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.synced_at_ms.store(ms.max(1), Ordering::Release);
    }

    fn is_fresh(&self) -> bool {
        let synced = self.synced_at_ms.load(Ordering::Acquire);
        synced != 0 && self.origin.elapsed().as_millis() as u64 <= synced + self.stale_after().as_millis() as u64
    }
}

/// Polls `key_state.version` every `sync_interval` until the handle is
/// dropped; None when the cache is not polled.
pub fn spawn_sync(cache: &Arc<KeyCache>, pool: crate::db::Pool) -> Option<crate::threads::Stop> {
    let interval = cache.poll_interval()?;
    let cache = cache.clone();
    let (stop, rounds) = crate::threads::stop_handle();
    std::thread::Builder::new()
        .name("key-cache-sync".into())
        .spawn(move || {
            let mut warned = false;
            loop {
                {
                    let read = crate::db::with_pooled(&pool, crate::db::store::key_state_version);
                    match read {
                        Ok(version) => {
                            cache.observe_version(version);
                            cache.mark_synced();
                            warned = false;
                        }
                        Err(e) if !warned => {
                            tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "key cache cannot read key_state; checks read the database");
                            warned = true;
                        }
                        Err(_) => {}
                    }
                }
                if !rounds.next(interval) {
                    break;
                }
            }
        })
        .expect("spawn the key cache sync thread");
    Some(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: KeyCacheMode = KeyCacheMode::Poll(Duration::from_millis(100));

    fn synced_cache() -> KeyCache {
        let c = KeyCache::new(POLL);
        c.observe_version(0);
        c.mark_synced();
        c
    }

    fn generation_of(c: &KeyCache, hash: &str) -> u64 {
        match c.get(hash) {
            Cached::Miss(g) => g,
            Cached::Hit(_) => panic!("expected a miss"),
        }
    }

    #[test]
    fn an_entry_is_used_until_the_version_moves() {
        let c = synced_cache();
        let g = generation_of(&c, "h");
        c.fill("h".into(), g, None);
        assert!(matches!(c.get("h"), Cached::Hit(None)));
        c.observe_version(0);
        assert!(matches!(c.get("h"), Cached::Hit(None)), "the same version keeps entries");
        c.observe_version(1);
        assert!(matches!(c.get("h"), Cached::Miss(_)), "a new version drops them");
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let c = synced_cache();
        let g = generation_of(&c, "h");
        // A change commits while the database read is under way.
        c.invalidate();
        c.fill("h".into(), g, None);
        assert!(matches!(c.get("h"), Cached::Miss(_)));
    }

    #[test]
    fn without_a_recent_sync_nothing_is_trusted() {
        let c = KeyCache::new(POLL);
        let g = generation_of(&c, "h");
        c.fill("h".into(), g, None);
        assert!(matches!(c.get("h"), Cached::Miss(_)), "never synced");
        c.mark_synced();
        assert!(matches!(c.get("h"), Cached::Hit(None)));
    }

    #[test]
    fn off_keeps_nothing() {
        let c = KeyCache::new(KeyCacheMode::Off);
        c.mark_synced();
        let g = generation_of(&c, "h");
        c.fill("h".into(), g, None);
        assert!(matches!(c.get("h"), Cached::Miss(_)));
        assert!(matches!(c.get_under("h", 0), Cached::Miss(_)));
    }

    #[test]
    fn checking_each_request_uses_an_entry_only_under_the_version_just_read() {
        let c = KeyCache::new(KeyCacheMode::CheckEachRequest);
        // No poll ever runs in this mode; the version read by the request is what counts.
        let Cached::Miss(g) = c.get_under("h", 7) else { panic!("empty cache") };
        c.fill("h".into(), g, None);
        assert!(matches!(c.get_under("h", 7), Cached::Hit(None)));
        assert!(matches!(c.get("h"), Cached::Miss(_)), "never without a version");
        // A change elsewhere: the next request reads 8 and goes to the database.
        let Cached::Miss(g8) = c.get_under("h", 8) else { panic!("a new version drops entries") };
        // A request that read the old version before the change, and looks up after
        // it, cannot bring back an entry: its lookup moves the version again.
        assert!(matches!(c.get_under("h", 7), Cached::Miss(_)));
        // And what the request under 8 read is not kept: the version moved since.
        c.fill("h".into(), g8, None);
        assert!(matches!(c.get_under("h", 8), Cached::Miss(_)));
    }

    #[test]
    fn unknown_secrets_are_bounded_and_cannot_evict_known_keys() {
        let c = synced_cache();
        for i in 0..(MAX_UNKNOWN * 2) {
            c.fill(format!("u{i}"), 0, None);
        }
        assert!(c.unknown.read().unwrap().len() <= MAX_UNKNOWN);
        assert!(c.known.read().unwrap().is_empty());
    }
}
