//! SIEM sinks (console, OWNER; AUDITOR may list): each follows its tenant's
//! audit chain with a cursor, so nothing is written for them on the hot
//! path. Credentials arrive here already sealed; no step sees them in clear,
//! and no event's metadata holds them.

use super::{meta, Meta};
use crate::db::models::{api_time, now, to_naive, SiemSink};
use crate::db::{store, DbConn};
use crate::domain::event::EventFormat;
use crate::domain::sinks::{SinkFilter, SinkKind, SinkState};
use crate::error::{AppError, AppResult};
use serde::Serialize;
use serde_json::{json, Value};

/// At most this many live sinks per tenant (each costs a worker's attention every interval).
pub const MAX_SINKS_PER_TENANT: i64 = 20;

/// A sink as list and the mutations show it: never its secret or token.
#[derive(Debug, Clone, Serialize)]
pub struct SinkView {
    pub sink_id: String,
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    pub format: EventFormat,
    pub filter_operations: Option<Value>,
    pub filter_outcomes: Option<Value>,
    pub state: SinkState,
    /// The last seq of the tenant's chain delivered (or skipped by the filter).
    pub delivered_through: i64,
    /// The tenant chain's head, and how many events the sink is behind it.
    pub head_seq: i64,
    pub lag: i64,
    pub consecutive_failures: i32,
    pub failing_since: Option<String>,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(s: &SiemSink, head_seq: i64) -> SinkView {
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| serde_json::from_str(t).ok());
    SinkView {
        sink_id: s.id.clone(),
        name: s.name.clone(),
        kind: s.kind,
        url: s.url.clone(),
        format: s.format,
        filter_operations: parse(&s.filter_operations),
        filter_outcomes: parse(&s.filter_outcomes),
        state: s.state,
        delivered_through: s.delivered_through,
        head_seq,
        lag: (head_seq - s.delivered_through).max(0),
        consecutive_failures: s.consecutive_failures,
        failing_since: s.failing_since.map(api_time),
        next_attempt_at: s.next_attempt_at.map(api_time),
        last_error: s.last_error.clone(),
        created_at: api_time(s.created_at),
        updated_at: api_time(s.updated_at),
    }
}

/// The tenant chain's last seq (0: no event yet).
pub fn head_seq(conn: &mut DbConn, tenant_id: &str) -> AppResult<i64> {
    Ok(store::load_chain_head(conn, tenant_id)?.map_or(0, |(seq, _)| seq))
}

pub fn list_sinks(conn: &mut DbConn, tenant_id: &str) -> AppResult<Vec<SinkView>> {
    let head = head_seq(conn, tenant_id)?;
    Ok(store::list_sinks(conn, tenant_id)?.iter().map(|s| view(s, head)).collect())
}

fn load(conn: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<SiemSink> {
    store::find_sink(conn, tenant_id, id)?.ok_or_else(|| AppError::not_found("no such sink"))
}

fn check_name(conn: &mut DbConn, tenant_id: &str, name: &str, except: Option<&str>) -> AppResult<()> {
    if store::sink_name_taken(conn, tenant_id, name, except)? {
        return Err(AppError::already_exists("a sink with this name already exists"));
    }
    Ok(())
}

/// The host a URL names, for events (a URL's path or query may carry what a receiver treats as a credential).
fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string))
}

/// A new sink, its id chosen and its credential sealed by the caller.
pub struct NewSink {
    pub id: String,
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    pub format: EventFormat,
    pub filter: SinkFilter,
    pub secret_sealed: Vec<u8>,
    /// Deliver from this seq (None: from now, the chain's head).
    pub from_seq: Option<i64>,
}

pub fn create_sink(conn: &mut DbConn, tenant_id: &str, new: NewSink) -> AppResult<(SinkView, Meta)> {
    if store::count_sinks(conn, tenant_id)? >= MAX_SINKS_PER_TENANT {
        return Err(AppError::precondition(format!("a tenant has at most {MAX_SINKS_PER_TENANT} sinks")));
    }
    check_name(conn, tenant_id, &new.name, None)?;
    let head = head_seq(conn, tenant_id)?;
    let delivered_through = new.from_seq.map_or(head, |from| (from - 1).clamp(0, head));
    let at = to_naive(now());
    let row = SiemSink {
        id: new.id,
        tenant_id: tenant_id.to_string(),
        name: new.name,
        kind: new.kind,
        url: new.url,
        format: new.format,
        filter_operations: new.filter.operations_json(),
        filter_outcomes: new.filter.outcomes_json(),
        secret_sealed: new.secret_sealed,
        state: SinkState::Active,
        delivered_through,
        lease_owner: None,
        lease_until: None,
        failing_since: None,
        next_attempt_at: None,
        consecutive_failures: 0,
        last_error: None,
        created_at: at,
        updated_at: at,
        deleted_at: None,
    };
    store::insert_sink(conn, &row)?;
    let v = view(&row, head);
    let m = meta(json!({
        "sink_id": v.sink_id, "name": v.name, "kind": v.kind, "host": host_of(&v.url), "format": v.format,
        "filter_operations": v.filter_operations, "filter_outcomes": v.filter_outcomes,
        "delivered_through": v.delivered_through,
    }));
    Ok((v, m))
}

/// A new credential for an existing sink, sealed for it by the caller.
pub enum NewCredential {
    /// A new HEC token (SPLUNK_HEC sinks).
    Token(Vec<u8>),
    /// A new webhook secret keyward generated (WEBHOOK sinks).
    RotatedSecret(Vec<u8>),
}

/// What an update changes; None: left as it is.
#[derive(Default)]
pub struct SinkChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub format: Option<EventFormat>,
    /// Some(None): every operation.
    pub filter_operations: Option<Option<Vec<String>>>,
    pub filter_outcomes: Option<Option<Vec<crate::domain::event::Outcome>>>,
    pub credential: Option<NewCredential>,
}

pub fn update_sink(conn: &mut DbConn, tenant_id: &str, id: &str, c: SinkChanges) -> AppResult<(SinkView, Meta)> {
    let sink = load(conn, tenant_id, id)?;
    let (token_replaced, secret_rotated) = match (&c.credential, sink.kind) {
        (Some(NewCredential::Token(_)), SinkKind::SplunkHec) => (true, false),
        (Some(NewCredential::RotatedSecret(_)), SinkKind::Webhook) => (false, true),
        (Some(NewCredential::Token(_)), SinkKind::Webhook) => {
            return Err(AppError::invalid(
                "a WEBHOOK sink takes no token: keyward signs with its own secret (rotate_secret)",
            ))
        }
        (Some(NewCredential::RotatedSecret(_)), SinkKind::SplunkHec) => {
            return Err(AppError::invalid("rotate_secret is for WEBHOOK sinks; give a SPLUNK_HEC sink a new token"))
        }
        (None, _) => (false, false),
    };
    if let Some(name) = &c.name {
        check_name(conn, tenant_id, name, Some(id))?;
    }
    let old = SinkFilter::from_stored(sink.filter_operations.as_deref(), sink.filter_outcomes.as_deref())
        .map_err(|e| AppError::internal().caused_by(std::io::Error::other(e)))?;
    let filter = SinkFilter {
        operations: c.filter_operations.clone().unwrap_or(old.operations),
        outcomes: c.filter_outcomes.clone().unwrap_or(old.outcomes),
    };
    let sealed = match &c.credential {
        Some(NewCredential::Token(s) | NewCredential::RotatedSecret(s)) => s.clone(),
        None => sink.secret_sealed.clone(),
    };
    let (ops_json, outcomes_json) = (filter.operations_json(), filter.outcomes_json());
    let settings = store::SinkSettings {
        name: c.name.as_deref().unwrap_or(&sink.name),
        url: c.url.as_deref().unwrap_or(&sink.url),
        format: c.format.unwrap_or(sink.format),
        filter_operations: ops_json.as_deref(),
        filter_outcomes: outcomes_json.as_deref(),
        secret_sealed: &sealed,
    };
    store::update_sink_settings(conn, tenant_id, id, &settings, to_naive(now()))?;
    let changed: Vec<&str> = [
        ("name", c.name.is_some()),
        ("url", c.url.is_some()),
        ("format", c.format.is_some()),
        ("filter_operations", c.filter_operations.is_some()),
        ("filter_outcomes", c.filter_outcomes.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, on)| on.then_some(f))
    .collect();
    let updated = load(conn, tenant_id, id)?;
    let head = head_seq(conn, tenant_id)?;
    let v = view(&updated, head);
    let m = meta(json!({
        "sink_id": id, "name": v.name, "kind": v.kind, "host": host_of(&v.url), "changed": changed,
        "token_replaced": token_replaced, "secret_rotated": secret_rotated,
    }));
    Ok((v, m))
}

pub fn delete_sink(conn: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<((), Meta)> {
    let sink = load(conn, tenant_id, id)?;
    store::delete_sink(conn, tenant_id, id, to_naive(now()))?;
    let m = meta(json!({
        "sink_id": id, "name": sink.name, "kind": sink.kind, "delivered_through": sink.delivered_through,
    }));
    Ok(((), m))
}

/// Delivers again from `from_seq` (bounded to the chain): the cursor goes to
/// `from_seq - 1`, the sink is ACTIVE again and its failures are forgotten.
pub fn replay_sink(conn: &mut DbConn, tenant_id: &str, id: &str, from_seq: i64) -> AppResult<(SinkView, Meta)> {
    let sink = load(conn, tenant_id, id)?;
    let head = head_seq(conn, tenant_id)?;
    let through = (from_seq - 1).clamp(0, head);
    store::replay_sink(conn, tenant_id, id, through, to_naive(now()))?;
    let v = view(&load(conn, tenant_id, id)?, head);
    let m = meta(json!({
        "sink_id": id, "name": sink.name, "from_seq": from_seq, "previous_delivered_through": sink.delivered_through,
        "delivered_through": through, "previous_state": sink.state,
    }));
    Ok((v, m))
}
