//! The transactional steps of each operation: domain rules applied to rows,
//! run by the audit writer inside the same transaction as their event. No
//! HTTP here; the CLI uses the same functions.

pub mod assets;
pub mod exports;
pub mod groups;
pub mod health;
pub mod holds;
pub mod keys;
pub mod leaks;
pub mod proofs;
pub mod scim;
pub mod siem;
pub mod sinks;
pub mod team;

use serde_json::{Map, Value};

/// Tier 1 metadata for an event: what changed.
pub type Meta = Map<String, Value>;

pub fn meta(v: Value) -> Meta {
    match v {
        Value::Object(m) => m,
        _ => Meta::new(),
    }
}
