//! A tenant's standing: only an active tenant's keys, members and links work.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    Active,
    /// Everything of the tenant is refused (`tenant_inactive`); nothing is deleted.
    Suspended,
}

impl TenantStatus {
    pub const ALL: [TenantStatus; 2] = [TenantStatus::Active, TenantStatus::Suspended];

    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "ACTIVE",
            TenantStatus::Suspended => "SUSPENDED",
        }
    }

    pub fn parse(s: &str) -> Option<TenantStatus> {
        TenantStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How long a tenant's audit events stay in the database before they move to
/// archive segments (`audit_retention_days`); None keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditRetention(Option<u16>);

impl AuditRetention {
    pub const MIN_DAYS: i64 = 1;
    /// A hundred years.
    pub const MAX_DAYS: i64 = 36_500;
    pub const KEEP_EVERYTHING: AuditRetention = AuditRetention(None);

    /// `days` as given to the policy (None: keep everything).
    pub fn parse(days: Option<i64>) -> Result<AuditRetention, String> {
        match days {
            None => Ok(AuditRetention(None)),
            Some(d) if (Self::MIN_DAYS..=Self::MAX_DAYS).contains(&d) => Ok(AuditRetention(Some(d as u16))),
            Some(_) => Err(format!(
                "audit_retention_days must be null (keep everything) or {} to {}",
                Self::MIN_DAYS,
                Self::MAX_DAYS
            )),
        }
    }

    /// As stored; a stored value out of range keeps everything (never archives early).
    pub fn from_stored(days: Option<i32>) -> AuditRetention {
        AuditRetention::parse(days.map(i64::from)).unwrap_or_default()
    }

    pub fn days(self) -> Option<i64> {
        self.0.map(i64::from)
    }

    pub fn stored(self) -> Option<i32> {
        self.0.map(i32::from)
    }

    /// The instant before which events are archived, at `now`; None: none are.
    pub fn cutoff(self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.map(|d| now - chrono::Duration::days(i64::from(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in TenantStatus::ALL {
            assert_eq!(TenantStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TenantStatus::parse("active"), None);
    }

    #[test]
    fn retention_is_null_or_one_to_36500_days() {
        assert_eq!(AuditRetention::parse(None), Ok(AuditRetention::KEEP_EVERYTHING));
        assert_eq!(AuditRetention::parse(Some(1)).unwrap().days(), Some(1));
        assert_eq!(AuditRetention::parse(Some(36_500)).unwrap().days(), Some(36_500));
        for bad in [0, -1, 36_501, i64::MAX] {
            assert!(AuditRetention::parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(AuditRetention::from_stored(Some(0)), AuditRetention::KEEP_EVERYTHING);
    }
}
