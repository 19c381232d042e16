//! Who is calling: console members (JWT) and enterprise keys.

pub mod console;
pub mod credentials;
pub mod key;
pub mod key_cache;
pub mod key_state;
pub mod key_use;

use crate::domain::{KeyType, Role};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct MemberCaller {
    pub tenant_id: String,
    pub member_id: String,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct KeyCaller {
    pub tenant_id: String,
    pub key_id: String,
    pub key_type: KeyType,
    pub label: String,
    pub hint: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub enum Caller {
    Member(MemberCaller),
    Key(KeyCaller),
}
