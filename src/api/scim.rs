//! SCIM 2.0 at `/scim/v2` (RFC 7643, RFC 7644) for Okta and Entra ID
//! provisioning, with the User Management key. A SCIM User is a member of the
//! key's tenant: `id` is the member id. Removed members are invisible here.
//!
//! The rules live in `service::scim` (over the team rules) and
//! `domain::scim`, `domain::scim_filter`, `domain::scim_attributes`; every
//! change commits with its audit event. Every answer under `/scim/`, errors
//! included (unknown paths, wrong methods, 401, 413), is
//! `application/scim+json`; errors carry the RFC 7644 §3.12 body and keep the
//! underlying `AppError` on the response for the audit middleware.

use super::context::{authenticate_key, commit, operation_of, JsonBody, RequestEvent};
use crate::auth::KeyCaller;
use crate::domain::redact;
use crate::domain::scim::{self as rules, Change, ScimError, ScimType, USER_RESOURCE};
use crate::domain::scim_attributes::Projection;
use crate::error::{AppError, ErrorCode};
use crate::service::scim::{self as service, UserResource};
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};

/// The media type of every SCIM answer (RFC 7644 §3.1).
pub const CONTENT_TYPE: &str = "application/scim+json";
/// Where SCIM answers live: errors under it are SCIM errors.
pub const PATH_PREFIX: &str = "/scim/";
/// The challenge of a 401 (RFC 7644 §2, RFC 6750 §3): the primary
/// authenticationScheme of the ServiceProviderConfig, `oauthbearertoken`.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"keyward\"";

// ------------------------------------------------------------------ errors

/// The body of a SCIM error (RFC 7644 §3.12); `status` is a string there.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    schemas: [&'static str; 1],
    status: String,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scim_type: Option<&'static str>,
}

/// An error rendered as a SCIM Error message.
#[derive(Debug)]
pub struct ScimFailure {
    error: AppError,
    scim_type: Option<ScimType>,
}

impl ScimFailure {
    pub(super) fn typed(error: AppError, scim_type: ScimType) -> Self {
        ScimFailure { error, scim_type: Some(scim_type) }
    }
}

impl From<AppError> for ScimFailure {
    fn from(error: AppError) -> Self {
        let scim_type = match error.code {
            ErrorCode::AlreadyExists => Some(ScimType::Uniqueness),
            // 413 and 405 carry their own status and no scimType.
            ErrorCode::InvalidArgument if error.status.is_none() => Some(ScimType::InvalidValue),
            // The member's state forbids it (owner, legal hold, removal).
            ErrorCode::FailedPrecondition => Some(ScimType::Mutability),
            _ => None,
        };
        ScimFailure { error, scim_type }
    }
}

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        ScimFailure::typed(AppError::invalid(e.detail), e.scim_type)
    }
}

impl std::fmt::Display for ScimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for ScimFailure {
    fn status_code(&self) -> StatusCode {
        self.error.http_status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.error.http_status();
        let body = ErrorBody {
            schemas: [rules::ERROR_SCHEMA],
            status: status.as_u16().to_string(),
            // Messages may quote input; a pasted secret is never echoed back.
            detail: redact::scrub(&self.error.message),
            scim_type: self.scim_type.map(ScimType::as_str),
        };
        let mut res = HttpResponse::build(status);
        res.content_type(CONTENT_TYPE);
        if let Some(secs) = self.error.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.error.allow {
            res.insert_header((header::ALLOW, allow.clone()));
        }
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE));
        }
        let mut response = res.body(serde_json::to_string(&body).unwrap_or_default());
        // The audit middleware reads the precise reason from here.
        response.extensions_mut().insert(self.error.clone());
        response
    }
}

pub(super) type ScimResult = Result<HttpResponse, ScimFailure>;

// ------------------------------------------------------------------ helpers

/// The key for this route's operation; refusals become SCIM 401s (same body for every reason).
pub(super) async fn authorize(state: &AppState, req: &HttpRequest) -> Result<KeyCaller, ScimFailure> {
    let op = operation_of(req).ok_or_else(AppError::internal)?;
    Ok(authenticate_key(state, req, Some(op)).await?)
}

pub(super) fn parse_body(body: Result<JsonBody, AppError>) -> Result<Value, ScimFailure> {
    body.and_then(JsonBody::parse_scim::<Value>).map_err(|e| {
        if e.http_status() == StatusCode::BAD_REQUEST {
            ScimFailure::typed(e, ScimType::InvalidSyntax)
        } else {
            e.into()
        }
    })
}

pub(super) fn path_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_string()
}

pub(super) fn respond(status: StatusCode, body: &impl Serialize) -> ScimResult {
    let body = serde_json::to_string(body).map_err(|_| AppError::internal())?;
    Ok(HttpResponse::build(status).content_type(CONTENT_TYPE).body(body))
}

/// The status the request's audit event records when its change commits.
pub(super) fn audit_status(req: &HttpRequest, status: StatusCode) {
    RequestEvent::of(req).set_committed_status(status.as_u16());
}

fn note_ignored(req: &HttpRequest, changes: &[Change]) {
    let ignored = rules::ignored(changes);
    if !ignored.is_empty() {
        RequestEvent::of(req).note("ignored_attributes", json!(ignored));
    }
}

/// `attributes` and `excludedAttributes` of the query (RFC 7644 §3.4.2.5, §3.9: every read, and the answers to changes).
fn projection(req: &HttpRequest) -> Projection {
    let (mut attributes, mut excluded) = (None, None);
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.to_ascii_lowercase().as_str() {
            "attributes" => attributes = Some(v.into_owned()),
            "excludedattributes" => excluded = Some(v.into_owned()),
            _ => {}
        }
    }
    Projection::parse(attributes.as_deref(), excluded.as_deref(), &USER_RESOURCE)
}

/// A User as the request asked to see it.
fn project(projection: &Projection, user: &UserResource) -> Result<Value, ScimFailure> {
    let v = serde_json::to_value(user).map_err(|e| AppError::internal().caused_by(e))?;
    Ok(projection.apply(v, &USER_RESOURCE))
}

/// A User, with its Location when it was just created.
fn user_response(req: &HttpRequest, status: StatusCode, user: &UserResource) -> ScimResult {
    let body =
        serde_json::to_string(&project(&projection(req), user)?).map_err(|e| AppError::internal().caused_by(e))?;
    let mut res = HttpResponse::build(status);
    res.content_type(CONTENT_TYPE);
    if status == StatusCode::CREATED {
        res.insert_header((header::LOCATION, user.meta.location.as_str()));
    }
    Ok(res.body(body))
}

// ------------------------------------------------------------------ discovery

pub(super) async fn service_provider_config(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    respond(StatusCode::OK, &service::service_provider_config())
}

pub(super) async fn resource_types(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    respond(StatusCode::OK, &service::resource_types())
}

pub(super) async fn schemas(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    respond(StatusCode::OK, &service::schemas())
}

pub(super) async fn resource_type(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    respond(StatusCode::OK, &service::resource_type(&path_id(&req))?)
}

pub(super) async fn schema(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    respond(StatusCode::OK, &service::schema(&path_id(&req))?)
}

// ------------------------------------------------------------------ users

/// The query parameters of a SCIM list or read (names case-insensitive, RFC 7644 §3.4.2).
#[derive(Default)]
pub(super) struct ListQuery {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

pub(super) fn list_query(req: &HttpRequest) -> Result<ListQuery, ScimFailure> {
    let mut q = ListQuery::default();
    let int = |name: &str, v: &str| {
        v.trim().parse::<i64>().map_err(|_| {
            ScimFailure::typed(AppError::invalid(format!("{name} must be an integer")), ScimType::InvalidValue)
        })
    };
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.to_ascii_lowercase().as_str() {
            "filter" => q.filter = Some(v.into_owned()).filter(|f| !f.trim().is_empty()),
            "startindex" => q.start_index = Some(int("startIndex", &v)?),
            "count" => q.count = Some(int("count", &v)?),
            "attributes" => q.attributes = Some(v.into_owned()),
            "excludedattributes" => q.excluded_attributes = Some(v.into_owned()),
            // sortBy, sortOrder: creation order (sort is not declared in the ServiceProviderConfig).
            _ => {}
        }
    }
    Ok(q)
}

pub(super) async fn list_users(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let q = list_query(&req)?;
    let (start, count) = rules::paging(q.start_index, q.count);
    let filter = q.filter.as_deref().map(rules::parse_filter).transpose()?;
    if let Some(text) = &q.filter {
        RequestEvent::of(&req).note("filter", json!(redact::scrub(text)));
    }
    let tenant_id = key.tenant_id;
    let page = state.read(move |c| service::list_users(c, &tenant_id, filter.as_ref(), start, count)).await?;
    let projection = projection(&req);
    let resources = page.resources.iter().map(|u| project(&projection, u)).collect::<Result<Vec<_>, _>>()?;
    respond(StatusCode::OK, &service::ListResponse::new(page.total_results, page.start_index, resources))
}

pub(super) async fn get_user(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    let user = state.read(move |c| service::get_user(c, &tenant_id, &id)).await?;
    user_response(&req, StatusCode::OK, &user)
}

pub(super) async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<JsonBody, AppError>,
) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let doc = parse_body(body)?;
    let changes = rules::parse_resource(&doc)?;
    let attrs = rules::new_user(&changes)?;
    note_ignored(&req, &changes);
    audit_status(&req, StatusCode::CREATED);
    let tenant_id = key.tenant_id;
    let created = commit(&state, &req, move |c| service::create_user(c, &tenant_id, attrs)).await?;
    user_response(&req, StatusCode::CREATED, &created)
}

pub(super) async fn replace_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<JsonBody, AppError>,
) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let doc = parse_body(body)?;
    let changes = rules::parse_resource(&doc)?;
    note_ignored(&req, &changes);
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    let user = commit(&state, &req, move |c| service::change_user(c, &tenant_id, &id, &changes)).await?;
    user_response(&req, StatusCode::OK, &user)
}

pub(super) async fn patch_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<JsonBody, AppError>,
) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let doc = parse_body(body)?;
    let changes = rules::parse_patch(&doc)?;
    note_ignored(&req, &changes);
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    let user = commit(&state, &req, move |c| service::change_user(c, &tenant_id, &id, &changes)).await?;
    user_response(&req, StatusCode::OK, &user)
}

/// Removes the member (irreversible; refused for the owner and for members under legal hold).
pub(super) async fn delete_user(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    audit_status(&req, StatusCode::NO_CONTENT);
    commit(&state, &req, move |c| service::remove_user(c, &tenant_id, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
