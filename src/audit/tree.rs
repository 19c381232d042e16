//! Each chain is also an RFC 6962 Merkle tree: leaf `i` is the canonical
//! bytes of the event with `seq = i + 1`, hashed `SHA-256(0x00 ‖ leaf)`, and
//! nodes `SHA-256(0x01 ‖ left ‖ right)`. Every node of every complete subtree
//! is stored once, under its stored-hash index (Go tlog's layout, through the
//! `tlog_tiles` crate), in the transaction that appends its events: a proof
//! or a root reads O(log n) hashes, an append writes two on average.
//!
//! Appending needs only the roots of the tree's maximal complete subtrees
//! (its frontier, at most log2 n hashes), which the writer keeps between
//! groups for each chain it appended to, checked against the chain's size.

use crate::db::{store, DbConn};
use crate::error::{AppError, AppResult, ErrorCode};
use std::cell::RefCell;
use std::collections::HashMap;
pub use tlog_tiles::Hash;
use tlog_tiles::{record_hash, stored_hash_index, stored_hashes_for_record_hash, sub_tree_index, HashReader};

/// The roots of the maximal complete subtrees of a tree of `size` leaves,
/// left to right, with their stored-hash indexes.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    roots: Vec<(u64, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root hash (RFC 6962's empty-string hash for no leaves).
    pub fn root(&self) -> Hash {
        // The frontier's roots are exactly what `tree_hash` reads.
        tlog_tiles::tree_hash(self.size, self).expect("a frontier holds its tree's subtree roots")
    }

    /// Appends `leaf` (leaf index `self.size`): the hashes to store, by
    /// stored-hash index, and the frontier moves on.
    pub fn append(&mut self, leaf: &[u8]) -> Vec<(u64, Hash)> {
        let n = self.size;
        let stored = stored_hashes_for_record_hash(n, record_hash(leaf), &*self)
            .expect("a frontier holds the subtree roots an append reads");
        let first = stored_hash_index(0, n);
        let new: Vec<(u64, Hash)> = stored.into_iter().enumerate().map(|(i, h)| (first + i as u64, h)).collect();
        let wanted = sub_tree_index(0, n + 1, Vec::new());
        self.roots = wanted
            .into_iter()
            .map(|idx| {
                let known = self.roots.iter().chain(&new).find(|(i, _)| *i == idx);
                (idx, known.expect("the next frontier is made of the old one and the new hashes").1)
            })
            .collect();
        self.size = n + 1;
        new
    }

    /// A chain's frontier at `size`, read from the stored hashes.
    pub fn load(conn: &mut DbConn, chain_id: &str, size: u64) -> AppResult<Frontier> {
        Frontier::try_load(conn, chain_id, size)?.ok_or_else(|| out_of_step(chain_id))
    }

    /// A chain's frontier at `size`, or `None` if a hash it needs is not stored.
    pub fn try_load(conn: &mut DbConn, chain_id: &str, size: u64) -> AppResult<Option<Frontier>> {
        let wanted = sub_tree_index(0, size, Vec::new());
        let indexes: Vec<i64> = wanted.iter().map(|&i| i as i64).collect();
        let found: HashMap<i64, Vec<u8>> = store::tree_hashes(conn, chain_id, &indexes)?.into_iter().collect();
        let mut roots = Vec::with_capacity(wanted.len());
        for idx in wanted {
            match found.get(&(idx as i64)).and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()) {
                Some(h) => roots.push((idx, Hash(h))),
                None => return Ok(None),
            }
        }
        Ok(Some(Frontier { size, roots }))
    }
}

impl HashReader for Frontier {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|idx| {
                self.roots
                    .iter()
                    .find(|(i, _)| i == idx)
                    .map(|(_, h)| *h)
                    .ok_or_else(|| tlog_tiles::Error::InvalidInput(format!("hash {idx} is not on the frontier")))
            })
            .collect()
    }
}

fn out_of_step(chain_id: &str) -> AppError {
    AppError::new(ErrorCode::Internal, "the audit tree is not in step with its chain")
        .caused_by(std::io::Error::other(format!("chain {chain_id}: stored tree hashes missing")))
}

/// A chain's stored hashes, read from the database as a proof asks for them.
pub struct StoredHashes<'c> {
    conn: RefCell<&'c mut DbConn>,
    chain_id: &'c str,
}

impl<'c> StoredHashes<'c> {
    pub fn new(conn: &'c mut DbConn, chain_id: &'c str) -> Self {
        StoredHashes { conn: RefCell::new(conn), chain_id }
    }
}

impl HashReader for StoredHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let wanted: Vec<i64> = indexes.iter().map(|&i| i as i64).collect();
        let rows = store::tree_hashes(&mut self.conn.borrow_mut(), self.chain_id, &wanted)
            .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))?;
        let found: HashMap<i64, Vec<u8>> = rows.into_iter().collect();
        wanted
            .iter()
            .map(|i| {
                let bytes = found.get(i).ok_or(tlog_tiles::Error::InvalidProof)?;
                Ok(Hash(bytes.as_slice().try_into().map_err(|_| tlog_tiles::Error::MalformedHash)?))
            })
            .collect()
    }
}

/// The root of `chain_id`'s tree at `size` (which must not exceed its size now).
pub fn root(conn: &mut DbConn, chain_id: &str, size: u64) -> AppResult<Hash> {
    Ok(Frontier::load(conn, chain_id, size)?.root())
}

/// The RFC 9162 inclusion proof (§2.1.3) of leaf `leaf_index` in `chain_id`'s tree of `tree_size` leaves.
pub fn inclusion_proof(conn: &mut DbConn, chain_id: &str, leaf_index: u64, tree_size: u64) -> AppResult<Vec<Hash>> {
    tlog_tiles::prove_record(tree_size, leaf_index, &StoredHashes::new(conn, chain_id))
        .map_err(|_| out_of_step(chain_id))
}

/// The RFC 9162 consistency proof (§2.1.4) from `chain_id`'s tree of `from` leaves to that of `to`.
pub fn consistency_proof(conn: &mut DbConn, chain_id: &str, from: u64, to: u64) -> AppResult<Vec<Hash>> {
    tlog_tiles::prove_tree(to, from, &StoredHashes::new(conn, chain_id)).map_err(|_| out_of_step(chain_id))
}

/// The writer's frontiers, as its last committed groups left them.
#[derive(Default)]
pub struct Trees {
    frontiers: HashMap<String, Frontier>,
}

impl Trees {
    /// `chain_id`'s frontier at `size`: the remembered one if it is at that
    /// size (no other writer appended since), else read from the database.
    pub fn frontier(&self, conn: &mut DbConn, chain_id: &str, size: u64) -> AppResult<Frontier> {
        match self.frontiers.get(chain_id) {
            Some(f) if f.size == size => Ok(f.clone()),
            _ => Frontier::load(conn, chain_id, size),
        }
    }

    /// The frontier at `size` if it is remembered (no reads).
    pub fn remembered(&self, chain_id: &str, size: u64) -> Option<Frontier> {
        self.frontiers.get(chain_id).filter(|f| f.size == size).cloned()
    }

    /// After a group: the frontiers it committed, or none (a failed group may
    /// have left any of them behind).
    pub fn finished(&mut self, committed: Option<impl Iterator<Item = (String, Frontier)>>) {
        match committed {
            Some(frontiers) => self.frontiers.extend(frontiers),
            None => self.frontiers.clear(),
        }
    }
}

/// Builds the tree of every chain whose stored hashes do not match its
/// events' count (chains written before trees existed, or by an older
/// build), from its events, in one transaction per chain. Returns the chains
/// built and their sizes. Cheap when every tree is whole: one indexed read per chain.
pub fn build_missing(conn: &mut DbConn) -> AppResult<Vec<(String, u64)>> {
    use diesel::Connection;
    let mut built = Vec::new();
    for chain_id in store::chain_ids(conn)? {
        if tree_is_whole(conn, &chain_id)? {
            continue;
        }
        let size = conn.transaction::<_, AppError, _>(|conn| {
            store::take_write_lock(conn)?;
            store::lock_chain_heads(conn, std::slice::from_ref(&chain_id))?;
            // Checked again under the lock: another instance may have built it meanwhile.
            if tree_is_whole(conn, &chain_id)? {
                return Ok(None);
            }
            store::delete_tree(conn, &chain_id)?;
            let mut frontier = Frontier::default();
            let mut after = 0;
            loop {
                let rows = store::chain_events_after(conn, &chain_id, after, 5000)?;
                let Some(last) = rows.last() else { break };
                after = last.seq;
                let mut hashes = Vec::with_capacity(rows.len() * 2);
                for row in &rows {
                    if row.seq as u64 != frontier.size() + 1 {
                        return Err(out_of_step(&chain_id).caused_by(std::io::Error::other(format!(
                            "event seq {} follows {}: the chain has a gap",
                            row.seq,
                            frontier.size()
                        ))));
                    }
                    hashes.extend(frontier.append(&super::canonical(row)));
                }
                let rows: Vec<store::TreeHashRow<'_>> =
                    hashes.iter().map(|(idx, h)| (chain_id.as_str(), *idx as i64, h.0.as_slice())).collect();
                store::insert_tree_hashes(conn, &rows)?;
            }
            Ok(Some(frontier.size()))
        })?;
        if let Some(size) = size {
            tracing::info!(chain = %chain_id, size, "built the audit tree of a chain from its events");
            built.push((chain_id, size));
        }
    }
    Ok(built)
}

/// Whether a chain's stored tree hashes end where its events do.
fn tree_is_whole(conn: &mut DbConn, chain_id: &str) -> AppResult<bool> {
    let size = store::load_chain_head(conn, chain_id)?.map_or(0, |(seq, _)| seq as u64);
    let expected = tlog_tiles::stored_hash_count(size).checked_sub(1).map(|i| i as i64);
    Ok(store::last_tree_index(conn, chain_id)? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's MTH, straight from its definition (§2.1), for comparison.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => tlog_tiles::EMPTY_HASH,
            1 => record_hash(&leaves[0]),
            n => {
                let k = n.next_power_of_two() / 2;
                tlog_tiles::node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn appending_leaf_by_leaf_gives_the_rfc_6962_root_at_every_size() {
        let mut f = Frontier::default();
        let mut leaves = Vec::new();
        let mut stored = 0;
        assert_eq!(f.root(), mth(&leaves));
        for i in 0..70u32 {
            let leaf = format!("event {i}").into_bytes();
            stored += f.append(&leaf).len() as u64;
            leaves.push(leaf);
            assert_eq!(f.root(), mth(&leaves), "size {}", leaves.len());
            assert_eq!(stored, tlog_tiles::stored_hash_count(leaves.len() as u64));
        }
    }
}
