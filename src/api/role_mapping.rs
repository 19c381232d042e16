//! IdP group → console role mappings (console): an owner maps a SCIM Group,
//! by id or by display name, to ADMIN, AUDITOR or MEMBER; its members' roles
//! follow in the same transaction. Owners, admins and auditors may list them.

use super::context::{commit, ok_with, query, ConsoleAuth, JsonBody, NoParams};
use crate::domain::groups::MappedRole;
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::service::groups::{self as service, MappingTarget, RoleMappingView};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct MappingList<'a> {
    role_mappings: &'a [RoleMappingView],
}

pub(super) async fn list(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let _: NoParams = query(&req)?;
    let tenant = auth.0.tenant_id;
    let role_mappings = state.read(move |c| service::list_role_mappings(c, &tenant)).await?;
    Ok(ok_with(&MappingList { role_mappings: &role_mappings }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMapping {
    group_id: Option<String>,
    display_name: Option<String>,
    /// Absent or null: remove the mapping.
    role: Option<Role>,
}

pub(super) async fn update(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UpdateMapping = body.parse()?;
    let target = match (b.group_id, b.display_name) {
        (Some(id), None) => MappingTarget::Group(id),
        (None, Some(name)) => MappingTarget::DisplayName(name),
        _ => return Err(AppError::invalid("give exactly one of group_id and display_name")),
    };
    let role = b.role.map(MappedRole::new).transpose().map_err(AppError::invalid)?;
    let tenant = auth.0.tenant_id;
    let updated = commit(&state, &req, move |c| service::update_role_mapping(c, &tenant, target, role)).await?;
    Ok(ok_with(&updated))
}
