//! What every handler shares.

use crate::audit::writer::AuditWriter;
use crate::auth::console::ConsoleVerifier;
use crate::auth::key::KeyVerifier;
use crate::config::Settings;
use crate::db::{DbConn, Pool};
use crate::error::AppResult;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;
use std::sync::Arc;

pub struct AppState {
    pub settings: Settings,
    pub pool: Pool,
    pub writer: AuditWriter,
    /// Enterprise key checks (the hasher, the verified-key cache, `key_state` reads).
    pub keys: KeyVerifier,
    pub console: ConsoleVerifier,
    /// This instance's export runner (dropped with the state, which stops it).
    pub exports: crate::exports::runner::ExportRunner,
    /// This instance's checkpoint signer (dropped with the state, which stops it).
    pub checkpoints: crate::audit::checkpoint::Checkpointer,
    /// The other background threads' handles (the key cache's sync, the refusal summaries): dropped with the state, which stops them.
    pub workers: Vec<crate::threads::Stop>,
    pub metrics: Arc<Metrics>,
    pub limits: RateLimits,
    /// Signs and checks the export download links.
    pub links: crate::crypto::LinkSigner,
    /// Seals SIEM sink credentials (the delivery worker holds its own to open them).
    pub sealer: crate::crypto::SecretSealer,
    /// The origin of links keyward hands out: configured, else the address it listens on.
    pub public_url: String,
    /// Redacts secrets from caller-controlled text (request bodies; the writer has its own copy).
    pub redactor: crate::domain::redact::Redactor,
}

impl AppState {
    /// Runs a read on a pooled connection off the async workers (diesel blocks).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        crate::db::read(&self.pool, f).await
    }
}
