//! The background verifier: every interval, a *pass* runs over every chain
//! (the tenants' and `_system`); for each, a *run* verifies it from where
//! `audit_verifications` says it was proved through its head at the run's
//! start, in bounded windows (`verify::verify_window`, each a short read),
//! and records its progress and verdict in `audit_verification_runs`.
//! Every `KEYWARD_VERIFY_FULL_EVERY` passes (and the first), a run reads each
//! chain from its first event instead: the incremental runs trust the proved
//! prefix (bound by its stored tree), which an edit of an old event's row
//! alone does not change.
//!
//! A failed run is not overwritten by a later pass: the proved point never
//! moves past a problem (a full run that fails forgets it altogether), so
//! every later run reads the same events again and fails again, until an
//! operator repairs the log.
//!
//! Several instances (PostgreSQL): a run takes a lease on its chain's row
//! (one UPDATE that succeeds only if no other instance holds an unexpired
//! lease), renewed after each window; an instance that dies lets it expire.

use super::verify::{self, Problem, TreeProblem};
use crate::db::models::{now, to_naive};
use crate::db::{self, store, DbConn, DbUrl};
use crate::domain::verification::RunState;
use crate::error::AppResult;
use crate::metrics::{Metrics, RunLabels};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Events one window reads at most (one short read each).
pub const WINDOW: u64 = 100_000;
/// How long a run's lease holds without renewal: many windows' worth.
const LEASE: Duration = Duration::from_secs(120);

/// What a run found, as stored (JSON) and answered: bounded, since a run
/// stops at the first window with a problem and each window keeps at most
/// a hundred of each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Findings {
    pub problems: Vec<Problem>,
    pub tree_problems: Vec<TreeProblem>,
}

/// One chain's run, as it ended.
#[derive(Debug, Clone)]
pub struct ChainRun {
    pub run_id: i64,
    pub state: RunState,
    pub verified_from: i64,
    pub verified_through: i64,
    pub head_at_start: i64,
    pub events_read: i64,
    pub findings: Findings,
}

fn lease_until() -> chrono::NaiveDateTime {
    to_naive(now() + chrono::Duration::from_std(LEASE).expect("a short lease"))
}

/// Runs one verification of `chain_id` as `owner`, unless another owner
/// holds its lease (then None).
pub fn run_chain(
    conn: &mut DbConn,
    chain_id: &str,
    owner: &str,
    verifier_key: &str,
    full: bool,
    metrics: &Metrics,
) -> AppResult<Option<ChainRun>> {
    if !store::take_verification_lease(conn, chain_id, owner, to_naive(now()), lease_until())? {
        return Ok(None);
    }
    let head = store::load_chain_head(conn, chain_id)?.map_or(0, |(seq, _)| seq.max(0));
    let mut point = if full { verify::start_of_log(conn, chain_id)? } else { verify::proved(conn, chain_id)? };
    let from = point.trusted.size as i64;
    let Some(run_id) = store::start_verification_run(conn, chain_id, owner, to_naive(now()), from, head)? else {
        return Ok(None);
    };
    metrics.audit_verify_target.inc_by(head);
    metrics.audit_verify_through.inc_by(from.min(head));
    let mut run = ChainRun {
        run_id,
        state: RunState::Passed,
        verified_from: from,
        verified_through: from,
        head_at_start: head,
        events_read: 0,
        findings: Findings::default(),
    };
    loop {
        let max = (head - run.verified_through).clamp(0, WINDOW as i64) as u64;
        let (step, next) = verify::verify_window_from(conn, chain_id, verifier_key, max, &point)?;
        run.events_read += step.events_read;
        metrics.audit_verify_events.inc_by(step.events_read.max(0) as u64);
        if !step.valid {
            run.state = RunState::Failed;
            run.findings = Findings { problems: step.problems, tree_problems: step.tree_problems };
            if full {
                // The problem may lie before the proved point: later runs must not start past it.
                store::forget_verified(conn, chain_id)?;
            }
            break;
        }
        let Some(next) = next else { break };
        point = next;
        let moved = step.verified_through - run.verified_through;
        metrics.audit_verify_through.inc_by(moved.max(0));
        run.verified_through = step.verified_through;
        // (No progress with no problem: the chain is already proved past the head read at the start.)
        if run.verified_through >= head || moved <= 0 {
            break;
        }
        store::note_verification_progress(conn, chain_id, owner, run.events_read, run.verified_through, lease_until())?;
    }
    let findings = serde_json::to_string(&run.findings).expect("problems serialize");
    let end = store::RunEnd {
        state: run.state,
        finished_at: to_naive(now()),
        events_read: run.events_read,
        verified_through: run.verified_through,
        problems: &findings,
    };
    store::finish_verification_run(conn, chain_id, owner, &end)?;
    metrics.audit_verify_runs.get_or_create(&RunLabels { state: run.state.as_str() }).inc();
    if run.state == RunState::Failed {
        tracing::error!(
            chain_id,
            run_id,
            verified_through = run.verified_through,
            problems = run.findings.problems.len() + run.findings.tree_problems.len(),
            "audit chain verification failed"
        );
    }
    Ok(Some(run))
}

/// One pass: a run of every chain this instance can lease, each from its
/// first event if `full`. Returns the runs.
pub fn run_pass(
    conn: &mut DbConn,
    owner: &str,
    verifier_key: &str,
    full: bool,
    metrics: &Metrics,
) -> AppResult<Vec<ChainRun>> {
    metrics.audit_verify_through.set(0);
    metrics.audit_verify_target.set(0);
    let mut runs = Vec::new();
    for (chain_id, _) in store::chain_sizes(conn)? {
        metrics.audit_verify_running.set(1);
        let run = run_chain(conn, &chain_id, owner, verifier_key, full, metrics);
        metrics.audit_verify_running.set(0);
        runs.extend(run?);
    }
    let failing = runs.iter().filter(|r| r.state == RunState::Failed).count();
    metrics.audit_verify_failing_chains.set(failing as i64);
    metrics.audit_verify_last_completed_seconds.set(now().timestamp());
    Ok(runs)
}

/// This instance's verifier thread; dropping the handle stops it (after the pass under way).
pub fn start(
    url: DbUrl,
    options: db::ConnOptions,
    verifier_key: String,
    metrics: Arc<Metrics>,
    every: Duration,
    full_every: u32,
) -> crate::threads::Stop {
    let (stop, rounds) = crate::threads::stop_handle();
    let owner = uuid::Uuid::new_v4().to_string();
    std::thread::Builder::new()
        .name("audit-verifier".into())
        .spawn(move || {
            let mut conn: Option<DbConn> = None;
            // The first pass is a full one.
            let mut passes: u32 = 0;
            while rounds.next(every) {
                if conn.is_none() {
                    conn = db::establish_with(&url, options).ok();
                }
                let Some(c) = conn.as_mut() else { continue };
                let full = passes % full_every.max(1) == 0;
                passes = passes.wrapping_add(1);
                if let Err(e) = run_pass(c, &owner, &verifier_key, full, &metrics) {
                    tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "cannot verify the audit chains; retrying");
                    conn = None;
                }
            }
            tracing::debug!("audit verifier stopped");
        })
        .expect("spawn the audit verifier thread");
    stop
}
