//! The tenants' hash chains: where each event goes in its tenant's log (its
//! `seq`) and what its hash covers (the previous event's hash and its own
//! canonical bytes). The writer builds events; this places them.

use super::{canonical, EventDraft};
use crate::crypto;
use crate::db::models::AuditRow;
use crate::db::{store, DbConn};
use crate::error::{AppError, AppResult, ErrorCode};
use std::collections::BTreeMap;

/// A chain's last `seq` and hash.
pub type Head = (i64, String);

/// The heads of the chains a group appends to, locked for its transaction.
pub struct GroupHeads(BTreeMap<String, Head>);

/// The writer's view of the chains. On PostgreSQL it remembers the heads its
/// own last groups left, so that a group which only appends can do so in one
/// statement (see [`Chains::append_on_known_head`]).
#[derive(Default)]
pub struct Chains {
    known: Option<BTreeMap<String, Head>>,
}

impl Chains {
    /// `remember_heads`: keep the heads between groups (PostgreSQL, where a
    /// group otherwise pays a network round trip for each step).
    pub fn new(remember_heads: bool) -> Chains {
        Chains { known: remember_heads.then(BTreeMap::new) }
    }

    /// Locks the chains of `events` (in a fixed order, so that instances
    /// sharing a PostgreSQL database cannot deadlock) and reads their heads.
    pub fn lock(conn: &mut DbConn, events: &[EventDraft]) -> AppResult<GroupHeads> {
        let mut ids: Vec<String> = events.iter().map(|d| d.chain_id().to_string()).collect();
        ids.sort();
        ids.dedup();
        Ok(GroupHeads(store::lock_chain_heads(conn, &ids)?))
    }

    /// Puts `row` at the end of its chain: its `seq`, `prev_hash` and `hash`.
    pub fn place(conn: &mut DbConn, heads: &mut GroupHeads, row: &mut AuditRow) -> AppResult<()> {
        if !heads.0.contains_key(&row.chain_id) {
            // A chain created by this very group (a new tenant).
            let head = store::load_chain_head(conn, &row.chain_id)?
                .ok_or_else(|| AppError::new(ErrorCode::Internal, "audit chain missing"))?;
            heads.0.insert(row.chain_id.clone(), head);
        }
        let head = heads.0.get_mut(&row.chain_id).expect("head loaded above");
        link(row, head);
        Ok(())
    }

    /// Saves the heads the group moved.
    pub fn save(conn: &mut DbConn, heads: &GroupHeads) -> AppResult<()> {
        store::save_chain_heads(conn, &heads.0)
    }

    /// After a group: the heads it committed are this writer's to remember;
    /// after a failure nothing is known any more.
    pub fn finished(&mut self, committed: Option<&GroupHeads>) {
        if let Some(known) = self.known.as_mut() {
            match committed {
                Some(heads) => known.extend(heads.0.iter().map(|(id, head)| (id.clone(), head.clone()))),
                None => known.clear(),
            }
        }
    }

    /// Whether [`append_on_known_head`](Self::append_on_known_head) may take
    /// events for these drafts (asked before their rows are built).
    pub fn knows_the_head_of(&self, events: &[EventDraft]) -> bool {
        let (Some(known), Some(first)) = (&self.known, events.first()) else { return false };
        let chain = first.chain_id();
        known.contains_key(chain) && events.iter().all(|e| e.chain_id() == chain)
    }

    /// PostgreSQL, events for one chain whose head this writer committed
    /// last: placed after that head and inserted in one autocommitted
    /// statement that locks the head and inserts only if it has not moved —
    /// one round trip instead of four (BEGIN, lock the head, INSERT, COMMIT).
    /// None when the events do not go this way: several chains, a head this
    /// writer does not know, or one that moved since (another instance or
    /// the CLI appended). A statement that failed fails them (nothing was written).
    pub fn append_on_known_head(&mut self, conn: &mut DbConn, rows: &mut [AuditRow]) -> Option<AppResult<GroupHeads>> {
        let known = self.known.as_mut()?;
        let chain = rows.first()?.chain_id.clone();
        if rows.iter().any(|r| r.chain_id != chain) {
            return None;
        }
        let mut head = known.get(&chain)?.clone();
        let last_seq = head.0;
        for row in rows.iter_mut() {
            link(row, &mut head);
        }
        match store::append_after_head(conn, &chain, last_seq, rows) {
            Ok(true) => Some(Ok(GroupHeads(BTreeMap::from([(chain, head)])))),
            Ok(false) => {
                tracing::debug!(chain, "the chain moved since this writer's last group; taking the lock");
                known.clear();
                None
            }
            Err(e) => {
                known.clear();
                Some(Err(e))
            }
        }
    }
}

/// Appends `row` after `head`, which it then becomes.
fn link(row: &mut AuditRow, head: &mut Head) {
    row.seq = head.0 + 1;
    row.prev_hash = head.1.clone();
    row.hash = crypto::chain_hash(&row.prev_hash, &canonical(row));
    *head = (row.seq, row.hash.clone());
}
