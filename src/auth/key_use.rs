//! What the audit writer's groups do for keys: a used key's `last_used_*`
//! is written in the group that records its use, and the key cache hears of
//! every group that changed something before any of its callers is answered.

use super::key_cache::KeyCache;
use crate::audit::writer::{Group, GroupHook};
use crate::audit::EventDraft;
use crate::db::{store, DbConn};
use crate::error::AppResult;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A key's `last_used_*` is written at most this often per writer: a busy key
/// would otherwise rewrite its row (and a database page) in every group. The
/// audit events keep every use exactly.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(1);

/// Writes `last_used_at`/`last_used_ip` of the keys a group's events used.
#[derive(Default)]
pub struct LastUsed {
    /// Keys whose `last_used_*` were written less than [`TOUCH_INTERVAL`] ago.
    recently: HashMap<String, Instant>,
    /// Keys written by the group in progress: kept only if it commits.
    this_group: Vec<String>,
}

impl LastUsed {
    fn due(&self, key_id: &str) -> bool {
        self.recently.get(key_id).is_none_or(|at| at.elapsed() >= TOUCH_INTERVAL)
    }
}

impl GroupHook for LastUsed {
    fn in_group(&mut self, conn: &mut DbConn, group: &Group<'_>) -> AppResult<()> {
        // A key used several times in the group: its last use is written, once.
        let mut uses = BTreeMap::new();
        for (event, row) in group.events.iter().zip(group.rows) {
            if let Some(key_id) = event.used_key() {
                uses.insert(key_id, (row.occurred_at, event.client_ip.as_deref()));
            }
        }
        for (key_id, (at, ip)) in uses {
            if self.due(key_id) {
                store::touch_key(conn, key_id, at, ip)?;
                self.this_group.push(key_id.to_string());
            }
        }
        Ok(())
    }

    fn writes_for(&self, events: &[EventDraft]) -> bool {
        events.iter().filter_map(EventDraft::used_key).any(|key_id| self.due(key_id))
    }

    fn finished(&mut self, committed: bool) {
        let now = Instant::now();
        self.recently.retain(|_, at| now.duration_since(*at) < TOUCH_INTERVAL);
        // A group rolled back wrote nothing: its keys are still due.
        for key_id in self.this_group.drain(..) {
            if committed {
                self.recently.insert(key_id, now);
            }
        }
    }
}

/// Tells the key cache the database's `key_state` version after each group
/// that changed something (a key issued, revoked, a policy changed).
pub struct KeyStateNotice {
    cache: Arc<KeyCache>,
    read: Option<i64>,
}

impl KeyStateNotice {
    pub fn new(cache: Arc<KeyCache>) -> KeyStateNotice {
        KeyStateNotice { cache, read: None }
    }
}

impl GroupHook for KeyStateNotice {
    fn in_group(&mut self, conn: &mut DbConn, group: &Group<'_>) -> AppResult<()> {
        if group.changed {
            self.read = Some(store::key_state_version(conn)?);
        }
        Ok(())
    }

    fn writes_for(&self, _: &[EventDraft]) -> bool {
        false
    }

    fn finished(&mut self, committed: bool) {
        if let (true, Some(version)) = (committed, self.read.take()) {
            self.cache.observe_version(version);
        }
        self.read = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(key_id: &str) -> EventDraft {
        let mut e = EventDraft::new(crate::domain::authz::Op::AuthWhoami, "req_1");
        e.key_id = Some(key_id.into());
        e.key_used = true;
        e
    }

    #[test]
    fn a_key_written_by_a_committed_group_waits_and_one_rolled_back_stays_due() {
        let mut hook = LastUsed::default();
        assert!(hook.writes_for(&[used("k1")]));
        hook.this_group.push("k1".into());
        hook.finished(false);
        assert!(hook.writes_for(&[used("k1")]), "a rolled-back group wrote nothing");
        hook.this_group.push("k1".into());
        hook.finished(true);
        assert!(!hook.writes_for(&[used("k1")]), "written just now");
        assert!(hook.writes_for(&[used("k1"), used("k2")]));
        let mut refused = used("k2");
        refused.status_code = 403;
        assert!(!hook.writes_for(&[refused]), "a refused use is no use");
    }
}
