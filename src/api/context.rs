//! Per-request context and the extractors handlers use: the request's pending
//! audit event (owned by the request until it is committed or recorded), the
//! authenticated caller, JSON bodies and query strings that fail with the
//! error envelope.

use crate::audit::writer::Committed;
use crate::audit::{ActorType, EventDraft};
use crate::auth::credentials::{self, CredentialHeaders, Presented};
use crate::auth::key::KeyIdentity;
use crate::auth::{console, Caller, KeyCaller, MemberCaller};
use crate::db::DbConn;
use crate::domain::{authz, forwarded, redact, Operation};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The audit event of a request being handled. The middleware makes it and
/// keeps it in the request, where authentication, the body parser and the
/// handler add what they learn; it is then moved out exactly once: by
/// [`commit`], into the transaction of the request's change, or else by the
/// middleware after the answer, which records it. Whoever holds it owns it:
/// no shared cell says whether it was committed.
pub struct PendingEvent {
    draft: EventDraft,
    /// The caller proved a credential (key, console token, ingest token or
    /// signed link): refusals of callers who did not are charged to their
    /// address's refusal budget.
    authenticated: bool,
}

impl PendingEvent {
    pub fn new(draft: EventDraft) -> PendingEvent {
        PendingEvent { draft, authenticated: false }
    }

    /// The event, if the request still holds it, taken out of it.
    pub fn take(req: &HttpRequest) -> Option<PendingEvent> {
        req.extensions_mut().remove::<PendingEvent>()
    }

    pub fn into_parts(self) -> (EventDraft, bool) {
        (self.draft, self.authenticated)
    }
}

/// The table's operation of a request, as the middleware resolved it (None:
/// none for this method and path).
#[derive(Clone, Copy)]
pub struct Resolved(pub Option<&'static Operation>);

/// What a handler or an extractor adds to its request's event. A request
/// whose event was already committed has nothing more to add.
pub struct RequestEvent<'a>(&'a HttpRequest);

impl<'a> RequestEvent<'a> {
    pub fn of(req: &'a HttpRequest) -> RequestEvent<'a> {
        RequestEvent(req)
    }

    fn with(&self, f: impl FnOnce(&mut PendingEvent)) {
        if let Some(pending) = self.0.extensions_mut().get_mut::<PendingEvent>() {
            f(pending);
        }
    }

    fn set_member(&self, m: &MemberCaller) {
        self.with(|e| {
            e.authenticated = true;
            let d = &mut e.draft;
            d.tenant_id = Some(m.tenant_id.clone());
            d.actor_type = ActorType::Member;
            d.actor_id = Some(m.member_id.clone());
        })
    }

    fn set_key(&self, k: &KeyIdentity) {
        self.with(|e| {
            let d = &mut e.draft;
            d.tenant_id = Some(k.tenant_id.clone());
            d.actor_type = ActorType::ApiKey;
            d.actor_id = Some(k.key_id.clone());
            d.key_id = Some(k.key_id.clone());
            d.key_type = Some(k.key_type);
            d.key_hint = Some(k.hint.clone());
        })
    }

    fn key_used(&self) {
        self.with(|e| {
            e.authenticated = true;
            e.draft.key_used = true;
        })
    }

    fn set_platform(&self, proved: bool) {
        self.with(|e| {
            e.authenticated = proved;
            e.draft.actor_type = ActorType::Service;
            e.draft.actor_id = Some(PLATFORM_ACTOR.into());
        })
    }

    /// A secret-scanning partner's signature over its report checked out.
    pub fn partner_proved(&self) {
        self.with(|e| {
            e.authenticated = true;
            e.draft.actor_type = ActorType::Service;
            e.draft.actor_id = Some(SCANNING_PARTNER_ACTOR.into());
        })
    }

    /// The request's id, while its event is still the request's.
    pub fn request_id(&self) -> Option<String> {
        self.0.extensions().get::<PendingEvent>().map(|e| e.draft.request_id.clone())
    }

    fn set_payload(&self, payload: Value) {
        self.with(|e| e.draft.payload = Some(payload))
    }

    /// Adds Tier 1 metadata to the event.
    pub fn note(&self, key: &str, value: Value) {
        self.with(|e| {
            e.draft.metadata.insert(key.to_string(), value);
        })
    }

    /// Names the tenant an event belongs to, once a handler knows it (ingestion, signed links).
    pub fn set_tenant(&self, tenant_id: &str) {
        self.with(|e| e.draft.tenant_id = Some(tenant_id.to_string()))
    }

    /// A signed link keyward issued for `tenant_id` was presented: the event belongs to its chain.
    pub fn link_proved(&self, tenant_id: &str) {
        self.with(|e| {
            e.authenticated = true;
            e.draft.tenant_id = Some(tenant_id.to_string());
        })
    }

    /// The status the event records if the request's change commits (SCIM answers 201).
    pub fn set_committed_status(&self, status: u16) {
        self.with(|e| e.draft.status_code = status)
    }
}

/// Commits `work` together with this request's event (one transaction). The
/// event leaves the request with it: once committed, the middleware has none to record.
pub async fn commit<T: Send + 'static>(
    state: &AppState,
    req: &HttpRequest,
    work: impl FnOnce(&mut DbConn) -> AppResult<(T, Map<String, Value>)> + Send + 'static,
) -> AppResult<T> {
    let pending = PendingEvent::take(req).ok_or_else(AppError::internal)?;
    let committed: Committed<T> = state.writer.commit(pending.draft.clone(), work).await;
    if committed.is_err() {
        // Nothing was written: the event stays the request's, for the middleware to record.
        req.extensions_mut().insert(pending);
    }
    committed?
}

/// The caller's address: the peer's, or the one a trusted gateway forwarded
/// (`KEYWARD_TRUSTED_PROXIES`, see [`forwarded`]).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(state) = req.app_data::<web::Data<AppState>>() else { return Some(peer) };
    let forwarded_for = req.headers().get_all("x-forwarded-for").map(|v| v.as_bytes());
    Some(forwarded::caller_address(peer, &state.settings.trusted_proxies, forwarded_for))
}

/// The request's one credential (every value of every credential header is looked at).
pub fn presented(req: &HttpRequest) -> Presented<'_> {
    let all = |name: &str| req.headers().get_all(name).map(|v| v.as_bytes()).collect();
    credentials::presented(&CredentialHeaders {
        x_api_key: all("x-api-key"),
        api_key: all("api-key"),
        authorization: all("authorization"),
    })
}

/// The table's operation for this request's route (resolved once by the middleware).
pub fn operation_of(req: &HttpRequest) -> Option<&'static Operation> {
    req.extensions().get::<Resolved>().and_then(|r| r.0)
}

fn state_of(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>().cloned().expect("AppState is registered")
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = Result<T, AppError>>>>;

/// A console member allowed, by the table, to call this route's operation.
pub struct ConsoleAuth(pub MemberCaller);

impl FromRequest for ConsoleAuth {
    type Error = AppError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req);
            let op = operation_of(&req).ok_or_else(AppError::internal)?;
            if matches!(presented(&req), Presented::Key(_)) {
                // A key on a console route: verified like any use, so the event names the
                // key, and refused by the table (no key reaches a console operation).
                authenticate_key(&state, &req, Some(op)).await?;
                return Err(AppError::key_refused("type_mismatch"));
            }
            let member = authenticate_member(&state, &req).await?;
            check_member(&state, &member, op)?;
            Ok(ConsoleAuth(member))
        })
    }
}

/// The table's role check, then the tenant's rate limit, for a console member on `op`.
fn check_member(state: &AppState, member: &MemberCaller, op: &Operation) -> AppResult<()> {
    if !authz::member_may_call(member.role, op) {
        let roles = authz::roles_for(op).iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ");
        return Err(AppError::role_required(if roles.is_empty() { "none" } else { &roles }));
    }
    check_tenant_limit(state, &member.tenant_id, op)
}

/// Verifies the request's key for `op` (None: any operation), recording the key in the audit event.
pub async fn authenticate_key(state: &AppState, req: &HttpRequest, op: Option<&Operation>) -> AppResult<KeyCaller> {
    let key = match presented(req) {
        Presented::Key(k) => Some(k.to_owned()),
        Presented::None | Presented::Bearer(_) => None,
        Presented::Ambiguous => return Err(AppError::key_refused("ambiguous_credentials")),
        Presented::Unreadable => return Err(AppError::key_refused("malformed")),
    };
    let verdict = state.keys.verify(key.as_deref(), client_ip(req), op).await;
    let event = RequestEvent::of(req);
    if let Some(identity) = &verdict.identity {
        event.set_key(identity);
    }
    match (verdict.result, &verdict.identity) {
        (Ok(caller), _) => {
            event.key_used();
            // Last in the order of checks: the gateway limits the operation it maps to, later.
            if let Some(op) = op {
                check_tenant_limit(state, &caller.tenant_id, op)?;
            }
            Ok(caller)
        }
        (Err(e), _) => Err(e),
    }
}

/// The console member behind the request's token, recorded in the audit event.
async fn authenticate_member(state: &AppState, req: &HttpRequest) -> AppResult<MemberCaller> {
    let token = match presented(req) {
        Presented::Bearer(t) => Some(t.to_owned()),
        Presented::None | Presented::Key(_) => None,
        Presented::Ambiguous => return Err(AppError::console_refused("ambiguous_credentials")),
        Presented::Unreadable => return Err(AppError::console_refused("bad_token")),
    };
    let member = console::authenticate(&state.console, &state.pool, token.as_deref()).await?;
    RequestEvent::of(req).set_member(&member);
    Ok(member)
}

/// The per-tenant, per-operation rate limit (429 with Retry-After).
pub fn check_tenant_limit(state: &AppState, tenant_id: &str, op: &Operation) -> AppResult<()> {
    state.limits.check_tenant(tenant_id, op).map_err(AppError::rate_limited)
}

/// An enterprise key the table allows on this route's operation.
pub struct KeyAuth(pub KeyCaller);

impl FromRequest for KeyAuth {
    type Error = AppError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req);
            let op = operation_of(&req).ok_or_else(AppError::internal)?;
            authenticate_key(&state, &req, Some(op)).await.map(KeyAuth)
        })
    }
}

/// The platform, with `Authorization: Bearer <KEYWARD_INGEST_TOKEN>`.
pub struct IngestAuth;

/// The platform's actor id in audit events.
pub const PLATFORM_ACTOR: &str = "platform";

/// A secret-scanning partner's actor id in audit events.
pub const SCANNING_PARTNER_ACTOR: &str = "secret-scanning";

impl FromRequest for IngestAuth {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(req);
        let credential = presented(req);
        // With no token configured, ingestion is closed.
        let ok = match (&state.settings.ingest_token, credential) {
            (Some(expected), Presented::Bearer(given)) => {
                crate::crypto::constant_time_eq(expected.expose().as_bytes(), given.as_bytes())
            }
            _ => false,
        };
        RequestEvent::of(req).set_platform(ok);
        std::future::ready(if ok {
            Ok(IngestAuth)
        } else {
            Err(AppError {
                audit_reason: Some(match credential {
                    // A key is not an ingest token: none was presented.
                    Presented::None | Presented::Key(_) => "missing",
                    Presented::Ambiguous => "ambiguous_credentials",
                    _ => "bad_ingest_token",
                }),
                ..AppError::new(crate::error::ErrorCode::Unauthenticated, "Invalid or missing ingest token")
            })
        })
    }
}

/// A caller the table allows on this route's operation, by key or by console
/// token: a request that presents a key is a key caller, one with a console
/// bearer token a member (whoami, which any caller reaches; the audit proofs).
pub struct AnyCaller(pub Caller);

impl AnyCaller {
    /// The tenant the caller acts for.
    pub fn tenant_id(&self) -> &str {
        match &self.0 {
            Caller::Key(k) => &k.tenant_id,
            Caller::Member(m) => &m.tenant_id,
        }
    }
}

impl FromRequest for AnyCaller {
    type Error = AppError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req);
            let op = operation_of(&req).ok_or_else(AppError::internal)?;
            if !matches!(presented(&req), Presented::Bearer(_)) {
                return authenticate_key(&state, &req, Some(op)).await.map(|k| AnyCaller(Caller::Key(k)));
            }
            let member = authenticate_member(&state, &req).await?;
            check_member(&state, &member, op)?;
            Ok(AnyCaller(Caller::Member(member)))
        })
    }
}

/// A JSON body, read and checked when the handler asks for it (after
/// authentication, so an unauthenticated caller learns nothing from parsing).
pub struct JsonBody {
    raw: Result<web::Bytes, AppError>,
    req: HttpRequest,
}

impl JsonBody {
    pub fn parse<T: DeserializeOwned>(self) -> AppResult<T> {
        self.parse_as(&["application/json"])
    }

    /// SCIM clients send `application/scim+json` (RFC 7644 §3.1) or plain JSON.
    pub fn parse_scim<T: DeserializeOwned>(self) -> AppResult<T> {
        self.parse_as(&["application/scim+json", "application/json"])
    }

    /// The body's bytes as sent, for a body that is itself secret (a leak
    /// report holds the leaked keys): never recorded in the request's event.
    pub fn unrecorded_bytes(self) -> AppResult<web::Bytes> {
        let mime = self.req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next());
        if !mime.is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
            return Err(AppError::invalid("Content-Type must be application/json"));
        }
        self.raw
    }

    fn parse_as<T: DeserializeOwned>(self, accepted: &[&str]) -> AppResult<T> {
        let mime = self.req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next());
        if !mime.is_some_and(|m| accepted.iter().any(|a| m.trim().eq_ignore_ascii_case(a))) {
            return Err(AppError::invalid(format!("Content-Type must be {}", accepted.join(" or "))));
        }
        let raw = self.raw?;
        let value: Value =
            serde_json::from_slice(&raw).map_err(|e| AppError::invalid(format!("malformed JSON body: {e}")))?;
        if !value.is_object() {
            return Err(AppError::invalid("the JSON body must be an object"));
        }
        RequestEvent::of(&self.req).set_payload(redact::redact(&value));
        if redact::contains_nul(&value) {
            return Err(AppError::invalid("text fields must not contain NUL characters"));
        }
        // A secret is shown once: one pasted into any field (a label, a note) is refused, never stored.
        if redact::contains_secret(&state_of(&self.req).redactor, &value) {
            return Err(AppError::invalid(
                "the body contains what looks like an enterprise API key secret; secrets are never accepted as data",
            ));
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path == "." {
                AppError::invalid(format!("invalid body: {inner}"))
            } else {
                AppError::invalid(format!("invalid field `{path}`: {inner}"))
            }
        })
    }
}

impl FromRequest for JsonBody {
    type Error = AppError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| AppError::invalid("the request body could not be read"))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(AppError::payload_too_large(MAX_BODY_BYTES));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(JsonBody { raw: Ok(body.freeze()), req })
        })
    }
}

/// For operations that take no query parameters: any given is refused, as everywhere.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Parses the query string; unknown parameters and bad values are `invalid_argument`.
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> AppResult<T> {
    if form_urlencoded_parse(req.query_string()).any(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(AppError::invalid("query parameters must not contain NUL characters"));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(req.query_string()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            AppError::invalid(format!("invalid query: {inner}"))
        } else {
            AppError::invalid(format!("invalid query parameter `{path}`: {inner}"))
        }
    })
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// The success envelope.
pub fn ok(mut fields: Map<String, Value>) -> HttpResponse {
    let mut body = Map::new();
    body.insert("ok".into(), Value::Bool(true));
    body.insert("request_id".into(), Value::String(crate::telemetry::current_request_id()));
    body.append(&mut fields);
    HttpResponse::Ok().json(Value::Object(body))
}

/// The success envelope around a typed body, serialized without building a
/// `Value` tree first (for long lists and the hot path).
pub fn ok_with<T: serde::Serialize>(fields: &T) -> HttpResponse {
    // `{"ok":true,"request_id":…` followed by the fields' own object, spliced
    // as bytes: serde's `flatten` buffers every field through a generic map
    // serializer, a tenth of the whoami handler's time.
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(br#"{"ok":true,"request_id":"#);
    let written = serde_json::to_writer(&mut body, &crate::telemetry::current_request_id());
    let start = body.len();
    let written = written.and_then(|()| serde_json::to_writer(&mut body, fields));
    match body.get(start..) {
        Some(b"{}") if written.is_ok() => {
            body.truncate(start);
            body.push(b'}');
        }
        Some([b'{', _, ..]) if written.is_ok() => body[start] = b',',
        // A body that is not a JSON object: no handler passes one.
        _ => return actix_web::ResponseError::error_response(&AppError::internal()),
    }
    HttpResponse::Ok().content_type(actix_web::http::header::ContentType::json()).body(body)
}

/// Builds the map for `ok` from a `json!` object.
pub fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// For a body field that may be given as null: absent is `None`, `null` is
/// `Some(None)` (use with `#[serde(default, deserialize_with = …)]`).
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod ok_with_tests {
    use super::ok_with;
    use actix_web::body::MessageBody;
    use serde_json::{json, Value};

    fn body_of<T: serde::Serialize>(fields: &T) -> Value {
        let bytes = ok_with(fields).into_body().try_into_bytes().expect("a complete body");
        serde_json::from_slice(&bytes).expect("valid JSON")
    }

    #[test]
    fn the_envelope_carries_the_fields_beside_ok_and_the_request_id() {
        let body = body_of(&json!({"caller": {"type": "API_KEY", "label": "a \"quoted\" {label}"}, "n": [1, 2]}));
        assert_eq!(body["ok"], json!(true));
        assert!(body["request_id"].as_str().unwrap().starts_with("req_"));
        assert_eq!(body["caller"]["label"], json!("a \"quoted\" {label}"));
        assert_eq!(body["n"], json!([1, 2]));
        assert_eq!(body.as_object().unwrap().len(), 4);
    }

    #[test]
    fn no_fields_is_the_bare_envelope_and_a_non_object_is_refused() {
        let body = body_of(&json!({}));
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        assert_eq!(ok_with(&json!([1])).status(), actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
