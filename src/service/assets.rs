//! Shared team assets: registered by the platform, re-scoped by asset management keys.

use super::{meta, Meta};
use crate::db::models::{api_time, now, to_naive, Asset};
use crate::db::{store, DbConn};
use crate::domain::assets::{AssetType, ShareScope};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub fn asset_json(a: &Asset) -> Value {
    serde_json::to_value(AssetView::of(a)).expect("JSON of plain values")
}

/// A share as the API shows it. Serialized straight from the row for lists
/// (no `Value` tree per asset); fields in the order `json!` printed them.
#[derive(serde::Serialize)]
pub struct AssetView<'a> {
    asset_exists: bool,
    asset_id: &'a str,
    asset_name: &'a str,
    asset_type: &'a str,
    created_at: String,
    owner_id: &'a str,
    permission: &'a str,
    session_id: Option<&'a str>,
    shared_at: String,
    uid: &'a str,
    updated_at: String,
}

impl<'a> AssetView<'a> {
    pub fn of(a: &'a Asset) -> AssetView<'a> {
        AssetView {
            asset_exists: a.asset_exists,
            asset_id: &a.asset_id,
            asset_name: &a.asset_name,
            asset_type: &a.asset_type,
            created_at: api_time(a.created_at),
            owner_id: &a.owner_id,
            permission: &a.permission,
            session_id: a.session_id.as_deref(),
            shared_at: api_time(a.shared_at),
            uid: &a.uid,
            updated_at: api_time(a.updated_at),
        }
    }
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

/// Registers or refreshes a share; idempotent on (tenant, type, asset id).
pub fn upsert(conn: &mut DbConn, tenant_id: &str, r: AssetReport) -> AppResult<(Value, Meta)> {
    let at = to_naive(now());
    let existing = store::find_asset_by_source(conn, tenant_id, r.asset_type.as_str(), &r.asset_id)?;
    let (asset, created) = match existing {
        Some(mut a) => {
            a.asset_name = r.asset_name;
            a.owner_id = r.owner_id;
            a.session_id = r.session_id;
            a.shared_at = to_naive(r.shared_at);
            a.permission = r.permission.as_str().into();
            a.asset_exists = true;
            a.updated_at = at;
            store::update_asset(conn, &a)?;
            (a, false)
        }
        None => {
            let a = Asset {
                uid: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant_id.to_string(),
                asset_type: r.asset_type.as_str().into(),
                asset_id: r.asset_id,
                asset_name: r.asset_name,
                owner_id: r.owner_id,
                session_id: r.session_id,
                shared_at: to_naive(r.shared_at),
                permission: r.permission.as_str().into(),
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
    Ok((asset_json(&asset), m))
}

/// Marks a share's asset as deleted; the row stays for governance and e-Discovery.
pub fn mark_deleted(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_type: AssetType,
    asset_id: &str,
) -> AppResult<(Value, Meta)> {
    let mut a = store::find_asset_by_source(conn, tenant_id, asset_type.as_str(), asset_id)?
        .ok_or_else(|| AppError::not_found("no such asset"))?;
    a.asset_exists = false;
    a.updated_at = to_naive(now());
    store::update_asset(conn, &a)?;
    let m = meta(json!({"share_uid": a.uid, "asset_type": a.asset_type, "asset_id": a.asset_id}));
    Ok((asset_json(&a), m))
}

/// An administrator's override of a share's scope. A deleted asset cannot be re-scoped.
pub fn update_scope(
    conn: &mut DbConn,
    tenant_id: &str,
    share_uid: &str,
    permission: ShareScope,
    note: &str,
    key_label: &str,
) -> AppResult<(Value, Meta)> {
    let mut a =
        store::find_asset(conn, tenant_id, share_uid)?.ok_or_else(|| AppError::not_found("no share with this uid"))?;
    if !a.asset_exists {
        return Err(AppError::precondition("the asset was deleted; its share cannot be re-scoped"));
    }
    let old = a.permission.clone();
    a.permission = permission.as_str().into();
    a.updated_at = to_naive(now());
    store::update_asset(conn, &a)?;
    let m = meta(json!({
        "share_uid": a.uid, "old_scope": old, "new_scope": a.permission, "note": note, "key_label": key_label,
    }));
    Ok((asset_json(&a), m))
}
