//! What an audit event says of its request: who acted and how it ended.

use serde::Deserialize;

/// Events that no tenant can be told for (an unknown key, an unknown route)
/// form their own chain, visible to operators through the CLI.
pub const SYSTEM_CHAIN: &str = "_system";

/// The tenant of a chain: a tenant's chain is named by its tenant id, and the
/// system chain has none. An event's tenant is its chain's, so it is not
/// stored apart (it is hashed all the same, where the canonical form has it).
pub fn tenant_of_chain(chain_id: &str) -> Option<&str> {
    (chain_id != SYSTEM_CHAIN).then_some(chain_id)
}

/// An event's id: a UUIDv7 (time-ordered), stored as its 16 bytes and shown
/// hyphenated (`0193...-...`), as every event id has been shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(uuid::Uuid);

impl EventId {
    pub fn new() -> EventId {
        EventId(uuid::Uuid::now_v7())
    }

    /// An id as shown; None for anything else (no event has it).
    pub fn parse(text: &str) -> Option<EventId> {
        uuid::Uuid::try_parse(text).ok().map(EventId)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<EventId> {
        uuid::Uuid::from_slice(bytes).ok().map(EventId)
    }
}

impl Default for EventId {
    fn default() -> EventId {
        EventId::new()
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.hyphenated())
    }
}

/// Who made the request an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorType {
    Member,
    ApiKey,
    Service,
    Anonymous,
}

impl ActorType {
    pub const ALL: [ActorType; 4] = [ActorType::Member, ActorType::ApiKey, ActorType::Service, ActorType::Anonymous];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Member => "MEMBER",
            ActorType::ApiKey => "API_KEY",
            ActorType::Service => "SERVICE",
            ActorType::Anonymous => "ANONYMOUS",
        }
    }

    pub fn parse(s: &str) -> Option<ActorType> {
        ActorType::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How the request ended: let through (any status below 400) or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Outcome {
    #[serde(rename = "ALLOWED")]
    Allowed,
    #[serde(rename = "DENIED")]
    Denied,
}

impl Outcome {
    pub fn for_status(status_code: u16) -> Outcome {
        if status_code < 400 {
            Outcome::Allowed
        } else {
            Outcome::Denied
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "ALLOWED",
            Outcome::Denied => "DENIED",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Allowed, Outcome::Denied].into_iter().find(|o| o.as_str() == s)
    }
}

/// How events are written for a SIEM: keyward's own JSON, or OCSF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    #[default]
    Keyward,
    Ocsf,
}

impl EventFormat {
    pub const ALL: [EventFormat; 2] = [EventFormat::Keyward, EventFormat::Ocsf];

    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Keyward => "keyward",
            EventFormat::Ocsf => "ocsf",
        }
    }

    pub fn parse(s: &str) -> Option<EventFormat> {
        EventFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for a in ActorType::ALL {
            assert_eq!(ActorType::parse(a.as_str()), Some(a));
        }
        for o in [Outcome::Allowed, Outcome::Denied] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::for_status(399), Outcome::Allowed);
        assert_eq!(Outcome::for_status(400), Outcome::Denied);
        for f in EventFormat::ALL {
            assert_eq!(EventFormat::parse(f.as_str()), Some(f));
            assert_eq!(serde_json::to_value(f).unwrap(), serde_json::json!(f.as_str()));
        }
    }
}
