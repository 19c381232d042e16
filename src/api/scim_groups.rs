//! SCIM Groups at `/scim/v2/Groups` (RFC 7643 §4.2, RFC 7644) with the User
//! Management key: what Okta and Entra ID group push sends. A group's members
//! are Users (members) of the key's tenant; the console role an owner maps a
//! group to (`team.role_mapping.update`) follows membership at once.
//!
//! The rules live in `domain::groups` and `service::groups`; answers and
//! errors are SCIM's, as for Users (`api::scim`).

use super::context::{commit, JsonBody, RequestEvent};
use super::scim::{audit_status, authorize, parse_body, path_id, respond, ScimFailure, ScimResult, CONTENT_TYPE};
use super::scim::{list_query as groups_query, ListQuery as GroupsQuery};
use crate::domain::groups::{self as rules, GROUP_RESOURCE};
use crate::domain::redact;
use crate::domain::scim::paging;
use crate::domain::scim_attributes::Projection;
use crate::error::AppError;
use crate::service::groups::{self as service, GroupResource};
use crate::service::scim::ListResponse;
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

fn projection_of(q: &GroupsQuery) -> Projection {
    Projection::parse(q.attributes.as_deref(), q.excluded_attributes.as_deref(), &GROUP_RESOURCE)
}

/// Whether the answer shows members (a read that leaves them out does not load them).
fn wants_members(projection: &Projection) -> bool {
    projection.returns("members", &GROUP_RESOURCE)
}

fn projected(group: &GroupResource, projection: &Projection) -> Result<Value, ScimFailure> {
    let v = serde_json::to_value(group).map_err(|e| AppError::internal().caused_by(e))?;
    Ok(projection.apply(v, &GROUP_RESOURCE))
}

/// A Group, with its Location when it was just created.
fn group_response(status: StatusCode, group: &GroupResource, projection: &Projection) -> ScimResult {
    let body = projected(group, projection)?;
    let mut res = HttpResponse::build(status);
    res.content_type(CONTENT_TYPE);
    if status == StatusCode::CREATED {
        res.insert_header((header::LOCATION, group.meta.location.as_str()));
    }
    Ok(res.body(body.to_string()))
}

fn parse_doc(body: Result<JsonBody, AppError>) -> Result<rules::GroupDoc, ScimFailure> {
    Ok(rules::parse_group(&parse_body(body)?)?)
}

pub(super) async fn list_groups(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let q = groups_query(&req)?;
    let (start, count) = paging(q.start_index, q.count);
    let filter = q.filter.as_deref().map(rules::parse_filter).transpose()?;
    if let Some(text) = &q.filter {
        RequestEvent::of(&req).note("filter", json!(redact::scrub(text)));
    }
    let projection = projection_of(&q);
    let with_members = wants_members(&projection);
    let tenant_id = key.tenant_id;
    let page =
        state.read(move |c| service::list_groups(c, &tenant_id, filter.as_ref(), start, count, with_members)).await?;
    let resources = page.resources.iter().map(|g| projected(g, &projection)).collect::<Result<Vec<_>, _>>()?;
    respond(StatusCode::OK, &ListResponse::new(page.total_results, page.start_index, resources))
}

pub(super) async fn get_group(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let projection = projection_of(&groups_query(&req)?);
    let with_members = wants_members(&projection);
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    let group = state.read(move |c| service::get_group(c, &tenant_id, &id, with_members)).await?;
    group_response(StatusCode::OK, &group, &projection)
}

pub(super) async fn create_group(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<JsonBody, AppError>,
) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let projection = projection_of(&groups_query(&req)?);
    let doc = parse_doc(body)?;
    audit_status(&req, StatusCode::CREATED);
    let tenant_id = key.tenant_id;
    let group = commit(&state, &req, move |c| service::create_group(c, &tenant_id, doc)).await?;
    group_response(StatusCode::CREATED, &group, &projection)
}

pub(super) async fn replace_group(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<JsonBody, AppError>,
) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let projection = projection_of(&groups_query(&req)?);
    let doc = parse_doc(body)?;
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    let group = commit(&state, &req, move |c| service::replace_group(c, &tenant_id, &id, doc)).await?;
    group_response(StatusCode::OK, &group, &projection)
}

/// PATCH answers the Group (200), so clients that read it back see the result.
pub(super) async fn patch_group(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<JsonBody, AppError>,
) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let projection = projection_of(&groups_query(&req)?);
    let changes = rules::parse_patch(&parse_body(body)?)?;
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    let group = commit(&state, &req, move |c| service::change_group(c, &tenant_id, &id, &changes)).await?;
    group_response(StatusCode::OK, &group, &projection)
}

pub(super) async fn delete_group(req: HttpRequest, state: web::Data<AppState>) -> ScimResult {
    let key = authorize(&state, &req).await?;
    let (tenant_id, id) = (key.tenant_id, path_id(&req));
    audit_status(&req, StatusCode::NO_CONTENT);
    commit(&state, &req, move |c| service::delete_group(c, &tenant_id, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
