//! team_users surface (User Management key): provision, update and offboard members.

use super::context::{commit, ok_with, query, JsonBody, KeyAuth};
use super::pagination::Page;
use crate::domain::{MemberStatus, Role};
use crate::error::AppResult;
use crate::service::team::{self, TeamUserFields, TeamUserView};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct OneUser<'a> {
    team_user: &'a TeamUserView<'static>,
}

fn one(team_user: &TeamUserView<'static>) -> HttpResponse {
    ok_with(&OneUser { team_user })
}

#[derive(Serialize)]
struct UserPage<'a> {
    team_users: &'a [TeamUserView<'static>],
    total: i64,
    limit: i64,
    offset: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListUsers {
    status: Option<MemberStatus>,
    role: Option<Role>,
    email: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ListUsers = query(&req)?;
    let page = Page::new(q.limit, q.offset)?;
    let tenant = auth.0.tenant_id;
    let (team_users, total) = state
        .read(move |c| team::list_team_users(c, &tenant, q.status, q.role, q.email.as_deref(), page.offset, page.limit))
        .await?;
    Ok(ok_with(&UserPage { team_users: &team_users, total, limit: page.limit, offset: page.offset }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRef {
    team_user_id: String,
}

pub(super) async fn detail(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: UserRef = query(&req)?;
    let tenant = auth.0.tenant_id;
    let m = state.read(move |c| team::team_user(c, &tenant, &q.team_user_id)).await?;
    Ok(one(&m))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    role: Role,
    first_name: Option<String>,
    last_name: Option<String>,
    user_name: Option<String>,
}

pub(super) async fn create(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: CreateUser = body.parse()?;
    let f = TeamUserFields {
        email: b.email,
        role: Some(b.role),
        first_name: b.first_name,
        last_name: b.last_name,
        user_name: b.user_name,
        ..TeamUserFields::default()
    };
    let tenant = auth.0.tenant_id;
    let m = commit(&state, &req, move |c| team::add_team_user(c, &tenant, f)).await?;
    Ok(one(&m))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    team_user_id: String,
    status: Option<MemberStatus>,
    role: Option<Role>,
}

pub(super) async fn update(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UpdateUser = body.parse()?;
    let tenant = auth.0.tenant_id;
    let m =
        commit(&state, &req, move |c| team::change_team_user(c, &tenant, &b.team_user_id, b.status, b.role)).await?;
    Ok(one(&m))
}

pub(super) async fn remove(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UserRef = body.parse()?;
    let tenant = auth.0.tenant_id;
    let m = commit(&state, &req, move |c| {
        team::change_team_user(c, &tenant, &b.team_user_id, Some(MemberStatus::Removed), None)
    })
    .await?;
    Ok(one(&m))
}
