//! The audit chains' Merkle tree hashes, by stored-hash index.

use crate::db::schema::audit_tree_hashes;
use crate::db::DbConn;
use crate::error::AppResult;
use diesel::prelude::*;

/// A stored tree hash: chain, index, 32 bytes.
pub type TreeHashRow<'a> = (&'a str, i64, &'a [u8]);

/// The hashes of `chain_id` at `indexes`, as (index, hash), in no particular order.
pub fn tree_hashes(conn: &mut DbConn, chain_id: &str, indexes: &[i64]) -> AppResult<Vec<(i64, Vec<u8>)>> {
    Ok(audit_tree_hashes::table
        .filter(audit_tree_hashes::chain_id.eq(chain_id))
        .filter(audit_tree_hashes::idx.eq_any(indexes))
        .select((audit_tree_hashes::idx, audit_tree_hashes::hash))
        .load(conn)?)
}

/// The highest stored index of a chain's tree, if it has any.
pub fn last_tree_index(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<i64>> {
    Ok(audit_tree_hashes::table
        .filter(audit_tree_hashes::chain_id.eq(chain_id))
        .select(diesel::dsl::max(audit_tree_hashes::idx))
        .first(conn)?)
}

pub fn insert_tree_hashes(conn: &mut DbConn, rows: &[TreeHashRow<'_>]) -> AppResult<()> {
    match conn {
        // One statement whatever the number of rows (parsed and planned once).
        DbConn::Postgres(pg) => {
            use diesel::sql_types::{Array, BigInt, Binary, Text};
            let chains: Vec<&str> = rows.iter().map(|r| r.0).collect();
            let indexes: Vec<i64> = rows.iter().map(|r| r.1).collect();
            let hashes: Vec<&[u8]> = rows.iter().map(|r| r.2).collect();
            diesel::sql_query(
                "INSERT INTO audit_tree_hashes (chain_id, idx, hash) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])",
            )
            .bind::<Array<Text>, _>(chains)
            .bind::<Array<BigInt>, _>(indexes)
            .bind::<Array<Binary>, _>(hashes)
            .execute(pg)?;
        }
        // In process: a single-row statement, prepared once and reused (as for events).
        DbConn::Sqlite(lite) => {
            for (chain, idx, hash) in rows {
                diesel::insert_into(audit_tree_hashes::table)
                    .values((
                        audit_tree_hashes::chain_id.eq(*chain),
                        audit_tree_hashes::idx.eq(*idx),
                        audit_tree_hashes::hash.eq(*hash),
                    ))
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

/// Forgets a chain's tree (before it is rebuilt from its events).
pub fn delete_tree(conn: &mut DbConn, chain_id: &str) -> AppResult<()> {
    diesel::delete(audit_tree_hashes::table.filter(audit_tree_hashes::chain_id.eq(chain_id))).execute(conn)?;
    Ok(())
}
