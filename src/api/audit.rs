//! The auditors' view of the audit log (console), and its proofs (console
//! auditors and the tenant's SIEM key).

use super::context::{ok_with, query, AnyCaller, ConsoleAuth, NoParams};
use super::pagination::{decode_cursor, encode_cursor, limit};
use crate::audit::verify::{self, Problem, TreeProblem};
use crate::audit::{EventView, Outcome};
use crate::db::models::to_naive;
use crate::db::store::EventFilter;
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

/// Events one verification reads at most: a larger chain is verified over
/// several calls, each from where the previous one proved it.
const VERIFY_MAX_EVENTS: u64 = 100_000;

/// The chain's verification as auditors see it (their tenant's chain: no chain id).
#[derive(Serialize)]
struct VerificationView<'a> {
    valid: bool,
    /// Events the verdict covers: proved by earlier calls, and read by this one.
    events_checked: i64,
    head_seq: i64,
    head_hash: &'a str,
    /// The hash chain's problems among the events read.
    problems: &'a [Problem],
    /// The Merkle tree's and the signed checkpoints' problems.
    tree_problems: &'a [TreeProblem],
    verified_from: i64,
    verified_through: i64,
    events_read: i64,
    checkpoint_size: Option<i64>,
    /// False: the chain is longer than one call reads; the next call goes on.
    complete: bool,
}

#[derive(Serialize)]
struct Verified<'a> {
    verification: VerificationView<'a>,
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

/// Verifies the tenant's chain from where the last verification proved it,
/// through at most `VERIFY_MAX_EVENTS` events (never the whole of a large chain).
pub async fn verify_chain(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let _: NoParams = query(&req)?;
    let tenant_id = auth.0.tenant_id;
    let verifier_key = state.settings.checkpoint_signer.verifier_key().to_string();
    let v = state.read(move |c| verify::verify_window(c, &tenant_id, &verifier_key, VERIFY_MAX_EVENTS)).await?;
    Ok(ok_with(&Verified {
        verification: VerificationView {
            valid: v.valid,
            events_checked: v.events_checked,
            head_seq: v.head_seq,
            head_hash: &v.head_hash,
            problems: &v.problems,
            tree_problems: &v.tree_problems,
            verified_from: v.verified_from,
            verified_through: v.verified_through,
            events_read: v.events_read,
            checkpoint_size: v.checkpoint_size,
            complete: v.complete,
        },
    }))
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
