//! The five enterprise key types and what each one grants.

use super::authz::{Access, Surface};
use serde::{Deserialize, Serialize};

/// Upper bound on any key lifetime, so that "no expiry" policies still have a ceiling to validate against.
pub const DEFAULT_MAX_LIFETIME_DAYS: i64 = 3650;
/// Team User Management keys may live at most a year.
pub const USER_MGMT_MAX_LIFETIME_DAYS: i64 = 365;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "KEY_TYPE_EDISCOVERY")]
    Ediscovery,
    #[serde(rename = "KEY_TYPE_SIEM")]
    Siem,
    #[serde(rename = "KEY_TYPE_TEAM_USER_MGMT")]
    TeamUserMgmt,
    #[serde(rename = "KEY_TYPE_TEAM_ASSET_AUDIT")]
    TeamAssetAudit,
    #[serde(rename = "KEY_TYPE_TEAM_ASSET_MGMT")]
    TeamAssetMgmt,
}

impl KeyType {
    pub const ALL: [KeyType; 5] =
        [KeyType::Ediscovery, KeyType::Siem, KeyType::TeamUserMgmt, KeyType::TeamAssetAudit, KeyType::TeamAssetMgmt];

    pub fn wire_name(self) -> &'static str {
        match self {
            KeyType::Ediscovery => "KEY_TYPE_EDISCOVERY",
            KeyType::Siem => "KEY_TYPE_SIEM",
            KeyType::TeamUserMgmt => "KEY_TYPE_TEAM_USER_MGMT",
            KeyType::TeamAssetAudit => "KEY_TYPE_TEAM_ASSET_AUDIT",
            KeyType::TeamAssetMgmt => "KEY_TYPE_TEAM_ASSET_MGMT",
        }
    }

    pub fn from_wire(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|t| t.wire_name() == s)
    }

    /// The tag inside the secret (`kw_<tag>_…`), so scanners can tell the type.
    pub fn tag(self) -> &'static str {
        match self {
            KeyType::Ediscovery => "ediscovery",
            KeyType::Siem => "siem",
            KeyType::TeamUserMgmt => "usermgmt",
            KeyType::TeamAssetAudit => "assetaudit",
            KeyType::TeamAssetMgmt => "assetmgmt",
        }
    }

    pub fn from_tag(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|t| t.tag() == s)
    }

    /// What this key type grants: one surface at one level.
    pub fn grant(self) -> (Surface, Access) {
        match self {
            KeyType::Ediscovery => (Surface::Ediscovery, Access::Write),
            KeyType::Siem => (Surface::Siem, Access::Write),
            KeyType::TeamUserMgmt => (Surface::TeamUsers, Access::Write),
            KeyType::TeamAssetAudit => (Surface::TeamAssets, Access::Read),
            KeyType::TeamAssetMgmt => (Surface::TeamAssets, Access::Write),
        }
    }

    /// The type's own lifetime cap in days; tenant policy can only tighten it.
    pub fn max_lifetime_days(self) -> i64 {
        match self {
            KeyType::TeamUserMgmt => USER_MGMT_MAX_LIFETIME_DAYS,
            _ => DEFAULT_MAX_LIFETIME_DAYS,
        }
    }

    /// Lifetime applied when the caller gives no expiry (None: the key does not expire).
    pub fn default_lifetime_days(self) -> Option<i64> {
        match self {
            KeyType::TeamUserMgmt => Some(USER_MGMT_MAX_LIFETIME_DAYS),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.wire_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_and_tags_round_trip() {
        for t in KeyType::ALL {
            assert_eq!(KeyType::from_wire(t.wire_name()), Some(t));
            assert_eq!(KeyType::from_tag(t.tag()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.wire_name()));
        }
        assert_eq!(KeyType::from_wire("KEY_TYPE_ROOT"), None);
    }

    #[test]
    fn only_user_management_is_capped_at_a_year_by_default() {
        assert_eq!(KeyType::TeamUserMgmt.default_lifetime_days(), Some(365));
        assert_eq!(KeyType::TeamUserMgmt.max_lifetime_days(), 365);
        assert_eq!(KeyType::Siem.default_lifetime_days(), None);
    }
}
