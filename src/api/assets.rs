//! team_assets surface: the asset keys' list and re-scope, and the platform's
//! ingestion of shares (`/internal/v2`, ingest token).

use super::context::{commit, ok_with, query, IngestAuth, JsonBody, KeyAuth, RequestEvent};
use super::pagination::Page;
use crate::domain::assets::{AssetType, ShareScope};
use crate::error::{AppError, AppResult};
use crate::service::assets::{self as asset_service, AssetQuery, AssetReport, AssetView};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct OneAsset<'a> {
    asset: &'a AssetView<'static>,
}

fn one(asset: &AssetView<'static>) -> HttpResponse {
    ok_with(&OneAsset { asset })
}

#[derive(Serialize)]
struct AssetPage<'a> {
    assets: &'a [AssetView<'static>],
    total: i64,
    limit: i64,
    offset: i64,
}

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
    let wanted = AssetQuery {
        asset_type: q.asset_type,
        keyword: q.keyword,
        owner_id: q.owner_id,
        permission: q.permission,
        start_time: q.start_time,
        end_time: q.end_time,
    };
    let tenant = auth.0.tenant_id;
    let (assets, total) =
        state.read(move |c| asset_service::list_assets(c, &tenant, wanted, page.offset, page.limit)).await?;
    Ok(ok_with(&AssetPage { assets: &assets, total, limit: page.limit, offset: page.offset }))
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
    let (tenant, label) = (auth.0.tenant_id, auth.0.label);
    let asset = commit(&state, &req, move |c| {
        asset_service::update_scope(c, &tenant, &b.share_uid, b.permission, &b.note, &label)
    })
    .await?;
    Ok(one(&asset))
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
    if !state.read(move |c| asset_service::tenant_exists(c, &t)).await? {
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
    let report = AssetReport {
        asset_type: b.asset_type,
        asset_id: b.asset_id,
        asset_name: b.asset_name,
        owner_id: b.owner_id,
        session_id: b.session_id,
        shared_at: b.shared_at,
        permission: b.permission,
    };
    report.check()?;
    claim_tenant(&state, &req, &b.tenant_id).await?;
    let tenant = b.tenant_id;
    let asset = commit(&state, &req, move |c| asset_service::upsert(c, &tenant, report)).await?;
    Ok(one(&asset))
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
    Ok(one(&asset))
}
