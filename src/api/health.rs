//! Probes and metrics (not audited).

use super::context::ok_with;
use crate::error::AppResult;
use crate::service::health;
use crate::state::AppState;
use actix_web::{web, HttpResponse};

pub async fn healthz() -> HttpResponse {
    ok_with(&health::UP)
}

/// Ready when the audit log can be written (the writer's last group or probe
/// committed), the database answers and every migration is applied.
pub async fn readyz(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    health::check_audit_log(state.writer.is_healthy())?;
    let ready = state.read(health::check_database).await?;
    Ok(ok_with(&ready))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body({
        state.metrics.key_state_version.set(state.keys.cache.version());
        state.metrics.render()
    })
}
