//! Shared team assets: their types and share scopes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AssetType {
    #[serde(rename = "ASSET_TYPE_SESSION")]
    Session,
    #[serde(rename = "ASSET_TYPE_FILE")]
    File,
    #[serde(rename = "ASSET_TYPE_WEBSITE")]
    Website,
    #[serde(rename = "ASSET_TYPE_SLIDES")]
    Slides,
    #[serde(rename = "ASSET_TYPE_DOCUMENT")]
    Document,
}

impl AssetType {
    pub const ALL: [AssetType; 5] =
        [AssetType::Session, AssetType::File, AssetType::Website, AssetType::Slides, AssetType::Document];

    pub fn as_str(self) -> &'static str {
        match self {
            AssetType::Session => "ASSET_TYPE_SESSION",
            AssetType::File => "ASSET_TYPE_FILE",
            AssetType::Website => "ASSET_TYPE_WEBSITE",
            AssetType::Slides => "ASSET_TYPE_SLIDES",
            AssetType::Document => "ASSET_TYPE_DOCUMENT",
        }
    }

    pub fn parse(s: &str) -> Option<AssetType> {
        AssetType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Who can reach a shared asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShareScope {
    #[serde(rename = "SHARE_SCOPE_OWNER")]
    Owner,
    #[serde(rename = "SHARE_SCOPE_TEAM_ONLY")]
    TeamOnly,
    #[serde(rename = "SHARE_SCOPE_PUBLIC")]
    Public,
}

impl ShareScope {
    pub const ALL: [ShareScope; 3] = [ShareScope::Owner, ShareScope::TeamOnly, ShareScope::Public];

    pub fn as_str(self) -> &'static str {
        match self {
            ShareScope::Owner => "SHARE_SCOPE_OWNER",
            ShareScope::TeamOnly => "SHARE_SCOPE_TEAM_ONLY",
            ShareScope::Public => "SHARE_SCOPE_PUBLIC",
        }
    }

    pub fn parse(s: &str) -> Option<ShareScope> {
        ShareScope::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Free-text identifiers from the platform: bounded and printable.
pub fn valid_identifier(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_their_wire_names() {
        for t in AssetType::ALL {
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", t.as_str()));
            assert_eq!(AssetType::parse(t.as_str()), Some(t));
        }
        assert_eq!(AssetType::parse("ASSET_TYPE_VIDEO"), None);
        for p in ShareScope::ALL {
            assert_eq!(ShareScope::parse(p.as_str()), Some(p));
        }
        assert!(serde_json::from_str::<ShareScope>("\"SHARE_SCOPE_WORLD\"").is_err());
    }

    #[test]
    fn identifiers_are_bounded() {
        assert!(valid_identifier("abc", 10));
        assert!(!valid_identifier("", 10));
        assert!(!valid_identifier("a\nb", 10));
        assert!(!valid_identifier(&"x".repeat(11), 10));
    }
}
