//! Probes and metrics (not audited).

use super::context::{fields, ok};
use crate::db::{self, store};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    ok(fields(json!({"status": "up"})))
}

/// Ready when the audit log can be written (the writer's last group or probe
/// committed), the database answers and every migration is applied.
pub async fn readyz(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    if !state.writer.is_healthy() {
        return Err(AppError::new(crate::error::ErrorCode::Unavailable, "the audit log cannot be written"));
    }
    let migrated = state
        .read(|c| {
            store::ping(c)?;
            db::is_migrated(c).map_err(|_| AppError::unavailable())
        })
        .await?;
    if !migrated {
        return Err(AppError::new(crate::error::ErrorCode::Unavailable, "database migrations are pending"));
    }
    Ok(ok(fields(json!({"status": "ready"}))))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body({
        state.metrics.key_state_version.set(state.keys.cache.version());
        state.metrics.render()
    })
}
