//! Shared team assets: registered by the platform, re-scoped by asset management keys.

use super::{meta, Meta};
use crate::db::models::{api_time, now, to_naive, Asset};
use crate::db::{store, DbConn};
use crate::domain::assets::{valid_identifier, AssetType, ShareScope};
use crate::domain::text;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::borrow::Cow;

/// A share as the API (and the e-Discovery archive) shows it, serialized
/// straight from the row; fields in alphabetical order, as they always were.
/// Borrowed from the row while an archive is written, owned
/// ([`into_owned`](Self::into_owned)) once it leaves the service.
#[derive(Debug, Serialize)]
pub struct AssetView<'a> {
    pub asset_exists: bool,
    pub asset_id: Cow<'a, str>,
    pub asset_name: Cow<'a, str>,
    pub asset_type: AssetType,
    pub created_at: String,
    pub owner_id: Cow<'a, str>,
    pub permission: ShareScope,
    pub session_id: Option<Cow<'a, str>>,
    pub shared_at: String,
    pub uid: Cow<'a, str>,
    pub updated_at: String,
}

pub fn asset_view(a: &Asset) -> AssetView<'_> {
    AssetView {
        asset_exists: a.asset_exists,
        asset_id: Cow::Borrowed(&a.asset_id),
        asset_name: Cow::Borrowed(&a.asset_name),
        asset_type: a.asset_type,
        created_at: api_time(a.created_at),
        owner_id: Cow::Borrowed(&a.owner_id),
        permission: a.permission,
        session_id: a.session_id.as_deref().map(Cow::Borrowed),
        shared_at: api_time(a.shared_at),
        uid: Cow::Borrowed(&a.uid),
        updated_at: api_time(a.updated_at),
    }
}

impl AssetView<'_> {
    /// The same view, no longer tied to the row it was read from.
    pub fn into_owned(self) -> AssetView<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        AssetView {
            asset_exists: self.asset_exists,
            asset_id: own(self.asset_id),
            asset_name: own(self.asset_name),
            asset_type: self.asset_type,
            created_at: self.created_at,
            owner_id: own(self.owner_id),
            permission: self.permission,
            session_id: self.session_id.map(own),
            shared_at: self.shared_at,
            uid: own(self.uid),
            updated_at: self.updated_at,
        }
    }
}

fn owned_view(a: &Asset) -> AssetView<'static> {
    asset_view(a).into_owned()
}

/// Which shares a list asks for; every given field must match.
#[derive(Debug, Default)]
pub struct AssetQuery {
    pub asset_type: Option<AssetType>,
    /// Empty means no keyword.
    pub keyword: Option<String>,
    pub owner_id: Option<String>,
    pub permission: Option<ShareScope>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

impl AssetQuery {
    /// The time window may be a single instant but not run backwards.
    pub fn check(&self) -> AppResult<()> {
        match (self.start_time, self.end_time) {
            (Some(s), Some(e)) if s > e => Err(AppError::invalid("start_time must not be after end_time")),
            _ => Ok(()),
        }
    }
}

/// One page of the tenant's shares that match `q`, and how many match in all.
pub fn list_assets(
    conn: &mut DbConn,
    tenant_id: &str,
    q: AssetQuery,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<AssetView<'static>>, i64)> {
    q.check()?;
    let filter = store::AssetFilter {
        asset_type: q.asset_type,
        keyword: q.keyword.filter(|k| !k.is_empty()),
        owner_id: q.owner_id,
        permission: q.permission,
        start_time: q.start_time.map(to_naive),
        end_time: q.end_time.map(to_naive),
    };
    let (rows, total) = store::list_assets(conn, tenant_id, &filter, offset, limit)?;
    Ok((rows.iter().map(owned_view).collect(), total))
}

/// Whether the platform names a tenant keyward knows.
pub fn tenant_exists(conn: &mut DbConn, tenant_id: &str) -> AppResult<bool> {
    Ok(store::find_tenant(conn, tenant_id)?.is_some())
}

/// A re-scope's note, trimmed: 1 to 1000 characters.
fn validate_note(note: &str) -> AppResult<String> {
    text::bounded("note", note, 1000).map_err(AppError::invalid)
}

/// What the platform reports about a share.
pub struct AssetReport {
    pub asset_type: AssetType,
    pub asset_id: String,
    pub asset_name: String,
    pub owner_id: String,
    pub session_id: Option<String>,
    pub shared_at: DateTime<Utc>,
    pub permission: ShareScope,
}

impl AssetReport {
    /// The platform's free-text identifiers are bounded and printable.
    pub fn check(&self) -> AppResult<()> {
        for (field, value, max) in [
            ("asset_id", &self.asset_id, 200),
            ("asset_name", &self.asset_name, 500),
            ("owner_id", &self.owner_id, 200),
        ] {
            if !valid_identifier(value, max) {
                return Err(AppError::invalid(format!("{field} must be 1 to {max} printable characters")));
            }
        }
        if self.session_id.as_deref().is_some_and(|s| !valid_identifier(s, 200)) {
            return Err(AppError::invalid("session_id must be 1 to 200 printable characters"));
        }
        Ok(())
    }
}

/// Registers or refreshes a share; idempotent on (tenant, type, asset id).
pub fn upsert(conn: &mut DbConn, tenant_id: &str, r: AssetReport) -> AppResult<(AssetView<'static>, Meta)> {
    let at = to_naive(now());
    let existing = store::find_asset_by_source(conn, tenant_id, r.asset_type, &r.asset_id)?;
    let (asset, created) = match existing {
        Some(mut a) => {
            a.asset_name = r.asset_name;
            a.owner_id = r.owner_id;
            a.session_id = r.session_id;
            a.shared_at = to_naive(r.shared_at);
            a.permission = r.permission;
            a.asset_exists = true;
            a.updated_at = at;
            store::update_asset(conn, &a)?;
            (a, false)
        }
        None => {
            let a = Asset {
                uid: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant_id.to_string(),
                asset_type: r.asset_type,
                asset_id: r.asset_id,
                asset_name: r.asset_name,
                owner_id: r.owner_id,
                session_id: r.session_id,
                shared_at: to_naive(r.shared_at),
                permission: r.permission,
                asset_exists: true,
                created_at: at,
                updated_at: at,
            };
            store::insert_asset(conn, &a)?;
            (a, true)
        }
    };
    let m = meta(json!({"share_uid": asset.uid, "asset_type": asset.asset_type, "asset_id": asset.asset_id,
        "permission": asset.permission, "created": created}));
    Ok((owned_view(&asset), m))
}

/// Marks a share's asset as deleted; the row stays for governance and e-Discovery.
pub fn mark_deleted(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_type: AssetType,
    asset_id: &str,
) -> AppResult<(AssetView<'static>, Meta)> {
    let mut a = store::find_asset_by_source(conn, tenant_id, asset_type, asset_id)?
        .ok_or_else(|| AppError::not_found("no such asset"))?;
    a.asset_exists = false;
    a.updated_at = to_naive(now());
    store::update_asset(conn, &a)?;
    let m = meta(json!({"share_uid": a.uid, "asset_type": a.asset_type, "asset_id": a.asset_id}));
    Ok((owned_view(&a), m))
}

/// An administrator's override of a share's scope, with its note (trimmed,
/// 1 to 1000 characters). A deleted asset cannot be re-scoped.
pub fn update_scope(
    conn: &mut DbConn,
    tenant_id: &str,
    share_uid: &str,
    permission: ShareScope,
    note: &str,
    key_label: &str,
) -> AppResult<(AssetView<'static>, Meta)> {
    let note = validate_note(note)?;
    let mut a =
        store::find_asset(conn, tenant_id, share_uid)?.ok_or_else(|| AppError::not_found("no share with this uid"))?;
    if !a.asset_exists {
        return Err(AppError::precondition("the asset was deleted; its share cannot be re-scoped"));
    }
    let old = a.permission;
    a.permission = permission;
    a.updated_at = to_naive(now());
    store::update_asset(conn, &a)?;
    let m = meta(json!({
        "share_uid": a.uid, "old_scope": old, "new_scope": a.permission, "note": note, "key_label": key_label,
    }));
    Ok((owned_view(&a), m))
}
