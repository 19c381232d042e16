//! The auditors' view of the audit log (console), and its proofs (console
//! auditors and the tenant's SIEM key).

use super::context::{ok_with, query, AnyCaller, ConsoleAuth, NoParams};
use super::pagination::{decode_cursor, encode_cursor, limit};
use crate::audit::verifier::Findings;
use crate::audit::verify::{Problem, TreeProblem};
use crate::audit::{EventView, Outcome};
use crate::db::models::to_naive;
use crate::db::store::{self, EventFilter};
use crate::domain::verification::RunState;
use crate::error::{AppError, AppResult};
use crate::service::proofs;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct EventPage<'a> {
    events: Vec<EventView<'a>>,
    next_cursor: Option<String>,
    /// Events through this seq were moved to archive segments by retention (0: none).
    archived_through: i64,
}

/// The chain's verification as auditors see it (their tenant's chain: no
/// chain id): the background verifier's last completed run, and the one
/// under way. Nothing here reads the chain's events.
#[derive(Serialize)]
struct VerificationView {
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

#[derive(Serialize)]
struct RunProgress {
    run_id: i64,
    started_at: Option<DateTime<Utc>>,
    verified_from: i64,
    verified_through: i64,
    head_at_start: i64,
    events_read: i64,
}

#[derive(Serialize)]
struct Verified {
    verification: VerificationView,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEvents {
    operation: Option<String>,
    key_id: Option<String>,
    actor_id: Option<String>,
    outcome: Option<Outcome>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ListEvents = query(&req)?;
    let limit = limit(q.limit)?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?.unwrap_or(0);
    if let (Some(s), Some(u)) = (q.since, q.until) {
        if s > u {
            return Err(AppError::invalid("since must not be after until"));
        }
    }
    let filter = EventFilter {
        operation: q.operation,
        key_id: q.key_id,
        actor_id: q.actor_id,
        outcome: q.outcome,
        since: q.since.map(to_naive),
        until: q.until.map(to_naive),
    };
    let tenant_id = auth.0.tenant_id;
    let ((rows, more), archived_through) = state
        .read(move |c| {
            let page = crate::audit::list_events(c, &tenant_id, &filter, after, limit)?;
            Ok((page, crate::audit::retention::archived_through(c, &tenant_id)?))
        })
        .await?;
    let next_cursor = if more { rows.last().map(|r| encode_cursor(r.seq)) } else { None };
    Ok(ok_with(&EventPage { events: rows.iter().map(EventView::of).collect(), next_cursor, archived_through }))
}

/// The tenant's chain as the background verifier left it (see `audit::verifier`).
pub async fn verify_chain(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let _: NoParams = query(&req)?;
    let tenant_id = auth.0.tenant_id;
    let (run, head) = state
        .read(move |c| Ok((store::find_verification_run(c, &tenant_id)?, store::load_chain_head(c, &tenant_id)?)))
        .await?;
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
    Ok(ok_with(&Verified { verification: view }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointQuery {
    tree_size: Option<u64>,
}

#[derive(Serialize)]
struct CheckpointView {
    /// The signed note, as signed (C2SP tlog-checkpoint body, C2SP signed note).
    checkpoint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofQuery {
    event_id: String,
    tree_size: Option<u64>,
}

/// Hashes in standard base64, as in checkpoints.
#[derive(Serialize)]
struct InclusionView {
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    inclusion: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: u64,
    to: u64,
}

#[derive(Serialize)]
struct ConsistencyView {
    from: u64,
    to: u64,
    consistency: Vec<String>,
}

fn base64_all(hashes: &[crate::audit::tree::Hash]) -> Vec<String> {
    hashes.iter().map(ToString::to_string).collect()
}

pub async fn checkpoint(auth: AnyCaller, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: CheckpointQuery = query(&req)?;
    let tenant_id = auth.tenant_id().to_string();
    let checkpoint = state.read(move |c| proofs::checkpoint_note(c, &tenant_id, q.tree_size)).await?;
    Ok(ok_with(&CheckpointView { checkpoint }))
}

pub async fn proof(auth: AnyCaller, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ProofQuery = query(&req)?;
    let tenant_id = auth.tenant_id().to_string();
    let p = state.read(move |c| proofs::inclusion(c, &tenant_id, &q.event_id, q.tree_size)).await?;
    Ok(ok_with(&InclusionView {
        leaf_index: p.leaf_index,
        tree_size: p.tree_size,
        leaf_hash: p.leaf_hash.to_string(),
        inclusion: base64_all(&p.path),
    }))
}

pub async fn consistency(auth: AnyCaller, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ConsistencyQuery = query(&req)?;
    let tenant_id = auth.tenant_id().to_string();
    let p = state.read(move |c| proofs::consistency(c, &tenant_id, q.from, q.to)).await?;
    Ok(ok_with(&ConsistencyView { from: p.from, to: p.to, consistency: base64_all(&p.path) }))
}
