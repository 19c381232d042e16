//! Builds the application: database, migrations, audit writer, HTTP server on a listener.

use crate::api;
use crate::audit::chain::Chains;
use crate::audit::checkpoint::Checkpointer;
use crate::audit::writer::AuditWriter;
use crate::auth::console::ConsoleVerifier;
use crate::auth::key::KeyVerifier;
use crate::auth::key_cache::KeyCache;
use crate::auth::key_state::KeyStateReader;
use crate::auth::key_use::{KeyStateNotice, LastUsed};
use crate::config::Settings;
use crate::crypto::KeyHasher;
use crate::db::{self, DbUrl};
use crate::exports::runner::ExportRunner;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;

/// Read connections per instance; writes go through the one audit writer connection.
const READ_POOL_SIZE: u32 = 8;

/// Prepares the schema: migrated on first start for embedded SQLite; with
/// PostgreSQL, instances refuse to start until `keyward migrate` has run, so
/// that several instances never race to migrate.
pub fn prepare_database(url: &DbUrl) -> Result<(), String> {
    let mut conn = prepare_schema(url)?;
    // Events stored before the audit trees existed get theirs before anything is appended.
    crate::audit::tree::build_missing(&mut conn).map_err(|e| format!("cannot build the audit trees: {e}"))?;
    Ok(())
}

/// The database file (SQLite) and its schema, as `prepare_database`, but no
/// audit tree is built: what verification connects with, since building a
/// tree from the events as they are now would overwrite the evidence it looks for.
pub fn prepare_schema(url: &DbUrl) -> Result<crate::db::DbConn, String> {
    if let DbUrl::Sqlite(path) = url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // The database holds audit payloads: owner-only from the start (SQLite
        // gives its -wal and -shm files the database file's permissions).
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
    }
    let mut conn = db::establish(url).map_err(|e| format!("cannot connect to {}: {e}", url.redacted()))?;
    if url.is_sqlite() {
        db::run_migrations(&mut conn)?;
    } else if !db::is_migrated(&mut conn)? {
        return Err("the PostgreSQL schema is not migrated; run `keyward migrate` first".into());
    }
    Ok(conn)
}

/// The HTTP server on `listener`, not yet running. `workers`: None for one per core.
pub fn build(settings: Settings, listener: TcpListener, workers: Option<usize>) -> Result<Server, String> {
    prepare_database(&settings.database_url)?;
    let pool = db::build_pool(&settings.database_url, settings.conn_options(), READ_POOL_SIZE)?;
    let metrics = Arc::new(Metrics::new());
    let key_cache = Arc::new(KeyCache::new(settings.key_cache));
    let redactor = settings.redactor();
    let writer = AuditWriter::start(
        settings.database_url.clone(),
        settings.conn_options(),
        metrics.clone(),
        // Only PostgreSQL's groups wait on a network, which remembering the heads saves them.
        Chains::new(!settings.database_url.is_sqlite()),
        vec![Box::new(LastUsed::default()), Box::new(KeyStateNotice::new(key_cache.clone()))],
        redactor.clone(),
    );
    let key_state = key_cache
        .checks_each_request()
        .then(|| KeyStateReader::start(settings.database_url.clone(), settings.conn_options()));
    let console = ConsoleVerifier::new(&settings)?;
    let limits = RateLimits::new(
        settings.rate_limit_read_per_minute,
        settings.rate_limit_write_per_minute,
        settings.refusals_per_minute,
    );
    let public_url = match &settings.public_url {
        Some(url) => url.clone(),
        None => {
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            if addr.ip().is_unspecified() {
                tracing::warn!(%addr, "listening on every address: set KEYWARD_PUBLIC_URL for the links keyward hands out");
            }
            format!("http://{addr}")
        }
    };
    let summary_window = settings.refusal_summary_window;
    let cache_sync = crate::auth::key_cache::spawn_sync(&key_cache, pool.clone());
    let keys = KeyVerifier {
        hasher: KeyHasher::new(settings.key_pepper.expose().as_bytes()),
        cache: key_cache,
        key_state,
        pool: pool.clone(),
        metrics: metrics.clone(),
    };
    let exports = ExportRunner::start(
        settings.database_url.clone(),
        writer.clone(),
        settings.export_dir.clone(),
        settings.checkpoint_signer.clone(),
    );
    let checkpoints = Checkpointer::start(
        settings.database_url.clone(),
        settings.conn_options(),
        settings.checkpoint_signer.clone(),
        settings.checkpoint_interval,
    );
    let verifier = crate::audit::verifier::start(
        settings.database_url.clone(),
        settings.conn_options(),
        settings.checkpoint_signer.verifier_key().to_string(),
        metrics.clone(),
        settings.verify_interval,
        settings.verify_full_every,
    );
    let summaries =
        crate::audit::refusals::spawn_summaries(&limits.refusals, writer.clone(), metrics.clone(), summary_window);
    let retention = crate::audit::retention::RetentionJob::start(
        settings.database_url.clone(),
        settings.conn_options(),
        settings.archive_dir.clone(),
        settings.retention_interval,
    );
    let notices = crate::audit::notices::NoticeJob::start(
        settings.database_url.clone(),
        settings.conn_options(),
        writer.clone(),
        metrics.clone(),
        settings.notice_interval,
    );
    let sinks = crate::audit::sinks::SinkWorker::start(
        settings.database_url.clone(),
        settings.conn_options(),
        crate::crypto::SecretSealer::new(settings.key_pepper.expose().as_bytes()),
        writer.clone(),
        metrics.clone(),
        crate::audit::sinks::SinkTiming {
            interval: settings.sink_interval,
            timeout: settings.sink_timeout,
            retry_base: settings.sink_retry_base,
            dead_after: settings.sink_dead_after,
        },
        settings.sink_destinations.clone(),
    );
    let links = crate::crypto::LinkSigner::new(settings.key_pepper.expose().as_bytes());
    let state = web::Data::new(AppState {
        links,
        sealer: crate::crypto::SecretSealer::new(settings.key_pepper.expose().as_bytes()),
        exports,
        checkpoints,
        workers: cache_sync.into_iter().chain([summaries, retention, notices, verifier, sinks]).collect(),
        settings,
        pool,
        writer,
        keys,
        console,
        metrics,
        limits,
        redactor,
        public_url,
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(api::middleware::audit_every_request))
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    });
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(server.listen(listener).map_err(|e| e.to_string())?.run())
}
