//! Who am I (a connector's "test connection") and the gateway check that puts
//! services outside keyward behind the same authorizer.

use super::context::{authenticate_key, check_tenant_limit, ok_with, query, AnyCaller, NoParams, RequestEvent};
use super::GATEWAY_PREFIX;
use crate::audit::ActorType;
use crate::auth::Caller;
use crate::db::models::{api_time, to_naive};
use crate::domain::{authz, request_path, KeyType, Method, Role};
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

/// whoami's answer for a console member.
#[derive(Serialize)]
struct MemberWhoami<'a> {
    caller: MemberCallerView<'a>,
    operations: Vec<&'static str>,
}

#[derive(Serialize)]
struct MemberCallerView<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tenant_id: &'a str,
    member_id: &'a str,
    email: &'a str,
    role: Role,
}

/// The gateway check's answer: what was allowed, for whom.
#[derive(Serialize)]
struct Allowed<'a> {
    operation: &'static str,
    tenant_id: &'a str,
    key_id: &'a str,
    key_type: KeyType,
}

pub async fn whoami(caller: AnyCaller, req: HttpRequest) -> AppResult<HttpResponse> {
    let _: NoParams = query(&req)?;
    Ok(match caller.0 {
        Caller::Key(k) => ok_with(&KeyWhoami {
            caller: KeyCallerView {
                kind: ActorType::ApiKey.as_str(),
                tenant_id: &k.tenant_id,
                key_id: &k.key_id,
                key_type: k.key_type,
                label: &k.label,
                hint: &k.hint,
                expires_at: k.expires_at.map(|t| api_time(to_naive(t))),
            },
            operations: authz::operations_for_key(k.key_type),
        }),
        Caller::Member(m) => ok_with(&MemberWhoami {
            caller: MemberCallerView {
                kind: ActorType::Member.as_str(),
                tenant_id: &m.tenant_id,
                member_id: &m.member_id,
                email: &m.email,
                role: m.role,
            },
            operations: authz::operations_for_member(m.role),
        }),
    })
}

/// The original request as the gateway forwards it: nginx's
/// `X-Original-Method`/`X-Original-URI`, or Envoy's path form
/// `/v2/authz.check/<original path>` with the request's own method.
struct Original {
    method: String,
    uri: String,
}

fn original_request(req: &HttpRequest) -> Option<Original> {
    if let Some(tail) = req.path().strip_prefix(GATEWAY_PREFIX.as_str()) {
        let mut uri = format!("/{tail}");
        if !req.query_string().is_empty() {
            uri = format!("{uri}?{}", req.query_string());
        }
        return Some(Original { method: req.method().as_str().to_string(), uri });
    }
    let header = |name: &str| req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string());
    Some(Original { method: header("x-original-method")?, uri: header("x-original-uri")? })
}

/// The table's operation for an original request. The URI's path must be
/// canonical (the same rule as keyward's own paths), so that no id segment
/// can smuggle `..`, an encoded slash or a control character past the
/// mapping; HEAD is checked as GET, which it reads like.
fn operation_of(original: &Original) -> Result<&'static authz::Operation, &'static str> {
    let method = match original.method.to_ascii_uppercase().as_str() {
        "HEAD" => Method::Get,
        m => Method::parse(m).ok_or("unknown_operation")?,
    };
    let path = request_path::canonical_uri(&original.uri).map_err(|_| "non_canonical_uri")?;
    authz::resolve(method, &path).ok_or("unknown_operation")
}

pub async fn check(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    // Noted first, so that a refused key's event also shows what it tried to reach
    // (caller-controlled: the audit writer redacts it like every such field).
    let ctx = RequestEvent::of(&req);
    let original = original_request(&req);
    if let Some(o) = &original {
        ctx.note("original_method", json!(o.method.chars().take(32).collect::<String>()));
        ctx.note("original_uri", json!(o.uri.chars().take(2048).collect::<String>()));
    }
    let key = authenticate_key(&state, &req, None).await?;
    let op = original.as_ref().ok_or("unknown_operation").and_then(operation_of).map_err(AppError::key_refused)?;
    ctx.note("checked_operation", json!(op.name));
    if !authz::key_may_call(key.key_type, op) {
        return Err(AppError::key_refused("type_mismatch"));
    }
    check_tenant_limit(&state, &key.tenant_id, op)?;
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
