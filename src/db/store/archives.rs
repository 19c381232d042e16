//! Retention: archive segments written, the tree hashes of archived events,
//! and the events they replace.

use crate::db::models::AuditRow;
use crate::db::schema::{audit_archives, audit_events, audit_tree_nodes, legal_hold_members, legal_holds};
use crate::db::DbConn;
use crate::domain::event::ActorType;
use crate::error::AppResult;
use diesel::prelude::*;

/// An archive segment as recorded: the chain's events `first_seq..=last_seq`.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = audit_archives)]
pub struct ArchiveRow {
    pub chain_id: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Within `<archive dir>/<chain id>/`.
    pub file_name: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub event_count: i64,
    /// The hash chain's hash at `last_seq`: where a walk of the chain resumes.
    pub last_hash: String,
    /// The signed checkpoint the segment's proofs lead to.
    pub checkpoint_size: i64,
    pub created_at: chrono::NaiveDateTime,
}

/// Serializes retention of `chain_id` across instances until the
/// transaction ends: a PostgreSQL advisory lock (the chain head's row lock
/// would hold up the tenant's audit writes while events are deleted);
/// SQLite's write lock, taken first by the caller, already does.
pub fn lock_retention(conn: &mut DbConn, chain_id: &str) -> AppResult<()> {
    if let DbConn::Postgres(pg) = conn {
        // The first key sets retention's locks apart from any other advisory lock.
        diesel::sql_query("SELECT pg_advisory_xact_lock(1917, hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(chain_id)
            .execute(pg)?;
    }
    Ok(())
}

/// A chain's newest segment (the archived prefix ends at its `last_seq`).
pub fn last_archive(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<ArchiveRow>> {
    // Segments are contiguous: the last to start is the last to end (and the key's order).
    Ok(audit_archives::table
        .filter(audit_archives::chain_id.eq(chain_id))
        .order(audit_archives::first_seq.desc())
        .first(conn)
        .optional()?)
}

/// A chain's segments, oldest first.
pub fn archives_of(conn: &mut DbConn, chain_id: &str) -> AppResult<Vec<ArchiveRow>> {
    Ok(audit_archives::table
        .filter(audit_archives::chain_id.eq(chain_id))
        .order(audit_archives::first_seq.asc())
        .load(conn)?)
}

pub fn insert_archive(conn: &mut DbConn, row: &ArchiveRow) -> AppResult<()> {
    diesel::insert_into(audit_archives::table).values(row).execute(conn)?;
    Ok(())
}

/// Copies the tree hashes of the chain's events `first..=last` into the kept nodes.
pub fn keep_tree_nodes(conn: &mut DbConn, chain_id: &str, first: i64, last: i64) -> AppResult<usize> {
    let rows = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.between(first, last))
        .filter(audit_events::tree_hashes.is_not_null())
        .select((
            audit_events::chain_id,
            audit_events::seq,
            audit_events::event_id,
            audit_events::tree_hashes.assume_not_null(),
        ));
    Ok(diesel::insert_into(audit_tree_nodes::table)
        .values(rows)
        .into_columns((
            audit_tree_nodes::chain_id,
            audit_tree_nodes::seq,
            audit_tree_nodes::event_id,
            audit_tree_nodes::tree_hashes,
        ))
        .execute(conn)?)
}

/// The kept tree hashes of archived events at `seqs`.
pub fn kept_tree_hashes(conn: &mut DbConn, chain_id: &str, seqs: &[i64]) -> AppResult<Vec<(i64, Vec<u8>)>> {
    Ok(audit_tree_nodes::table
        .filter(audit_tree_nodes::chain_id.eq(chain_id))
        .filter(audit_tree_nodes::seq.eq_any(seqs))
        .select((audit_tree_nodes::seq, audit_tree_nodes::tree_hashes))
        .load(conn)?)
}

/// An archived event's seq and tree hashes (its leaf hash first), by its id.
pub fn find_kept_node(conn: &mut DbConn, chain_id: &str, event_id: &str) -> AppResult<Option<(i64, Vec<u8>)>> {
    let Some(event_id) = crate::domain::event::EventId::parse(event_id) else { return Ok(None) };
    Ok(audit_tree_nodes::table
        .filter(audit_tree_nodes::chain_id.eq(chain_id))
        .filter(audit_tree_nodes::event_id.eq(event_id))
        .select((audit_tree_nodes::seq, audit_tree_nodes::tree_hashes))
        .first(conn)
        .optional()?)
}

/// The members an active legal hold of the tenant covers.
pub fn held_member_ids(conn: &mut DbConn, tenant_id: &str) -> AppResult<Vec<String>> {
    Ok(legal_hold_members::table
        .inner_join(legal_holds::table)
        .filter(legal_hold_members::tenant_id.eq(tenant_id))
        .filter(legal_holds::released_at.is_null())
        .select(legal_hold_members::member_id)
        .distinct()
        .load(conn)?)
}

/// Deletes the chain's events through `last` (archived already), except
/// those whose actor is one of the `held` members. Returns how many went.
pub fn delete_archived_events(conn: &mut DbConn, chain_id: &str, last: i64, held: &[String]) -> AppResult<usize> {
    let archived = audit_events::table.filter(audit_events::chain_id.eq(chain_id)).filter(audit_events::seq.le(last));
    let deleted = if held.is_empty() {
        diesel::delete(archived).execute(conn)?
    } else {
        // `IS NOT NULL` first: a NULL actor would make the whole test NULL, and the event never go.
        let kept = audit_events::actor_type
            .eq(ActorType::Member)
            .and(audit_events::actor_id.is_not_null())
            .and(audit_events::actor_id.eq_any(held));
        diesel::delete(archived.filter(diesel::dsl::not(kept))).execute(conn)?
    };
    Ok(deleted)
}

/// The first event of a chain in `after_seq < seq <= through` that occurred at or after `at`.
pub fn first_event_since(
    conn: &mut DbConn,
    chain_id: &str,
    after_seq: i64,
    through: i64,
    at: chrono::NaiveDateTime,
) -> AppResult<Option<i64>> {
    Ok(audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .filter(audit_events::seq.le(through))
        .filter(audit_events::occurred_at.ge(at))
        .select(audit_events::seq)
        .order(audit_events::seq.asc())
        .first(conn)
        .optional()?)
}

/// A chain's events `first..=last` still in the database, in seq order, at most `limit`.
pub fn events_between(
    conn: &mut DbConn,
    chain_id: &str,
    first: i64,
    last: i64,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    Ok(audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.between(first, last))
        .order(audit_events::seq.asc())
        .limit(limit)
        .load(conn)?)
}
