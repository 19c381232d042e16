//! The outermost layer of every request: a request id, the audit event for
//! requests that did not commit one with their change, metrics and one log
//! line. An event that cannot be written turns the answer into 503 (fail closed).

use super::context::AuditCtx;
use crate::audit::{outcome_for, EventDraft};
use crate::domain::{authz, Method, Operation};
use crate::error::AppError;
use crate::state::AppState;
use crate::telemetry::{new_request_id, with_request_id};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use std::time::Instant;

/// Paths whose every request is audited (probes are not).
fn is_audited(path: &str) -> bool {
    ["/v2", "/scim", "/internal"]
        .iter()
        .any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// The table's operation for a request, resolved once here for the whole request.
fn operation_for(method: &str, path: &str) -> Option<&'static Operation> {
    if path == "/v2/authz.check" || path.starts_with("/v2/authz.check/") {
        return authz::find("authz.check");
    }
    Method::parse(method).and_then(|m| authz::resolve(m, path))
}

/// The operation name recorded for a request: the table's, else a placeholder.
fn operation_name(op: Option<&'static Operation>, path: &str) -> &'static str {
    match op {
        Some(op) => op.name,
        // A known path with the wrong method still names its operation.
        None => Method::ALL.into_iter().find_map(|m| authz::resolve(m, path)).map_or("unknown_route", |op| op.name),
    }
}

pub async fn audit_every_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = new_request_id();
    with_request_id(request_id.clone(), handle(req, next, request_id)).await
}

async fn handle(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    request_id: String,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    let path = req.path().to_string();
    let op = operation_for(method.as_str(), &path);
    let audited = is_audited(&path);
    let operation = if audited { operation_name(op, &path) } else { "probe" };
    let mut draft = EventDraft::new(operation, request_id.clone());
    draft.client_ip = req.peer_addr().map(|a| a.ip().to_string());
    draft.user_agent =
        req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect());
    let ctx = AuditCtx::new(draft, op);
    req.extensions_mut().insert(ctx.clone());

    // Handlers' errors arrive here already rendered as responses; the request
    // must not be cloned before routing, so only after this call is it at hand.
    let mut res = next.call(req).await?.map_into_boxed_body();

    let status = res.status().as_u16();
    if audited && !ctx.committed.get() {
        // The handler is done with it: taken, not copied.
        let mut draft = std::mem::replace(&mut *ctx.draft.borrow_mut(), EventDraft::new(operation, String::new()));
        draft.status_code = status;
        if let Some(err) = res.response().extensions().get::<AppError>() {
            draft.reason = Some(err.reason().to_string());
        }
        let recorded = match &state {
            Some(state) => state.writer.record(draft).await,
            None => Err(AppError::internal()),
        };
        if recorded.is_err() {
            // Fail closed: no answer without its audit event.
            let http_req = res.request().clone();
            res = ServiceResponse::new(http_req, AppError::unavailable().error_response());
        }
    }

    let status = res.status().as_u16();
    if let Some(state) = &state {
        if audited {
            state.metrics.record_request(operation, outcome_for(status));
        }
    }
    res.headers_mut().insert(
        HeaderName::from_static("x-request-id"),
        HeaderValue::from_str(&request_id).expect("request ids are ASCII"),
    );
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %path,
        operation,
        status,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}
