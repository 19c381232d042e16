//! Legal holds (e-Discovery key).

use super::context::{commit, ok_with, query, JsonBody, KeyAuth};
use super::pagination::Page;
use crate::error::AppResult;
use crate::service::holds::{self, HoldStatus, HoldView};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct OneHold<'a> {
    hold: &'a HoldView,
}

#[derive(Serialize)]
struct HoldPage<'a> {
    holds: &'a [HoldView],
    total: usize,
    limit: i64,
    offset: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateHold {
    user_ids: Vec<String>,
    reason: String,
}

pub(super) async fn create(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: CreateHold = body.parse()?;
    let (tenant, key) = (auth.0.tenant_id, auth.0.key_id);
    let hold = commit(&state, &req, move |c| holds::create_hold(c, &tenant, &key, &b.user_ids, &b.reason)).await?;
    Ok(ok_with(&OneHold { hold: &hold }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListHolds {
    status: Option<HoldStatus>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ListHolds = query(&req)?;
    let page = Page::new(q.limit, q.offset)?;
    let tenant = auth.0.tenant_id;
    let (offset, limit) = (page.offset as usize, page.limit as usize);
    let (holds, total) = state.read(move |c| holds::list_holds(c, &tenant, q.status, offset, limit)).await?;
    Ok(ok_with(&HoldPage { holds: &holds, total, limit: page.limit, offset: page.offset }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseHold {
    uid: String,
    reason: Option<String>,
}

pub(super) async fn release(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: ReleaseHold = body.parse()?;
    let (tenant, key) = (auth.0.tenant_id, auth.0.key_id);
    let hold =
        commit(&state, &req, move |c| holds::release_hold(c, &tenant, &key, &b.uid, b.reason.as_deref())).await?;
    Ok(ok_with(&OneHold { hold: &hold }))
}
