//! Console: the key lifecycle and the tenant key policy.

use super::context::{commit, ok_with, query, ConsoleAuth, JsonBody};
use super::pagination::Page;
use crate::domain::leaks::LeakedKeyAction;
use crate::domain::lifetime::{KeyStatus, LifetimePolicy};
use crate::domain::KeyType;
use crate::error::AppResult;
use crate::service::keys::{self as key_service, KeyView, PolicyView};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    key_type: KeyType,
    label: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// `{key, secret}` (create), `{key, secret, previous_key}` (rotate): the only
/// answers that ever hold a secret.
#[derive(Serialize)]
struct Issued<'a> {
    key: &'a KeyView,
    secret: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_key: Option<&'a KeyView>,
}

#[derive(Serialize)]
struct OneKey<'a> {
    key: &'a KeyView,
}

#[derive(Serialize)]
struct KeyPage<'a> {
    keys: &'a [KeyView],
    total: usize,
    limit: i64,
    offset: i64,
}

#[derive(Serialize)]
struct Policy<'a> {
    policy: &'a PolicyView,
}

pub async fn create(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: CreateKey = body.parse()?;
    let (secret, prepared) = key_service::new_secret(&state.keys.hasher, b.key_type);
    let (tenant, member) = (auth.0.tenant_id, auth.0.member_id);
    let created = commit(&state, &req, move |c| {
        key_service::create_key(c, &tenant, &member, b.key_type, &b.label, b.expires_at, prepared)
    })
    .await?;
    // The only place the secret is ever shown.
    Ok(ok_with(&Issued { key: &created.key, secret: &secret, previous_key: None }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListKeys {
    key_type: Option<KeyType>,
    status: Option<KeyStatus>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ListKeys = query(&req)?;
    let page = Page::new(q.limit, q.offset)?;
    let tenant_id = auth.0.tenant_id;
    let matching = state.read(move |c| key_service::list_keys(c, &tenant_id, q.key_type, q.status)).await?;
    Ok(ok_with(&KeyPage { keys: page.slice(&matching), total: matching.len(), limit: page.limit, offset: page.offset }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    key_id: String,
}

pub async fn detail(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: KeyRef = query(&req)?;
    let tenant_id = auth.0.tenant_id;
    let key = state.read(move |c| key_service::key_detail(c, &tenant_id, &q.key_id)).await?;
    Ok(ok_with(&OneKey { key: &key }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateKey {
    key_id: String,
    label: Option<String>,
    ip_allowlist: Option<Vec<String>>,
}

pub async fn update(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UpdateKey = body.parse()?;
    let tenant_id = auth.0.tenant_id;
    let key = commit(&state, &req, move |c| {
        key_service::update_key(c, &tenant_id, &b.key_id, b.label.as_deref(), b.ip_allowlist.as_deref())
    })
    .await?;
    Ok(ok_with(&OneKey { key: &key }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    key_id: String,
    #[serde(default)]
    grace_seconds: i64,
}

pub async fn rotate(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: RotateKey = body.parse()?;
    let tenant_id = auth.0.tenant_id;
    let lookup = (tenant_id.clone(), b.key_id.clone());
    // The secret is made outside the transaction, so its type is read first.
    let key_type = state.read(move |c| key_service::key_type_of(c, &lookup.0, &lookup.1)).await?;
    let (secret, prepared) = key_service::new_secret(&state.keys.hasher, key_type);
    let member = auth.0.member_id;
    let rotated = commit(&state, &req, move |c| {
        key_service::rotate_key(c, &tenant_id, &member, &b.key_id, b.grace_seconds, prepared)
    })
    .await?;
    Ok(ok_with(&Issued { key: &rotated.key, secret: &secret, previous_key: Some(&rotated.previous_key) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeKey {
    key_id: String,
    reason: String,
}

pub async fn revoke(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: RevokeKey = body.parse()?;
    let tenant_id = auth.0.tenant_id;
    let key = commit(&state, &req, move |c| key_service::revoke_key(c, &tenant_id, &b.key_id, &b.reason)).await?;
    Ok(ok_with(&OneKey { key: &key }))
}

pub async fn policy_detail(auth: ConsoleAuth, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let tenant_id = auth.0.tenant_id;
    let policy = state.read(move |c| key_service::policy(c, &tenant_id)).await?;
    Ok(ok_with(&Policy { policy: &policy }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePolicy {
    max_lifetime_days: Option<LifetimePolicy>,
    siem_tier2_enabled: Option<bool>,
    /// Absent: unchanged; null: keep everything.
    #[serde(default, deserialize_with = "super::context::present")]
    audit_retention_days: Option<Option<i64>>,
    leaked_key_action: Option<LeakedKeyAction>,
    key_expiry_notice_days: Option<Vec<i64>>,
}

pub async fn policy_update(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UpdatePolicy = body.parse()?;
    let tenant_id = auth.0.tenant_id;
    let policy = commit(&state, &req, move |c| {
        let retention = b.audit_retention_days;
        key_service::update_policy(
            c,
            &tenant_id,
            b.max_lifetime_days,
            b.siem_tier2_enabled,
            retention,
            b.leaked_key_action,
            b.key_expiry_notice_days.as_deref(),
        )
    })
    .await?;
    Ok(ok_with(&Policy { policy: &policy }))
}
