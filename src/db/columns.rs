//! Domain values as `Text` columns, on every backend `DbConn` speaks.
//!
//! The domain types know nothing of diesel; `text_column!` implements diesel's
//! column traits for them here (they are this crate's types, so the orphan
//! rule allows it): `AsExpression` (inserts, updates, filters), `ToSql` for
//! SQLite, PostgreSQL and the `MultiBackend` of `DbConn`, and `FromSql` and
//! `Queryable` for any backend that reads text. Each value is stored as the
//! exact text it was stored as while the rows held `String`s, so no migration
//! is needed and existing rows read back. A stored text this build does not
//! know fails the read with a deserialization error naming it (an internal
//! error, logged), never a panic and never a silent default.

use super::MultiBackend;
use crate::crypto::ChainHash;
use crate::domain::allowlist::IpAllowlist;
use crate::domain::assets::{AssetType, ShareScope};
use crate::domain::event::{ActorType, EventFormat, EventId, Outcome};
use crate::domain::exports::{ExportKind, ExportScope, ExportStatus};
use crate::domain::leaks::{LeakAction, LeakedKeyAction};
use crate::domain::lifetime::LifetimePolicy;
use crate::domain::notices::{NoticeDays, NoticeKind};
use crate::domain::scim::UserProfile;
use crate::domain::sinks::{SinkKind, SinkState};
use crate::domain::verification::RunState;
use crate::domain::{KeyType, MemberStatus, Role, TenantStatus};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output};
use diesel::sqlite::Sqlite;
use std::borrow::Cow;
use std::io::Write;

/// How a domain value is written to its column and read back.
trait StoredText: Sized {
    /// What the value is, for a read error.
    const WHAT: &'static str;

    fn to_text(&self) -> Cow<'static, str>;

    fn from_text(text: &str) -> Option<Self>;
}

fn decode<T: StoredText>(text: String) -> deserialize::Result<T> {
    T::from_text(&text).ok_or_else(|| format!("unknown {} stored: {text:?}", T::WHAT).into())
}

fn to_pg<T: StoredText>(value: &T, out: &mut Output<'_, '_, Pg>) -> serialize::Result {
    out.write_all(value.to_text().as_bytes())?;
    Ok(IsNull::No)
}

fn to_sqlite<T: StoredText>(value: &T, out: &mut Output<'_, '_, Sqlite>) -> serialize::Result {
    match value.to_text() {
        Cow::Borrowed(text) => out.set_value(text),
        Cow::Owned(text) => out.set_value(text),
    }
    Ok(IsNull::No)
}

/// What `text_column!` and `binary_column!` share: a value read as itself
/// (`Queryable`), and bound through `DbConn`'s `MultiBackend` by handing it
/// on to the inner backend's `ToSql`.
macro_rules! column_value {
    ($ty:ty) => {
        impl<DB, ST> diesel::deserialize::Queryable<ST, DB> for $ty
        where
            DB: Backend,
            ST: diesel::sql_types::SingleValue,
            Self: FromSql<ST, DB>,
        {
            type Row = Self;

            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }
    };
    (@multi $ty:ty, $sql_type:path) => {
        impl diesel::serialize::ToSql<$sql_type, MultiBackend> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value(($sql_type, self));
                Ok(IsNull::No)
            }
        }
    };
}

/// `text_column!(Type, "what it is", |value| text, decode)`: `text` is the
/// stored text (`&'static str` or `String`), `decode` a `fn(&str) -> Option<Type>`.
macro_rules! text_column {
    ($ty:ty, $what:literal, |$value:ident| $encode:expr, $decode:expr) => {
        impl StoredText for $ty {
            const WHAT: &'static str = $what;

            fn to_text(&self) -> Cow<'static, str> {
                let $value = self;
                Cow::from($encode)
            }

            fn from_text(text: &str) -> Option<Self> {
                $decode(text)
            }
        }

        impl<DB: Backend> FromSql<diesel::sql_types::Text, DB> for $ty
        where
            String: FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                decode(String::from_sql(bytes)?)
            }
        }

        column_value!($ty);

        impl diesel::serialize::ToSql<diesel::sql_types::Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                to_pg(self, out)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, Sqlite> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                to_sqlite(self, out)
            }
        }

        column_value!(@multi $ty, diesel::sql_types::Text);

        // Bound as its stored text: diesel's own `Bound` is not public API.
        text_column!(@expression $ty, diesel::sql_types::Text);
        text_column!(@expression $ty, diesel::sql_types::Nullable<diesel::sql_types::Text>);
    };
    (@expression $ty:ty, $sql_type:ty) => {
        impl diesel::expression::AsExpression<$sql_type> for $ty {
            type Expression = diesel::dsl::AsExprOf<Cow<'static, str>, $sql_type>;

            fn as_expression(self) -> Self::Expression {
                diesel::expression::AsExpression::<$sql_type>::as_expression(self.to_text())
            }
        }

        impl<'a> diesel::expression::AsExpression<$sql_type> for &'a $ty {
            type Expression = diesel::dsl::AsExprOf<Cow<'static, str>, $sql_type>;

            fn as_expression(self) -> Self::Expression {
                diesel::expression::AsExpression::<$sql_type>::as_expression(self.to_text())
            }
        }
    };
}

text_column!(KeyType, "key type", |t| t.wire_name(), KeyType::from_wire);
text_column!(TenantStatus, "tenant status", |s| s.as_str(), TenantStatus::parse);
text_column!(Role, "member role", |r| r.as_str(), Role::parse);
text_column!(MemberStatus, "member status", |s| s.as_str(), MemberStatus::parse);
text_column!(Outcome, "event outcome", |o| o.as_str(), Outcome::parse);
text_column!(ActorType, "actor type", |a| a.as_str(), ActorType::parse);
text_column!(AssetType, "asset type", |t| t.as_str(), AssetType::parse);
text_column!(ShareScope, "share scope", |p| p.as_str(), ShareScope::parse);
text_column!(ExportKind, "export kind", |k| k.as_str(), ExportKind::parse);
text_column!(EventFormat, "event format", |f| f.as_str(), EventFormat::parse);
text_column!(LeakedKeyAction, "leaked key action", |a| a.as_str(), LeakedKeyAction::parse);
text_column!(LeakAction, "leak action", |a| a.as_str(), LeakAction::parse);
// A JSON array of whole days, largest first: `[14,1]`.
text_column!(NoticeDays, "key expiry notice days", |d| d.to_json(), NoticeDays::from_json);
text_column!(NoticeKind, "key notice kind", |k| k.as_string(), NoticeKind::parse);
text_column!(SinkKind, "sink kind", |k| k.as_str(), SinkKind::parse);
text_column!(SinkState, "sink state", |s| s.as_str(), SinkState::parse);
text_column!(ExportStatus, "export status", |s| s.as_str(), ExportStatus::parse);
text_column!(ExportScope, "export scope", |s| s.as_str(), ExportScope::parse);
text_column!(RunState, "verification run state", |s| s.as_str(), RunState::parse);
// A JSON array of CIDR blocks; a damaged one fails the read (the key is refused, not opened to every address).
text_column!(IpAllowlist, "IP allowlist", |l| l.to_json(), IpAllowlist::from_json);
// A member's SCIM profile attributes as one JSON object; a damaged one fails the read.
text_column!(UserProfile, "SCIM profile", |p| p.to_json(), UserProfile::from_json);
// The policy's JSON, as the API shows it: `{"KEY_TYPE_SIEM":30}`.
text_column!(
    LifetimePolicy,
    "lifetime policy",
    |p| serde_json::to_string(p).expect("a map of enum names to numbers"),
    |text| serde_json::from_str(text).ok()
);

/// How an id or a hash is written to its `Binary` column and read back.
trait StoredBytes: Sized {
    fn bytes(&self) -> &[u8];

    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

/// `binary_column!(Type, "what it is")` for a `StoredBytes` type: the same
/// traits as `text_column!`, over `Binary` (BLOB on SQLite, bytea on PostgreSQL).
macro_rules! binary_column {
    ($ty:ty, $what:literal, |$value:ident| $encode:expr, $decode:expr) => {
        impl StoredBytes for $ty {
            fn bytes(&self) -> &[u8] {
                let $value = self;
                $encode
            }

            fn from_bytes(bytes: &[u8]) -> Option<Self> {
                $decode(bytes)
            }
        }

        impl<DB: Backend> FromSql<diesel::sql_types::Binary, DB> for $ty
        where
            Vec<u8>: FromSql<diesel::sql_types::Binary, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let bytes = Vec::<u8>::from_sql(bytes)?;
                <$ty as StoredBytes>::from_bytes(&bytes)
                    .ok_or_else(|| format!("not a {} stored: {} bytes", $what, bytes.len()).into())
            }
        }

        column_value!($ty);

        impl diesel::serialize::ToSql<diesel::sql_types::Binary, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.bytes())?;
                Ok(IsNull::No)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Binary, Sqlite> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(self.bytes());
                Ok(IsNull::No)
            }
        }

        column_value!(@multi $ty, diesel::sql_types::Binary);

        impl diesel::expression::AsExpression<diesel::sql_types::Binary> for $ty {
            type Expression = diesel::dsl::AsExprOf<Vec<u8>, diesel::sql_types::Binary>;

            fn as_expression(self) -> Self::Expression {
                diesel::expression::AsExpression::<diesel::sql_types::Binary>::as_expression(self.bytes().to_vec())
            }
        }

        impl<'a> diesel::expression::AsExpression<diesel::sql_types::Binary> for &'a $ty {
            type Expression = diesel::dsl::AsExprOf<Vec<u8>, diesel::sql_types::Binary>;

            fn as_expression(self) -> Self::Expression {
                diesel::expression::AsExpression::<diesel::sql_types::Binary>::as_expression(self.bytes().to_vec())
            }
        }
    };
}

binary_column!(EventId, "event id", |id| id.as_bytes(), EventId::from_bytes);
binary_column!(ChainHash, "chain hash", |h| h.as_bytes(), ChainHash::from_bytes);

/// A time as diesel writes a `Timestamp` on SQLite (chrono's `%F %T%.f`:
/// no fraction, or 3, 6 or 9 digits as needed), written without parsing a
/// format string: the audit writer stores one per event. Years outside
/// 0..=9999 and leap seconds take chrono's own formatting.
pub struct SqliteTime {
    text: [u8; 40],
    len: usize,
}

impl SqliteTime {
    pub fn new(t: &chrono::NaiveDateTime) -> SqliteTime {
        use chrono::{Datelike, Timelike};
        let mut out = SqliteTime { text: [0; 40], len: 0 };
        let (year, nanos) = (t.year(), t.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            let text = t.format("%F %T%.f").to_string();
            out.text[..text.len()].copy_from_slice(text.as_bytes());
            out.len = text.len();
            return out;
        }
        let fields = [
            (year as u32, 4, b'-'),
            (t.month(), 2, b'-'),
            (t.day(), 2, b' '),
            (t.hour(), 2, b':'),
            (t.minute(), 2, b':'),
        ];
        for (value, digits, then) in fields {
            out.digits(value, digits);
            out.push(then);
        }
        out.digits(t.second(), 2);
        let fraction = match nanos {
            0 => None,
            n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
            n if n % 1_000 == 0 => Some((n / 1_000, 6)),
            n => Some((n, 9)),
        };
        if let Some((value, digits)) = fraction {
            out.push(b'.');
            out.digits(value, digits);
        }
        out
    }

    fn push(&mut self, byte: u8) {
        self.text[self.len] = byte;
        self.len += 1;
    }

    /// `value`'s last `count` decimal digits, zero-padded.
    fn digits(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.push(b'0' + (value / 10u32.pow(i) % 10) as u8);
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).expect("ASCII digits and separators")
    }
}

impl std::fmt::Debug for SqliteTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl diesel::serialize::ToSql<diesel::sql_types::Timestamp, Sqlite> for SqliteTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.as_str());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use crate::db::models::{now, to_naive, ApiKey, Asset, Export, Member, Tenant};
    use crate::db::schema::{api_keys, assets, exports, members, tenants};
    use crate::db::{establish, run_migrations, store, DbConn, DbUrl};
    use crate::domain::assets::{AssetType, ShareScope};
    use crate::domain::event::EventFormat;
    use crate::domain::exports::{ExportKind, ExportScope, ExportStatus};
    use crate::domain::lifetime::LifetimePolicy;
    use crate::domain::scim::UserProfile;
    use crate::domain::{KeyType, MemberStatus, Role, TenantStatus};
    use diesel::prelude::*;

    fn conn() -> (tempfile::TempDir, DbConn) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = establish(&DbUrl::Sqlite(dir.path().join("columns.db"))).unwrap();
        run_migrations(&mut conn).unwrap();
        (dir, conn)
    }

    fn tenant(status: TenantStatus, policy: LifetimePolicy) -> Tenant {
        Tenant {
            id: "t1".into(),
            name: "Acme".into(),
            status,
            max_lifetime_days: policy,
            siem_tier2_enabled: false,
            policy_updated_at: None,
            created_at: to_naive(now()),
            audit_retention_days: None,
            leaked_key_action: Default::default(),
            key_expiry_notice_days: Default::default(),
        }
    }

    #[test]
    fn a_time_is_written_as_diesel_writes_it_on_sqlite() {
        use chrono::{NaiveDate, NaiveDateTime};
        let mut times: Vec<NaiveDateTime> = Vec::new();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let year = (next() % 10_200) as i32 * if next() % 50 == 0 { 25 } else { 1 }
                - if next() % 50 == 0 { 262_000 } else { 0 };
            let day = NaiveDate::from_ymd_opt(year, 1, 1).map(|d| d + chrono::Days::new(next() % 365));
            let nanos = match next() % 5 {
                0 => 0,
                1 => (next() % 1000) as u32 * 1_000_000,
                2 => (next() % 1_000_000) as u32 * 1000,
                3 => (next() % 1_000_000_000) as u32,
                _ => 1_000_000_000 + (next() % 1_000_000_000) as u32,
            };
            let secs = (next() % 86_400) as u32;
            if let Some(t) = day.and_then(|d| d.and_hms_nano_opt(secs / 3600, secs / 60 % 60, secs % 60, nanos)) {
                times.push(t);
            }
        }
        times.push(to_naive(now()));
        times.push(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().and_hms_nano_opt(23, 59, 59, 999_999_999).unwrap());
        times.push(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().and_hms_opt(0, 0, 0).unwrap());
        assert!(times.len() > 1500 && times.iter().any(|t| t.format("%Y").to_string().len() != 4));
        for t in &times {
            assert_eq!(super::SqliteTime::new(t).as_str(), t.format("%F %T%.f").to_string(), "{t:?}");
        }
    }

    #[test]
    fn values_are_stored_as_the_text_they_always_were_and_read_back() {
        let (_dir, mut c) = conn();
        let policy = LifetimePolicy::from([(KeyType::Siem, 30), (KeyType::TeamUserMgmt, 365)]);
        diesel::insert_into(tenants::table)
            .values(&tenant(TenantStatus::Suspended, policy.clone()))
            .execute(&mut c)
            .unwrap();
        let stored: (String, String) =
            tenants::table.select((tenants::status, tenants::max_lifetime_days)).first(&mut c).unwrap();
        assert_eq!(stored, ("SUSPENDED".into(), r#"{"KEY_TYPE_SIEM":30,"KEY_TYPE_TEAM_USER_MGMT":365}"#.into()));
        let found: Tenant = tenants::table.filter(tenants::status.eq(TenantStatus::Suspended)).first(&mut c).unwrap();
        assert_eq!((found.status, found.max_lifetime_days), (TenantStatus::Suspended, policy));
        let active: Option<Tenant> =
            tenants::table.filter(tenants::status.eq(&TenantStatus::Active)).first(&mut c).optional().unwrap();
        assert!(active.is_none());

        let key = ApiKey {
            id: "k1".into(),
            tenant_id: "t1".into(),
            key_type: KeyType::TeamAssetAudit,
            label: "audit".into(),
            secret_hash: "h".into(),
            hint: "x".into(),
            created_by: "m1".into(),
            created_at: to_naive(now()),
            expires_at: None,
            revoked_at: None,
            revoke_reason: None,
            superseded_at: None,
            rotated_from: None,
            rotated_to: None,
            chain_id: "k1".into(),
            ip_allowlist: Default::default(),
            last_used_at: None,
            last_used_ip: None,
        };
        diesel::insert_into(api_keys::table).values(&key).execute(&mut c).unwrap();
        let stored: String = api_keys::table.select(api_keys::key_type).first(&mut c).unwrap();
        assert_eq!(stored, "KEY_TYPE_TEAM_ASSET_AUDIT");
        let found: ApiKey =
            api_keys::table.filter(api_keys::key_type.eq(KeyType::TeamAssetAudit)).first(&mut c).unwrap();
        assert_eq!(found.key_type, KeyType::TeamAssetAudit);
    }

    fn asset(uid: &str, asset_type: AssetType, permission: ShareScope) -> Asset {
        let at = to_naive(now());
        Asset {
            uid: uid.into(),
            tenant_id: "t1".into(),
            asset_type,
            asset_id: format!("{uid}-source"),
            asset_name: "plan".into(),
            owner_id: "m1".into(),
            session_id: None,
            shared_at: at,
            permission,
            asset_exists: true,
            created_at: at,
            updated_at: at,
        }
    }

    fn export(uid: &str, kind: ExportKind, scope: Option<ExportScope>) -> Export {
        let at = to_naive(now()) - chrono::Duration::seconds(60);
        Export {
            uid: uid.into(),
            tenant_id: "t1".into(),
            kind,
            status: ExportStatus::Pending,
            requested_by: "k1".into(),
            member_id: None,
            scope,
            include_files: false,
            include_payload: false,
            start_time: None,
            end_time: None,
            reason: None,
            created_at: at,
            updated_at: at,
            started_at: None,
            completed_at: None,
            attempts: 0,
            error: None,
            file_name: None,
            file_size: None,
            file_sha256: None,
            format: EventFormat::Ocsf,
        }
    }

    #[test]
    fn assets_and_exports_are_stored_as_the_text_they_always_were_and_read_back() {
        let (_dir, mut c) = conn();
        diesel::insert_into(tenants::table)
            .values(&tenant(TenantStatus::Active, LifetimePolicy::new()))
            .execute(&mut c)
            .unwrap();
        store::insert_asset(&mut c, &asset("a1", AssetType::Slides, ShareScope::TeamOnly)).unwrap();
        store::insert_asset(&mut c, &asset("a2", AssetType::File, ShareScope::Public)).unwrap();
        let stored: (String, String) = assets::table
            .filter(assets::uid.eq("a1"))
            .select((assets::asset_type, assets::permission))
            .first(&mut c)
            .unwrap();
        assert_eq!(stored, ("ASSET_TYPE_SLIDES".into(), "SHARE_SCOPE_TEAM_ONLY".into()));
        let found = store::find_asset_by_source(&mut c, "t1", AssetType::Slides, "a1-source").unwrap().unwrap();
        assert_eq!(
            (found.uid.as_str(), found.asset_type, found.permission),
            ("a1", AssetType::Slides, ShareScope::TeamOnly)
        );
        let filter = store::AssetFilter { permission: Some(ShareScope::Public), ..Default::default() };
        let (rows, total) = store::list_assets(&mut c, "t1", &filter, 0, 10).unwrap();
        assert_eq!((rows[0].uid.as_str(), total), ("a2", 1));

        store::insert_export(&mut c, &export("e1", ExportKind::Ediscovery, Some(ExportScope::Full))).unwrap();
        store::insert_export(&mut c, &export("e2", ExportKind::Compliance, None)).unwrap();
        let stored: Vec<(String, String, Option<String>)> = exports::table
            .order(exports::uid.asc())
            .select((exports::kind, exports::status, exports::scope))
            .load(&mut c)
            .unwrap();
        assert_eq!(
            stored,
            [
                ("EDISCOVERY".into(), "EXPORT_STATUS_PENDING".into(), Some("ENTERPRISE_EXPORT_SCOPE_FULL".into())),
                ("COMPLIANCE".into(), "EXPORT_STATUS_PENDING".into(), None),
            ]
        );
        let found = store::find_export(&mut c, "t1", ExportKind::Ediscovery, "e1").unwrap().unwrap();
        assert_eq!(
            (found.kind, found.status, found.scope),
            (ExportKind::Ediscovery, ExportStatus::Pending, Some(ExportScope::Full))
        );
        assert!(store::find_export(&mut c, "t1", ExportKind::Compliance, "e1").unwrap().is_none());
        assert!(store::claim_export(&mut c, "e2", to_naive(now())).unwrap());
        let claimed = store::find_export_by_uid(&mut c, ExportKind::Compliance, "e2").unwrap().unwrap();
        assert_eq!((claimed.status, claimed.scope), (ExportStatus::Processing, None));
        let stored: String =
            exports::table.filter(exports::uid.eq("e2")).select(exports::status).first(&mut c).unwrap();
        assert_eq!(stored, "EXPORT_STATUS_PROCESSING");
    }

    #[test]
    fn the_runner_leaves_jobs_of_a_kind_or_scope_it_does_not_know() {
        let (_dir, mut c) = conn();
        diesel::insert_into(tenants::table)
            .values(&tenant(TenantStatus::Active, LifetimePolicy::new()))
            .execute(&mut c)
            .unwrap();
        for uid in ["e1", "e2", "e3"] {
            store::insert_export(&mut c, &export(uid, ExportKind::Ediscovery, Some(ExportScope::Metadata))).unwrap();
        }
        diesel::sql_query("UPDATE exports SET kind = 'ARCHIVE' WHERE uid = 'e1'").execute(&mut c).unwrap();
        diesel::sql_query("UPDATE exports SET scope = 'ENTERPRISE_EXPORT_SCOPE_SOME' WHERE uid = 'e2'")
            .execute(&mut c)
            .unwrap();
        let runnable = store::runnable_exports(&mut c, to_naive(now()), 10).unwrap();
        assert_eq!(runnable.iter().map(|e| e.uid.as_str()).collect::<Vec<_>>(), ["e3"]);
        diesel::sql_query("UPDATE exports SET status = 'EXPORT_STATUS_PROCESSING', started_at = created_at")
            .execute(&mut c)
            .unwrap();
        let stale = store::stale_exports(&mut c, to_naive(now()), 10).unwrap();
        assert_eq!(stale.iter().map(|e| e.uid.as_str()).collect::<Vec<_>>(), ["e3"]);
        // Read by itself, such a row is a read error naming the text.
        let err = exports::table.filter(exports::uid.eq("e1")).first::<Export>(&mut c).unwrap_err();
        let diesel::result::Error::DeserializationError(e) = &err else { panic!("{err}") };
        let cause = e.source().map(ToString::to_string).unwrap_or_default();
        assert!(e.to_string().contains("kind") && cause.contains("\"ARCHIVE\""), "{e}: {cause}");
    }

    fn member(role: Role, status: MemberStatus) -> Member {
        Member {
            id: "m1".into(),
            tenant_id: "t1".into(),
            email: "ann@acme.example".into(),
            role,
            status,
            first_name: None,
            last_name: None,
            user_name: None,
            external_id: None,
            created_at: to_naive(now()),
            updated_at: to_naive(now()),
            profile: UserProfile::default(),
        }
    }

    #[test]
    fn member_roles_and_statuses_are_stored_as_their_names() {
        let (_dir, mut c) = conn();
        diesel::insert_into(tenants::table)
            .values(&tenant(TenantStatus::Active, LifetimePolicy::new()))
            .execute(&mut c)
            .unwrap();
        diesel::insert_into(members::table)
            .values(&member(Role::Auditor, MemberStatus::Inactive))
            .execute(&mut c)
            .unwrap();
        let stored: (String, String) = members::table.select((members::role, members::status)).first(&mut c).unwrap();
        assert_eq!(stored, ("AUDITOR".into(), "USER_STATUS_INACTIVE".into()));
        let found: Member = members::table
            .filter(members::role.eq(Role::Auditor))
            .filter(members::status.ne(MemberStatus::Removed))
            .first(&mut c)
            .unwrap();
        assert_eq!((found.role, found.status), (Role::Auditor, MemberStatus::Inactive));

        for (column, text) in [("role", "owner"), ("status", "USER_STATUS_DELETED")] {
            diesel::sql_query(format!("UPDATE members SET {column} = '{text}'")).execute(&mut c).unwrap();
            let err = members::table.first::<Member>(&mut c).unwrap_err();
            let diesel::result::Error::DeserializationError(e) = &err else { panic!("{column}: {err}") };
            let cause = e.source().map(ToString::to_string).unwrap_or_default();
            assert!(e.to_string().contains(column) && cause.contains(&format!("{text:?}")), "{column}: {e}: {cause}");
            diesel::sql_query("UPDATE members SET role = 'AUDITOR', status = 'USER_STATUS_INACTIVE'")
                .execute(&mut c)
                .unwrap();
        }
    }

    #[test]
    fn an_unknown_stored_text_is_a_read_error() {
        let (_dir, mut c) = conn();
        diesel::insert_into(tenants::table)
            .values(&tenant(TenantStatus::Active, LifetimePolicy::new()))
            .execute(&mut c)
            .unwrap();
        for (column, text) in [("status", "CLOSED"), ("max_lifetime_days", r#"{"KEY_TYPE_ROOT":1}"#)] {
            diesel::sql_query(format!("UPDATE tenants SET {column} = '{text}'")).execute(&mut c).unwrap();
            let err = tenants::table.first::<Tenant>(&mut c).unwrap_err();
            let diesel::result::Error::DeserializationError(e) = &err else { panic!("{column}: {err}") };
            // diesel names the field; its source is ours, naming the text.
            let cause = e.source().map(ToString::to_string).unwrap_or_default();
            assert!(e.to_string().contains(column) && cause.contains(&format!("{text:?}")), "{column}: {e}: {cause}");
            diesel::sql_query("UPDATE tenants SET status = 'ACTIVE', max_lifetime_days = '{}'")
                .execute(&mut c)
                .unwrap();
        }
    }
}
