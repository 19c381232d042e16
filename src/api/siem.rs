//! siem surface: the compliance event feed that SIEM pollers follow.
//!
//! The feed is a tenant's audit chain in `seq` order. Events of a chain
//! commit in `seq` order (one writer per instance, the chain row locked
//! across instances), so a cursor on `seq` never skips an event that commits
//! later: a poller that follows `next_cursor` sees every event exactly once.

use super::context::{ok_with, query, KeyAuth};
use super::pagination::{decode_cursor, encode_cursor, limit};
use crate::domain::event::EventFormat;
use crate::error::AppResult;
use crate::service::siem::{self, FeedQuery};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Serialize)]
struct FeedPage {
    events: Vec<Value>,
    next_cursor: String,
    has_more: bool,
    /// The tenant's newest signed checkpoint note, or null before the first.
    checkpoint: Option<String>,
    /// Events through this seq are in archive segments, not the feed (0: none).
    archived_through: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventList {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<i64>,
    #[serde(default)]
    include_payload: bool,
    #[serde(default)]
    format: EventFormat,
}

pub(super) async fn event_list(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: EventList = query(&req)?;
    let limit = limit(q.limit)?;
    let after_seq = q.cursor.as_deref().map(decode_cursor).transpose()?.unwrap_or(0);
    let feed = FeedQuery { since: q.since, until: q.until, after_seq, limit, include_payload: q.include_payload };
    feed.check()?;
    let tenant = auth.0.tenant_id;
    let page = state.read(move |c| siem::feed_page(c, &tenant, feed)).await?;
    // Always a cursor to resume from, also when the poller is caught up.
    let next_cursor = encode_cursor(page.rows.last().map_or(feed.after_seq, |r| r.seq));
    let events = page.rows.iter().map(|r| siem::feed_event(r, feed.include_payload, q.format)).collect();
    Ok(ok_with(&FeedPage {
        events,
        next_cursor,
        has_more: page.has_more,
        checkpoint: page.checkpoint,
        archived_through: page.archived_through,
    }))
}
