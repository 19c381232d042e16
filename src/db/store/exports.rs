//! Export jobs: the requests, and the runner's claims and leases.

use crate::db::models::Export;
use crate::db::schema::exports;
use crate::db::DbConn;
use crate::domain::exports::{ExportKind, ExportScope, ExportStatus};
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

pub fn insert_export(conn: &mut DbConn, e: &Export) -> AppResult<()> {
    diesel::insert_into(exports::table).values(e).execute(conn)?;
    Ok(())
}

pub fn find_export(conn: &mut DbConn, tenant_id: &str, kind: ExportKind, uid: &str) -> AppResult<Option<Export>> {
    Ok(exports::table
        .filter(exports::tenant_id.eq(tenant_id))
        .filter(exports::kind.eq(kind))
        .filter(exports::uid.eq(uid))
        .first(conn)
        .optional()?)
}

pub fn list_exports(
    conn: &mut DbConn,
    tenant_id: &str,
    kind: ExportKind,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<Export>, i64)> {
    let total: i64 = exports::table
        .filter(exports::tenant_id.eq(tenant_id))
        .filter(exports::kind.eq(kind))
        .count()
        .get_result(conn)?;
    let rows = exports::table
        .filter(exports::tenant_id.eq(tenant_id))
        .filter(exports::kind.eq(kind))
        .order((exports::created_at.desc(), exports::uid.desc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((rows, total))
}

/// An export of this kind by its uid alone, whatever its tenant: only for
/// checking a signed download link, whose signature then binds the tenant.
pub fn find_export_by_uid(conn: &mut DbConn, kind: ExportKind, uid: &str) -> AppResult<Option<Export>> {
    Ok(exports::table.filter(exports::uid.eq(uid)).filter(exports::kind.eq(kind)).first(conn).optional()?)
}

/// PENDING jobs a runner may take, oldest first: new or taken back after a lost lease
/// (no error), or put back after a failed try before `retry_before`. Only jobs
/// whose kind and scope this build knows: a row another build wrote with a value
/// this one does not know is left to that build, and does not stop the others.
pub fn runnable_exports(conn: &mut DbConn, retry_before: NaiveDateTime, limit: i64) -> AppResult<Vec<Export>> {
    Ok(exports::table
        .filter(exports::status.eq(ExportStatus::Pending))
        .filter(exports::kind.eq_any(ExportKind::ALL))
        .filter(exports::scope.is_null().or(exports::scope.assume_not_null().eq_any(ExportScope::ALL)))
        .filter(exports::error.is_null().or(exports::updated_at.lt(retry_before)))
        .order((exports::created_at.asc(), exports::uid.asc()))
        .limit(limit)
        .load(conn)?)
}

/// PROCESSING jobs whose lease (taken at `started_at`) ran out before
/// `started_before`; as for `runnable_exports`, only those this build knows.
pub fn stale_exports(conn: &mut DbConn, started_before: NaiveDateTime, limit: i64) -> AppResult<Vec<Export>> {
    Ok(exports::table
        .filter(exports::status.eq(ExportStatus::Processing))
        .filter(exports::kind.eq_any(ExportKind::ALL))
        .filter(exports::scope.is_null().or(exports::scope.assume_not_null().eq_any(ExportScope::ALL)))
        .filter(exports::started_at.lt(started_before))
        .order((exports::started_at.asc(), exports::uid.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Takes a PENDING job: one row changed means this caller won it (race-free across instances).
pub fn claim_export(conn: &mut DbConn, uid: &str, at: NaiveDateTime) -> AppResult<bool> {
    let n =
        diesel::update(exports::table.filter(exports::uid.eq(uid)).filter(exports::status.eq(ExportStatus::Pending)))
            .set((
                exports::status.eq(ExportStatus::Processing),
                exports::started_at.eq(Some(at)),
                exports::attempts.eq(exports::attempts + 1),
                exports::updated_at.eq(at),
            ))
            .execute(conn)?;
    Ok(n == 1)
}

/// Ends a PROCESSING run (COMPLETED with its file, or FAILED with its error). The
/// run is fenced by its attempt number (a run whose lease was taken over changes
/// nothing) and, when the lease ran out, by its start time.
#[allow(clippy::too_many_arguments)]
pub fn finish_export(
    conn: &mut DbConn,
    uid: &str,
    attempt: i32,
    status: ExportStatus,
    at: NaiveDateTime,
    error: Option<&str>,
    file: Option<(&str, i64, &str)>,
    started_before: Option<NaiveDateTime>,
) -> AppResult<bool> {
    let (name, size, sha) = match file {
        Some((n, s, h)) => (Some(n), Some(s), Some(h)),
        None => (None, None, None),
    };
    let run = exports::table
        .filter(exports::uid.eq(uid))
        .filter(exports::status.eq(ExportStatus::Processing))
        .filter(exports::attempts.eq(attempt));
    let changes = (
        exports::status.eq(status),
        exports::completed_at.eq(Some(at)),
        exports::updated_at.eq(at),
        exports::error.eq(error),
        exports::file_name.eq(name),
        exports::file_size.eq(size),
        exports::file_sha256.eq(sha),
    );
    let n = match started_before {
        Some(cutoff) => diesel::update(run.filter(exports::started_at.lt(cutoff))).set(changes).execute(conn)?,
        None => diesel::update(run).set(changes).execute(conn)?,
    };
    Ok(n == 1)
}

/// Renews a running job's lease; false when the run no longer holds it.
pub fn renew_export_lease(conn: &mut DbConn, uid: &str, attempt: i32, at: NaiveDateTime) -> AppResult<bool> {
    let n = diesel::update(
        exports::table
            .filter(exports::uid.eq(uid))
            .filter(exports::status.eq(ExportStatus::Processing))
            .filter(exports::attempts.eq(attempt)),
    )
    .set((exports::started_at.eq(Some(at)), exports::updated_at.eq(at)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Puts a PROCESSING run back to PENDING (a failed try to retry, or a lease that
/// ran out), fenced by its attempt number and, for a lease, by its start time.
pub fn requeue_export(
    conn: &mut DbConn,
    uid: &str,
    attempt: i32,
    at: NaiveDateTime,
    error: Option<&str>,
    started_before: Option<NaiveDateTime>,
) -> AppResult<bool> {
    let run = exports::table
        .filter(exports::uid.eq(uid))
        .filter(exports::status.eq(ExportStatus::Processing))
        .filter(exports::attempts.eq(attempt));
    let changes = (
        exports::status.eq(ExportStatus::Pending),
        exports::started_at.eq(None::<NaiveDateTime>),
        exports::updated_at.eq(at),
        exports::error.eq(error),
    );
    let n = match started_before {
        Some(cutoff) => diesel::update(run.filter(exports::started_at.lt(cutoff))).set(changes).execute(conn)?,
        None => diesel::update(run).set(changes).execute(conn)?,
    };
    Ok(n == 1)
}
