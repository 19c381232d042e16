//! The outermost layer of every request: a request id, the one canonical
//! path and the operation it names (decided here, once, for routing, audit,
//! rate limits and the authorizer), the refusal budget of the caller's
//! address, the audit event for requests that did not commit one with their
//! change, metrics and one log line. An event that cannot be written turns
//! the answer into 503 (fail closed).

use super::context::{PendingEvent, Resolved};
use crate::audit::{outcome_for, EventDraft, EventKind, OUTCOME_DENIED};
use crate::domain::authz::{self, Unrouted};
use crate::domain::request_path::{self, PathRefusal};
use crate::domain::{Method, Operation};
use crate::error::AppError;
use crate::ratelimit::Charge;
use crate::state::AppState;
use crate::telemetry::{new_request_id, with_request_id};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Uri;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use std::borrow::Cow;
use std::time::Instant;

use super::{gateway_path, GATEWAY_PREFIX, PROBES};
/// The operation recorded for a request that names none of the table.
const UNKNOWN_ROUTE: Unrouted = Unrouted::UnknownRoute;

/// What the middleware decides about a request before it is routed.
struct Target<'a> {
    /// The canonical path, or why the raw one has none.
    path: Result<Cow<'a, str>, PathRefusal>,
    op: Option<&'static Operation>,
    /// What the event and the metrics record.
    kind: EventKind,
    audited: bool,
}

fn target<'a>(method: &str, raw: &'a str) -> Target<'a> {
    let path =
        if raw.starts_with(GATEWAY_PREFIX.as_str()) { Ok(Cow::Borrowed(raw)) } else { request_path::canonical(raw) };
    let Ok(canonical) = &path else {
        return Target { path, op: None, kind: UNKNOWN_ROUTE.into(), audited: true };
    };
    if PROBES.contains(&canonical.as_ref()) {
        return Target { op: None, kind: Unrouted::Probe.into(), audited: false, path };
    }
    let op = if canonical == gateway_path() || canonical.starts_with(GATEWAY_PREFIX.as_str()) {
        Some(authz::Op::AuthzCheck.spec())
    } else {
        Method::parse(method).and_then(|m| authz::resolve(m, canonical))
    };
    let kind = match op {
        Some(op) => op.id.into(),
        // A known path with the wrong method still names its operation.
        None => Method::ALL
            .into_iter()
            .find_map(|m| authz::resolve(m, canonical))
            .map_or(UNKNOWN_ROUTE.into(), |o| EventKind::Op(o.id)),
    };
    Target { path, op, kind, audited: true }
}

pub async fn audit_every_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = new_request_id();
    with_request_id(request_id.clone(), handle(req, next, request_id)).await
}

/// The answer for an error the middleware itself gives: the SCIM error
/// schema under `/scim/` (what SCIM clients parse), the envelope elsewhere.
fn error_response(path: &str, err: AppError) -> actix_web::HttpResponse {
    if path.starts_with(super::scim::PATH_PREFIX) {
        super::scim::ScimFailure::from(err).error_response()
    } else {
        err.error_response()
    }
}

/// Points the request at its canonical path, so that the router matches exactly what was decided here.
fn reroute(req: &mut ServiceRequest, path: &str) {
    let uri = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    if let Ok(uri) = uri.parse::<Uri>() {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
}

async fn handle(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    request_id: String,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    let raw_path = req.path().to_string();
    let Target { path, op, kind, audited } = target(method.as_str(), &raw_path);
    let operation = kind.name();
    let (path, refused_path) = match path {
        Ok(p) => (p, None),
        Err(why) => (Cow::Borrowed(raw_path.as_str()), Some(why)),
    };
    if let Cow::Owned(canonical) = &path {
        reroute(&mut req, canonical);
    }
    let client_ip = super::context::client_ip(req.request());
    let mut draft = EventDraft::new(kind, request_id.clone());
    draft.client_ip = client_ip.map(|ip| ip.to_string());
    draft.user_agent =
        req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect());
    req.extensions_mut().insert(Resolved(op));
    req.extensions_mut().insert(PendingEvent::new(draft));

    // Refused before anything is examined: a path with no canonical form, or
    // an address over its refusal budget (no lookup, no parsing, no row).
    let over_budget = match (&state, client_ip) {
        (Some(state), Some(ip)) if audited => state.limits.refusals.refuse_up_front(ip).map(AppError::rate_limited),
        _ => None,
    };
    let up_front = over_budget.as_ref().and_then(|e| e.retry_after_secs);
    let early = over_budget.or_else(|| {
        refused_path
            .map(|why| AppError { audit_reason: Some(PathRefusal::REASON), ..AppError::invalid(why.describe()) })
    });
    let mut res = match early {
        Some(err) => req.into_response(error_response(&raw_path, err)),
        // Handlers' errors arrive here already rendered as responses; the request
        // must not be cloned before routing, so only after this call is it at hand.
        None => next.call(req).await?.map_into_boxed_body(),
    };

    let status = res.status().as_u16();
    let (reason, cause) = match res.response().extensions().get::<AppError>() {
        Some(err) => (Some(err.reason()), err.cause_chain()),
        None => (None, None),
    };
    // Still the request's unless the handler committed it with its change.
    let pending = PendingEvent::take(res.request()).map(PendingEvent::into_parts);
    let authenticated = pending.as_ref().is_none_or(|(_, proved)| *proved);
    // A refusal of a caller who proved no credential is charged to its address;
    // over budget it is answered 429 and tallied for the address's summary
    // instead of written.
    let charge = match (up_front, &state, client_ip) {
        (Some(retry_after), _, _) => Charge::Summarize { retry_after },
        (None, Some(state), Some(ip)) if audited && !authenticated && outcome_for(status) == OUTCOME_DENIED => {
            state.limits.refusals.charge(ip, reason.unwrap_or("refused"))
        }
        _ => Charge::Record,
    };
    if let Charge::Summarize { retry_after } = charge {
        if let Some(state) = &state {
            state.metrics.refusals_summarized.inc();
        }
        if up_front.is_none() {
            let http_req = res.request().clone();
            res = ServiceResponse::new(http_req, error_response(&raw_path, AppError::rate_limited(retry_after)));
        }
        actix_web::rt::time::sleep(crate::ratelimit::OVER_BUDGET_DELAY).await;
    } else if let (true, Some((mut draft, _))) = (audited, pending) {
        draft.status_code = status;
        draft.reason = reason.map(str::to_string);
        let recorded = match &state {
            Some(state) => state.writer.record(draft).await,
            None => Err(AppError::internal()),
        };
        if recorded.is_err() {
            // Fail closed: no answer without its audit event.
            let http_req = res.request().clone();
            res = ServiceResponse::new(http_req, error_response(&raw_path, AppError::unavailable()));
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
    // Only at debug level for refusals summarized: a flood must not become a flood of log lines.
    if matches!(charge, Charge::Summarize { .. }) {
        tracing::debug!(request_id = %request_id, method = %method, path = %path, operation, status, "refused over budget");
    } else {
        tracing::info!(
            request_id = %request_id,
            method = %method,
            path = %path,
            operation,
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            // What went wrong underneath, for the operator; never in the answer.
            cause = cause.as_deref(),
            "request"
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::authz::Op;

    #[test]
    fn every_spelling_resolves_once_from_the_canonical_path() {
        let t = target("GET", "/%762/authz.check");
        assert_eq!((t.kind.name(), t.audited), (Op::AuthzCheck.name(), true));
        assert_eq!(t.path.unwrap(), "/v2/authz.check");
        let t = target("POST", "/%69nternal/v2/team.asset.upsert");
        assert_eq!(t.kind, EventKind::Op(Op::TeamAssetUpsert));
        let t = target("GET", "/v2/auth%2Ewhoami");
        assert_eq!(t.kind, EventKind::Op(Op::AuthWhoami));
        let t = target("GET", "/v2/../healthz");
        assert_eq!((t.kind, t.audited), (UNKNOWN_ROUTE.into(), true));
        assert!(t.path.is_err());
        let t = target("GET", "/%68ealthz");
        assert_eq!((t.kind, t.audited), (Unrouted::Probe.into(), false));
        let t = target("GET", "/V2/auth.whoami");
        assert_eq!((t.kind, t.audited), (UNKNOWN_ROUTE.into(), true), "case is significant, and audited");
        let t = target("GET", "/v2/authz.check/scim/v2/Users/..%2F..");
        assert_eq!(t.kind, EventKind::Op(Op::AuthzCheck), "the gateway judges its original path itself");
        let t = target("DELETE", "/v2/auth.whoami");
        assert_eq!((t.kind, t.op.is_none()), (EventKind::Op(Op::AuthWhoami), true));
    }
}
