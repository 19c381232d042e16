//! Each chain is also an RFC 6962 Merkle tree: leaf `i` is the canonical
//! bytes of the event with `seq = i + 1`, hashed `SHA-256(0x00 ‖ leaf)`, and
//! nodes `SHA-256(0x01 ‖ left ‖ right)`. Every node of every complete subtree
//! is stored once (Go tlog's stored hashes, through the `tlog_tiles` crate):
//! appending leaf n makes its leaf hash and the roots of the subtrees it
//! completes, and they are stored in the same row as the event, in its
//! transaction (`tree_hashes`, 32 bytes each, lowest level first). A node is
//! found from its stored-hash index: the event that completed it, at the
//! offset of its level. A proof or a root reads O(log n) events.
//!
//! Appending needs only the roots of the tree's maximal complete subtrees
//! (its frontier, at most log2 n hashes), which the writer keeps between
//! groups for each chain it appended to, checked against the chain's size.

use crate::db::{store, DbConn};
use crate::error::{AppError, AppResult, ErrorCode};
use std::cell::RefCell;
use std::collections::HashMap;
pub use tlog_tiles::Hash;
use tlog_tiles::{record_hash, split_stored_hash_index, stored_hash_index, sub_tree_index, HashReader};

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

    /// Appends `leaf` (leaf index `self.size`): the bytes to store with its
    /// event (its stored hashes, lowest level first), and the frontier moves on.
    pub fn append_stored(&mut self, leaf: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(64);
        self.append_leaf_hash(record_hash(leaf), |_, h| bytes.extend_from_slice(&h.0));
        bytes
    }

    /// Appends `leaf` (leaf index `self.size`): its stored hashes, by
    /// stored-hash index, and the frontier moves on.
    pub fn append(&mut self, leaf: &[u8]) -> Vec<(u64, Hash)> {
        let mut stored = Vec::new();
        self.append_leaf_hash(record_hash(leaf), |idx, h| stored.push((idx, h)));
        stored
    }

    /// As `append`, with the leaf's hash computed already (elsewhere: on
    /// another thread, while the verifier reads the next events); `stored`
    /// gets each stored hash, lowest level first. What tlog's
    /// `stored_hashes_for_record_hash` makes, without a `Vec` for each
    /// append: leaf n completes one subtree for each trailing 1 bit of n,
    /// whose left halves are the frontier's rightmost roots.
    pub fn append_leaf_hash(&mut self, leaf_hash: Hash, mut stored: impl FnMut(u64, Hash)) {
        let n = self.size;
        let first = stored_hash_index(0, n);
        let mut hash = leaf_hash;
        let mut level = 0u64;
        stored(first, hash);
        while (n >> level) & 1 == 1 {
            let (_, left) = self.roots.pop().expect("a frontier holds the subtree roots an append reads");
            hash = tlog_tiles::node_hash(left, hash);
            level += 1;
            stored(first + level, hash);
        }
        // The hashes one append stores are consecutive: level l's is stored_hash_index(l, n >> l).
        debug_assert_eq!(first + level, stored_hash_index(level as u8, n >> level));
        self.roots.push((first + level, hash));
        self.size = n + 1;
    }

    /// A chain's frontier at `size`, read from the stored hashes.
    pub fn load(conn: &mut DbConn, chain_id: &str, size: u64) -> AppResult<Frontier> {
        Frontier::try_load(conn, chain_id, size)?.ok_or_else(|| out_of_step(chain_id))
    }

    /// A chain's frontier at `size`, or `None` if a hash it needs is not stored.
    pub fn try_load(conn: &mut DbConn, chain_id: &str, size: u64) -> AppResult<Option<Frontier>> {
        let wanted = sub_tree_index(0, size, Vec::new());
        let reader = StoredHashes::new(conn, chain_id);
        match reader.read_hashes(&wanted) {
            Ok(hashes) => Ok(Some(Frontier { size, roots: wanted.into_iter().zip(hashes).collect() })),
            // A database failure is an error; a hash not stored is no frontier.
            Err(_) => match reader.failed.borrow_mut().take() {
                Some(database) => Err(database),
                None => Ok(None),
            },
        }
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
/// (`tlog_tiles` reads through `&self`, hence the cells.)
pub struct StoredHashes<'c> {
    conn: RefCell<&'c mut DbConn>,
    chain_id: &'c str,
    /// A read that failed, kept for the caller instead of the proof library's plain error.
    failed: RefCell<Option<AppError>>,
}

impl<'c> StoredHashes<'c> {
    pub fn new(conn: &'c mut DbConn, chain_id: &'c str) -> Self {
        StoredHashes { conn: RefCell::new(conn), chain_id, failed: RefCell::new(None) }
    }

    /// Why a proof through this reader failed: sizes that make no proof, the
    /// database's own error, or hashes missing from it.
    fn failure(&self, e: tlog_tiles::Error) -> AppError {
        if let tlog_tiles::Error::InvalidInput(why) = e {
            return AppError::invalid(format!("no such proof: {why}"));
        }
        self.failed.borrow_mut().take().unwrap_or_else(|| out_of_step(self.chain_id))
    }
}

/// Where a stored hash lives: the `seq` of the event whose append completed
/// its node, and its offset (its level) among that event's tree hashes.
pub fn stored_at(index: u64) -> (i64, usize) {
    let (level, k) = split_stored_hash_index(index);
    // The node covers leaves [k·2^level, (k+1)·2^level): the last one completed it.
    let last_leaf = ((k + 1) << level) - 1;
    (last_leaf as i64 + 1, usize::from(level))
}

impl HashReader for StoredHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let places: Vec<(i64, usize)> = indexes.iter().map(|&i| stored_at(i)).collect();
        let mut seqs: Vec<i64> = places.iter().map(|p| p.0).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let rows = store::tree_hashes_of(&mut self.conn.borrow_mut(), self.chain_id, &seqs).map_err(|e| {
            *self.failed.borrow_mut() = Some(e);
            tlog_tiles::Error::InvalidProof
        })?;
        let found: HashMap<i64, Vec<u8>> = rows.into_iter().filter_map(|(seq, h)| Some((seq, h?))).collect();
        places
            .iter()
            .map(|(seq, level)| {
                let bytes = found.get(seq).ok_or(tlog_tiles::Error::InvalidProof)?;
                let hash = bytes.get(level * 32..level * 32 + 32).ok_or(tlog_tiles::Error::InvalidProof)?;
                Ok(Hash(hash.try_into().map_err(|_| tlog_tiles::Error::MalformedHash)?))
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
    let reader = StoredHashes::new(conn, chain_id);
    tlog_tiles::prove_record(tree_size, leaf_index, &reader).map_err(|e| reader.failure(e))
}

/// The RFC 9162 consistency proof (§2.1.4) from `chain_id`'s tree of `from` leaves to that of `to`.
pub fn consistency_proof(conn: &mut DbConn, chain_id: &str, from: u64, to: u64) -> AppResult<Vec<Hash>> {
    let reader = StoredHashes::new(conn, chain_id);
    tlog_tiles::prove_tree(to, from, &reader).map_err(|e| reader.failure(e))
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

/// Stores the tree hashes of every event that has none (events written
/// before trees existed, or by an older build), in seq order from the first
/// such event of each chain, one transaction per chain. Returns the chains
/// built and their sizes. Cheap when every tree is whole: one indexed read
/// per chain (its last event's hashes).
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
            let Some(first) = store::first_without_tree_hashes(conn, &chain_id, 0)? else { return Ok(None) };
            let mut frontier = Frontier::load(conn, &chain_id, (first - 1) as u64)?;
            let mut after = first - 1;
            loop {
                let rows = store::chain_events_after(conn, &chain_id, after, 5000)?;
                let Some(last) = rows.last() else { break };
                after = last.seq;
                for row in &rows {
                    if row.seq as u64 != frontier.size() + 1 {
                        return Err(out_of_step(&chain_id).caused_by(std::io::Error::other(format!(
                            "event seq {} follows {}: the chain has a gap",
                            row.seq,
                            frontier.size()
                        ))));
                    }
                    let stored = frontier.append_stored(&super::canonical(row));
                    store::set_tree_hashes(conn, &chain_id, row.seq, &stored)?;
                }
            }
            Ok(Some(frontier.size()))
        })?;
        if let Some(size) = size {
            tracing::info!(chain = %chain_id, size, "stored the audit tree hashes of a chain's older events");
            built.push((chain_id, size));
        }
    }
    Ok(built)
}

/// Whether a chain's last event has its tree hashes (appends and builds go in seq order).
fn tree_is_whole(conn: &mut DbConn, chain_id: &str) -> AppResult<bool> {
    let Some((last, _)) = store::load_chain_head(conn, chain_id)? else { return Ok(true) };
    if last == 0 {
        return Ok(true);
    }
    Ok(store::tree_hashes_of(conn, chain_id, &[last])?.first().is_some_and(|(_, h)| h.is_some()))
}

/// The RFC 6962 leaf hash of a leaf (an event's canonical bytes): `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    record_hash(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frontier stores what tlog's own `stored_hashes_for_record_hash` makes, at its indexes.
    #[test]
    fn appends_store_what_tlog_stores() {
        let mut f = Frontier::default();
        let mut all: HashMap<u64, Hash> = HashMap::new();
        struct Stored<'a>(&'a HashMap<u64, Hash>);
        impl HashReader for Stored<'_> {
            fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
                Ok(indexes.iter().map(|i| self.0[i]).collect())
            }
        }
        for n in 0..1025u64 {
            let leaf = record_hash(format!("event {n}").as_bytes());
            let expected = tlog_tiles::stored_hashes_for_record_hash(n, leaf, &Stored(&all)).unwrap();
            let ours = f.append(format!("event {n}").as_bytes());
            let first = stored_hash_index(0, n);
            assert_eq!(
                ours.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                (first..first + expected.len() as u64).collect::<Vec<_>>()
            );
            assert!(ours.iter().zip(&expected).all(|((_, a), b)| a == b), "leaf {n}");
            all.extend(ours);
            assert_eq!(f.root(), tlog_tiles::tree_hash(n + 1, &Stored(&all)).unwrap(), "root at {}", n + 1);
        }
    }

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
    fn every_stored_hash_is_found_with_the_event_that_completed_it() {
        let mut f = Frontier::default();
        for n in 0..300u64 {
            let stored = f.append(format!("event {n}").as_bytes());
            for (level, (index, _)) in stored.iter().enumerate() {
                assert_eq!(stored_at(*index), (n as i64 + 1, level), "index {index}");
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
