//! Keys reported leaked, and the secret-scanning reports already acted on.

use crate::db::models::KeyLeak;
use crate::db::schema::{key_leaks, secret_scanning_reports};
use crate::db::DbConn;
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Records a key's leak; a key already recorded keeps its first report.
/// Runs in the writer's transaction, after reading `find_key_leak`.
pub fn insert_key_leak(conn: &mut DbConn, leak: &KeyLeak) -> AppResult<()> {
    diesel::insert_into(key_leaks::table).values(leak).execute(conn)?;
    Ok(())
}

/// The tenant's leak of `key_id`, if one was reported.
pub fn find_key_leak(conn: &mut DbConn, tenant_id: &str, key_id: &str) -> AppResult<Option<KeyLeak>> {
    Ok(key_leaks::table
        .filter(key_leaks::tenant_id.eq(tenant_id))
        .filter(key_leaks::key_id.eq(key_id))
        .first(conn)
        .optional()?)
}

/// Whether a report with this body was already acted on.
pub fn report_seen(conn: &mut DbConn, body_sha256: &str) -> AppResult<bool> {
    let n: i64 = secret_scanning_reports::table
        .filter(secret_scanning_reports::body_sha256.eq(body_sha256))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Remembers a report (a replay that raced this one fails on the key: `already_exists`).
pub fn remember_report(conn: &mut DbConn, body_sha256: &str, key_identifier: &str, at: NaiveDateTime) -> AppResult<()> {
    diesel::insert_into(secret_scanning_reports::table)
        .values((
            secret_scanning_reports::body_sha256.eq(body_sha256),
            secret_scanning_reports::key_identifier.eq(key_identifier),
            secret_scanning_reports::received_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}
