//! The audit log's proofs, for one tenant's chain: its signed checkpoints, the
//! inclusion proof of one of its events (RFC 9162 §2.1.3) and the consistency
//! proof between two of its sizes (§2.1.4). Each reads O(log n) stored
//! hashes, never the chain's events.

use crate::audit::{canonical, checkpoint, tree};
use crate::db::{store, DbConn};
use crate::error::{AppError, AppResult};

/// The inclusion proof of one event in the tree of `tree_size` leaves.
#[derive(Debug)]
pub struct Inclusion {
    pub leaf_index: u64,
    pub tree_size: u64,
    /// `SHA-256(0x00 ‖ canonical event)`.
    pub leaf_hash: tree::Hash,
    pub path: Vec<tree::Hash>,
}

/// The consistency proof from the tree of `from` leaves to the tree of `to`.
#[derive(Debug)]
pub struct Consistency {
    pub from: u64,
    pub to: u64,
    pub path: Vec<tree::Hash>,
}

/// The signed checkpoint note of the tenant's chain: the newest, or the one at `tree_size`.
pub fn checkpoint_note(conn: &mut DbConn, tenant_id: &str, tree_size: Option<u64>) -> AppResult<String> {
    // A size past what the store can hold names no checkpoint.
    if tree_size.is_some_and(|s| i64::try_from(s).is_err()) {
        return Err(AppError::not_found("no checkpoint was signed at this tree size"));
    }
    Ok(checkpoint::find(conn, tenant_id, tree_size)?.note)
}

/// The newest signed checkpoint note of the tenant's chain, if one was signed.
pub fn latest_checkpoint_note(conn: &mut DbConn, tenant_id: &str) -> AppResult<Option<String>> {
    Ok(store::find_checkpoint(conn, tenant_id, None)?.map(|c| c.note))
}

/// The inclusion proof of the tenant's event `event_id` in the tree of
/// `tree_size` leaves; without one, in the tree of the newest signed
/// checkpoint, so that the proof ties the event to a checkpoint the caller can fetch.
pub fn inclusion(conn: &mut DbConn, tenant_id: &str, event_id: &str, tree_size: Option<u64>) -> AppResult<Inclusion> {
    let size = current_size(conn, tenant_id)?;
    if let Some(t) = tree_size {
        check_size("tree_size", t, size)?;
    }
    // Another tenant's event is answered exactly like one that does not exist.
    let (seq, leaf_hash) = match store::find_chain_event(conn, tenant_id, event_id)? {
        Some(row) => (row.seq, tree::leaf_hash(&canonical(&row))),
        // Archived: its leaf hash is kept with the tree's nodes (the event is in its segment).
        None => store::find_kept_node(conn, tenant_id, event_id)?
            .and_then(|(seq, hashes)| Some((seq, tree::Hash(hashes.get(..32)?.try_into().ok()?))))
            .ok_or_else(|| AppError::not_found("no event with this event_id in the tenant's audit log"))?,
    };
    let leaf_index = (seq - 1) as u64;
    let tree_size = match tree_size {
        Some(t) if leaf_index >= t => {
            return Err(AppError::invalid(format!(
                "the event (leaf_index {leaf_index}) is not in the tree of tree_size {t}: tree_size must exceed its leaf_index"
            )))
        }
        Some(t) => t,
        None => {
            let latest = checkpoint::find(conn, tenant_id, None)?.tree_size as u64;
            if leaf_index >= latest {
                return Err(AppError::not_found(format!(
                    "the newest signed checkpoint (tree size {latest}) does not cover this event yet; \
                     one is signed within a second, or pass a tree_size"
                )));
            }
            latest
        }
    };
    let path = tree::inclusion_proof(conn, tenant_id, leaf_index, tree_size)?;
    Ok(Inclusion { leaf_index, tree_size, leaf_hash, path })
}

/// The consistency proof of the tenant's tree from `from` leaves to `to`
/// (`1 ≤ from ≤ to ≤` its size now; `from == to` needs no hash).
pub fn consistency(conn: &mut DbConn, tenant_id: &str, from: u64, to: u64) -> AppResult<Consistency> {
    let size = current_size(conn, tenant_id)?;
    check_size("from", from, size)?;
    check_size("to", to, size)?;
    if from > to {
        return Err(AppError::invalid("from must not exceed to"));
    }
    let path = if from == to { Vec::new() } else { tree::consistency_proof(conn, tenant_id, from, to)? };
    Ok(Consistency { from, to, path })
}

/// The number of events in the tenant's chain now.
fn current_size(conn: &mut DbConn, tenant_id: &str) -> AppResult<u64> {
    Ok(store::load_chain_head(conn, tenant_id)?.map_or(0, |(seq, _)| seq as u64))
}

/// A tree size parameter must name a tree the log has had: 1 to its size now.
fn check_size(name: &str, value: u64, size: u64) -> AppResult<()> {
    if value == 0 {
        return Err(AppError::invalid(format!("{name} must be at least 1")));
    }
    if value > size {
        return Err(AppError::invalid(format!("{name} must not exceed the log's current size, {size}")));
    }
    Ok(())
}
