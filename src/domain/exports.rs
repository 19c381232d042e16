//! Export jobs: kinds, scopes and the states a job moves through.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportStatus {
    #[serde(rename = "EXPORT_STATUS_PENDING")]
    Pending,
    #[serde(rename = "EXPORT_STATUS_PROCESSING")]
    Processing,
    #[serde(rename = "EXPORT_STATUS_COMPLETED")]
    Completed,
    #[serde(rename = "EXPORT_STATUS_FAILED")]
    Failed,
}

impl ExportStatus {
    pub const ALL: [ExportStatus; 4] =
        [ExportStatus::Pending, ExportStatus::Processing, ExportStatus::Completed, ExportStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Pending => "EXPORT_STATUS_PENDING",
            ExportStatus::Processing => "EXPORT_STATUS_PROCESSING",
            ExportStatus::Completed => "EXPORT_STATUS_COMPLETED",
            ExportStatus::Failed => "EXPORT_STATUS_FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<ExportStatus> {
        ExportStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The only moves a job may make: PENDING → PROCESSING → COMPLETED | FAILED,
    /// and PROCESSING → PENDING when a crashed run is taken up again.
    pub fn may_become(self, next: ExportStatus) -> bool {
        use ExportStatus::*;
        matches!((self, next), (Pending, Processing) | (Processing, Completed | Failed | Pending))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportScope {
    #[serde(rename = "ENTERPRISE_EXPORT_SCOPE_FULL")]
    Full,
    #[serde(rename = "ENTERPRISE_EXPORT_SCOPE_METADATA")]
    Metadata,
}

impl ExportScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportScope::Full => "ENTERPRISE_EXPORT_SCOPE_FULL",
            ExportScope::Metadata => "ENTERPRISE_EXPORT_SCOPE_METADATA",
        }
    }
}

/// What an export job produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// e-Discovery: a ZIP of NDJSON about one member.
    Ediscovery,
    /// SIEM bulk export: NDJSON of the tenant's audit events.
    Compliance,
}

impl ExportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Ediscovery => "EDISCOVERY",
            ExportKind::Compliance => "COMPLIANCE",
        }
    }
}

/// How long a signed download link stays valid.
pub const DOWNLOAD_LINK_SECONDS: i64 = 600;

#[cfg(test)]
mod tests {
    use super::*;
    use ExportStatus::*;

    #[test]
    fn jobs_only_move_forward_or_are_taken_up_again() {
        assert!(Pending.may_become(Processing));
        assert!(Processing.may_become(Completed));
        assert!(Processing.may_become(Failed));
        assert!(Processing.may_become(Pending));
        assert!(!Completed.may_become(Processing));
        assert!(!Failed.may_become(Completed));
        assert!(!Pending.may_become(Completed));
    }
}
