//! Every query keyward makes. Each one that touches tenant data takes the
//! tenant id and filters on it: tenant isolation is enforced here, once.

use super::models::{ApiKey, Asset, AuditRow, Export, LegalHold, Member, Tenant};
use super::schema::{
    api_keys, assets, audit_chains, audit_events, exports, key_state, legal_hold_members, legal_holds, members, tenants,
};
use super::DbConn;
use crate::crypto::GENESIS_HASH;
use crate::error::{AppError, AppResult};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::BTreeMap;

// ---------------------------------------------------------------- tenants

/// Creates a tenant with its audit chain. The caller's transaction also holds the owner.
pub fn insert_tenant(conn: &mut DbConn, tenant: &Tenant) -> AppResult<()> {
    diesel::insert_into(tenants::table).values(tenant).execute(conn)?;
    diesel::insert_into(audit_chains::table)
        .values((
            audit_chains::chain_id.eq(&tenant.id),
            audit_chains::last_seq.eq(0i64),
            audit_chains::last_hash.eq(GENESIS_HASH),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find_tenant(conn: &mut DbConn, tenant_id: &str) -> AppResult<Option<Tenant>> {
    Ok(tenants::table.find(tenant_id).first(conn).optional()?)
}

pub fn update_tenant_policy(
    conn: &mut DbConn,
    tenant_id: &str,
    max_lifetime_days: &str,
    siem_tier2_enabled: bool,
    at: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(tenants::table.find(tenant_id))
        .set((
            tenants::max_lifetime_days.eq(max_lifetime_days),
            tenants::siem_tier2_enabled.eq(siem_tier2_enabled),
            tenants::policy_updated_at.eq(Some(at)),
        ))
        .execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------- members

pub fn insert_member(conn: &mut DbConn, member: &Member) -> AppResult<()> {
    diesel::insert_into(members::table).values(member).execute(conn).map_err(|e| match AppError::from(e) {
        e if e.code == crate::error::ErrorCode::AlreadyExists => {
            AppError::already_exists("a member with this email already exists in the tenant")
        }
        e => e,
    })?;
    Ok(())
}

pub fn find_member(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<Option<Member>> {
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(members::id.eq(member_id))
        .first(conn)
        .optional()?)
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

pub fn find_member_by_email(conn: &mut DbConn, tenant_id: &str, email: &str) -> AppResult<Option<Member>> {
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(members::email.eq(email))
        .first(conn)
        .optional()?)
}

/// SCIM `userName` comparisons are case-insensitive.
pub fn find_member_by_user_name(conn: &mut DbConn, tenant_id: &str, user_name: &str) -> AppResult<Option<Member>> {
    Ok(members::table
        .filter(members::tenant_id.eq(tenant_id))
        .filter(lower(members::user_name.assume_not_null()).eq(user_name.to_lowercase()))
        .first(conn)
        .optional()?)
}

/// Rewrites a member's mutable fields.
pub fn update_member(conn: &mut DbConn, m: &Member) -> AppResult<()> {
    diesel::update(members::table.filter(members::tenant_id.eq(&m.tenant_id)).filter(members::id.eq(&m.id)))
        .set((
            members::email.eq(&m.email),
            members::role.eq(&m.role),
            members::status.eq(&m.status),
            members::first_name.eq(&m.first_name),
            members::last_name.eq(&m.last_name),
            members::user_name.eq(&m.user_name),
            members::external_id.eq(&m.external_id),
            members::updated_at.eq(m.updated_at),
        ))
        .execute(conn)
        .map_err(|e| match AppError::from(e) {
            e if e.code == crate::error::ErrorCode::AlreadyExists => {
                AppError::already_exists("a member with this email already exists in the tenant")
            }
            e => e,
        })?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct MemberFilter {
    pub status: Option<String>,
    pub role: Option<String>,
    pub email: Option<String>,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    /// Leave out removed members (SCIM serves deactivated users, not removed ones).
    pub hide_removed: bool,
}

/// A page of a tenant's members in creation order, and the total that match.
pub fn list_members(
    conn: &mut DbConn,
    tenant_id: &str,
    filter: &MemberFilter,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<Member>, i64)> {
    let build = || {
        let mut q = members::table.filter(members::tenant_id.eq(tenant_id.to_string())).into_boxed();
        if let Some(v) = &filter.status {
            q = q.filter(members::status.eq(v.clone()));
        }
        if let Some(v) = &filter.role {
            q = q.filter(members::role.eq(v.clone()));
        }
        if let Some(v) = &filter.email {
            q = q.filter(members::email.eq(v.clone()));
        }
        if let Some(v) = &filter.user_name {
            q = q.filter(lower(members::user_name.assume_not_null()).eq(v.to_lowercase()));
        }
        if let Some(v) = &filter.external_id {
            q = q.filter(members::external_id.eq(v.clone()));
        }
        if filter.hide_removed {
            q = q.filter(members::status.ne(crate::domain::MemberStatus::Removed.as_str()));
        }
        q
    };
    let total: i64 = build().count().get_result(conn)?;
    let rows = build().order((members::created_at.asc(), members::id.asc())).offset(offset).limit(limit).load(conn)?;
    Ok((rows, total))
}

// ---------------------------------------------------------------- legal holds

pub fn insert_hold(conn: &mut DbConn, hold: &LegalHold, member_ids: &[String]) -> AppResult<()> {
    diesel::insert_into(legal_holds::table).values(hold).execute(conn)?;
    for m in member_ids {
        diesel::insert_into(legal_hold_members::table)
            .values((
                legal_hold_members::hold_uid.eq(&hold.uid),
                legal_hold_members::tenant_id.eq(&hold.tenant_id),
                legal_hold_members::member_id.eq(m),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn find_hold(conn: &mut DbConn, tenant_id: &str, uid: &str) -> AppResult<Option<LegalHold>> {
    Ok(legal_holds::table
        .filter(legal_holds::tenant_id.eq(tenant_id))
        .filter(legal_holds::uid.eq(uid))
        .first(conn)
        .optional()?)
}

pub fn hold_member_ids(conn: &mut DbConn, tenant_id: &str, uid: &str) -> AppResult<Vec<String>> {
    Ok(legal_hold_members::table
        .filter(legal_hold_members::tenant_id.eq(tenant_id))
        .filter(legal_hold_members::hold_uid.eq(uid))
        .select(legal_hold_members::member_id)
        .order(legal_hold_members::member_id)
        .load(conn)?)
}

pub fn list_holds(conn: &mut DbConn, tenant_id: &str, active_only: bool) -> AppResult<Vec<LegalHold>> {
    let mut q = legal_holds::table.filter(legal_holds::tenant_id.eq(tenant_id.to_string())).into_boxed();
    if active_only {
        q = q.filter(legal_holds::released_at.is_null());
    }
    Ok(q.order((legal_holds::created_at.desc(), legal_holds::uid.desc())).load(conn)?)
}

pub fn release_hold(
    conn: &mut DbConn,
    tenant_id: &str,
    uid: &str,
    at: NaiveDateTime,
    by: &str,
    reason: Option<&str>,
) -> AppResult<()> {
    diesel::update(legal_holds::table.filter(legal_holds::tenant_id.eq(tenant_id)).filter(legal_holds::uid.eq(uid)))
        .set((
            legal_holds::released_at.eq(Some(at)),
            legal_holds::released_by.eq(Some(by)),
            legal_holds::release_reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whether an active (unreleased) hold covers the member.
pub fn member_is_held(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<bool> {
    let n: i64 = legal_hold_members::table
        .inner_join(legal_holds::table)
        .filter(legal_hold_members::tenant_id.eq(tenant_id))
        .filter(legal_hold_members::member_id.eq(member_id))
        .filter(legal_holds::released_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

// ---------------------------------------------------------------- assets

pub fn find_asset_by_source(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_type: &str,
    asset_id: &str,
) -> AppResult<Option<Asset>> {
    Ok(assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::asset_type.eq(asset_type))
        .filter(assets::asset_id.eq(asset_id))
        .first(conn)
        .optional()?)
}

pub fn find_asset(conn: &mut DbConn, tenant_id: &str, uid: &str) -> AppResult<Option<Asset>> {
    Ok(assets::table.filter(assets::tenant_id.eq(tenant_id)).filter(assets::uid.eq(uid)).first(conn).optional()?)
}

pub fn insert_asset(conn: &mut DbConn, a: &Asset) -> AppResult<()> {
    diesel::insert_into(assets::table).values(a).execute(conn)?;
    Ok(())
}

/// Rewrites an asset's mutable fields (its identity never changes).
pub fn update_asset(conn: &mut DbConn, a: &Asset) -> AppResult<()> {
    diesel::update(assets::table.filter(assets::tenant_id.eq(&a.tenant_id)).filter(assets::uid.eq(&a.uid)))
        .set((
            assets::asset_name.eq(&a.asset_name),
            assets::owner_id.eq(&a.owner_id),
            assets::session_id.eq(&a.session_id),
            assets::shared_at.eq(a.shared_at),
            assets::permission.eq(&a.permission),
            assets::asset_exists.eq(a.asset_exists),
            assets::updated_at.eq(a.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AssetFilter {
    pub asset_type: Option<String>,
    /// Prefix of the asset's name.
    pub keyword: Option<String>,
    pub owner_id: Option<String>,
    pub permission: Option<String>,
    pub start_time: Option<NaiveDateTime>,
    pub end_time: Option<NaiveDateTime>,
}

/// Escapes LIKE wildcards so a keyword is a literal prefix.
fn like_prefix(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A page of a tenant's assets, newest share first, and the total that match.
pub fn list_assets(
    conn: &mut DbConn,
    tenant_id: &str,
    f: &AssetFilter,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<Asset>, i64)> {
    let build = || {
        let mut q = assets::table.filter(assets::tenant_id.eq(tenant_id.to_string())).into_boxed();
        if let Some(v) = &f.asset_type {
            q = q.filter(assets::asset_type.eq(v.clone()));
        }
        if let Some(v) = &f.keyword {
            // Case-insensitive on both backends (SQLite's LIKE is, PostgreSQL's is not).
            q = q.filter(lower(assets::asset_name).like(like_prefix(&v.to_lowercase())).escape('\\'));
        }
        if let Some(v) = &f.owner_id {
            q = q.filter(assets::owner_id.eq(v.clone()));
        }
        if let Some(v) = &f.permission {
            q = q.filter(assets::permission.eq(v.clone()));
        }
        if let Some(v) = f.start_time {
            q = q.filter(assets::shared_at.ge(v));
        }
        if let Some(v) = f.end_time {
            q = q.filter(assets::shared_at.lt(v));
        }
        q
    };
    let total: i64 = build().count().get_result(conn)?;
    let rows = build().order((assets::shared_at.desc(), assets::uid.desc())).offset(offset).limit(limit).load(conn)?;
    Ok((rows, total))
}

/// Every asset a member owns (e-Discovery).
pub fn assets_of_owner(conn: &mut DbConn, tenant_id: &str, owner_id: &str) -> AppResult<Vec<Asset>> {
    Ok(assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(assets::owner_id.eq(owner_id))
        .order(assets::shared_at.asc())
        .load(conn)?)
}

// ---------------------------------------------------------------- exports

pub fn insert_export(conn: &mut DbConn, e: &Export) -> AppResult<()> {
    diesel::insert_into(exports::table).values(e).execute(conn)?;
    Ok(())
}

pub fn find_export(conn: &mut DbConn, tenant_id: &str, kind: &str, uid: &str) -> AppResult<Option<Export>> {
    Ok(exports::table
        .filter(exports::tenant_id.eq(tenant_id))
        .filter(exports::kind.eq(kind))
        .filter(exports::uid.eq(uid))
        .first(conn)
        .optional()?)
}

pub fn list_exports(
    conn: &mut DbConn,
    tenant_id: &str,
    kind: &str,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<Export>, i64)> {
    let total: i64 = exports::table
        .filter(exports::tenant_id.eq(tenant_id))
        .filter(exports::kind.eq(kind))
        .count()
        .get_result(conn)?;
    let rows = exports::table
        .filter(exports::tenant_id.eq(tenant_id))
        .filter(exports::kind.eq(kind))
        .order((exports::created_at.desc(), exports::uid.desc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((rows, total))
}

// ---------------------------------------------------------------- keys

pub fn insert_key(conn: &mut DbConn, key: &ApiKey) -> AppResult<()> {
    diesel::insert_into(api_keys::table).values(key).execute(conn)?;
    Ok(())
}

/// The hot-path lookup: a key by the HMAC of its secret, with its tenant.
pub fn find_key_by_hash(conn: &mut DbConn, secret_hash: &str) -> AppResult<Option<(ApiKey, Tenant)>> {
    Ok(api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::secret_hash.eq(secret_hash))
        .first::<(ApiKey, Tenant)>(conn)
        .optional()?)
}

/// The counter that moves with every change a key check reads (see the
/// `key_state` migration); the verified-key cache compares it.
pub fn key_state_version(conn: &mut DbConn) -> AppResult<i64> {
    Ok(key_state::table.find(1).select(key_state::version).first(conn)?)
}

pub fn find_key(conn: &mut DbConn, tenant_id: &str, key_id: &str) -> AppResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::id.eq(key_id))
        .first(conn)
        .optional()?)
}

/// A tenant's keys, newest first, optionally of one type and/or only (not) revoked.
pub fn tenant_keys(
    conn: &mut DbConn,
    tenant_id: &str,
    key_type: Option<&str>,
    revoked: Option<bool>,
) -> AppResult<Vec<ApiKey>> {
    let mut q = api_keys::table.filter(api_keys::tenant_id.eq(tenant_id)).into_boxed();
    if let Some(t) = key_type {
        q = q.filter(api_keys::key_type.eq(t.to_string()));
    }
    match revoked {
        Some(true) => q = q.filter(api_keys::revoked_at.is_not_null()),
        Some(false) => q = q.filter(api_keys::revoked_at.is_null()),
        None => {}
    }
    Ok(q.order((api_keys::created_at.desc(), api_keys::id.desc())).load(conn)?)
}

/// Keys that may still be live by their own clock (tenant policy is applied by the caller).
pub fn unexpired_keys(conn: &mut DbConn, tenant_id: &str, at: NaiveDateTime) -> AppResult<Vec<ApiKey>> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::expires_at.is_null().or(api_keys::expires_at.gt(at)))
        .filter(api_keys::superseded_at.is_null().or(api_keys::superseded_at.gt(at)))
        .load(conn)?)
}

pub fn update_key_label(conn: &mut DbConn, key_id: &str, label: &str) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id)).set(api_keys::label.eq(label)).execute(conn)?;
    Ok(())
}

pub fn update_key_allowlist(conn: &mut DbConn, key_id: &str, allowlist_json: &str) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id)).set(api_keys::ip_allowlist.eq(allowlist_json)).execute(conn)?;
    Ok(())
}

pub fn revoke_key(conn: &mut DbConn, key_id: &str, at: NaiveDateTime, reason: &str) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((api_keys::revoked_at.eq(Some(at)), api_keys::revoke_reason.eq(Some(reason))))
        .execute(conn)?;
    Ok(())
}

/// Marks a rotated key: it stops at `until` and names its successor.
pub fn supersede_key(conn: &mut DbConn, key_id: &str, until: NaiveDateTime, successor: Option<&str>) -> AppResult<()> {
    match successor {
        Some(s) => diesel::update(api_keys::table.find(key_id))
            .set((api_keys::superseded_at.eq(Some(until)), api_keys::rotated_to.eq(Some(s))))
            .execute(conn)?,
        None => {
            diesel::update(api_keys::table.find(key_id)).set(api_keys::superseded_at.eq(Some(until))).execute(conn)?
        }
    };
    Ok(())
}

pub fn chain_keys(conn: &mut DbConn, tenant_id: &str, chain_id: &str) -> AppResult<Vec<ApiKey>> {
    Ok(api_keys::table.filter(api_keys::tenant_id.eq(tenant_id)).filter(api_keys::chain_id.eq(chain_id)).load(conn)?)
}

pub fn touch_key(conn: &mut DbConn, key_id: &str, at: NaiveDateTime, ip: Option<&str>) -> AppResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((api_keys::last_used_at.eq(Some(at)), api_keys::last_used_ip.eq(ip)))
        .execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------- audit

/// On SQLite, takes the database write lock at the start of a transaction.
/// A deferred transaction that reads first and writes later fails at once
/// with "database is locked" when another connection (the CLI, the export
/// runner) committed in between; a write as the first statement waits under
/// `busy_timeout` instead, as `BEGIN IMMEDIATE` would. PostgreSQL needs nothing.
pub fn take_write_lock(conn: &mut DbConn) -> AppResult<()> {
    if let DbConn::Sqlite(lite) = conn {
        // Matches no row (the key is NOT NULL), so no page is written; the statement still takes the lock.
        diesel::delete(audit_chains::table.filter(audit_chains::chain_id.is_null())).execute(lite)?;
    }
    Ok(())
}

/// Loads and (on PostgreSQL) row-locks the heads of the given chains, in the
/// order given (sorted by the caller, so concurrent writers cannot deadlock).
/// The lock also serializes every change of a tenant across instances.
pub fn lock_chain_heads(conn: &mut DbConn, chain_ids: &[String]) -> AppResult<BTreeMap<String, (i64, String)>> {
    match conn {
        DbConn::Postgres(pg) => {
            let rows: Vec<(String, i64, String)> = audit_chains::table
                .filter(audit_chains::chain_id.eq_any(chain_ids))
                .order(audit_chains::chain_id)
                .select((audit_chains::chain_id, audit_chains::last_seq, audit_chains::last_hash))
                .for_update()
                .load(pg)?;
            Ok(rows.into_iter().map(|(id, seq, hash)| (id, (seq, hash))).collect())
        }
        // SQLite has one writer at a time: the transaction itself is the lock.
        // One lookup per chain (usually one or two): a statement prepared once.
        DbConn::Sqlite(_) => {
            let mut heads = BTreeMap::new();
            for id in chain_ids {
                if let Some(head) = load_chain_head(conn, id)? {
                    heads.insert(id.clone(), head);
                }
            }
            Ok(heads)
        }
    }
}

pub fn load_chain_head(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<(i64, String)>> {
    Ok(audit_chains::table
        .find(chain_id)
        .select((audit_chains::last_seq, audit_chains::last_hash))
        .first(conn)
        .optional()?)
}

/// Moves the chain heads to the group's last events. On PostgreSQL the
/// inserts already did (statement trigger, migration `000005_chain_head_trigger`:
/// one round trip less per group while the heads are locked).
pub fn save_chain_heads(conn: &mut DbConn, heads: &BTreeMap<String, (i64, String)>) -> AppResult<()> {
    let DbConn::Sqlite(lite) = conn else { return Ok(()) };
    for (chain_id, (seq, hash)) in heads {
        diesel::update(audit_chains::table.find(chain_id))
            .set((audit_chains::last_seq.eq(seq), audit_chains::last_hash.eq(hash)))
            .execute(lite)?;
    }
    Ok(())
}

pub fn insert_events(conn: &mut DbConn, rows: &[AuditRow]) -> AppResult<()> {
    match conn {
        DbConn::Postgres(pg) => {
            pg_append::AppendEvents::of(rows).execute(pg)?;
        }
        // In process, no round trips: one single-row statement, prepared once and
        // reused. (A multi-row INSERT is parsed anew for each group size and
        // keeps a statement journal; a single-row one needs neither.)
        DbConn::Sqlite(lite) => {
            for row in rows {
                diesel::insert_into(audit_events::table).values(row).execute(lite)?;
            }
        }
    }
    Ok(())
}

/// PostgreSQL: a group's events in one statement whose text does not depend
/// on how many there are, so that it is parsed and planned once per
/// connection. (A multi-row `VALUES` list is a new statement for each group
/// size: parsing and planning it took a quarter of the server's time per group.)
mod pg_append {
    use super::AuditRow;
    use chrono::NaiveDateTime;
    use diesel::pg::Pg;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};
    use diesel::{QueryResult, RunQueryDsl};

    /// `INSERT ... SELECT * FROM unnest(<one array per column>)`, arrays in this order.
    pub struct AppendEvents<'a> {
        text: [Vec<&'a str>; 9],
        optional_text: [Vec<Option<&'a str>>; 9],
        seq: Vec<i64>,
        occurred_at: Vec<NaiveDateTime>,
        status_code: Vec<i32>,
    }

    const INSERT: &str = "INSERT INTO audit_events (\
        event_id, chain_id, operation, outcome, actor_type, request_id, metadata, prev_hash, hash, \
        tenant_id, reason, actor_id, key_id, key_type, key_hint, client_ip, user_agent, payload, \
        seq, occurred_at, status_code) SELECT * FROM unnest(";

    impl<'a> AppendEvents<'a> {
        pub fn of(rows: &'a [AuditRow]) -> Self {
            let mut q = AppendEvents {
                text: Default::default(),
                optional_text: Default::default(),
                seq: Vec::with_capacity(rows.len()),
                occurred_at: Vec::with_capacity(rows.len()),
                status_code: Vec::with_capacity(rows.len()),
            };
            for r in rows {
                let text = [
                    &r.event_id,
                    &r.chain_id,
                    &r.operation,
                    &r.outcome,
                    &r.actor_type,
                    &r.request_id,
                    &r.metadata,
                    &r.prev_hash,
                    &r.hash,
                ];
                for (column, value) in q.text.iter_mut().zip(text) {
                    column.push(value.as_str());
                }
                let optional = [
                    &r.tenant_id,
                    &r.reason,
                    &r.actor_id,
                    &r.key_id,
                    &r.key_type,
                    &r.key_hint,
                    &r.client_ip,
                    &r.user_agent,
                    &r.payload,
                ];
                for (column, value) in q.optional_text.iter_mut().zip(optional) {
                    column.push(value.as_deref());
                }
                q.seq.push(r.seq);
                q.occurred_at.push(r.occurred_at);
                q.status_code.push(r.status_code);
            }
            q
        }
    }

    impl QueryId for AppendEvents<'_> {
        type QueryId = AppendEvents<'static>;
        // The statement text is the same for every group: cache it as prepared.
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Pg> for AppendEvents<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(INSERT);
            self.push_arrays(&mut out)?;
            out.push_sql(")");
            Ok(())
        }
    }

    impl AppendEvents<'_> {
        fn push_arrays<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            for column in &self.text {
                out.push_bind_param::<Array<Text>, _>(column)?;
                out.push_sql(", ");
            }
            for column in &self.optional_text {
                out.push_bind_param::<Array<Nullable<Text>>, _>(column)?;
                out.push_sql(", ");
            }
            out.push_bind_param::<Array<BigInt>, _>(&self.seq)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Timestamp>, _>(&self.occurred_at)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Integer>, _>(&self.status_code)
        }
    }

    /// The same INSERT, only if the chain's head is still at `last_seq`: it
    /// first row-locks the head, as a locked group does, so the two kinds
    /// take their locks in one order and cannot deadlock; a head that moved
    /// meanwhile makes it insert nothing.
    pub struct AppendAfterHead<'a> {
        pub chain_id: &'a str,
        pub last_seq: i64,
        pub events: AppendEvents<'a>,
    }

    impl QueryId for AppendAfterHead<'_> {
        type QueryId = AppendAfterHead<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Pg> for AppendAfterHead<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("WITH head AS (SELECT 1 FROM audit_chains WHERE chain_id = ");
            out.push_bind_param::<Text, _>(self.chain_id)?;
            out.push_sql(" AND last_seq = ");
            out.push_bind_param::<BigInt, _>(&self.last_seq)?;
            out.push_sql(" FOR UPDATE) ");
            out.push_sql(INSERT);
            self.events.push_arrays(&mut out)?;
            out.push_sql(") WHERE EXISTS (SELECT 1 FROM head)");
            Ok(())
        }
    }

    impl RunQueryDsl<diesel::PgConnection> for AppendAfterHead<'_> {}
    impl RunQueryDsl<diesel::PgConnection> for AppendEvents<'_> {}
}

/// PostgreSQL: appends `rows` (the next events of one chain) in one
/// statement, autocommitted, if the chain's head is still at `last_seq`.
/// False when it was not (another writer appended since): nothing is written.
/// SQLite: always false; its writer always takes the lock.
pub fn append_after_head(conn: &mut DbConn, chain_id: &str, last_seq: i64, rows: &[AuditRow]) -> AppResult<bool> {
    let DbConn::Postgres(pg) = conn else { return Ok(false) };
    let events = pg_append::AppendEvents::of(rows);
    let inserted = pg_append::AppendAfterHead { chain_id, last_seq, events }.execute(pg)?;
    Ok(inserted == rows.len())
}

pub fn chain_ids(conn: &mut DbConn) -> AppResult<Vec<String>> {
    Ok(audit_chains::table.select(audit_chains::chain_id).order(audit_chains::chain_id).load(conn)?)
}

pub fn chain_events_after(conn: &mut DbConn, chain_id: &str, after_seq: i64, limit: i64) -> AppResult<Vec<AuditRow>> {
    Ok(audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .order(audit_events::seq.asc())
        .limit(limit)
        .load(conn)?)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub operation: Option<String>,
    pub key_id: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

/// A chain's events after `after_seq` that match `filter`, in sequence order.
pub fn filtered_events(
    conn: &mut DbConn,
    chain_id: &str,
    filter: &EventFilter,
    after_seq: i64,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    let mut q = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .into_boxed();
    if let Some(v) = &filter.operation {
        q = q.filter(audit_events::operation.eq(v.clone()));
    }
    if let Some(v) = &filter.key_id {
        q = q.filter(audit_events::key_id.eq(v.clone()));
    }
    if let Some(v) = &filter.actor_id {
        q = q.filter(audit_events::actor_id.eq(v.clone()));
    }
    if let Some(v) = &filter.outcome {
        q = q.filter(audit_events::outcome.eq(v.clone()));
    }
    if let Some(v) = filter.since {
        q = q.filter(audit_events::occurred_at.ge(v));
    }
    if let Some(v) = filter.until {
        q = q.filter(audit_events::occurred_at.lt(v));
    }
    Ok(q.order(audit_events::seq.asc()).limit(limit).load(conn)?)
}

/// Readiness probe query.
pub fn ping(conn: &mut DbConn) -> AppResult<()> {
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}

// ---- export jobs

/// An export by its uid alone, whatever its tenant: only for checking a signed
/// download link, whose signature then binds the tenant.
pub fn find_export_by_uid(conn: &mut DbConn, uid: &str) -> AppResult<Option<Export>> {
    Ok(exports::table.filter(exports::uid.eq(uid)).first(conn).optional()?)
}

/// PENDING jobs a runner may take, oldest first: new or taken back after a lost lease
/// (no error), or put back after a failed try before `retry_before`.
pub fn runnable_exports(conn: &mut DbConn, retry_before: NaiveDateTime, limit: i64) -> AppResult<Vec<Export>> {
    Ok(exports::table
        .filter(exports::status.eq(crate::domain::exports::ExportStatus::Pending.as_str()))
        .filter(exports::error.is_null().or(exports::updated_at.lt(retry_before)))
        .order((exports::created_at.asc(), exports::uid.asc()))
        .limit(limit)
        .load(conn)?)
}

/// PROCESSING jobs whose lease (taken at `started_at`) ran out before `started_before`.
pub fn stale_exports(conn: &mut DbConn, started_before: NaiveDateTime, limit: i64) -> AppResult<Vec<Export>> {
    Ok(exports::table
        .filter(exports::status.eq(crate::domain::exports::ExportStatus::Processing.as_str()))
        .filter(exports::started_at.lt(started_before))
        .order((exports::started_at.asc(), exports::uid.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Takes a PENDING job: one row changed means this caller won it (race-free across instances).
pub fn claim_export(conn: &mut DbConn, uid: &str, at: NaiveDateTime) -> AppResult<bool> {
    use crate::domain::exports::ExportStatus;
    let n = diesel::update(
        exports::table.filter(exports::uid.eq(uid)).filter(exports::status.eq(ExportStatus::Pending.as_str())),
    )
    .set((
        exports::status.eq(ExportStatus::Processing.as_str()),
        exports::started_at.eq(Some(at)),
        exports::attempts.eq(exports::attempts + 1),
        exports::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Ends a PROCESSING run (COMPLETED with its file, or FAILED with its error). The
/// run is fenced by its attempt number (a run whose lease was taken over changes
/// nothing) and, when the lease ran out, by its start time.
#[allow(clippy::too_many_arguments)]
pub fn finish_export(
    conn: &mut DbConn,
    uid: &str,
    attempt: i32,
    status: crate::domain::exports::ExportStatus,
    at: NaiveDateTime,
    error: Option<&str>,
    file: Option<(&str, i64, &str)>,
    started_before: Option<NaiveDateTime>,
) -> AppResult<bool> {
    use crate::domain::exports::ExportStatus;
    let (name, size, sha) = match file {
        Some((n, s, h)) => (Some(n), Some(s), Some(h)),
        None => (None, None, None),
    };
    let run = exports::table
        .filter(exports::uid.eq(uid))
        .filter(exports::status.eq(ExportStatus::Processing.as_str()))
        .filter(exports::attempts.eq(attempt));
    let changes = (
        exports::status.eq(status.as_str()),
        exports::completed_at.eq(Some(at)),
        exports::updated_at.eq(at),
        exports::error.eq(error),
        exports::file_name.eq(name),
        exports::file_size.eq(size),
        exports::file_sha256.eq(sha),
    );
    let n = match started_before {
        Some(cutoff) => diesel::update(run.filter(exports::started_at.lt(cutoff))).set(changes).execute(conn)?,
        None => diesel::update(run).set(changes).execute(conn)?,
    };
    Ok(n == 1)
}

/// Renews a running job's lease; false when the run no longer holds it.
pub fn renew_export_lease(conn: &mut DbConn, uid: &str, attempt: i32, at: NaiveDateTime) -> AppResult<bool> {
    use crate::domain::exports::ExportStatus;
    let n = diesel::update(
        exports::table
            .filter(exports::uid.eq(uid))
            .filter(exports::status.eq(ExportStatus::Processing.as_str()))
            .filter(exports::attempts.eq(attempt)),
    )
    .set((exports::started_at.eq(Some(at)), exports::updated_at.eq(at)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Puts a PROCESSING run back to PENDING (a failed try to retry, or a lease that
/// ran out), fenced by its attempt number and, for a lease, by its start time.
pub fn requeue_export(
    conn: &mut DbConn,
    uid: &str,
    attempt: i32,
    at: NaiveDateTime,
    error: Option<&str>,
    started_before: Option<NaiveDateTime>,
) -> AppResult<bool> {
    use crate::domain::exports::ExportStatus;
    let run = exports::table
        .filter(exports::uid.eq(uid))
        .filter(exports::status.eq(ExportStatus::Processing.as_str()))
        .filter(exports::attempts.eq(attempt));
    let changes = (
        exports::status.eq(ExportStatus::Pending.as_str()),
        exports::started_at.eq(None::<NaiveDateTime>),
        exports::updated_at.eq(at),
        exports::error.eq(error),
    );
    let n = match started_before {
        Some(cutoff) => diesel::update(run.filter(exports::started_at.lt(cutoff))).set(changes).execute(conn)?,
        None => diesel::update(run).set(changes).execute(conn)?,
    };
    Ok(n == 1)
}
