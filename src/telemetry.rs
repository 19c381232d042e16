//! Logging setup and the request id that ties a response, its log lines and
//! its audit event together.

use crate::config::LogFormat;
use tracing_subscriber::{fmt, EnvFilter};

tokio::task_local! {
    static REQUEST_ID: String;
}

pub fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::new_v4().simple())
}

/// Runs `fut` with `id` as the current request id.
pub async fn with_request_id<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The current request's id; outside a request, a fresh one (every envelope has one).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_else(|_| new_request_id())
}

/// Installs the global subscriber once. `serve` logs JSON by default.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
