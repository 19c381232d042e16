//! Export jobs: kinds, scopes and the states a job moves through.

use super::authz::{Op, Unrouted};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    pub const ALL: [ExportScope; 2] = [ExportScope::Full, ExportScope::Metadata];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportScope::Full => "ENTERPRISE_EXPORT_SCOPE_FULL",
            ExportScope::Metadata => "ENTERPRISE_EXPORT_SCOPE_METADATA",
        }
    }

    pub fn parse(s: &str) -> Option<ExportScope> {
        ExportScope::ALL.into_iter().find(|x| x.as_str() == s)
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
    pub const ALL: [ExportKind; 2] = [ExportKind::Ediscovery, ExportKind::Compliance];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Ediscovery => "EDISCOVERY",
            ExportKind::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<ExportKind> {
        ExportKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The audit operation of a job's status changes.
    pub fn process_operation(self) -> Unrouted {
        match self {
            ExportKind::Ediscovery => Unrouted::ExportProcess,
            ExportKind::Compliance => Unrouted::ComplianceExportProcess,
        }
    }

    /// The signed-link route of a kind.
    pub fn download_path(self) -> &'static str {
        match self {
            ExportKind::Ediscovery => Op::EnterpriseExportDownload,
            ExportKind::Compliance => Op::EnterpriseComplianceExportDownload,
        }
        .spec()
        .path
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportKind::Ediscovery => "application/zip",
            ExportKind::Compliance => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportKind::Ediscovery => "zip",
            ExportKind::Compliance => "ndjson",
        }
    }
}

/// Where a tenant's export files live: `<export_dir>/<tenant_id>/`.
pub fn tenant_dir(export_dir: &Path, tenant_id: &str) -> PathBuf {
    export_dir.join(tenant_id)
}

/// Where a tenant's export file of this name lives.
pub fn file_path(export_dir: &Path, tenant_id: &str, file_name: &str) -> PathBuf {
    tenant_dir(export_dir, tenant_id).join(file_name)
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

    #[test]
    fn kinds_round_trip_their_stored_names() {
        for k in ExportKind::ALL {
            assert_eq!(ExportKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ExportKind::parse("ediscovery"), None);
        for s in ExportScope::ALL {
            assert_eq!(ExportScope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        for s in ExportStatus::ALL {
            assert_eq!(ExportStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
    }
}
