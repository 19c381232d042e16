//! HTTP: thin handlers grouped by surface, and the one routing table.

pub mod assets;
pub mod audit;
pub mod context;
pub mod exports;
pub mod health;
pub mod holds;
pub mod identity;
pub mod keys;
pub mod middleware;
pub mod pagination;
pub mod scim;
pub mod siem;
pub mod team_users;

use crate::domain::{authz, Method};
use crate::error::AppError;
use actix_web::{web, HttpRequest, HttpResponse, Route};

/// The handler of each operation of the authorizer table that is served.
/// Operations of the table without a handler are not routed (404).
fn handler(name: &str) -> Option<Route> {
    console_route(name)
        .or_else(|| team_users::route(name))
        .or_else(|| scim::route(name))
        .or_else(|| assets::route(name))
        .or_else(|| exports::route(name))
        .or_else(|| holds::route(name))
        .or_else(|| siem::route(name))
}

fn console_route(name: &str) -> Option<Route> {
    Some(match name {
        "enterprise.key.create" => web::post().to(keys::create),
        "enterprise.key.list" => web::get().to(keys::list),
        "enterprise.key.detail" => web::get().to(keys::detail),
        "enterprise.key.update" => web::post().to(keys::update),
        "enterprise.key.rotate" => web::post().to(keys::rotate),
        "enterprise.key.revoke" => web::post().to(keys::revoke),
        "enterprise.key_policy.detail" => web::get().to(keys::policy_detail),
        "enterprise.key_policy.update" => web::post().to(keys::policy_update),
        "enterprise.audit.list" => web::get().to(audit::list),
        "enterprise.audit.verify" => web::get().to(audit::verify_chain),
        "auth.whoami" => web::get().to(identity::whoami),
        _ => return None,
    })
}

const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
const GATEWAY_PATHS: [&str; 2] = ["/v2/authz.check", "/v2/authz.check/{tail}"];

/// Every (method, path template) the router serves; the OpenAPI test compares it with `openapi.yaml`.
pub fn routes() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = PROBES.iter().map(|p| ("GET", p.to_string())).collect();
    for op in authz::OPERATIONS.iter().filter(|o| handler(o.name).is_some()) {
        out.push((op.method.as_str(), op.path.to_string()));
    }
    for path in GATEWAY_PATHS {
        for m in Method::ALL {
            out.push((m.as_str(), path.to_string()));
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
        ("/healthz", web::get().to(health::healthz)),
        ("/readyz", web::get().to(health::readyz)),
        ("/metrics", web::get().to(health::metrics)),
    ];
    for (path, route) in probes {
        cfg.service(web::resource(path).route(route).default_service(web::to(|| wrong_method("GET"))));
    }
    // One resource per path, with a route per method (SCIM serves several methods on one path).
    let mut paths: Vec<&'static str> = Vec::new();
    for op in authz::OPERATIONS.iter().filter(|o| handler(o.name).is_some()) {
        if !paths.contains(&op.path) {
            paths.push(op.path);
        }
    }
    for path in paths {
        let ops: Vec<_> = authz::OPERATIONS.iter().filter(|o| o.path == path && handler(o.name).is_some()).collect();
        let allow = ops.iter().map(|o| o.method.as_str()).collect::<Vec<_>>().join(", ");
        let mut resource = web::resource(path);
        for op in ops {
            resource = resource.route(handler(op.name).expect("filtered above"));
        }
        cfg.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { wrong_method(&allow).await }
        })));
    }
    let all_methods = Method::ALL.map(Method::as_str).join(", ");
    for path in ["/v2/authz.check", "/v2/authz.check/{tail:.*}"] {
        let mut resource = web::resource(path);
        for m in Method::ALL {
            resource = resource.route(method_route(m).to(identity::check));
        }
        let allow = all_methods.clone();
        cfg.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { wrong_method(&allow).await }
        })));
    }
}

async fn wrong_method(allow: &str) -> Result<HttpResponse, AppError> {
    Err(AppError::method_not_allowed(allow))
}

/// Unknown routes answer the envelope, never an HTML page.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::not_found(format!("no route for {} {}", req.method(), req.path())))
}
