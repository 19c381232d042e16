//! The audit log: event model, canonical form for the hash chain, the durable
//! group-commit writer and chain verification.

pub mod verify;
pub mod writer;

use crate::db::models::{to_utc, AuditRow};
use serde_json::{json, Value};

/// Events that no tenant can be told for (an unknown key, an unknown route)
/// form their own chain, visible to operators through the CLI.
pub const SYSTEM_CHAIN: &str = "_system";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorType {
    Member,
    ApiKey,
    Service,
    Anonymous,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Member => "MEMBER",
            ActorType::ApiKey => "API_KEY",
            ActorType::Service => "SERVICE",
            ActorType::Anonymous => "ANONYMOUS",
        }
    }
}

pub const OUTCOME_ALLOWED: &str = "ALLOWED";
pub const OUTCOME_DENIED: &str = "DENIED";

pub fn outcome_for(status_code: u16) -> &'static str {
    if status_code < 400 {
        OUTCOME_ALLOWED
    } else {
        OUTCOME_DENIED
    }
}

/// Everything known about a request's event before it is committed. The writer
/// adds the id, time, sequence number and hashes.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub tenant_id: Option<String>,
    pub operation: String,
    pub actor_type: ActorType,
    pub actor_id: Option<String>,
    pub key_id: Option<String>,
    pub key_type: Option<String>,
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
    pub fn new(operation: impl Into<String>, request_id: impl Into<String>) -> Self {
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
}

/// The bytes that are hashed: every stored field but the hashes themselves, in
/// a fixed order, as a JSON array. Built from the stored row so that
/// verification recomputes exactly what the writer hashed.
pub fn canonical(row: &AuditRow) -> Vec<u8> {
    let fields = json!([
        row.event_id,
        row.chain_id,
        row.tenant_id,
        row.seq,
        format_time(row.occurred_at),
        row.operation,
        row.outcome,
        row.reason,
        row.actor_type,
        row.actor_id,
        row.key_id,
        row.key_type,
        row.key_hint,
        row.request_id,
        row.client_ip,
        row.user_agent,
        row.status_code,
        row.metadata,
        row.payload,
    ]);
    serde_json::to_vec(&fields).expect("JSON of plain values")
}

pub fn format_time(t: chrono::NaiveDateTime) -> String {
    to_utc(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The event as the API shows it.
pub fn event_json(row: &AuditRow) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "event_id": row.event_id,
        "tenant_id": row.tenant_id,
        "seq": row.seq,
        "occurred_at": format_time(row.occurred_at),
        "operation": row.operation,
        "outcome": row.outcome,
        "reason": row.reason,
        "actor": {"type": row.actor_type, "id": row.actor_id},
        "key_id": row.key_id,
        "key_type": row.key_type,
        "key_hint": row.key_hint,
        "request_id": row.request_id,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "status_code": row.status_code,
        "metadata": parse(&row.metadata),
        "payload": row.payload.as_deref().map(parse),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    })
}
