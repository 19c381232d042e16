//! Storage: one diesel codebase over SQLite and PostgreSQL.
//!
//! The backend is chosen from a strictly parsed URL (never by diesel's
//! try-each-backend `establish`, which would turn a mistyped PostgreSQL URL
//! into a SQLite file).

pub mod columns;
pub mod models;
pub mod schema;
pub mod store;

use crate::error::AppResult;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::borrow::Cow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnManager>;

/// A connection in the read pool, with what the pool knows of its health.
pub struct PooledDb {
    conn: DbConn,
    /// When it last answered a statement.
    last_ok: Instant,
    /// Its last use failed: it is checked before it is handed out again.
    suspect: bool,
}

/// A pooled connection that answered this recently is handed out as it is; an
/// older or suspect one is pinged first. Pinging on every checkout cost a
/// second round trip per request on PostgreSQL; a dead connection is still
/// found before use after any idle second or failed statement, and one that
/// dies in between fails its request closed (503) like any mid-query failure.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// Runs `f` on a connection from `pool`, noting for the pool whether it worked.
pub fn with_pooled<T>(pool: &Pool, f: impl FnOnce(&mut DbConn) -> AppResult<T>) -> AppResult<T> {
    let mut pooled = pool.get()?;
    let result = f(&mut pooled.conn);
    match result {
        Ok(_) => pooled.last_ok = Instant::now(),
        Err(_) => pooled.suspect = true,
    }
    result
}

/// Runs a read on a pooled connection off the async workers (diesel blocks).
pub async fn read<T: Send + 'static>(
    pool: &Pool,
    f: impl FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || with_pooled(&pool, f))
        .await
        .map_err(|e| crate::error::AppError::internal().caused_by(e))?
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DbUrl {
    /// `sqlite://relative.db`, `sqlite:///abs/path.db`, `postgres://…` or `postgresql://…`.
    pub fn parse(raw: &str) -> Result<DbUrl, String> {
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite URL needs a file path, e.g. sqlite://keyward.db".into());
            }
            return Ok(DbUrl::Sqlite(PathBuf::from(path)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(raw.to_string()));
        }
        Err("must start with sqlite:// or postgres://".into())
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DbUrl::Sqlite(_))
    }

    /// Connection string without a password, for logs and errors.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DbUrl::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => format!("{}://***@{}", &u[..s], &u[at + 1..]),
                _ => u.clone(),
            },
        }
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How connections are set up beyond their URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOptions {
    /// How long anything waits for the database before it fails (and the
    /// request with it: 503, fail closed): a SQLite statement for another
    /// connection's write lock, a PostgreSQL statement for a lock, a checkout
    /// from the read pool, a PostgreSQL connection attempt (in whole seconds, at least 2).
    pub wait: Duration,
}

pub const DEFAULT_DB_WAIT_MS: u64 = 2000;

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions { wait: Duration::from_millis(DEFAULT_DB_WAIT_MS) }
    }
}

/// A PostgreSQL URL with `connect_timeout` (libpq's, whole seconds) unless it names one.
fn with_connect_timeout(url: &str, wait: Duration) -> Cow<'_, str> {
    if url.contains("connect_timeout=") {
        return Cow::Borrowed(url);
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Cow::Owned(format!("{url}{separator}connect_timeout={}", wait.as_secs_f64().ceil().max(2.0) as u64))
}

/// SQLite's process-wide settings, made once before its first connection opens
/// (later calls are refused by SQLite and change nothing):
/// - multi-thread mode: no mutex around each connection's calls (one per column
///   read, about 24 per audit event read). A connection is used by one thread at
///   a time: diesel's connections are not `Sync`, the pool lends each to one thread,
///   and the audit writer owns its own.
/// - no memory statistics: their upkeep takes a global mutex on every allocation,
///   and keyward never reads them.
fn configure_sqlite() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        use libsqlite3_sys::{sqlite3_config, SQLITE_CONFIG_MEMSTATUS, SQLITE_CONFIG_MULTITHREAD, SQLITE_OK};
        // SAFETY: sqlite3_config with these two options takes no pointer; SQLite
        // refuses it (SQLITE_MISUSE) once initialized, which leaves the defaults.
        let (threads, memstatus) =
            unsafe { (sqlite3_config(SQLITE_CONFIG_MULTITHREAD), sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0)) };
        if threads != SQLITE_OK || memstatus != SQLITE_OK {
            tracing::warn!(
                threads,
                memstatus,
                "SQLite was initialized before keyward configured it; its defaults stay"
            );
        }
    });
}

/// A connection with the default options (the CLI, tools).
pub fn establish(url: &DbUrl) -> Result<DbConn, diesel::ConnectionError> {
    establish_with(url, ConnOptions::default())
}

pub fn establish_with(url: &DbUrl, options: ConnOptions) -> Result<DbConn, diesel::ConnectionError> {
    match url {
        DbUrl::Sqlite(path) => {
            configure_sqlite();
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
            // WAL lets readers run beside the one writer; FULL makes every commit durable
            // (the audit writer lowers it to NORMAL and fsyncs the WAL itself, see
            // audit::writer); busy_timeout covers the CLI writing while a server runs. It
            // comes first: switching to WAL takes a lock too, and without a timeout it
            // failed at once while another process was closing (and checkpointing) the file.
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA foreign_keys = ON;",
                options.wait.as_millis()
            ))
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConn::Sqlite(conn))
        }
        DbUrl::Postgres(u) => {
            let mut conn = PgConnection::establish(&with_connect_timeout(u, options.wait))?;
            conn.batch_execute(&format!("SET TIME ZONE 'UTC'; SET lock_timeout = {}", options.wait.as_millis()))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConn::Postgres(conn))
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConnManager {
    url: DbUrl,
    options: ConnOptions,
}

impl r2d2::ManageConnection for ConnManager {
    type Connection = PooledDb;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<PooledDb, Self::Error> {
        let conn = establish_with(&self.url, self.options)?;
        Ok(PooledDb { conn, last_ok: Instant::now(), suspect: false })
    }

    fn is_valid(&self, pooled: &mut PooledDb) -> Result<(), Self::Error> {
        if !pooled.suspect && pooled.last_ok.elapsed() < TRUSTED_FOR {
            return Ok(());
        }
        pooled.conn.ping().map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        pooled.last_ok = Instant::now();
        pooled.suspect = false;
        Ok(())
    }

    fn has_broken(&self, pooled: &mut PooledDb) -> bool {
        pooled.conn.is_broken()
    }
}

pub fn build_pool(url: &DbUrl, options: ConnOptions, max_size: u32) -> Result<Pool, String> {
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(options.wait.max(Duration::from_millis(100)))
        // Validate on checkout so a restarted database is noticed, not handed out broken.
        .test_on_check_out(true)
        .build(ConnManager { url: url.clone(), options })
        .map_err(|e| e.to_string())
}

/// Applies pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, String> {
    let ran = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConn::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
    };
    ran.map_err(|e| e.to_string())
}

/// Whether every migration has been applied (readiness).
pub fn is_migrated(conn: &mut DbConn) -> Result<bool, String> {
    let pending = match conn {
        DbConn::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|v| v.is_empty()),
        DbConn::Postgres(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.is_empty()),
    };
    pending.map_err(|e| e.to_string())
}
