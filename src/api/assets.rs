//! team_assets surface: the asset keys' list and re-scope, and the platform's
//! ingestion of shares (`/internal/v2`, ingest token).

use super::context::{commit, fields, ok, ok_with, query, IngestAuth, JsonBody, KeyAuth, RequestEvent};
use super::pagination::Page;
use crate::db::models::to_naive;
use crate::db::store::{self, AssetFilter};
use crate::domain::assets::{valid_identifier, AssetType, ShareScope};
use crate::error::{AppError, AppResult};
use crate::service::assets::{self as asset_service, AssetReport};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListAssets {
    asset_type: Option<AssetType>,
    keyword: Option<String>,
    owner_id: Option<String>,
    permission: Option<ShareScope>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ListAssets = query(&req)?;
    let page = Page::new(q.limit, q.offset)?;
    if let (Some(s), Some(e)) = (q.start_time, q.end_time) {
        if s > e {
            return Err(AppError::invalid("start_time must not be after end_time"));
        }
    }
    let filter = AssetFilter {
        asset_type: q.asset_type.map(|t| t.as_str().to_string()),
        keyword: q.keyword.filter(|k| !k.is_empty()),
        owner_id: q.owner_id,
        permission: q.permission.map(|p| p.as_str().to_string()),
        start_time: q.start_time.map(to_naive),
        end_time: q.end_time.map(to_naive),
    };
    let tenant = auth.0.tenant_id;
    let (rows, total) = state.read(move |c| store::list_assets(c, &tenant, &filter, page.offset, page.limit)).await?;
    #[derive(serde::Serialize)]
    struct AssetPage<'a> {
        assets: Vec<asset_service::AssetView<'a>>,
        total: i64,
        limit: i64,
        offset: i64,
    }
    let assets = rows.iter().map(asset_service::AssetView::of).collect();
    Ok(ok_with(&AssetPage { assets, total, limit: page.limit, offset: page.offset }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateScope {
    share_uid: String,
    permission: ShareScope,
    note: String,
}

pub(super) async fn update_scope(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UpdateScope = body.parse()?;
    let note = b.note.trim().to_string();
    if !(1..=1000).contains(&note.chars().count()) {
        return Err(AppError::invalid("note must be 1 to 1000 characters"));
    }
    let (tenant, label) = (auth.0.tenant_id, auth.0.label);
    let asset = commit(&state, &req, move |c| {
        asset_service::update_scope(c, &tenant, &b.share_uid, b.permission, &note, &label)
    })
    .await?;
    Ok(ok(fields(json!({"asset": asset}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upsert {
    tenant_id: String,
    asset_type: AssetType,
    asset_id: String,
    asset_name: String,
    owner_id: String,
    session_id: Option<String>,
    shared_at: DateTime<Utc>,
    permission: ShareScope,
}

/// The ingestion event belongs to the tenant named in the body, once it is known to exist.
async fn claim_tenant(state: &AppState, req: &HttpRequest, tenant_id: &str) -> AppResult<()> {
    let t = tenant_id.to_string();
    if state.read(move |c| store::find_tenant(c, &t)).await?.is_none() {
        return Err(AppError::not_found("no such tenant"));
    }
    RequestEvent::of(req).set_tenant(tenant_id);
    Ok(())
}

pub(super) async fn upsert(
    _: IngestAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: Upsert = body.parse()?;
    for (field, value, max) in
        [("asset_id", &b.asset_id, 200), ("asset_name", &b.asset_name, 500), ("owner_id", &b.owner_id, 200)]
    {
        if !valid_identifier(value, max) {
            return Err(AppError::invalid(format!("{field} must be 1 to {max} printable characters")));
        }
    }
    if b.session_id.as_deref().is_some_and(|s| !valid_identifier(s, 200)) {
        return Err(AppError::invalid("session_id must be 1 to 200 printable characters"));
    }
    claim_tenant(&state, &req, &b.tenant_id).await?;
    let report = AssetReport {
        asset_type: b.asset_type,
        asset_id: b.asset_id,
        asset_name: b.asset_name,
        owner_id: b.owner_id,
        session_id: b.session_id,
        shared_at: b.shared_at,
        permission: b.permission,
    };
    let tenant = b.tenant_id;
    let asset = commit(&state, &req, move |c| asset_service::upsert(c, &tenant, report)).await?;
    Ok(ok(fields(json!({"asset": asset}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    tenant_id: String,
    asset_type: AssetType,
    asset_id: String,
}

pub(super) async fn delete(
    _: IngestAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: Delete = body.parse()?;
    claim_tenant(&state, &req, &b.tenant_id).await?;
    let tenant = b.tenant_id;
    let asset =
        commit(&state, &req, move |c| asset_service::mark_deleted(c, &tenant, b.asset_type, &b.asset_id)).await?;
    Ok(ok(fields(json!({"asset": asset}))))
}
