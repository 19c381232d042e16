//! HTTP: thin handlers grouped by surface, and the one routing table.

pub mod assets;
pub mod audit;
pub mod context;
pub mod exports;
pub mod health;
pub mod holds;
pub mod identity;
pub mod keys;
pub mod leaks;
pub mod middleware;
pub mod pagination;
pub mod role_mapping;
pub mod scim;
pub mod scim_groups;
pub mod siem;
pub mod sinks;
pub mod team_users;

use crate::domain::authz::{self, Op};
use crate::domain::Method;
use crate::error::AppError;
use actix_web::{web, HttpRequest, HttpResponse, Route};

/// The handler of each operation, on `route` (its method's). Exhaustive: an
/// operation of the table without a handler does not compile.
fn handler(op: Op, route: Route) -> Route {
    match op {
        Op::EnterpriseKeyCreate => route.to(keys::create),
        Op::EnterpriseKeyList => route.to(keys::list),
        Op::EnterpriseKeyDetail => route.to(keys::detail),
        Op::EnterpriseKeyUpdate => route.to(keys::update),
        Op::EnterpriseKeyRotate => route.to(keys::rotate),
        Op::EnterpriseKeyRevoke => route.to(keys::revoke),
        Op::EnterpriseKeyPolicyDetail => route.to(keys::policy_detail),
        Op::EnterpriseKeyPolicyUpdate => route.to(keys::policy_update),
        Op::EnterpriseAuditList => route.to(audit::list),
        Op::EnterpriseAuditVerify => route.to(audit::verify_chain),
        Op::EnterpriseAuditCheckpoint => route.to(audit::checkpoint),
        Op::EnterpriseAuditProof => route.to(audit::proof),
        Op::EnterpriseAuditConsistency => route.to(audit::consistency),
        Op::AuthWhoami => route.to(identity::whoami),
        Op::AuthzCheck => route.to(identity::check),
        Op::TeamUserList => route.to(team_users::list),
        Op::TeamUserDetail => route.to(team_users::detail),
        Op::TeamUserCreate => route.to(team_users::create),
        Op::TeamUserUpdate => route.to(team_users::update),
        Op::TeamUserRemove => route.to(team_users::remove),
        Op::ScimServiceProviderConfig => route.to(scim::service_provider_config),
        Op::ScimResourceTypes => route.to(scim::resource_types),
        Op::ScimSchemas => route.to(scim::schemas),
        Op::ScimResourceTypeGet => route.to(scim::resource_type),
        Op::ScimSchemaGet => route.to(scim::schema),
        Op::ScimUsersList => route.to(scim::list_users),
        Op::ScimUsersGet => route.to(scim::get_user),
        Op::ScimUsersCreate => route.to(scim::create_user),
        Op::ScimUsersReplace => route.to(scim::replace_user),
        Op::ScimUsersPatch => route.to(scim::patch_user),
        Op::ScimUsersDelete => route.to(scim::delete_user),
        Op::ScimGroupsList => route.to(scim_groups::list_groups),
        Op::ScimGroupsGet => route.to(scim_groups::get_group),
        Op::ScimGroupsCreate => route.to(scim_groups::create_group),
        Op::ScimGroupsReplace => route.to(scim_groups::replace_group),
        Op::ScimGroupsPatch => route.to(scim_groups::patch_group),
        Op::ScimGroupsDelete => route.to(scim_groups::delete_group),
        Op::TeamRoleMappingList => route.to(role_mapping::list),
        Op::TeamRoleMappingUpdate => route.to(role_mapping::update),
        Op::EnterpriseSiemSinkCreate => route.to(sinks::create),
        Op::EnterpriseSiemSinkList => route.to(sinks::list),
        Op::EnterpriseSiemSinkUpdate => route.to(sinks::update),
        Op::EnterpriseSiemSinkDelete => route.to(sinks::delete),
        Op::EnterpriseSiemSinkReplay => route.to(sinks::replay),
        Op::TeamAssetList => route.to(assets::list),
        Op::TeamAssetUpdateScope => route.to(assets::update_scope),
        Op::EnterpriseExportCreate => route.to(exports::create),
        Op::EnterpriseExportDetail => route.to(exports::detail),
        Op::EnterpriseExportList => route.to(exports::list),
        Op::EnterpriseExportDownloadUrl => route.to(exports::download_url),
        Op::EnterpriseHoldCreate => route.to(holds::create),
        Op::EnterpriseHoldList => route.to(holds::list),
        Op::EnterpriseHoldRelease => route.to(holds::release),
        Op::EnterpriseComplianceEventList => route.to(siem::event_list),
        Op::EnterpriseComplianceExportCreate => route.to(exports::compliance_create),
        Op::EnterpriseComplianceExportDetail => route.to(exports::compliance_detail),
        Op::EnterpriseComplianceExportDownloadUrl => route.to(exports::compliance_download_url),
        Op::EnterpriseExportDownload => route.to(exports::download),
        Op::EnterpriseComplianceExportDownload => route.to(exports::compliance_download),
        Op::TeamAssetUpsert => route.to(assets::upsert),
        Op::TeamAssetDelete => route.to(assets::delete),
        Op::SecretScanningReport => route.to(leaks::report),
    }
}

/// Probes: not operations of the table, not audited, not budgeted.
pub const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The gateway's own path, from the table.
pub fn gateway_path() -> &'static str {
    Op::AuthzCheck.spec().path
}

/// The gateway's Envoy form: what follows is the original path, which the
/// gateway judges itself (and refuses, with its reason, if not canonical).
pub static GATEWAY_PREFIX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("{}/", gateway_path()));

/// The gateway answers on its own path and, for Envoy, on every path below it, for every method.
fn gateway_paths() -> [String; 2] {
    [gateway_path().to_string(), format!("{}{{tail:.*}}", *GATEWAY_PREFIX)]
}

/// The operations served on their table path and method (the gateway has paths of its own).
fn table_routed() -> impl Iterator<Item = &'static authz::Operation> {
    authz::OPERATIONS.iter().filter(|o| o.id != Op::AuthzCheck)
}

/// Every (method, path template) the router serves; the OpenAPI test compares it with `openapi.yaml`.
pub fn routes() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = PROBES.iter().map(|p| ("GET", p.to_string())).collect();
    for op in table_routed() {
        out.push((op.method.as_str(), op.path.to_string()));
    }
    for path in gateway_paths() {
        for m in Method::ALL {
            // OpenAPI names the tail parameter without its pattern.
            out.push((m.as_str(), path.replace("{tail:.*}", "{tail}")));
        }
    }
    out
}

fn method_route(m: Method) -> Route {
    match m {
        Method::Get => web::get(),
        Method::Post => web::post(),
        Method::Put => web::put(),
        Method::Patch => web::patch(),
        Method::Delete => web::delete(),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let probes: [(&str, Route); 3] = [
        (PROBES[0], web::get().to(health::healthz)),
        (PROBES[1], web::get().to(health::readyz)),
        (PROBES[2], web::get().to(health::metrics)),
    ];
    for (path, route) in probes {
        cfg.service(web::resource(path).route(route).default_service(web::to(|req| wrong_method(req, "GET"))));
    }
    // actix tries resources in the order given, and a path with a parameter
    // through a regex: the gateway's own path, whose every call a gateway sends,
    // first; its Envoy form, which matches any path below it, last.
    let [gateway, gateway_below] = gateway_paths();
    cfg.service(gateway_resource(gateway));
    // One resource per path, with a route per method (SCIM serves several methods on one path).
    let mut paths: Vec<&'static str> = Vec::new();
    for op in table_routed() {
        if !paths.contains(&op.path) {
            paths.push(op.path);
        }
    }
    for path in paths {
        let ops: Vec<_> = table_routed().filter(|o| o.path == path).collect();
        let allow = ops.iter().map(|o| o.method.as_str()).collect::<Vec<_>>().join(", ");
        let mut resource = web::resource(path);
        for op in ops {
            resource = resource.route(handler(op.id, method_route(op.method)));
        }
        cfg.service(resource.default_service(web::to(move |req| {
            let allow = allow.clone();
            async move { wrong_method(req, &allow).await }
        })));
    }
    cfg.service(gateway_resource(gateway_below));
}

/// The gateway check on `path`, for every method.
fn gateway_resource(path: String) -> actix_web::Resource {
    let mut resource = web::resource(path);
    for m in Method::ALL {
        resource = resource.route(handler(Op::AuthzCheck, method_route(m)));
    }
    let allow = Method::ALL.map(Method::as_str).join(", ");
    resource.default_service(web::to(move |req| {
        let allow = allow.clone();
        async move { wrong_method(req, &allow).await }
    }))
}

async fn wrong_method(req: HttpRequest, allow: &str) -> HttpResponse {
    refusal(&req, AppError::method_not_allowed(allow))
}

/// Unknown routes answer the envelope, never an HTML page.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    refusal(&req, AppError::not_found(format!("no route for {} {}", req.method(), req.path())))
}

/// A refusal of the router: a SCIM error under `/scim/` (RFC 7644 §3.12), the envelope elsewhere.
fn refusal(req: &HttpRequest, err: AppError) -> HttpResponse {
    use actix_web::ResponseError;
    if req.path().starts_with(scim::PATH_PREFIX) {
        scim::ScimFailure::from(err).error_response()
    } else {
        err.error_response()
    }
}
