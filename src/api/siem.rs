//! siem surface: the compliance event feed that SIEM pollers follow.
//!
//! The feed is a tenant's audit chain in `seq` order. Events of a chain
//! commit in `seq` order (one writer per instance, the chain row locked
//! across instances), so a cursor on `seq` never skips an event that commits
//! later: a poller that follows `next_cursor` sees every event exactly once.

use super::context::{fields, ok, query, KeyAuth};
use super::pagination::{decode_cursor, encode_cursor, limit};
use crate::audit::event_json;
use crate::db::models::to_naive;
use crate::db::store::{self, EventFilter};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventList {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<i64>,
    #[serde(default)]
    include_payload: bool,
}

pub(super) async fn event_list(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: EventList = query(&req)?;
    let limit = limit(q.limit)?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?.unwrap_or(0);
    if let (Some(s), Some(u)) = (q.since, q.until) {
        if s > u {
            return Err(AppError::invalid("since must not be after until"));
        }
    }
    let filter = EventFilter { since: q.since.map(to_naive), until: q.until.map(to_naive), ..EventFilter::default() };
    let tenant = auth.0.tenant_id;
    let (mut rows, tier2) = state
        .read(move |c| {
            let tenant_row = store::find_tenant(c, &tenant)?.ok_or_else(AppError::internal)?;
            Ok((store::filtered_events(c, &tenant, &filter, after, limit + 1)?, tenant_row.siem_tier2_enabled))
        })
        .await?;
    if q.include_payload && !tier2 {
        return Err(AppError::precondition(
            "Tier 2 payloads need the SIEM data-processing agreement: enable siem_tier2_enabled in the key policy",
        ));
    }
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    // Always a cursor to resume from, also when the poller is caught up.
    let next_cursor = encode_cursor(rows.last().map_or(after, |r| r.seq));
    let events: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut e = event_json(r);
            if !q.include_payload {
                e.as_object_mut().expect("events are objects").remove("payload");
            }
            e
        })
        .collect();
    Ok(ok(fields(json!({"events": events, "next_cursor": next_cursor, "has_more": has_more}))))
}
