//! Console members: roles and statuses.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Owner,
    Admin,
    Auditor,
    Member,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Auditor, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Auditor => "AUDITOR",
            Role::Member => "MEMBER",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStatus {
    #[serde(rename = "USER_STATUS_ACTIVE")]
    Active,
    #[serde(rename = "USER_STATUS_INACTIVE")]
    Inactive,
    #[serde(rename = "USER_STATUS_REMOVED")]
    Removed,
}

impl MemberStatus {
    pub const ALL: [MemberStatus; 3] = [MemberStatus::Active, MemberStatus::Inactive, MemberStatus::Removed];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "USER_STATUS_ACTIVE",
            MemberStatus::Inactive => "USER_STATUS_INACTIVE",
            MemberStatus::Removed => "USER_STATUS_REMOVED",
        }
    }

    pub fn parse(s: &str) -> Option<MemberStatus> {
        MemberStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Emails compare case-insensitively; we store them trimmed and lower-cased.
pub fn normalize_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_ascii_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalize_or_are_refused() {
        assert_eq!(normalize_email(" Ann@Acme.Example ").as_deref(), Some("ann@acme.example"));
        for bad in ["", "ann", "@acme.example", "ann@acme", "a b@acme.example", "ann@.example"] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn roles_and_statuses_parse() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for s in MemberStatus::ALL {
            assert_eq!(MemberStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(Role::parse("owner"), None);
    }

    /// Views and audit metadata serialize these; storage writes `as_str`: the same text.
    #[test]
    fn serde_names_are_the_stored_names() {
        for r in Role::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.as_str()));
        }
        for s in MemberStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
    }
}
