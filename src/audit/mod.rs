//! The audit log: event model, canonical form for the hash chain, the durable
//! group-commit writer and chain verification.

pub mod chain;
pub mod checkpoint;
pub mod evidence;
pub mod notices;
pub mod ocsf;
pub mod refusals;
pub mod retention;
pub mod sinks;
pub mod tree;
pub mod verifier;
pub mod verify;
pub mod writer;

use crate::db::models::{AuditRow, AuditRowRef};
use crate::domain::authz::{Op, Unrouted};
use serde_json::Value;

pub use crate::domain::event::{ActorType, Outcome, SYSTEM_CHAIN};

pub const OUTCOME_ALLOWED: &str = "ALLOWED";
pub const OUTCOME_DENIED: &str = "DENIED";

pub fn outcome_for(status_code: u16) -> &'static str {
    Outcome::for_status(status_code).as_str()
}

/// What an event records: an operation of the authorizer table, or one of
/// keyward's own (its background work, requests that name no operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Op(Op),
    Unrouted(Unrouted),
}

impl EventKind {
    /// The name the event stores.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Op(op) => op.name(),
            EventKind::Unrouted(u) => u.name(),
        }
    }
}

impl From<Op> for EventKind {
    fn from(op: Op) -> Self {
        EventKind::Op(op)
    }
}

impl From<Unrouted> for EventKind {
    fn from(u: Unrouted) -> Self {
        EventKind::Unrouted(u)
    }
}

/// Everything known about a request's event before it is committed. The writer
/// adds the id, time, sequence number and hashes.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub tenant_id: Option<String>,
    pub operation: EventKind,
    pub actor_type: ActorType,
    pub actor_id: Option<String>,
    pub key_id: Option<String>,
    pub key_type: Option<crate::domain::KeyType>,
    pub key_hint: Option<String>,
    pub request_id: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub status_code: u16,
    pub reason: Option<String>,
    /// Tier 1: what changed.
    pub metadata: serde_json::Map<String, Value>,
    /// Tier 2: the request body, already redacted.
    pub payload: Option<Value>,
    /// A verified key used by this request: its `last_used_*` are updated in the same commit.
    pub key_used: bool,
}

impl EventDraft {
    pub fn new(operation: impl Into<EventKind>, request_id: impl Into<String>) -> Self {
        EventDraft {
            tenant_id: None,
            operation: operation.into(),
            actor_type: ActorType::Anonymous,
            actor_id: None,
            key_id: None,
            key_type: None,
            key_hint: None,
            request_id: request_id.into(),
            client_ip: None,
            user_agent: None,
            status_code: 200,
            reason: None,
            metadata: serde_json::Map::new(),
            payload: None,
            key_used: false,
        }
    }

    pub fn chain_id(&self) -> &str {
        self.tenant_id.as_deref().unwrap_or(SYSTEM_CHAIN)
    }

    /// The key this event records a use of: a verified key that was let through.
    pub fn used_key(&self) -> Option<&str> {
        let allowed = outcome_for(self.status_code) == OUTCOME_ALLOWED;
        self.key_id.as_deref().filter(|_| self.key_used && allowed)
    }
}

/// The bytes that are hashed: every stored field but the hashes themselves, in
/// a fixed order, as a JSON array. Built from the stored row so that
/// verification recomputes exactly what the writer hashed.
pub fn canonical(row: &AuditRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_canonical(&row.as_ref(), &mut out);
    out
}

/// As [`canonical`], from a borrowed row, appended to `out`.
pub fn write_canonical(row: &AuditRowRef<'_>, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &CanonicalFields(row)).expect("JSON of plain values");
}

/// Serializes straight from the row (no intermediate `Value`, which would
/// copy every field): a tuple is a JSON array, element for element, of the
/// hashed columns in the order of `with_audit_event_columns`.
struct CanonicalFields<'r, 'a>(&'r AuditRowRef<'a>);

macro_rules! canonical_fields {
    (hashed { $id:ident: $idt:ty, $chain:ident: $chaint:ty, $($h:ident: $ht:ty,)* } chain { $($c:ident: $ct:ty,)* }) => {
        impl serde::Serialize for CanonicalFields<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeTuple;
                let row = self.0;
                let mut t = s.serialize_tuple(3 + [$(stringify!($h)),*].len())?;
                t.serialize_element(&row.$id.canonical())?;
                t.serialize_element(&row.$chain.canonical())?;
                // The tenant, derived from the chain (no longer stored), is hashed
                // third, where it always was: every chain still verifies.
                t.serialize_element(&row.tenant_id())?;
                $(t.serialize_element(&row.$h.canonical())?;)*
                t.end()
            }
        }

        /// The names of the canonical form's fields, in its order (an offline
        /// checker reads a leaf by them).
        pub const CANONICAL_FIELDS: &[&str] = &[stringify!($id), stringify!($chain), "tenant_id", $(stringify!($h)),*];
    };
}
crate::db::models::with_audit_event_columns!(canonical_fields);

/// A column's value as the canonical form holds it: itself, but times as
/// RFC 3339 text with microseconds.
trait Canonical {
    type Form<'a>: serde::Serialize
    where
        Self: 'a;
    fn canonical(&self) -> Self::Form<'_>;
}

impl Canonical for &str {
    type Form<'a>
        = &'a str
    where
        Self: 'a;
    fn canonical(&self) -> &str {
        self
    }
}

/// Hyphenated, as event ids were always hashed.
impl Canonical for crate::domain::event::EventId {
    type Form<'a> = &'a crate::domain::event::EventId;
    fn canonical(&self) -> &crate::domain::event::EventId {
        self
    }
}

impl Canonical for Option<&str> {
    type Form<'a>
        = Option<&'a str>
    where
        Self: 'a;
    fn canonical(&self) -> Option<&str> {
        *self
    }
}

impl Canonical for Outcome {
    type Form<'a> = &'static str;
    fn canonical(&self) -> &'static str {
        self.as_str()
    }
}

impl Canonical for ActorType {
    type Form<'a> = &'static str;
    fn canonical(&self) -> &'static str {
        self.as_str()
    }
}

impl Canonical for Option<crate::domain::KeyType> {
    type Form<'a> = Option<&'static str>;
    fn canonical(&self) -> Option<&'static str> {
        self.map(crate::domain::KeyType::wire_name)
    }
}

impl Canonical for i64 {
    type Form<'a> = i64;
    fn canonical(&self) -> i64 {
        *self
    }
}

impl Canonical for i32 {
    type Form<'a> = i32;
    fn canonical(&self) -> i32 {
        *self
    }
}

impl Canonical for chrono::NaiveDateTime {
    type Form<'a> = CanonicalTime;
    fn canonical(&self) -> CanonicalTime {
        match crate::db::models::rfc3339_micros(*self) {
            Some(text) => CanonicalTime::Digits(text),
            None => CanonicalTime::Text(format_time(*self)),
        }
    }
}

/// A time as [`format_time`] prints it, on the stack when it can be.
enum CanonicalTime {
    Digits([u8; 27]),
    Text(String),
}

impl serde::Serialize for CanonicalTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CanonicalTime::Digits(text) => s.serialize_str(std::str::from_utf8(text).expect("ASCII digits")),
            CanonicalTime::Text(text) => s.serialize_str(text),
        }
    }
}

/// `2026-01-02T03:04:05.123456Z`: RFC 3339, UTC, microseconds (what
/// `to_rfc3339_opts(Micros, true)` prints).
pub fn format_time(t: chrono::NaiveDateTime) -> String {
    crate::db::models::rfc3339(t, chrono::SecondsFormat::Micros)
}

/// One page of a tenant's events after `after_seq` that match `filter`, and
/// whether more follow (one extra row tells).
pub fn list_events(
    conn: &mut crate::db::DbConn,
    tenant_id: &str,
    filter: &crate::db::store::EventFilter,
    after_seq: i64,
    limit: i64,
) -> crate::error::AppResult<(Vec<AuditRow>, bool)> {
    let mut rows = crate::db::store::filtered_events(conn, tenant_id, filter, after_seq, limit + 1)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// The event as the API, the SIEM feed, exports and the CLI show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventView<'a> {
    pub event_id: crate::domain::event::EventId,
    pub tenant_id: Option<&'a str>,
    pub seq: i64,
    /// Its leaf in the chain's Merkle tree (see `tree`): what inclusion proofs name.
    pub leaf_index: i64,
    pub occurred_at: String,
    pub operation: &'a str,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub actor: ActorView<'a>,
    pub key_id: Option<&'a str>,
    pub key_type: Option<&'a str>,
    pub key_hint: Option<&'a str>,
    pub request_id: &'a str,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub status_code: i32,
    /// Stored as JSON text, shown parsed.
    pub metadata: Value,
    pub payload: Option<Value>,
    pub prev_hash: crate::crypto::ChainHash,
    pub hash: crate::crypto::ChainHash,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ActorView<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub id: Option<&'a str>,
}

impl<'a> EventView<'a> {
    /// The view of a stored event. The row is taken apart field by field, so
    /// a column added to `with_audit_event_columns` does not compile until
    /// it is shown here or said not to be.
    pub fn of(row: &'a AuditRow) -> EventView<'a> {
        let AuditRow {
            event_id,
            // The tenant id names the chain (none: the system chain).
            chain_id: _,
            seq,
            occurred_at,
            operation,
            outcome,
            reason,
            actor_type,
            actor_id,
            key_id,
            key_type,
            key_hint,
            request_id,
            client_ip,
            user_agent,
            status_code,
            metadata,
            payload,
            prev_hash,
            hash,
            // Where the event sits in its tree: served as proofs, not with the event.
            tree_hashes: _,
        } = row;
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        EventView {
            event_id: *event_id,
            tenant_id: row.tenant_id(),
            seq: *seq,
            leaf_index: seq - 1,
            occurred_at: format_time(*occurred_at),
            operation,
            outcome: outcome.as_str(),
            reason: reason.as_deref(),
            actor: ActorView { kind: actor_type.as_str(), id: actor_id.as_deref() },
            key_id: key_id.as_deref(),
            key_type: key_type.map(crate::domain::KeyType::wire_name),
            key_hint: key_hint.as_deref(),
            request_id,
            client_ip: client_ip.as_deref(),
            user_agent: user_agent.as_deref(),
            status_code: *status_code,
            metadata: parse(metadata),
            payload: payload.as_deref().map(parse),
            prev_hash: *prev_hash,
            hash: *hash,
        }
    }
}

/// The event's view as a JSON value, for those that add to it (proofs in
/// exports) or take from it (the feed without Tier 2).
pub fn event_json(row: &AuditRow) -> Value {
    serde_json::to_value(EventView::of(row)).expect("a view of plain values serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::models::to_utc;
    use chrono::NaiveDateTime;
    use serde_json::json;

    /// The form chains were first hashed in; `canonical` must keep producing it byte for byte.
    fn canonical_reference(row: &AuditRow) -> Vec<u8> {
        let fields = json!([
            row.event_id,
            row.chain_id,
            row.tenant_id(),
            row.seq,
            to_utc(row.occurred_at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            row.operation,
            row.outcome.as_str(),
            row.reason,
            row.actor_type.as_str(),
            row.actor_id,
            row.key_id,
            row.key_type.map(crate::domain::KeyType::wire_name),
            row.key_hint,
            row.request_id,
            row.client_ip,
            row.user_agent,
            row.status_code,
            row.metadata,
            row.payload,
        ]);
        serde_json::to_vec(&fields).unwrap()
    }

    fn row(at: &str, text: &str, optional: Option<String>) -> AuditRow {
        let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        AuditRow::sample(42, at, text, optional.as_deref())
    }

    #[test]
    fn the_json_view_shows_every_column() {
        let v = event_json(&row("2026-11-22 14:07:10.123456", "x", Some("y".into())));
        for column in crate::db::models::AUDIT_EVENT_COLUMNS.iter().chain(CANONICAL_FIELDS) {
            let shown = match *column {
                // The tenant id names the chain (null: the system chain).
                "chain_id" => v.get("tenant_id").is_some(),
                "actor_type" => v["actor"]["type"].is_string(),
                "actor_id" => v["actor"].get("id").is_some(),
                // Where the event sits in its tree: served as proofs, not with the event.
                "tree_hashes" => true,
                c => v.get(c).is_some(),
            };
            assert!(shown, "column {column} is missing from the event's JSON view: {v}");
        }
    }

    #[test]
    fn canonical_bytes_are_those_chains_were_first_hashed_with() {
        let texts = ["plain", "quote \" backslash \\ tab \t nl \n", "ünïcödé ✓ 🔑", "\u{1}\u{1f}", ""];
        let times =
            ["2026-11-22 14:07:10.123456", "2026-01-01 00:00:00", "1999-12-31 23:59:59.000001", "0001-01-01 00:00:00"];
        for at in times {
            for text in texts {
                for optional in [None, Some(text.to_string())] {
                    let r = row(at, text, optional);
                    assert_eq!(
                        String::from_utf8(canonical(&r)).unwrap(),
                        String::from_utf8(canonical_reference(&r)).unwrap()
                    );
                }
            }
        }
    }
}
