//! SCIM 2.0 at `/scim/v2` (RFC 7643, RFC 7644) for Okta and Entra ID
//! provisioning, with the User Management key. A SCIM User is a member of the
//! key's tenant: `id` is the member id. Removed members are invisible here.
//!
//! Every change goes through the team rules (`service::team`) and commits
//! with its audit event. Every answer, errors included, is
//! `application/scim+json`; errors carry the RFC 7644 §3.12 body and keep
//! the underlying `AppError` on the response for the audit middleware.

use super::context::{authenticate_key, commit, operation_of, JsonBody, RequestEvent};
use crate::auth::KeyCaller;
use crate::db::models::{to_utc, Member};
use crate::db::store::{self, MemberFilter};
use crate::db::DbConn;
use crate::domain::scim::{self as rules, Change, Filter, FilterAttr, ScimError, ScimType, UserAttrs, UserView};
use crate::domain::{member, redact, MemberStatus};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::team::{self, TeamUserFields};
use crate::service::Meta;
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

/// The media type of every SCIM answer (RFC 7644 §3.1).
pub const CONTENT_TYPE: &str = "application/scim+json";
const BASE: &str = "/scim/v2";
/// Most members a filtered list looks at (filters select by near-unique attributes).
const CANDIDATE_CAP: i64 = 10_000;

// ------------------------------------------------------------------ errors

/// An error rendered as a SCIM Error message.
#[derive(Debug)]
pub struct ScimFailure {
    error: AppError,
    scim_type: Option<ScimType>,
}

impl ScimFailure {
    fn typed(error: AppError, scim_type: ScimType) -> Self {
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
        let mut body = json!({
            "schemas": [rules::ERROR_SCHEMA],
            "status": status.as_u16().to_string(),
            // Messages may quote input; a pasted secret is never echoed back.
            "detail": redact::scrub(&self.error.message),
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t.as_str());
        }
        let mut res = HttpResponse::build(status);
        res.content_type(CONTENT_TYPE);
        if let Some(secs) = self.error.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.error.allow {
            res.insert_header((header::ALLOW, allow.clone()));
        }
        let mut response = res.body(body.to_string());
        // The audit middleware reads the precise reason from here.
        response.extensions_mut().insert(self.error.clone());
        response
    }
}

type ScimResult = Result<HttpResponse, ScimFailure>;

// ------------------------------------------------------------------ helpers

/// The key for this route's operation; refusals become SCIM 401s (same body for every reason).
async fn authorize(state: &AppState, req: &HttpRequest) -> Result<KeyCaller, ScimFailure> {
    let op = operation_of(req).ok_or_else(AppError::internal)?;
    Ok(authenticate_key(state, req, Some(op)).await?)
}

fn parse_body(body: Result<JsonBody, AppError>) -> Result<Value, ScimFailure> {
    body.and_then(JsonBody::parse_scim::<Value>).map_err(|e| {
        if e.http_status() == StatusCode::BAD_REQUEST {
            ScimFailure::typed(e, ScimType::InvalidSyntax)
        } else {
            e.into()
        }
    })
}

fn path_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_string()
}

fn respond(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).content_type(CONTENT_TYPE).body(body.to_string())
}

/// The status the request's audit event records when its change commits.
fn audit_status(req: &HttpRequest, status: StatusCode) {
    RequestEvent::of(req).set_committed_status(status.as_u16());
}

fn note_ignored(req: &HttpRequest, changes: &[Change]) {
    let ignored = rules::ignored(changes);
    if !ignored.is_empty() {
        RequestEvent::of(req).note("ignored_attributes", json!(ignored));
    }
}

fn not_found() -> AppError {
    AppError::not_found("no User with this id")
}

fn is_removed(m: &Member) -> bool {
    m.status == MemberStatus::Removed.as_str()
}

fn is_active(m: &Member) -> bool {
    m.status == MemberStatus::Active.as_str()
}

/// A member SCIM may see: of the tenant, not removed.
fn load_visible(c: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<Member> {
    match store::find_member(c, tenant_id, id)? {
        Some(m) if !is_removed(&m) => Ok(m),
        _ => Err(not_found()),
    }
}

/// A member without a userName of its own is served under its email, so no
/// other member may take that as a userName.
fn check_served_user_name(c: &mut DbConn, tenant_id: &str, user_name: &Option<String>, except: &str) -> AppResult<()> {
    let Some(email) = user_name.as_deref().and_then(member::normalize_email) else {
        return Ok(());
    };
    match store::find_member_by_email(c, tenant_id, &email)? {
        Some(other) if other.user_name.is_none() && other.id != except && !is_removed(&other) => {
            Err(AppError::already_exists("a User with this userName already exists"))
        }
        _ => Ok(()),
    }
}

fn attrs_of(m: &Member) -> UserAttrs {
    UserAttrs {
        user_name: m.user_name.clone(),
        email: Some(m.email.clone()),
        given_name: m.first_name.clone(),
        family_name: m.last_name.clone(),
        external_id: m.external_id.clone(),
        active: is_active(m),
    }
}

fn status_for(active: bool) -> MemberStatus {
    if active {
        MemberStatus::Active
    } else {
        MemberStatus::Inactive
    }
}

fn fields_of(a: UserAttrs, status: Option<MemberStatus>) -> TeamUserFields {
    TeamUserFields {
        email: a.email.unwrap_or_default(),
        role: None,
        first_name: a.given_name,
        last_name: a.family_name,
        user_name: a.user_name,
        external_id: a.external_id,
        status,
    }
}

/// Applies `changes` to a member under the team rules (PUT, PATCH).
fn change_member(c: &mut DbConn, tenant_id: &str, id: &str, changes: &[Change]) -> AppResult<(Member, Meta)> {
    let before = load_visible(c, tenant_id, id)?;
    let mut attrs = attrs_of(&before);
    attrs.apply(changes);
    // Status is asserted only when it changes, so the owner's other attributes stay editable.
    let status = (attrs.active != is_active(&before)).then(|| status_for(attrs.active));
    check_served_user_name(c, tenant_id, &attrs.user_name, &before.id)?;
    team::replace_team_user(c, tenant_id, id, fields_of(attrs, status))
}

fn time(t: chrono::NaiveDateTime) -> String {
    to_utc(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn location(id: &str) -> String {
    format!("{BASE}/Users/{id}")
}

fn version(m: &Member) -> String {
    format!("W/\"{:x}\"", to_utc(m.updated_at).timestamp_micros())
}

/// A member as a SCIM User. A member with no userName of its own is served under its email.
fn user_json(m: &Member) -> Value {
    let mut name = Map::new();
    if let Some(g) = &m.first_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &m.last_name {
        name.insert("familyName".into(), json!(f));
    }
    let formatted: Vec<&str> = [&m.first_name, &m.last_name].into_iter().flatten().map(String::as_str).collect();
    if !formatted.is_empty() {
        name.insert("formatted".into(), json!(formatted.join(" ")));
    }
    let mut user = json!({
        "schemas": [rules::USER_SCHEMA],
        "id": m.id,
        "userName": m.user_name.as_deref().unwrap_or(&m.email),
        "name": name,
        "emails": [{"value": m.email, "type": "work", "primary": true}],
        "active": is_active(m),
        "meta": {
            "resourceType": "User",
            "created": time(m.created_at),
            "lastModified": time(m.updated_at),
            "location": location(&m.id),
            "version": version(m),
        },
    });
    if let Some(x) = &m.external_id {
        user["externalId"] = json!(x);
    }
    user
}

fn user_response(status: StatusCode, m: &Member) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.content_type(CONTENT_TYPE);
    if status == StatusCode::CREATED {
        res.insert_header((header::LOCATION, location(&m.id)));
    }
    res.body(user_json(m).to_string())
}

fn list_response(total: usize, start: i64, items: Option<Vec<Value>>) -> Value {
    let mut body = json!({
        "schemas": [rules::LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": items.as_ref().map_or(0, Vec::len),
    });
    if let Some(items) = items {
        body["Resources"] = Value::Array(items);
    }
    body
}

// ------------------------------------------------------------------ discovery

pub(super) async fn service_provider_config(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    Ok(respond(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": rules::MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [
                {
                    "type": "oauthbearertoken",
                    "name": "Bearer key",
                    "description": "A keyward Team User Management key (kw_usermgmt_…) sent as Authorization: Bearer <key>",
                    "primary": true,
                },
                {
                    "type": "apikey",
                    "name": "X-API-Key",
                    "description": "The same key in the X-API-Key header (also Api-Key, or Authorization: Api-Key <key>)",
                },
            ],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{BASE}/ServiceProviderConfig")},
        }),
    ))
}

fn user_resource_type() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A member of the tenant",
        "schema": rules::USER_SCHEMA,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": format!("{BASE}/ResourceTypes/User")},
    })
}

pub(super) async fn resource_types(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    Ok(respond(StatusCode::OK, &list_response(1, 1, Some(vec![user_resource_type()]))))
}

fn attribute(name: &str, kind: &str, required: bool, case_exact: bool, mutability: &str, uniqueness: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": "",
        "required": required,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": uniqueness,
    })
}

fn described(mut attr: Value, description: &str) -> Value {
    attr["description"] = json!(description);
    attr
}

/// The core User schema, with the attributes keyward keeps.
fn user_schema() -> Value {
    let mut name = described(
        attribute("name", "complex", false, false, "readWrite", "none"),
        "The member's name: givenName and familyName are stored; formatted is derived",
    );
    name["subAttributes"] = json!([
        described(attribute("givenName", "string", false, false, "readWrite", "none"), "First name"),
        described(attribute("familyName", "string", false, false, "readWrite", "none"), "Last name"),
        described(attribute("formatted", "string", false, false, "readOnly", "none"), "givenName familyName"),
    ]);
    let mut emails = described(
        attribute("emails", "complex", true, false, "readWrite", "none"),
        "A member keeps one address: the primary one sent, else the first; it is unique in the tenant",
    );
    emails["multiValued"] = json!(true);
    emails["subAttributes"] = json!([
        described(attribute("value", "string", true, false, "readWrite", "server"), "The address"),
        described(attribute("type", "string", false, false, "readOnly", "none"), "Always work"),
        described(attribute("primary", "boolean", false, false, "readOnly", "none"), "Always true"),
    ]);
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": rules::USER_SCHEMA,
        "name": "User",
        "description": "A member of the tenant",
        "attributes": [
            described(
                attribute("userName", "string", true, false, "readWrite", "server"),
                "Unique in the tenant, case-insensitively; a member without one is served under its email",
            ),
            name,
            emails,
            described(
                attribute("active", "boolean", false, false, "readWrite", "none"),
                "false deactivates the member (USER_STATUS_INACTIVE); it stays listed",
            ),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{BASE}/Schemas/{}", rules::USER_SCHEMA)},
    })
}

pub(super) async fn schemas(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    authorize(&state, &req).await?;
    Ok(respond(StatusCode::OK, &list_response(1, 1, Some(vec![user_schema()]))))
}

// ------------------------------------------------------------------ users

struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
}

fn list_query(req: &HttpRequest) -> Result<ListQuery, ScimFailure> {
    let mut q = ListQuery { filter: None, start_index: None, count: None };
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
            // attributes, excludedAttributes, sortBy, sortOrder: full resources, creation order.
            _ => {}
        }
    }
    Ok(q)
}

/// Every member SCIM may see.
fn visible() -> MemberFilter {
    MemberFilter { hide_removed: true, ..MemberFilter::default() }
}

/// The members a filter may match, found by its most selective clause, then matched in full.
fn filtered(c: &mut DbConn, tenant_id: &str, f: &Filter) -> AppResult<Vec<Member>> {
    let rank = |a: FilterAttr| match a {
        FilterAttr::Id => 0,
        FilterAttr::UserName => 1,
        FilterAttr::Email => 2,
        FilterAttr::ExternalId => 3,
    };
    let driver = f.clauses.iter().min_by_key(|c| rank(c.attr)).ok_or_else(AppError::internal)?;
    let mut query = |filter: MemberFilter| -> AppResult<Vec<Member>> {
        Ok(store::list_members(c, tenant_id, &filter, 0, CANDIDATE_CAP)?.0)
    };
    let base = visible();
    let mut found: Vec<Member> = match driver.attr {
        FilterAttr::Id => Vec::new(),
        FilterAttr::UserName => {
            let mut v = query(MemberFilter { user_name: Some(driver.value.clone()), ..base.clone() })?;
            if let Some(email) = member::normalize_email(&driver.value) {
                v.extend(query(MemberFilter { email: Some(email), ..base.clone() })?);
            }
            v
        }
        FilterAttr::Email => match member::normalize_email(&driver.value) {
            Some(email) => query(MemberFilter { email: Some(email), ..base.clone() })?,
            None => Vec::new(),
        },
        FilterAttr::ExternalId => query(MemberFilter { external_id: Some(driver.value.clone()), ..base.clone() })?,
    };
    if driver.attr == FilterAttr::Id {
        found.extend(store::find_member(c, tenant_id, &driver.value)?.filter(|m| !is_removed(m)));
    }
    found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    found.dedup_by(|a, b| a.id == b.id);
    found.retain(|m| {
        f.matches(&UserView {
            id: &m.id,
            user_name: m.user_name.as_deref().unwrap_or(&m.email),
            email: &m.email,
            external_id: m.external_id.as_deref(),
        })
    });
    Ok(found)
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
    let (page, total) = state
        .read(move |c| match filter {
            None => {
                let (rows, total) = store::list_members(c, &tenant_id, &visible(), start - 1, count)?;
                Ok((rows, usize::try_from(total).unwrap_or(0)))
            }
            Some(f) => {
                let all = filtered(c, &tenant_id, &f)?;
                let total = all.len();
                let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
                let take = usize::try_from(count).unwrap_or(0);
                Ok((all.into_iter().skip(skip).take(take).collect(), total))
            }
        })
        .await?;
    // count=0 asks for totalResults alone (RFC 7644 §3.4.2.4).
    let items = (count > 0).then(|| page.iter().map(user_json).collect());
    Ok(respond(StatusCode::OK, &list_response(total, start, items)))
}

pub(super) async fn get_user(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    let m = state.read(move |c| load_visible(c, &tenant_id, &id)).await?;
    Ok(user_response(StatusCode::OK, &m))
}

pub(super) async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<JsonBody, AppError>,
) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let doc = parse_body(body)?;
    let changes = rules::parse_resource(&doc)?;
    let mut attrs = UserAttrs { active: true, ..UserAttrs::default() };
    attrs.apply(&changes);
    if attrs.email.is_none() {
        // No emails: a userName that is an address is the member's email.
        attrs.email = attrs.user_name.clone().filter(|u| member::normalize_email(u).is_some());
    }
    if attrs.email.is_none() {
        return Err(ScimFailure::typed(
            AppError::invalid("emails is required unless userName is an email address"),
            ScimType::InvalidValue,
        ));
    }
    note_ignored(&req, &changes);
    audit_status(&req, StatusCode::CREATED);
    let tenant_id = key.tenant_id;
    let created = commit(&state, &req, move |c| {
        check_served_user_name(c, &tenant_id, &attrs.user_name, "")?;
        let status = status_for(attrs.active);
        // New members are MEMBERs (the default role of add_team_user).
        team::add_team_user(c, &tenant_id, fields_of(attrs, Some(status)))
    })
    .await?;
    Ok(user_response(StatusCode::CREATED, &created))
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
    let m = commit(&state, &req, move |c| change_member(c, &tenant_id, &id, &changes)).await?;
    Ok(user_response(StatusCode::OK, &m))
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
    let m = commit(&state, &req, move |c| change_member(c, &tenant_id, &id, &changes)).await?;
    Ok(user_response(StatusCode::OK, &m))
}

/// Removes the member (irreversible; refused for the owner and for members under legal hold).
pub(super) async fn delete_user(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    audit_status(&req, StatusCode::NO_CONTENT);
    commit(&state, &req, move |c| {
        load_visible(c, &tenant_id, &id)?;
        team::change_team_user(c, &tenant_id, &id, Some(MemberStatus::Removed), None)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
