//! The background verifier's runs, one row per chain (see the migration
//! `audit_verification_runs`), and the lease that lets one instance at a
//! time verify a chain.

use crate::db::schema::audit_verification_runs as runs;
use crate::db::DbConn;
use crate::domain::verification::RunState;
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A chain's current (or last) run and its last completed one.
#[derive(Debug, Clone, Queryable)]
pub struct VerificationRunRow {
    pub chain_id: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub run_id: i64,
    pub state: Option<RunState>,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    /// Where the run started: the size proved before it.
    pub verified_from: i64,
    pub events_read: i64,
    pub verified_through: i64,
    pub head_at_start: i64,
    /// JSON, bounded by the verifier.
    pub problems: String,
    pub last_run_id: Option<i64>,
    pub last_state: Option<RunState>,
    pub last_started_at: Option<NaiveDateTime>,
    pub last_finished_at: Option<NaiveDateTime>,
    pub last_verified_from: Option<i64>,
    pub last_events_read: Option<i64>,
    pub last_verified_through: Option<i64>,
    pub last_head_at_start: Option<i64>,
    pub last_problems: Option<String>,
}

pub fn find_verification_run(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<VerificationRunRow>> {
    Ok(runs::table.find(chain_id).get_result(conn).optional()?)
}

/// Takes (or renews) the lease on verifying `chain_id` for `owner` until
/// `until`, unless another owner holds an unexpired one. One statement, so
/// two instances cannot both take it: true if `owner` holds it now.
pub fn take_verification_lease(
    conn: &mut DbConn,
    chain_id: &str,
    owner: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> AppResult<bool> {
    let fresh = (
        runs::chain_id.eq(chain_id),
        runs::run_id.eq(0i64),
        runs::verified_from.eq(0i64),
        runs::events_read.eq(0i64),
        runs::verified_through.eq(0i64),
        runs::head_at_start.eq(0i64),
        runs::problems.eq("[]"),
    );
    match conn {
        DbConn::Postgres(pg) => {
            diesel::insert_into(runs::table).values(fresh).on_conflict_do_nothing().execute(pg)?;
        }
        DbConn::Sqlite(lite) => {
            diesel::insert_or_ignore_into(runs::table).values(fresh).execute(lite)?;
        }
    }
    let taken = diesel::update(
        runs::table
            .filter(runs::chain_id.eq(chain_id))
            .filter(runs::lease_owner.is_null().or(runs::lease_owner.eq(owner)).or(runs::lease_until.lt(now))),
    )
    .set((runs::lease_owner.eq(owner), runs::lease_until.eq(until)))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Starts a run of `chain_id` by the lease's holder: returns its id.
pub fn start_verification_run(
    conn: &mut DbConn,
    chain_id: &str,
    owner: &str,
    started_at: NaiveDateTime,
    verified_through: i64,
    head_at_start: i64,
) -> AppResult<Option<i64>> {
    let started = diesel::update(runs::table.filter(runs::chain_id.eq(chain_id)).filter(runs::lease_owner.eq(owner)))
        .set((
            runs::run_id.eq(runs::run_id + 1),
            runs::state.eq(RunState::Running),
            runs::started_at.eq(started_at),
            runs::finished_at.eq(None::<NaiveDateTime>),
            runs::verified_from.eq(verified_through),
            runs::events_read.eq(0i64),
            runs::verified_through.eq(verified_through),
            runs::head_at_start.eq(head_at_start),
            runs::problems.eq("[]"),
        ))
        .execute(conn)?;
    if started == 0 {
        return Ok(None);
    }
    Ok(runs::table.find(chain_id).select(runs::run_id).get_result(conn).optional()?)
}

/// A running run's progress; renews the lease to `until`.
pub fn note_verification_progress(
    conn: &mut DbConn,
    chain_id: &str,
    owner: &str,
    events_read: i64,
    verified_through: i64,
    until: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(runs::table.filter(runs::chain_id.eq(chain_id)).filter(runs::lease_owner.eq(owner)))
        .set((
            runs::events_read.eq(events_read),
            runs::verified_through.eq(verified_through),
            runs::lease_until.eq(until),
        ))
        .execute(conn)?;
    Ok(())
}

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd<'a> {
    pub state: RunState,
    pub finished_at: NaiveDateTime,
    pub events_read: i64,
    pub verified_through: i64,
    /// JSON, bounded by the verifier.
    pub problems: &'a str,
}

/// Ends the run: its verdict becomes the last completed run, and the lease is let go.
pub fn finish_verification_run(conn: &mut DbConn, chain_id: &str, owner: &str, end: &RunEnd) -> AppResult<()> {
    let RunEnd { state, finished_at, events_read, verified_through, problems } = *end;
    diesel::update(runs::table.filter(runs::chain_id.eq(chain_id)).filter(runs::lease_owner.eq(owner)))
        .set((
            runs::state.eq(state),
            runs::finished_at.eq(finished_at),
            runs::events_read.eq(events_read),
            runs::verified_through.eq(verified_through),
            runs::problems.eq(problems),
            runs::last_run_id.eq(runs::run_id.nullable()),
            runs::last_state.eq(state),
            runs::last_started_at.eq(runs::started_at),
            runs::last_finished_at.eq(finished_at),
            runs::last_verified_from.eq(runs::verified_from.nullable()),
            runs::last_events_read.eq(events_read),
            runs::last_verified_through.eq(verified_through),
            runs::last_head_at_start.eq(runs::head_at_start.nullable()),
            runs::last_problems.eq(problems),
            runs::lease_owner.eq(None::<String>),
            runs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}
