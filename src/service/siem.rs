//! The compliance event feed that SIEM pollers follow: a tenant's audit chain
//! in `seq` order, Tier 2 payloads only under the tenant's data-processing
//! agreement.

use crate::audit::{event_json, ocsf};
use crate::db::models::{to_naive, AuditRow};
use crate::db::{store, DbConn};
use crate::domain::event::EventFormat;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Which events a poller asks for.
#[derive(Debug, Clone, Copy)]
pub struct FeedQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Events after this `seq` (0: from the start).
    pub after_seq: i64,
    pub limit: i64,
    pub include_payload: bool,
}

impl FeedQuery {
    pub fn check(&self) -> AppResult<()> {
        match (self.since, self.until) {
            (Some(s), Some(u)) if s > u => Err(AppError::invalid("since must not be after until")),
            _ => Ok(()),
        }
    }
}

/// One page of the feed.
pub struct FeedPage {
    pub rows: Vec<AuditRow>,
    /// More events follow the page.
    pub has_more: bool,
    /// The tenant's newest signed checkpoint note (None: none signed yet), read
    /// after the page's events: a poller proves them against it once it covers them.
    pub checkpoint: Option<String>,
    /// Events through this seq are in archive segments, not the feed (0: none).
    pub archived_through: i64,
}

/// One page of the tenant's feed. Tier 2 payloads need the tenant's `siem_tier2_enabled`.
pub fn feed_page(conn: &mut DbConn, tenant_id: &str, q: FeedQuery) -> AppResult<FeedPage> {
    let tenant = store::find_tenant(conn, tenant_id)?.ok_or_else(AppError::internal)?;
    if q.include_payload && !tenant.siem_tier2_enabled {
        return Err(AppError::precondition(
            "Tier 2 payloads need the SIEM data-processing agreement: enable siem_tier2_enabled in the key policy",
        ));
    }
    let filter = store::EventFilter {
        since: q.since.map(to_naive),
        until: q.until.map(to_naive),
        ..store::EventFilter::default()
    };
    let (rows, has_more) = crate::audit::list_events(conn, tenant_id, &filter, q.after_seq, q.limit)?;
    let checkpoint = super::proofs::latest_checkpoint_note(conn, tenant_id)?;
    let archived_through = crate::audit::retention::archived_through(conn, tenant_id)?;
    Ok(FeedPage { rows, has_more, checkpoint, archived_through })
}

/// An event as the feed shows it: its Tier 2 `payload` only when asked, in
/// keyward's JSON or in OCSF.
pub fn feed_event(row: &AuditRow, include_payload: bool, format: EventFormat) -> Value {
    let mut e = event_json(row);
    if !include_payload {
        if let Value::Object(m) = &mut e {
            m.remove("payload");
        }
    }
    match format {
        EventFormat::Keyward => e,
        EventFormat::Ocsf => ocsf::event(row, e),
    }
}
