//! Rows as stored. Times are naive UTC here and `DateTime<Utc>` everywhere else.

use super::schema::{api_keys, assets, audit_events, exports, key_leaks, legal_holds, members, siem_sinks, tenants};
use crate::domain::assets::{AssetType, ShareScope};
use crate::domain::event::EventFormat;
use crate::domain::exports::{ExportKind, ExportScope, ExportStatus};
use crate::domain::leaks::{LeakAction, LeakedKeyAction};
use crate::domain::lifetime::LifetimePolicy;
use crate::domain::notices::NoticeDays;
use crate::domain::scim::UserProfile;
use crate::domain::sinks::{SinkKind, SinkState};
use crate::domain::{KeyType, MemberStatus, Role, TenantStatus};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    pub max_lifetime_days: LifetimePolicy,
    pub siem_tier2_enabled: bool,
    pub policy_updated_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// Events older than this many days move to archive segments; None: kept.
    pub audit_retention_days: Option<i32>,
    /// What happens to a key reported leaked in public.
    pub leaked_key_action: LeakedKeyAction,
    /// Days before a key's expiry at which the tenant is told (empty: no notices).
    pub key_expiry_notice_days: NoticeDays,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = members)]
pub struct Member {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
    pub status: MemberStatus,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// SCIM profile attributes (displayName, the enterprise extension, …).
    pub profile: UserProfile,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub key_type: KeyType,
    pub label: String,
    pub secret_hash: String,
    pub hint: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoke_reason: Option<String>,
    pub superseded_at: Option<NaiveDateTime>,
    pub rotated_from: Option<String>,
    pub rotated_to: Option<String>,
    pub chain_id: String,
    pub ip_allowlist: crate::domain::allowlist::IpAllowlist,
    pub last_used_at: Option<NaiveDateTime>,
    pub last_used_ip: Option<String>,
}

/// Every column of an audit event, written once: the fields its canonical
/// form hashes, in that order, then the columns of where it sits in its log:
/// the hash chain's two and the tree hashes its append stored (the schema's
/// order too). The row below, the canonical bytes (`audit::canonical`), the
/// inserts and the verifier's reader are generated from this list by handing
/// it to a macro of their own. The event's tenant is not a column: it is its
/// chain's (`tenant_of_chain`), and the canonical form hashes it after the
/// chain id.
macro_rules! with_audit_event_columns {
    ($then:ident) => {
        $then! {
            hashed {
                event_id: crate::domain::event::EventId,
                chain_id: String,
                seq: i64,
                occurred_at: NaiveDateTime,
                operation: String,
                outcome: crate::domain::event::Outcome,
                reason: Option<String>,
                actor_type: crate::domain::event::ActorType,
                actor_id: Option<String>,
                key_id: Option<String>,
                key_type: Option<crate::domain::KeyType>,
                key_hint: Option<String>,
                request_id: String,
                client_ip: Option<String>,
                user_agent: Option<String>,
                status_code: i32,
                metadata: String,
                payload: Option<String>,
            }
            chain {
                prev_hash: crate::crypto::ChainHash,
                hash: crate::crypto::ChainHash,
                tree_hashes: Option<Vec<u8>>,
            }
        }
    };
}
pub(crate) use with_audit_event_columns;

macro_rules! audit_row {
    (hashed { $($h:ident: $ht:ty,)* } chain { $($c:ident: $ct:ty,)* }) => {
        /// An audit event as stored.
        #[derive(Debug, Clone, Queryable, Insertable)]
        #[diesel(table_name = audit_events)]
        // NULL rather than DEFAULT for None: the INSERT's text is then the same for
        // every event, so SQLite prepares it once (the writer's hot path).
        #[diesel(treat_none_as_default_value = false)]
        pub struct AuditRow {
            $(pub $h: $ht,)*
            $(pub $c: $ct,)*
        }

        /// An audit event as stored, borrowed: its text and bytes where a
        /// reader left them (the verifier reads millions of events without
        /// making a `String` of each column).
        #[derive(Debug, Clone, Copy)]
        pub struct AuditRowRef<'a> {
            $(pub $h: <$ht as ColumnRef>::Ref<'a>,)*
            $(pub $c: <$ct as ColumnRef>::Ref<'a>,)*
        }

        impl AuditRow {
            pub fn as_ref(&self) -> AuditRowRef<'_> {
                AuditRowRef { $($h: self.$h.column_ref(),)* $($c: self.$c.column_ref(),)* }
            }

            /// The event's tenant: its chain's (None on the system chain).
            pub fn tenant_id(&self) -> Option<&str> {
                crate::domain::event::tenant_of_chain(&self.chain_id)
            }
        }

        impl AuditRowRef<'_> {
            /// The event's tenant: its chain's (None on the system chain).
            pub fn tenant_id(&self) -> Option<&str> {
                crate::domain::event::tenant_of_chain(self.chain_id)
            }
        }

        /// The columns of an audit event, in order.
        pub const AUDIT_EVENT_COLUMNS: &[&str] = &[$(stringify!($h),)* $(stringify!($c),)*];
    };
}
with_audit_event_columns!(audit_row);

#[cfg(test)]
impl AuditRow {
    /// An event for tests: `text` in the caller-controlled fields, `optional`
    /// in every nullable one, the outcome alternating with `seq`.
    pub(crate) fn sample(seq: i64, occurred_at: NaiveDateTime, text: &str, optional: Option<&str>) -> AuditRow {
        use crate::domain::event::{ActorType, EventId, Outcome};
        let optional = optional.map(str::to_string);
        AuditRow {
            event_id: EventId::parse(&format!("01900000-0000-7000-8000-{seq:012}")).expect("a UUID"),
            chain_id: "t_1".into(),
            seq,
            occurred_at,
            operation: crate::domain::authz::Op::AuthWhoami.name().into(),
            outcome: if seq % 2 == 0 { Outcome::Allowed } else { Outcome::Denied },
            reason: optional.clone(),
            actor_type: ActorType::ApiKey,
            actor_id: optional.clone(),
            key_id: optional.clone(),
            key_type: optional.as_ref().map(|_| KeyType::Siem),
            key_hint: optional.clone(),
            request_id: format!("req_{seq}"),
            client_ip: optional.clone(),
            user_agent: Some(text.into()),
            status_code: 401,
            metadata: format!("{{\"note\":{}}}", serde_json::to_string(text).expect("a string")),
            payload: optional,
            prev_hash: crate::crypto::ChainHash::GENESIS,
            hash: crate::crypto::chain_hash(&crate::crypto::ChainHash::GENESIS, text.as_bytes()),
            tree_hashes: (seq % 3 != 0).then(|| vec![seq as u8; 64]),
        }
    }
}

/// A column's value, borrowed: text as `&str`, bytes as `&[u8]`, the rest copied.
pub trait ColumnRef {
    type Ref<'a>: Copy + std::fmt::Debug
    where
        Self: 'a;
    fn column_ref(&self) -> Self::Ref<'_>;
}

impl ColumnRef for String {
    type Ref<'a> = &'a str;
    fn column_ref(&self) -> &str {
        self
    }
}

impl ColumnRef for Option<String> {
    type Ref<'a> = Option<&'a str>;
    fn column_ref(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl ColumnRef for Option<Vec<u8>> {
    type Ref<'a> = Option<&'a [u8]>;
    fn column_ref(&self) -> Option<&[u8]> {
        self.as_deref()
    }
}

macro_rules! copied_column_ref {
    ($($t:ty),*) => {$(
        impl ColumnRef for $t {
            type Ref<'a> = $t;
            fn column_ref(&self) -> $t {
                *self
            }
        }
    )*};
}
/// The audit event's column types that are copied, not borrowed, handed to `$then`.
macro_rules! with_copied_column_types {
    ($then:ident) => {
        $then!(
            i32,
            i64,
            chrono::NaiveDateTime,
            crate::domain::event::EventId,
            crate::domain::event::Outcome,
            crate::domain::event::ActorType,
            Option<crate::domain::KeyType>,
            crate::crypto::ChainHash
        );
    };
}
pub(crate) use with_copied_column_types;
with_copied_column_types!(copied_column_ref);

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = assets)]
pub struct Asset {
    pub uid: String,
    pub tenant_id: String,
    pub asset_type: AssetType,
    pub asset_id: String,
    pub asset_name: String,
    pub owner_id: String,
    pub session_id: Option<String>,
    pub shared_at: NaiveDateTime,
    pub permission: ShareScope,
    pub asset_exists: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = legal_holds)]
pub struct LegalHold {
    pub uid: String,
    pub tenant_id: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub released_at: Option<NaiveDateTime>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = exports)]
pub struct Export {
    pub uid: String,
    pub tenant_id: String,
    pub kind: ExportKind,
    pub status: ExportStatus,
    pub requested_by: String,
    pub member_id: Option<String>,
    pub scope: Option<ExportScope>,
    pub include_files: bool,
    pub include_payload: bool,
    pub start_time: Option<NaiveDateTime>,
    pub end_time: Option<NaiveDateTime>,
    pub reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub attempts: i32,
    pub error: Option<String>,
    pub file_name: Option<String>,
    pub file_size: Option<i64>,
    pub file_sha256: Option<String>,
    /// How a compliance export writes its events (e-Discovery: always keyward's).
    pub format: EventFormat,
}

pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// A stored time as the API shows it: RFC 3339, UTC, whole seconds.
pub fn api_time(t: NaiveDateTime) -> String {
    rfc3339(t, chrono::SecondsFormat::Secs)
}

/// `2026-01-02T03:04:05Z` (`Secs`) or `2026-01-02T03:04:05.123456Z` (`Micros`):
/// what `to_rfc3339_opts(…, true)` prints, without its format parser, which
/// dominated the cost of long lists.
pub fn rfc3339(t: NaiveDateTime, precision: chrono::SecondsFormat) -> String {
    use chrono::SecondsFormat;
    let text = match (precision, rfc3339_micros(t)) {
        (SecondsFormat::Micros, Some(text)) => text.to_vec(),
        (SecondsFormat::Secs, Some(text)) => [&text[..19], b"Z"].concat(),
        // Years outside 0..=9999, leap seconds (nanoseconds past 1e9) and other precisions: chrono's own path.
        _ => return to_utc(t).to_rfc3339_opts(precision, true),
    };
    String::from_utf8(text).expect("ASCII digits")
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (what chrono's `to_rfc3339_opts(Micros, true)`
/// prints), written digit by digit; None for a year outside 0..=9999 or a leap second.
pub fn rfc3339_micros(t: NaiveDateTime) -> Option<[u8; 27]> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    if t.nanosecond() >= 1_000_000_000 {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 6, t.nanosecond() / 1000);
    Some(out)
}

pub fn to_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// Now, truncated to the microsecond both databases store, so what we hash
/// and compare in memory equals what we read back.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    #[test]
    fn rfc3339_prints_what_chrono_prints() {
        let times = [
            "2026-11-22 14:07:10.123456",
            "2026-01-01 00:00:00",
            "1999-12-31 23:59:59.999999",
            "0001-01-01 00:00:00.000001",
            "9999-12-31 23:59:59",
        ];
        for at in times {
            let t = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            for precision in [SecondsFormat::Secs, SecondsFormat::Micros, SecondsFormat::Millis] {
                assert_eq!(rfc3339(t, precision), to_utc(t).to_rfc3339_opts(precision, true), "{at} {precision:?}");
            }
        }
        // A leap second and a year past 9999 take chrono's own path.
        let leap =
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_micro_opt(23, 59, 59, 1_500_000).unwrap();
        assert_eq!(rfc3339(leap, SecondsFormat::Micros), to_utc(leap).to_rfc3339_opts(SecondsFormat::Micros, true));
        let far = chrono::NaiveDate::from_ymd_opt(10000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        assert_eq!(rfc3339(far, SecondsFormat::Secs), to_utc(far).to_rfc3339_opts(SecondsFormat::Secs, true));
    }
}

/// A key reported leaked in public, and what keyward did.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = key_leaks)]
pub struct KeyLeak {
    pub key_id: String,
    pub tenant_id: String,
    pub reported_at: NaiveDateTime,
    pub url: Option<String>,
    pub source: Option<String>,
    pub action: LeakAction,
}

/// A SIEM sink: where a tenant's audit events are pushed, and how far they got.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = siem_sinks)]
pub struct SiemSink {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    pub format: EventFormat,
    /// JSON arrays (see `domain::sinks::SinkFilter`); None: every one.
    pub filter_operations: Option<String>,
    pub filter_outcomes: Option<String>,
    /// The webhook secret or HEC token, sealed (`crypto::SecretSealer`, the sink id as AAD).
    pub secret_sealed: Vec<u8>,
    pub state: SinkState,
    /// The last seq of the tenant's chain delivered or skipped.
    pub delivered_through: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub failing_since: Option<NaiveDateTime>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub consecutive_failures: i32,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}
