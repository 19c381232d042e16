//! Legal holds (e-Discovery key).

use super::context::{commit, fields, ok, query, JsonBody, KeyAuth};
use super::pagination::Page;
use crate::db::store;
use crate::error::AppResult;
use crate::service::holds;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

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
    let reason = holds::validate_reason(&b.reason)?;
    let (tenant, key) = (auth.0.tenant_id, auth.0.key_id);
    let hold = commit(&state, &req, move |c| holds::create_hold(c, &tenant, &key, &b.user_ids, &reason)).await?;
    Ok(ok(fields(json!({"hold": hold}))))
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
enum HoldStatus {
    #[serde(rename = "HOLD_STATUS_ACTIVE")]
    Active,
    #[serde(rename = "HOLD_STATUS_RELEASED")]
    Released,
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
    let wanted = q.status;
    let items = state
        .read(move |c| {
            let all = store::list_holds(c, &tenant, wanted == Some(HoldStatus::Active))?;
            let matching: Vec<_> =
                all.into_iter().filter(|h| wanted != Some(HoldStatus::Released) || h.released_at.is_some()).collect();
            let total = matching.len();
            let mut out = Vec::new();
            for h in page.slice(&matching) {
                let ids = store::hold_member_ids(c, &tenant, &h.uid)?;
                out.push(holds::hold_json(h, &ids));
            }
            Ok((out, total))
        })
        .await?;
    Ok(ok(fields(json!({"holds": items.0, "total": items.1, "limit": page.limit, "offset": page.offset}))))
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
    let reason = b.reason.as_deref().map(holds::validate_reason).transpose()?;
    let (tenant, key) = (auth.0.tenant_id, auth.0.key_id);
    let hold = commit(&state, &req, move |c| holds::release_hold(c, &tenant, &key, &b.uid, reason.as_deref())).await?;
    Ok(ok(fields(json!({"hold": hold}))))
}
