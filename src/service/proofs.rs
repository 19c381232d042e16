//! The audit log's proofs, for one tenant's chain: its signed checkpoints, the
//! inclusion proof of one of its events (RFC 9162 §2.1.3) and the consistency
//! proof between two of its sizes (§2.1.4). Each reads O(log n) stored
//! hashes, never the chain's events. And the background verifier's verdict on
//! the chain, read from its runs.

use crate::audit::verifier::Findings;
use crate::audit::verify::{Problem, TreeProblem};
use crate::audit::{canonical, checkpoint, tree};
use crate::db::{store, DbConn};
use crate::domain::verification::RunState;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};

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

/// The chain's verification as auditors see it (their tenant's chain: no
/// chain id): the background verifier's last completed run, and the one
/// under way. Nothing here reads the chain's events.
#[derive(serde::Serialize)]
pub struct VerificationView {
    /// The last completed run's verdict; null before the first one completed.
    valid: Option<bool>,
    /// `passed` or `failed`; null before the first run completed.
    state: Option<RunState>,
    run_id: Option<i64>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// Events the verdict covers: proved before the run, and read by it.
    events_checked: i64,
    /// The size proved before the run, and where the run left it.
    verified_from: i64,
    verified_through: i64,
    events_read: i64,
    /// The head the run went to (its head at its start).
    head_at_start: i64,
    /// Whether the run proved the chain through the head it started with.
    complete: bool,
    /// The hash chain's problems it found.
    problems: Vec<Problem>,
    /// The Merkle tree's and the signed checkpoints' problems it found.
    tree_problems: Vec<TreeProblem>,
    /// The chain's head now.
    head_seq: i64,
    head_hash: String,
    /// The run under way, if one is.
    current_run: Option<RunProgress>,
}

#[derive(serde::Serialize)]
pub struct RunProgress {
    run_id: i64,
    started_at: Option<DateTime<Utc>>,
    verified_from: i64,
    verified_through: i64,
    head_at_start: i64,
    events_read: i64,
}

/// The tenant's chain as the background verifier left it (see
/// `audit::verifier`): read from its runs' row, never from the events.
pub fn verification(conn: &mut DbConn, tenant_id: &str) -> AppResult<VerificationView> {
    let run = store::find_verification_run(conn, tenant_id)?;
    let head = store::load_chain_head(conn, tenant_id)?;
    let (head_seq, head_hash) = head.unwrap_or((0, crate::crypto::GENESIS_HASH.to_string()));
    let utc = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.and_utc());
    let mut view = VerificationView {
        valid: None,
        state: None,
        run_id: None,
        started_at: None,
        finished_at: None,
        events_checked: 0,
        verified_from: 0,
        verified_through: 0,
        events_read: 0,
        head_at_start: 0,
        complete: false,
        problems: Vec::new(),
        tree_problems: Vec::new(),
        head_seq,
        head_hash,
        current_run: None,
    };
    if let Some(run) = run {
        if let Some(last) = run.last_state {
            let findings: Findings =
                run.last_problems.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
            let through = run.last_verified_through.unwrap_or(0);
            let head_at_start = run.last_head_at_start.unwrap_or(0);
            view.valid = Some(last == RunState::Passed);
            view.state = Some(last);
            view.run_id = run.last_run_id;
            view.started_at = utc(run.last_started_at);
            view.finished_at = utc(run.last_finished_at);
            view.events_checked = through;
            view.verified_from = run.last_verified_from.unwrap_or(0);
            view.verified_through = through;
            view.events_read = run.last_events_read.unwrap_or(0);
            view.head_at_start = head_at_start;
            view.complete = last == RunState::Passed && through >= head_at_start;
            view.problems = findings.problems;
            view.tree_problems = findings.tree_problems;
        }
        if run.state == Some(RunState::Running) {
            view.current_run = Some(RunProgress {
                run_id: run.run_id,
                started_at: utc(run.started_at),
                verified_from: run.verified_from,
                verified_through: run.verified_through,
                head_at_start: run.head_at_start,
                events_read: run.events_read,
            });
        }
    }
    Ok(view)
}
