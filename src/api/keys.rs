//! Console: the key lifecycle and the tenant key policy.

use super::context::{commit, fields, ok, query, ConsoleAuth, JsonBody};
use super::pagination::Page;
use crate::crypto;
use crate::db::models::now;
use crate::db::store;
use crate::domain::lifetime::{KeyStatus, LifetimePolicy};
use crate::domain::{allowlist, key_format, KeyType};
use crate::error::{AppError, AppResult};
use crate::service::keys::{self as key_service, NewSecret};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

fn new_secret(state: &AppState, key_type: KeyType) -> (String, NewSecret) {
    let secret = crypto::new_key_secret(key_type);
    let prepared = NewSecret { hash: state.keys.hasher.hash(&secret), hint: key_format::hint(&secret, key_type) };
    (secret, prepared)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    key_type: KeyType,
    label: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

pub async fn create(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: CreateKey = body.parse()?;
    let label = key_service::validate_label(&b.label)?;
    let (secret, prepared) = new_secret(&state, b.key_type);
    let (tenant, member) = (auth.0.tenant_id, auth.0.member_id);
    let created = commit(&state, &req, move |c| {
        key_service::create_key(c, &tenant, &member, b.key_type, &label, b.expires_at, prepared)
    })
    .await?;
    // The only place the secret is ever shown.
    Ok(ok(fields(json!({"key": created.key, "secret": secret}))))
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
    let revoked = q.status.map(|s| s == KeyStatus::Revoked);
    let (keys, tenant) = state
        .read(move |c| {
            let keys = store::tenant_keys(c, &tenant_id, q.key_type.map(KeyType::wire_name), revoked)?;
            Ok((keys, store::find_tenant(c, &tenant_id)?.ok_or_else(AppError::internal)?))
        })
        .await?;
    let policy = key_service::tenant_policy(&tenant);
    let at = now();
    let matching: Vec<_> =
        keys.iter().filter(|k| q.status.is_none_or(|s| key_service::key_status(k, &policy, at).0 == s)).collect();
    let items: Vec<_> = page.slice(&matching).iter().map(|k| key_service::key_json(k, &policy, at)).collect();
    Ok(ok(fields(json!({"keys": items, "total": matching.len(), "limit": page.limit, "offset": page.offset}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    key_id: String,
}

pub async fn detail(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: KeyRef = query(&req)?;
    let tenant_id = auth.0.tenant_id;
    let (key, tenant) = state
        .read(move |c| {
            let key = store::find_key(c, &tenant_id, &q.key_id)?
                .ok_or_else(|| AppError::not_found("no key with this key_id"))?;
            Ok((key, store::find_tenant(c, &tenant_id)?.ok_or_else(AppError::internal)?))
        })
        .await?;
    Ok(ok(fields(json!({"key": key_service::key_json(&key, &key_service::tenant_policy(&tenant), now())}))))
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
    let label = b.label.as_deref().map(key_service::validate_label).transpose()?;
    let allow = match b.ip_allowlist {
        Some(list) => Some(allowlist::parse(&list).map_err(AppError::invalid)?.iter().map(|n| n.to_string()).collect()),
        None => None,
    };
    let tenant_id = auth.0.tenant_id;
    let key = commit(&state, &req, move |c| key_service::update_key(c, &tenant_id, &b.key_id, label, allow)).await?;
    Ok(ok(fields(json!({"key": key}))))
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
    let existing = state.read(move |c| store::find_key(c, &lookup.0, &lookup.1)).await?;
    let key_type = existing
        .and_then(|k| KeyType::from_wire(&k.key_type))
        .ok_or_else(|| AppError::not_found("no key with this key_id"))?;
    let (secret, prepared) = new_secret(&state, key_type);
    let member = auth.0.member_id;
    let rotated = commit(&state, &req, move |c| {
        key_service::rotate_key(c, &tenant_id, &member, &b.key_id, b.grace_seconds, prepared)
    })
    .await?;
    Ok(ok(fields(json!({"key": rotated.key, "secret": secret, "previous_key": rotated.previous_key}))))
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
    let reason = b.reason.trim().to_string();
    if !(1..=500).contains(&reason.chars().count()) {
        return Err(AppError::invalid("reason must be 1 to 500 characters"));
    }
    let tenant_id = auth.0.tenant_id;
    let key = commit(&state, &req, move |c| key_service::revoke_key(c, &tenant_id, &b.key_id, &reason)).await?;
    Ok(ok(fields(json!({"key": key}))))
}

pub async fn policy_detail(auth: ConsoleAuth, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let tenant_id = auth.0.tenant_id;
    let tenant = state.read(move |c| store::find_tenant(c, &tenant_id)?.ok_or_else(AppError::internal)).await?;
    Ok(ok(fields(json!({"policy": key_service::policy_json(&tenant)}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePolicy {
    max_lifetime_days: Option<LifetimePolicy>,
    siem_tier2_enabled: Option<bool>,
}

pub async fn policy_update(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UpdatePolicy = body.parse()?;
    if let Some(p) = &b.max_lifetime_days {
        crate::domain::lifetime::validate_policy(p).map_err(|e| AppError::invalid(e.to_string()))?;
    }
    let tenant_id = auth.0.tenant_id;
    let policy = commit(&state, &req, move |c| {
        key_service::update_policy(c, &tenant_id, b.max_lifetime_days, b.siem_tier2_enabled)
    })
    .await?;
    Ok(ok(fields(json!({"policy": policy}))))
}
