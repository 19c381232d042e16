//! The tenants' logs: where each event goes in its tenant's chain (its
//! `seq`), what its chain hash covers (the previous event's hash and its own
//! canonical bytes), and the Merkle tree leaf it becomes (see `tree`). The
//! writer builds events; this places them.

use super::tree::{Frontier, Trees};
use super::{canonical, EventDraft};
use crate::crypto;
use crate::db::models::AuditRow;
use crate::db::{store, DbConn};
use crate::error::{AppError, AppResult, ErrorCode};
use std::collections::BTreeMap;

/// A chain's last `seq`, hash and time.
pub type Head = store::ChainHead;

/// What a group appends, in its transaction: the heads of its chains (locked)
/// and their trees' frontiers.
pub struct GroupHeads {
    heads: BTreeMap<String, Head>,
    trees: BTreeMap<String, Frontier>,
}

impl GroupHeads {
    fn of(heads: BTreeMap<String, Head>) -> GroupHeads {
        GroupHeads { heads, trees: BTreeMap::new() }
    }

    /// Saves the heads the group moved (its tree hashes went with its events).
    pub fn save(&self, conn: &mut DbConn) -> AppResult<()> {
        store::save_chain_heads(conn, &self.heads)
    }
}

/// The writer's view of the logs: the trees' frontiers its last groups left
/// (both backends), and on PostgreSQL the chain heads too, so that a group
/// which only appends can do so in one statement (see
/// [`Chains::append_on_known_head`]).
#[derive(Default)]
pub struct Chains {
    known: Option<BTreeMap<String, Head>>,
    trees: Trees,
}

impl Chains {
    /// `remember_heads`: keep the heads between groups (PostgreSQL, where a
    /// group otherwise pays a network round trip for each step).
    pub fn new(remember_heads: bool) -> Chains {
        Chains { known: remember_heads.then(BTreeMap::new), trees: Trees::default() }
    }

    /// Locks the chains of `events` (in a fixed order, so that instances
    /// sharing a PostgreSQL database cannot deadlock) and reads their heads.
    pub fn lock(&self, conn: &mut DbConn, events: &[EventDraft]) -> AppResult<GroupHeads> {
        let mut ids: Vec<String> = events.iter().map(|d| d.chain_id().to_string()).collect();
        ids.sort();
        ids.dedup();
        Ok(GroupHeads::of(store::lock_chain_heads(conn, &ids)?))
    }

    /// Puts `row` at the end of its chain and its tree: its `seq`,
    /// `prev_hash`, `hash` and the tree hashes its append stores.
    pub fn place(&self, conn: &mut DbConn, group: &mut GroupHeads, row: &mut AuditRow) -> AppResult<()> {
        if !group.heads.contains_key(&row.chain_id) {
            // A chain created by this very group (a new tenant).
            let head = store::load_head(conn, &row.chain_id)?
                .ok_or_else(|| AppError::new(ErrorCode::Internal, "audit chain missing"))?;
            group.heads.insert(row.chain_id.clone(), head);
        }
        let head = group.heads.get_mut(&row.chain_id).expect("head loaded above");
        if !group.trees.contains_key(&row.chain_id) {
            let frontier = self.trees.frontier(conn, &row.chain_id, head.seq as u64)?;
            group.trees.insert(row.chain_id.clone(), frontier);
        }
        let frontier = group.trees.get_mut(&row.chain_id).expect("frontier loaded above");
        link(row, head, frontier);
        Ok(())
    }

    /// After a group: the heads and frontiers it committed are this writer's
    /// to remember; after a failure nothing is known any more.
    pub fn finished(&mut self, committed: Option<&GroupHeads>) {
        if let Some(known) = self.known.as_mut() {
            match committed {
                Some(group) => known.extend(group.heads.iter().map(|(id, head)| (id.clone(), head.clone()))),
                None => known.clear(),
            }
        }
        self.trees.finished(committed.map(|g| g.trees.iter().map(|(id, f)| (id.clone(), f.clone()))));
    }

    /// Whether [`append_on_known_head`](Self::append_on_known_head) may take
    /// events for these drafts (asked before their rows are built).
    pub fn knows_the_head_of(&self, events: &[EventDraft]) -> bool {
        let (Some(known), Some(first)) = (&self.known, events.first()) else { return false };
        let chain = first.chain_id();
        known.get(chain).is_some_and(|head| self.trees.remembered(chain, head.seq as u64).is_some())
            && events.iter().all(|e| e.chain_id() == chain)
    }

    /// PostgreSQL, events for one chain whose head and tree this writer
    /// committed last: placed after that head and inserted (their tree
    /// hashes with them) in one autocommitted statement that locks the head and inserts
    /// only if it has not moved — one round trip instead of four (BEGIN, lock
    /// the head, INSERT, COMMIT). None when the events do not go this way:
    /// several chains, a head this writer does not know, or one that moved
    /// since (another instance or the CLI appended). A statement that failed
    /// fails them (nothing was written).
    pub fn append_on_known_head(&mut self, conn: &mut DbConn, rows: &mut [AuditRow]) -> Option<AppResult<GroupHeads>> {
        let known = self.known.as_mut()?;
        let chain = rows.first()?.chain_id.clone();
        if rows.iter().any(|r| r.chain_id != chain) {
            return None;
        }
        let mut head = known.get(&chain)?.clone();
        let mut frontier = self.trees.remembered(&chain, head.seq as u64)?;
        let last_seq = head.seq;
        let mut group = GroupHeads::of(BTreeMap::new());
        for row in rows.iter_mut() {
            link(row, &mut head, &mut frontier);
        }
        match store::append_after_head(conn, &chain, last_seq, rows) {
            Ok(true) => {
                group.heads.insert(chain.clone(), head);
                group.trees.insert(chain, frontier);
                Some(Ok(group))
            }
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

/// Appends `row` after `head`, which it then becomes, and to the tree whose
/// frontier is `frontier`. An event is never stamped earlier than the one
/// before it (another instance's clock, or this one stepped back), so that a
/// chain in seq order is in time order and a time window is a seq range.
fn link(row: &mut AuditRow, head: &mut Head, frontier: &mut Frontier) {
    row.seq = head.seq + 1;
    row.prev_hash = head.hash;
    if let Some(at) = head.at {
        row.occurred_at = row.occurred_at.max(at);
    }
    let leaf = canonical(row);
    row.hash = crypto::chain_hash(&row.prev_hash, &leaf);
    *head = Head { seq: row.seq, hash: row.hash, at: Some(row.occurred_at) };
    debug_assert_eq!(frontier.size(), (row.seq - 1) as u64, "the tree is in step with its chain");
    row.tree_hashes = Some(frontier.append_stored(&leaf));
}
