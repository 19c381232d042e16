//! Shared assets the platform registers.

use super::lower;
use crate::db::models::Asset;
use crate::db::schema::assets;
use crate::db::DbConn;
use crate::domain::assets::{AssetType, ShareScope};
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

pub fn find_asset_by_source(
    conn: &mut DbConn,
    tenant_id: &str,
    asset_type: AssetType,
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
            assets::permission.eq(a.permission),
            assets::asset_exists.eq(a.asset_exists),
            assets::updated_at.eq(a.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AssetFilter {
    pub asset_type: Option<AssetType>,
    /// Prefix of the asset's name.
    pub keyword: Option<String>,
    pub owner_id: Option<String>,
    pub permission: Option<ShareScope>,
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
        if let Some(v) = f.asset_type {
            q = q.filter(assets::asset_type.eq(v));
        }
        if let Some(v) = &f.keyword {
            // Case-insensitive on both backends (SQLite's LIKE is, PostgreSQL's is not).
            q = q.filter(lower(assets::asset_name).like(like_prefix(&v.to_lowercase())).escape('\\'));
        }
        if let Some(v) = &f.owner_id {
            q = q.filter(assets::owner_id.eq(v.clone()));
        }
        if let Some(v) = f.permission {
            q = q.filter(assets::permission.eq(v));
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
