//! Who am I (a connector's "test connection") and the gateway check that puts
//! services outside keyward behind the same authorizer (SPEC §4, §5).

use super::context::{authenticate_key, check_tenant_limit, fields, ok, ok_with, query, AnyCaller, AuditCtx, NoParams};
use crate::auth::Caller;
use crate::db::models::{api_time, to_naive};
use crate::domain::{authz, KeyType, Method};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

/// whoami's answer for a key: a connector's "test connection", so the hot path
/// serializes it straight from the caller.
#[derive(Serialize)]
struct KeyWhoami<'a> {
    caller: KeyCallerView<'a>,
    operations: Vec<&'static str>,
}

#[derive(Serialize)]
struct KeyCallerView<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tenant_id: &'a str,
    key_id: &'a str,
    key_type: KeyType,
    label: &'a str,
    hint: &'a str,
    expires_at: Option<String>,
}

pub async fn whoami(caller: AnyCaller, req: HttpRequest) -> AppResult<HttpResponse> {
    let _: NoParams = query(&req)?;
    Ok(match caller.0 {
        Caller::Key(k) => ok_with(&KeyWhoami {
            caller: KeyCallerView {
                kind: "API_KEY",
                tenant_id: &k.tenant_id,
                key_id: &k.key_id,
                key_type: k.key_type,
                label: &k.label,
                hint: &k.hint,
                expires_at: k.expires_at.map(|t| api_time(to_naive(t))),
            },
            operations: authz::operations_for_key(k.key_type),
        }),
        Caller::Member(m) => ok(fields(json!({
            "caller": {"type": "MEMBER", "tenant_id": m.tenant_id, "member_id": m.member_id, "email": m.email, "role": m.role},
            "operations": authz::operations_for_member(m.role),
        }))),
    })
}

/// The original request: nginx's `X-Original-Method`/`X-Original-URI`, or
/// Envoy's path form `/v2/authz.check/<original path>` with the request's method.
fn original_request(req: &HttpRequest) -> Option<(Method, String)> {
    if let Some(tail) = req.path().strip_prefix("/v2/authz.check/") {
        let mut uri = format!("/{tail}");
        if !req.query_string().is_empty() {
            uri = format!("{uri}?{}", req.query_string());
        }
        return Some((Method::parse(req.method().as_str())?, uri));
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let method = Method::parse(header("x-original-method")?)?;
    let uri = header("x-original-uri")?.to_string();
    Some((method, uri))
}

pub async fn check(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    // Noted first, so that a refused key's event also shows what it tried to reach.
    let ctx = AuditCtx::of(&req);
    let original = original_request(&req);
    if let Some((method, uri)) = &original {
        ctx.note("original_method", json!(method.as_str()));
        ctx.note("original_uri", json!(uri.chars().take(2048).collect::<String>()));
    }
    let key = authenticate_key(&state, &req, None).await?;
    let op = original
        .as_ref()
        .and_then(|(m, uri)| authz::resolve(*m, uri))
        .ok_or_else(|| AppError::key_refused("unknown_operation"))?;
    ctx.note("checked_operation", json!(op.name));
    if !authz::key_may_call(key.key_type, op) {
        return Err(AppError::key_refused("type_mismatch"));
    }
    check_tenant_limit(&state, &key.tenant_id, op)?;
    #[derive(Serialize)]
    struct Allowed<'a> {
        operation: &'static str,
        tenant_id: &'a str,
        key_id: &'a str,
        key_type: KeyType,
    }
    let mut res = ok_with(&Allowed {
        operation: op.name,
        tenant_id: &key.tenant_id,
        key_id: &key.key_id,
        key_type: key.key_type,
    });
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-keyward-tenant-id", key.tenant_id.as_str()),
        ("x-keyward-key-id", key.key_id.as_str()),
        ("x-keyward-key-type", key.key_type.wire_name()),
    ] {
        headers.insert(
            actix_web::http::header::HeaderName::from_static(name),
            actix_web::http::header::HeaderValue::from_str(value).map_err(|_| AppError::internal())?,
        );
    }
    Ok(res)
}
