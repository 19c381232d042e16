//! What every handler shares.

use crate::audit::writer::AuditWriter;
use crate::auth::console::ConsoleVerifier;
use crate::auth::key_cache::KeyCache;
use crate::auth::key_state::KeyStateReader;
use crate::config::Settings;
use crate::crypto::KeyHasher;
use crate::db::{DbConn, Pool};
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;
use std::sync::Arc;

pub struct AppState {
    pub key_cache: Arc<KeyCache>,
    pub settings: Settings,
    pub pool: Pool,
    pub writer: AuditWriter,
    pub hasher: KeyHasher,
    pub console: ConsoleVerifier,
    pub metrics: Arc<Metrics>,
    pub limits: RateLimits,
    /// The origin of links keyward hands out: configured, else the address it listens on.
    pub public_url: String,
    /// Redacts secrets from caller-controlled text (request bodies; the writer has its own copy).
    pub redactor: crate::domain::redact::Redactor,
    /// Shared reads of `key_state.version` when each key check needs one.
    pub key_state: Option<KeyStateReader>,
}

impl AppState {
    /// Runs a read on a pooled connection off the async workers (diesel blocks).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let pool = self.pool.clone();
        actix_web::web::block(move || crate::db::with_pooled(&pool, f)).await.map_err(|_| AppError::internal())?
    }
}
