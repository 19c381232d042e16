//! The audit chains' Merkle tree hashes (stored with the events that made them) and signed checkpoints.

use crate::db::schema::{audit_checkpoints, audit_events, audit_verifications};
use crate::db::DbConn;
use crate::error::AppResult;
use diesel::prelude::*;

/// The tree hashes stored with a chain's events at `seqs`, as (seq, hashes);
/// an event written before trees existed has none yet. An archived event's
/// (its row gone) are read from the kept nodes.
pub fn tree_hashes_of(conn: &mut DbConn, chain_id: &str, seqs: &[i64]) -> AppResult<Vec<(i64, Option<Vec<u8>>)>> {
    let mut rows: Vec<(i64, Option<Vec<u8>>)> = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.eq_any(seqs))
        .select((audit_events::seq, audit_events::tree_hashes))
        .load(conn)?;
    if rows.len() < seqs.len() {
        // Only a chain with archived events reads twice.
        let absent: Vec<i64> = seqs.iter().copied().filter(|s| !rows.iter().any(|(seq, _)| seq == s)).collect();
        let kept = super::kept_tree_hashes(conn, chain_id, &absent)?;
        rows.extend(kept.into_iter().map(|(seq, h)| (seq, Some(h))));
    }
    Ok(rows)
}

/// The first event of a chain, from `after_seq` on, whose tree hashes are not stored.
pub fn first_without_tree_hashes(conn: &mut DbConn, chain_id: &str, after_seq: i64) -> AppResult<Option<i64>> {
    Ok(audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .filter(audit_events::tree_hashes.is_null())
        .select(audit_events::seq)
        .order(audit_events::seq.asc())
        .first(conn)
        .optional()?)
}

/// Stores the tree hashes of an event written before trees existed.
pub fn set_tree_hashes(conn: &mut DbConn, chain_id: &str, seq: i64, hashes: &[u8]) -> AppResult<()> {
    diesel::update(audit_events::table.filter(audit_events::chain_id.eq(chain_id)).filter(audit_events::seq.eq(seq)))
        .set(audit_events::tree_hashes.eq(Some(hashes)))
        .execute(conn)?;
    Ok(())
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, Queryable)]
pub struct CheckpointRow {
    pub chain_id: String,
    pub tree_size: i64,
    pub root_hash: String,
    pub note: String,
    pub signed_at: chrono::NaiveDateTime,
}

/// Stores a signed checkpoint; one already stored for that size (signed by
/// another instance) is kept.
pub fn insert_checkpoint(conn: &mut DbConn, c: &CheckpointRow) -> AppResult<()> {
    let values = (
        audit_checkpoints::chain_id.eq(&c.chain_id),
        audit_checkpoints::tree_size.eq(c.tree_size),
        audit_checkpoints::root_hash.eq(&c.root_hash),
        audit_checkpoints::note.eq(&c.note),
        audit_checkpoints::signed_at.eq(c.signed_at),
    );
    match conn {
        DbConn::Postgres(pg) => {
            diesel::insert_into(audit_checkpoints::table).values(values).on_conflict_do_nothing().execute(pg)?
        }
        DbConn::Sqlite(lite) => diesel::insert_or_ignore_into(audit_checkpoints::table).values(values).execute(lite)?,
    };
    Ok(())
}

/// A chain's newest checkpoint, or the one at `tree_size`.
pub fn find_checkpoint(conn: &mut DbConn, chain_id: &str, tree_size: Option<i64>) -> AppResult<Option<CheckpointRow>> {
    let q = audit_checkpoints::table.filter(audit_checkpoints::chain_id.eq(chain_id)).into_boxed();
    let q = match tree_size {
        Some(size) => q.filter(audit_checkpoints::tree_size.eq(size)),
        None => q.order(audit_checkpoints::tree_size.desc()),
    };
    Ok(q.first(conn).optional()?)
}

/// A chain's newest checkpoint at or below `tree_size`.
pub fn checkpoint_at_most(conn: &mut DbConn, chain_id: &str, tree_size: i64) -> AppResult<Option<CheckpointRow>> {
    Ok(audit_checkpoints::table
        .filter(audit_checkpoints::chain_id.eq(chain_id))
        .filter(audit_checkpoints::tree_size.le(tree_size))
        .order(audit_checkpoints::tree_size.desc())
        .first(conn)
        .optional()?)
}

/// Every chain and its size now.
pub fn chain_sizes(conn: &mut DbConn) -> AppResult<Vec<(String, i64)>> {
    use crate::db::schema::audit_chains;
    Ok(audit_chains::table.select((audit_chains::chain_id, audit_chains::last_seq)).load(conn)?)
}

/// How far a chain has been verified: its tree's size and root there, and
/// the hash chain's hash at that event.
#[derive(Debug, Clone, Queryable)]
pub struct VerifiedRow {
    pub chain_id: String,
    pub tree_size: i64,
    pub root_hash: String,
    pub chain_hash: String,
    pub verified_at: chrono::NaiveDateTime,
}

pub fn find_verified(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<VerifiedRow>> {
    Ok(audit_verifications::table.find(chain_id).get_result(conn).optional()?)
}

/// Records how far a chain is verified, unless a verification already went
/// further (two concurrent ones: the furthest wins).
pub fn save_verified(conn: &mut DbConn, v: &VerifiedRow) -> AppResult<()> {
    use diesel::Connection;
    conn.transaction(|conn| {
        crate::db::store::take_write_lock(conn)?;
        let values = (
            audit_verifications::tree_size.eq(v.tree_size),
            audit_verifications::root_hash.eq(&v.root_hash),
            audit_verifications::chain_hash.eq(&v.chain_hash),
            audit_verifications::verified_at.eq(v.verified_at),
        );
        let moved = diesel::update(
            audit_verifications::table
                .filter(audit_verifications::chain_id.eq(&v.chain_id))
                .filter(audit_verifications::tree_size.le(v.tree_size)),
        )
        .set(values)
        .execute(conn)?;
        if moved == 0 && find_verified(conn, &v.chain_id)?.is_none() {
            // A concurrent first verification may insert meanwhile: either row will do.
            let row = (audit_verifications::chain_id.eq(&v.chain_id), values);
            match conn {
                DbConn::Postgres(pg) => {
                    diesel::insert_into(audit_verifications::table).values(row).on_conflict_do_nothing().execute(pg)?
                }
                DbConn::Sqlite(lite) => {
                    diesel::insert_or_ignore_into(audit_verifications::table).values(row).execute(lite)?
                }
            };
        }
        Ok(())
    })
}

/// Forgets how far a chain was proved: a full verification found a problem
/// before that point, so the next verifications start from its first event
/// (and find it again) instead of trusting the proved prefix.
pub fn forget_verified(conn: &mut DbConn, chain_id: &str) -> AppResult<()> {
    diesel::delete(audit_verifications::table.filter(audit_verifications::chain_id.eq(chain_id))).execute(conn)?;
    Ok(())
}
