//! The auditors' view of the audit log (console), and its proofs (console
//! auditors and the tenant's SIEM key).

use super::context::{ok_with, query, AnyCaller, ConsoleAuth, NoParams};
use super::pagination::{decode_cursor, encode_cursor, limit};
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

#[derive(Serialize)]
struct Verified {
    verification: proofs::VerificationView,
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
    let view = state.read(move |c| proofs::verification(c, &tenant_id)).await?;
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
