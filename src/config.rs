//! Settings from `KEYWARD_*` environment variables, parsed strictly. A bad
//! value stops start-up with one line naming the variable. Secrets are
//! redacted in `Debug`.

use crate::crypto;
use crate::db::{ConnOptions, DbUrl, DEFAULT_DB_WAIT_MS};
use crate::domain::forwarded::TrustedProxies;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

pub use crate::telemetry::LogFormat;

/// How key checks learn of changes made outside this instance's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCacheMode {
    /// No cache: every check reads the key and its tenant.
    Off,
    /// Every check reads `key_state.version` and uses the cache only under it.
    CheckEachRequest,
    /// Entries are trusted while a poll of the version every interval succeeds.
    Poll(Duration),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DbUrl,
    pub listen: SocketAddr,
    pub key_pepper: Secret,
    pub console_jwt_secret: Option<Secret>,
    /// Ed25519 public key, PEM.
    pub console_jwt_public_key: Option<String>,
    pub console_jwt_issuer: String,
    pub console_jwt_audience: String,
    pub ingest_token: Option<Secret>,
    pub log_format: LogFormat,
    pub export_dir: PathBuf,
    /// Per tenant and operation; 0 turns limiting off.
    pub rate_limit_read_per_minute: u32,
    pub rate_limit_write_per_minute: u32,
    /// Refusals of unauthenticated callers recorded one event each, per client address and minute (0: off).
    pub refusals_per_minute: u32,
    /// SQLite only: how long a write waits for another connection's lock before it fails.
    /// How long anything waits for the database before failing closed (see [`ConnOptions::wait`]).
    pub db_wait: Duration,
    /// How key checks learn of key changes made elsewhere (see `auth::key_cache`).
    pub key_cache: KeyCacheMode,
    /// The origin (`https://keyward.example.com`, maybe with a path prefix) of
    /// links keyward hands out; None: the address it listens on.
    pub public_url: Option<String>,
    /// Longest lifetime (`exp - iat`) a console token may have.
    pub console_jwt_max_ttl: Duration,
    /// How often refusals over budget are summarized, one event per address.
    pub refusal_summary_window: Duration,
    /// The signed-note signer key behind `checkpoint_signer` (`KEYWARD_CHECKPOINT_KEY`).
    pub checkpoint_key: Secret,
    /// Signs the audit trees' checkpoints.
    pub checkpoint_signer: std::sync::Arc<crypto::CheckpointSigner>,
    /// How often chains that grew get a new signed checkpoint.
    pub checkpoint_interval: Duration,
    /// Where archive segments go (`KEYWARD_ARCHIVE_DIR`; SQLite: `<db file>.archive`
    /// beside the database by default; PostgreSQL: none unless set).
    pub archive_dir: Option<PathBuf>,
    /// How often the retention job runs a pass.
    pub retention_interval: Duration,
    /// How often the key notice job runs a pass.
    pub notice_interval: Duration,
    /// How often the background verifier starts a run over every chain.
    pub verify_interval: Duration,
    /// Every how many passes the verifier reads every chain from its first
    /// event (the others read only the events since the proved point).
    pub verify_full_every: u32,
    /// The keys secret-scanning partners sign leak reports with
    /// (`KEYWARD_SECRET_SCANNING_KEYS`, a file in GitHub's key-document form);
    /// none: every report is refused.
    pub secret_scanning_keys: Option<std::sync::Arc<crypto::ScanningKeys>>,
    /// Gateways whose `X-Forwarded-For` names the caller (`KEYWARD_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// SIEM sink delivery (see `audit::sinks`): how often the worker looks for
    /// due sinks, how long one delivery may take, the first retry's wait, and
    /// how long a sink may fail before it is DEAD.
    pub sink_interval: Duration,
    pub sink_timeout: Duration,
    pub sink_retry_base: Duration,
    pub sink_dead_after: Duration,
    /// Non-public networks that SIEM sinks may still deliver to
    /// (`KEYWARD_SINK_ALLOWED_NETWORKS`; none by default: public addresses only).
    pub sink_destinations: crate::domain::sinks::Destinations,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { variable, message: message.into() }
}

pub const MIN_SECRET_LEN: usize = 32;
pub const DEFAULT_READ_PER_MINUTE: u32 = 6000;
pub const DEFAULT_WRITE_PER_MINUTE: u32 = 3000;
pub const MAX_DB_WAIT_MS: u64 = 600_000;
/// The verified-key cache's poll interval by default with embedded SQLite (one
/// instance: its own changes reach its cache at once, only hand edits wait).
/// With PostgreSQL, unless set, each key check reads `key_state.version`
/// instead: a revocation must take effect for the next request on
/// *every* instance, which a poll cannot promise.
pub const DEFAULT_KEY_CACHE_SYNC_MS: u64 = 100;
pub const MAX_KEY_CACHE_SYNC_MS: u64 = 10_000;
pub const DEFAULT_REFUSAL_SUMMARY_SECONDS: u64 = 60;
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_RETENTION_INTERVAL_MS: u64 = 3_600_000;
/// A week.
pub const MAX_RETENTION_INTERVAL_MS: u64 = 604_800_000;
pub const DEFAULT_VERIFY_INTERVAL_MS: u64 = 60_000;
pub const DEFAULT_NOTICE_INTERVAL_MS: u64 = 60_000;
/// A day: a longer pause could step over a whole one-day threshold.
pub const MAX_NOTICE_INTERVAL_MS: u64 = 86_400_000;
pub const DEFAULT_VERIFY_FULL_EVERY: u32 = 60;
pub const DEFAULT_SINK_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_SINK_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_SINK_RETRY_BASE_MS: u64 = 1000;
pub const DEFAULT_SINK_DEAD_AFTER_SECS: u64 = 86_400;
/// The key name of a checkpoint key generated for embedded mode: its
/// checkpoints' origins read `keyward/audit/<chain>`.
pub const GENERATED_CHECKPOINT_KEY_NAME: &str = "keyward";
pub const DEFAULT_CONSOLE_JWT_MAX_TTL_SECS: u64 = 3600;
pub const MAX_CONSOLE_JWT_MAX_TTL_SECS: i64 = 7 * 24 * 3600;

/// An http(s) origin with an optional path prefix, no query, fragment or
/// credentials; returned without a trailing slash.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let host = rest.split('/').next().unwrap_or("");
    let valid_host = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !valid_host {
        return Err("must name a host, e.g. https://keyward.example.com".into());
    }
    if rest.contains(['?', '#', '@', ' ', '\\']) || rest.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err("must be an origin with an optional path: no query, fragment, credentials or spaces".into());
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// `1h`, `30m`, `45s`, `2d` or plain seconds; None for anything else.
pub fn parse_duration_secs(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let (num, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: i64 = num.parse().ok()?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(unit)
}

impl Settings {
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `get`, so tests can pass a map instead of the environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());

        let raw_url = get("KEYWARD_DATABASE_URL").unwrap_or_else(|| "sqlite://keyward.db".into());
        let database_url = DbUrl::parse(&raw_url).map_err(|m| err("KEYWARD_DATABASE_URL", m))?;

        let listen = get("KEYWARD_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8080".into())
            .parse::<SocketAddr>()
            .map_err(|_| err("KEYWARD_LISTEN", "must be an address like 127.0.0.1:8080"))?;

        let key_pepper = secret_setting(&get, "KEYWARD_KEY_PEPPER", &database_url, "key_pepper")?;
        let console_jwt_secret =
            Some(secret_setting(&get, "KEYWARD_CONSOLE_JWT_SECRET", &database_url, "console_jwt_secret")?);

        let console_jwt_public_key = match get("KEYWARD_CONSOLE_JWT_PUBLIC_KEY") {
            None => None,
            Some(v) => {
                let pem = if v.trim_start().starts_with("-----BEGIN") {
                    v
                } else {
                    std::fs::read_to_string(&v).map_err(|e| {
                        err("KEYWARD_CONSOLE_JWT_PUBLIC_KEY", format!("neither a PEM key nor a readable file: {e}"))
                    })?
                };
                jsonwebtoken::DecodingKey::from_ed_pem(pem.as_bytes())
                    .map_err(|_| err("KEYWARD_CONSOLE_JWT_PUBLIC_KEY", "not an Ed25519 public key in PEM"))?;
                Some(pem)
            }
        };

        let ingest_token = match get("KEYWARD_INGEST_TOKEN") {
            Some(t) if t.len() < MIN_SECRET_LEN => {
                return Err(err("KEYWARD_INGEST_TOKEN", format!("must be at least {MIN_SECRET_LEN} characters")))
            }
            other => other.map(Secret::new),
        };

        let secret_scanning_keys = match get("KEYWARD_SECRET_SCANNING_KEYS") {
            None => None,
            Some(path) => {
                let document = std::fs::read_to_string(&path)
                    .map_err(|e| err("KEYWARD_SECRET_SCANNING_KEYS", format!("cannot read {path}: {e}")))?;
                let keys =
                    crypto::ScanningKeys::parse(&document).map_err(|m| err("KEYWARD_SECRET_SCANNING_KEYS", m))?;
                Some(std::sync::Arc::new(keys))
            }
        };

        let log_format = match get("KEYWARD_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => return Err(err("KEYWARD_LOG_FORMAT", "must be json or pretty")),
        };

        let export_dir = get("KEYWARD_EXPORT_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("exports"));

        let per_minute = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse::<u32>()
                    .map_err(|_| err(name, "must be a whole number of requests per minute (0 turns limiting off)"))
            })
        };

        // A whole number of milliseconds from 0 to `max`; `zero` says what 0 means, if anything special.
        let millis = |name: &'static str, default: u64, max: u64, zero: &str| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => match v.parse::<u64>() {
                    Ok(ms) if ms <= max => Ok(Duration::from_millis(ms)),
                    _ => Err(err(name, format!("must be a whole number of milliseconds, at most {max}{zero}"))),
                },
            }
        };
        // KEYWARD_SQLITE_BUSY_TIMEOUT_MS is the earlier, SQLite-only name of the same bound.
        let db_wait = match get("KEYWARD_DB_WAIT_MS") {
            Some(_) => millis("KEYWARD_DB_WAIT_MS", DEFAULT_DB_WAIT_MS, MAX_DB_WAIT_MS, "")?,
            None => millis("KEYWARD_SQLITE_BUSY_TIMEOUT_MS", DEFAULT_DB_WAIT_MS, MAX_DB_WAIT_MS, "")?,
        };
        if db_wait.is_zero() {
            return Err(err("KEYWARD_DB_WAIT_MS", "must be at least 1 millisecond"));
        }
        let key_cache = match get("KEYWARD_KEY_CACHE_SYNC_MS") {
            None if !database_url.is_sqlite() => KeyCacheMode::CheckEachRequest,
            _ => match millis(
                "KEYWARD_KEY_CACHE_SYNC_MS",
                DEFAULT_KEY_CACHE_SYNC_MS,
                MAX_KEY_CACHE_SYNC_MS,
                " (0 turns the cache off)",
            )? {
                interval if interval.is_zero() => KeyCacheMode::Off,
                interval => KeyCacheMode::Poll(interval),
            },
        };

        let public_url = match get("KEYWARD_PUBLIC_URL") {
            None => None,
            Some(v) => Some(parse_public_url(&v).map_err(|m| err("KEYWARD_PUBLIC_URL", m))?),
        };
        let console_jwt_max_ttl = match get("KEYWARD_CONSOLE_JWT_MAX_TTL") {
            None => Duration::from_secs(DEFAULT_CONSOLE_JWT_MAX_TTL_SECS),
            Some(v) => match parse_duration_secs(&v) {
                Some(s) if (60..=MAX_CONSOLE_JWT_MAX_TTL_SECS).contains(&s) => Duration::from_secs(s as u64),
                _ => {
                    return Err(err(
                        "KEYWARD_CONSOLE_JWT_MAX_TTL",
                        "must be a duration like 1h, 30m or 3600 (seconds), from 1 minute to 7 days",
                    ))
                }
            },
        };
        let refusal_summary_window = match get("KEYWARD_REFUSAL_SUMMARY_SECONDS") {
            None => Duration::from_secs(DEFAULT_REFUSAL_SUMMARY_SECONDS),
            Some(v) => match v.parse::<u64>() {
                Ok(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
                _ => {
                    return Err(err("KEYWARD_REFUSAL_SUMMARY_SECONDS", "must be a whole number of seconds, 1 to 3600"))
                }
            },
        };

        let checkpoint_interval = match get("KEYWARD_CHECKPOINT_INTERVAL_MS") {
            None => Duration::from_millis(DEFAULT_CHECKPOINT_INTERVAL_MS),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (10..=1000).contains(&ms) => Duration::from_millis(ms),
                _ => return Err(err("KEYWARD_CHECKPOINT_INTERVAL_MS", "must be 10 to 1000 (milliseconds)")),
            },
        };
        let archive_dir = match (get("KEYWARD_ARCHIVE_DIR"), &database_url) {
            (Some(dir), _) if dir.trim().is_empty() => {
                return Err(err("KEYWARD_ARCHIVE_DIR", "must be a folder path (or unset)"))
            }
            (Some(dir), _) => Some(PathBuf::from(dir)),
            (None, DbUrl::Sqlite(path)) => {
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(".archive");
                Some(path.with_file_name(name))
            }
            (None, DbUrl::Postgres(_)) => None,
        };
        let retention_interval = match get("KEYWARD_RETENTION_INTERVAL_MS") {
            None => Duration::from_millis(DEFAULT_RETENTION_INTERVAL_MS),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (10..=MAX_RETENTION_INTERVAL_MS).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(err(
                        "KEYWARD_RETENTION_INTERVAL_MS",
                        format!("must be 10 to {MAX_RETENTION_INTERVAL_MS} (milliseconds)"),
                    ))
                }
            },
        };
        let notice_interval = match get("KEYWARD_NOTICE_INTERVAL_MS") {
            None => Duration::from_millis(DEFAULT_NOTICE_INTERVAL_MS),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (10..=MAX_NOTICE_INTERVAL_MS).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(err(
                        "KEYWARD_NOTICE_INTERVAL_MS",
                        format!("must be 10 to {MAX_NOTICE_INTERVAL_MS} (milliseconds)"),
                    ))
                }
            },
        };
        let verify_interval = match get("KEYWARD_VERIFY_INTERVAL_MS") {
            None => Duration::from_millis(DEFAULT_VERIFY_INTERVAL_MS),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (10..=86_400_000).contains(&ms) => Duration::from_millis(ms),
                _ => return Err(err("KEYWARD_VERIFY_INTERVAL_MS", "must be 10 to 86400000 (milliseconds)")),
            },
        };
        let verify_full_every = match get("KEYWARD_VERIFY_FULL_EVERY") {
            None => DEFAULT_VERIFY_FULL_EVERY,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=100_000).contains(&n) => n,
                _ => return Err(err("KEYWARD_VERIFY_FULL_EVERY", "must be a whole number of passes, 1 to 100000")),
            },
        };
        let trusted_proxies = match get("KEYWARD_TRUSTED_PROXIES") {
            None => TrustedProxies::default(),
            Some(v) => TrustedProxies::parse(&v.split(',').map(str::to_string).collect::<Vec<_>>()).map_err(|m| {
                err("KEYWARD_TRUSTED_PROXIES", format!("must be IP addresses or CIDR blocks separated by commas: {m}"))
            })?,
        };
        let sink_destinations = match get("KEYWARD_SINK_ALLOWED_NETWORKS") {
            None => crate::domain::sinks::Destinations::default(),
            Some(v) => crate::domain::sinks::Destinations::allowing(
                &v.split(',').map(str::to_string).filter(|e| !e.trim().is_empty()).collect::<Vec<_>>(),
            )
            .map_err(|m| {
                err(
                    "KEYWARD_SINK_ALLOWED_NETWORKS",
                    format!("must be IP addresses or CIDR blocks separated by commas: {m}"),
                )
            })?,
        };
        let bounded =
            |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>, unit: &str| match get(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if range.contains(&n) => Ok(n),
                    _ => Err(err(name, format!("must be {} to {} ({unit})", range.start(), range.end()))),
                },
            };
        let sink_interval = Duration::from_millis(bounded(
            "KEYWARD_SINK_INTERVAL_MS",
            DEFAULT_SINK_INTERVAL_MS,
            10..=3_600_000,
            "milliseconds",
        )?);
        let sink_timeout = Duration::from_millis(bounded(
            "KEYWARD_SINK_TIMEOUT_MS",
            DEFAULT_SINK_TIMEOUT_MS,
            100..=120_000,
            "milliseconds",
        )?);
        let sink_retry_base = Duration::from_millis(bounded(
            "KEYWARD_SINK_RETRY_BASE_MS",
            DEFAULT_SINK_RETRY_BASE_MS,
            10..=300_000,
            "milliseconds",
        )?);
        let sink_dead_after = Duration::from_secs(bounded(
            "KEYWARD_SINK_DEAD_AFTER_SECS",
            DEFAULT_SINK_DEAD_AFTER_SECS,
            1..=2_592_000,
            "seconds",
        )?);
        let rate_limit_read_per_minute = per_minute("KEYWARD_RATE_LIMIT_READ_PER_MINUTE", DEFAULT_READ_PER_MINUTE)?;
        let rate_limit_write_per_minute = per_minute("KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE", DEFAULT_WRITE_PER_MINUTE)?;
        let refusals_per_minute = per_minute("KEYWARD_REFUSALS_PER_MINUTE", crate::ratelimit::REFUSALS_PER_MINUTE)?;
        // Last: a key generated for embedded mode is written to disk only for settings that hold.
        let checkpoint_key = checkpoint_key(&get, &database_url)?;
        let checkpoint_signer = std::sync::Arc::new(
            crypto::CheckpointSigner::parse(checkpoint_key.expose()).map_err(|m| err("KEYWARD_CHECKPOINT_KEY", m))?,
        );
        Ok(Settings {
            checkpoint_key,
            checkpoint_signer,
            checkpoint_interval,
            archive_dir,
            retention_interval,
            notice_interval,
            verify_interval,
            verify_full_every,
            secret_scanning_keys,
            trusted_proxies,
            sink_interval,
            sink_timeout,
            sink_retry_base,
            sink_dead_after,
            sink_destinations,
            public_url,
            console_jwt_max_ttl,
            refusal_summary_window,
            database_url,
            listen,
            key_pepper,
            console_jwt_secret,
            console_jwt_public_key,
            console_jwt_issuer: get("KEYWARD_CONSOLE_JWT_ISSUER").unwrap_or_else(|| "keyward-console".into()),
            console_jwt_audience: get("KEYWARD_CONSOLE_JWT_AUDIENCE").unwrap_or_else(|| "keyward".into()),
            ingest_token,
            log_format,
            export_dir,
            rate_limit_read_per_minute,
            rate_limit_write_per_minute,
            refusals_per_minute,
            db_wait,
            key_cache,
        })
    }

    /// How the server sets up its database connections.
    /// Redacts, besides key- and token-shaped text, the configured secrets a caller could echo.
    /// Also registers them for error messages ([`crate::domain::redact::scrub`]).
    pub fn redactor(&self) -> crate::domain::redact::Redactor {
        // The checkpoint key as given, and the base64 seed inside it.
        let seed = self.checkpoint_key.expose().splitn(5, '+').nth(4);
        let configured: Vec<&str> = self
            .ingest_token
            .as_ref()
            .map(Secret::expose)
            .into_iter()
            .chain([self.checkpoint_key.expose()])
            .chain(seed)
            .collect();
        configured.iter().copied().for_each(crate::domain::redact::register);
        crate::domain::redact::Redactor::new(configured)
    }

    pub fn conn_options(&self) -> ConnOptions {
        ConnOptions { wait: self.db_wait }
    }
}

/// The checkpoint signing key: from the environment, or (embedded SQLite
/// only) generated once into a 0600 file beside the database.
fn checkpoint_key(get: &impl Fn(&str) -> Option<String>, url: &DbUrl) -> Result<Secret, ConfigError> {
    const VARIABLE: &str = "KEYWARD_CHECKPOINT_KEY";
    Ok(match (get(VARIABLE), url) {
        (Some(v), _) => Secret::new(v.trim()),
        (None, DbUrl::Postgres(_)) => {
            return Err(err(VARIABLE, "must be set with PostgreSQL: every instance signs with the same key"))
        }
        (None, DbUrl::Sqlite(db)) => {
            let generate = || crypto::CheckpointSigner::generate(GENERATED_CHECKPOINT_KEY_NAME);
            Secret::new(load_or_make(&secret_file(db, "checkpoint_key"), generate).map_err(|m| err(VARIABLE, m))?)
        }
    })
}

/// A required secret: from the environment, or (embedded SQLite only)
/// generated once into a 0600 file beside the database.
fn secret_setting(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    url: &DbUrl,
    file_suffix: &str,
) -> Result<Secret, ConfigError> {
    if let Some(v) = get(variable) {
        if v.len() < MIN_SECRET_LEN {
            return Err(err(variable, format!("must be at least {MIN_SECRET_LEN} characters")));
        }
        return Ok(Secret::new(v));
    }
    match url {
        DbUrl::Postgres(_) => Err(err(variable, "must be set with PostgreSQL: every instance has to share it")),
        DbUrl::Sqlite(db) => {
            load_or_generate(&secret_file(db, file_suffix)).map(Secret::new).map_err(|m| err(variable, m))
        }
    }
}

pub fn secret_file(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "keyward.db".into());
    name.push(format!(".{suffix}"));
    db.with_file_name(name)
}

fn load_or_generate(path: &Path) -> Result<String, String> {
    load_or_make(path, crypto::new_hex_secret)
}

fn load_or_make(path: &Path, make: impl FnOnce() -> String) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= MIN_SECRET_LEN => return Ok(s.trim().to_string()),
        Ok(_) => return Err(format!("{} is too short; delete it to generate a new one", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let secret = make();
    // create_new: two processes starting at once cannot both win; the loser reads the winner's file.
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        assert!(settings(&[]).unwrap().trusted_proxies.is_empty(), "none by default");
        let s = settings(&[("KEYWARD_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")]).unwrap();
        assert!(s.trusted_proxies.trusts("10.9.8.7".parse().unwrap()));
        assert!(!s.trusted_proxies.trusts("192.0.2.1".parse().unwrap()));
        for bad in ["gateway.internal", "10.0.0.0/40", "127.0.0.1,,10.0.0.1"] {
            let e = settings(&[("KEYWARD_TRUSTED_PROXIES", bad)]).unwrap_err();
            assert_eq!(e.variable, "KEYWARD_TRUSTED_PROXIES", "{bad}");
        }
    }

    #[test]
    fn sink_timings_have_defaults_and_bounds() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.sink_interval, Duration::from_millis(1000));
        assert_eq!(s.sink_timeout, Duration::from_millis(10_000));
        assert_eq!(s.sink_retry_base, Duration::from_millis(1000));
        assert_eq!(s.sink_dead_after, Duration::from_secs(86_400));
        let s = settings(&[("KEYWARD_SINK_INTERVAL_MS", "20"), ("KEYWARD_SINK_DEAD_AFTER_SECS", "1")]).unwrap();
        assert_eq!((s.sink_interval, s.sink_dead_after), (Duration::from_millis(20), Duration::from_secs(1)));
        for (name, bad) in [
            ("KEYWARD_SINK_INTERVAL_MS", "5"),
            ("KEYWARD_SINK_TIMEOUT_MS", "0"),
            ("KEYWARD_SINK_TIMEOUT_MS", "120001"),
            ("KEYWARD_SINK_RETRY_BASE_MS", "-1"),
            ("KEYWARD_SINK_DEAD_AFTER_SECS", "0"),
            ("KEYWARD_SINK_DEAD_AFTER_SECS", "1d"),
        ] {
            assert_eq!(settings(&[(name, bad)]).unwrap_err().variable, name, "{name}={bad}");
        }
    }

    #[test]
    fn sinks_reach_public_addresses_and_the_networks_allowed() {
        let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!settings(&[]).unwrap().sink_destinations.permits(local), "none allowed by default");
        let s = settings(&[("KEYWARD_SINK_ALLOWED_NETWORKS", "127.0.0.0/8, 10.0.0.0/8,")]).unwrap();
        assert!(s.sink_destinations.permits(local) && s.sink_destinations.permits("10.2.3.4".parse().unwrap()));
        let e = settings(&[("KEYWARD_SINK_ALLOWED_NETWORKS", "10.0.0.0/8, intranet")]).unwrap_err();
        assert_eq!(e.variable, "KEYWARD_SINK_ALLOWED_NETWORKS");
    }

    #[test]
    fn postgres_needs_shared_secrets() {
        let e = settings(&[("KEYWARD_DATABASE_URL", "postgres://localhost/kw")]).unwrap_err();
        assert_eq!(e.variable, "KEYWARD_KEY_PEPPER");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let pepper = ("KEYWARD_KEY_PEPPER", "p".repeat(40));
        let jwt = ("KEYWARD_CONSOLE_JWT_SECRET", "s".repeat(40));
        let base = |extra: (&'static str, &'static str)| {
            settings(&[(pepper.0, pepper.1.as_str()), (jwt.0, jwt.1.as_str()), extra]).unwrap_err().variable
        };
        assert_eq!(base(("KEYWARD_DATABASE_URL", "mysql://x")), "KEYWARD_DATABASE_URL");
        assert_eq!(base(("KEYWARD_LISTEN", "nowhere")), "KEYWARD_LISTEN");
        assert_eq!(base(("KEYWARD_LOG_FORMAT", "xml")), "KEYWARD_LOG_FORMAT");
        assert_eq!(base(("KEYWARD_RATE_LIMIT_READ_PER_MINUTE", "-1")), "KEYWARD_RATE_LIMIT_READ_PER_MINUTE");
        assert_eq!(
            base(("KEYWARD_CONSOLE_JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")),
            "KEYWARD_CONSOLE_JWT_PUBLIC_KEY"
        );
        assert_eq!(base(("KEYWARD_INGEST_TOKEN", "short")), "KEYWARD_INGEST_TOKEN");
    }

    #[test]
    fn the_checkpoint_key_is_generated_once_for_sqlite_and_required_for_postgres() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kw.db", dir.path().display());
        let first = settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap();
        let again = settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap();
        assert_eq!(first.checkpoint_signer.verifier_key(), again.checkpoint_signer.verifier_key());
        let file = dir.path().join("kw.db.checkpoint_key");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!format!("{first:?}").contains(first.checkpoint_key.expose()), "Debug must not print the key");

        let pg = [
            ("KEYWARD_DATABASE_URL", "postgres://db/keyward"),
            ("KEYWARD_KEY_PEPPER", "pepper-0123456789abcdef0123456789abcdef"),
            ("KEYWARD_CONSOLE_JWT_SECRET", "console-0123456789abcdef0123456789abcdef"),
        ];
        assert_eq!(settings(&pg).unwrap_err().variable, "KEYWARD_CHECKPOINT_KEY");
        let bad = [pg[0], pg[1], pg[2], ("KEYWARD_CHECKPOINT_KEY", "PRIVATE+KEY+kw+00000000+AAAA")];
        let e = settings(&bad).unwrap_err();
        assert_eq!(e.variable, "KEYWARD_CHECKPOINT_KEY");
        assert!(!e.message.contains("AAAA"), "the error does not echo the key: {}", e.message);
    }

    #[test]
    fn the_notice_interval_is_10_ms_to_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kw.db", dir.path().display());
        let with = |v: &str| settings(&[("KEYWARD_DATABASE_URL", &url), ("KEYWARD_NOTICE_INTERVAL_MS", v)]);
        let default = settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap();
        assert_eq!(default.notice_interval, Duration::from_secs(60));
        assert_eq!(with("10").unwrap().notice_interval, Duration::from_millis(10));
        assert_eq!(with("86400000").unwrap().notice_interval, Duration::from_secs(86_400));
        for bad in ["9", "86400001", "-1", "1.5", "1m"] {
            assert_eq!(with(bad).unwrap_err().variable, "KEYWARD_NOTICE_INTERVAL_MS", "{bad}");
        }
    }

    #[test]
    fn the_database_wait_is_parsed_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kw.db", dir.path().display());
        let with = |name: &str, v: &str| settings(&[("KEYWARD_DATABASE_URL", &url), (name, v)]);
        let default = settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap();
        assert_eq!(default.db_wait, Duration::from_millis(2000));
        assert_eq!(default.conn_options(), ConnOptions::default());
        for name in ["KEYWARD_DB_WAIT_MS", "KEYWARD_SQLITE_BUSY_TIMEOUT_MS"] {
            assert_eq!(with(name, "200").unwrap().db_wait, Duration::from_millis(200));
            assert_eq!(with(name, "600000").unwrap().conn_options().wait, Duration::from_secs(600));
            for bad in ["-1", "1.5", "5s", "abc", "600001", "99999999999999999999"] {
                assert_eq!(with(name, bad).unwrap_err().variable, name, "{bad}");
            }
        }
        assert_eq!(with("KEYWARD_DB_WAIT_MS", "0").unwrap_err().variable, "KEYWARD_DB_WAIT_MS");
    }

    #[test]
    fn public_url_and_token_lifetime_are_parsed_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kw.db", dir.path().display());
        let with = |name: &str, v: &str| settings(&[("KEYWARD_DATABASE_URL", &url), (name, v)]);
        assert_eq!(
            with("KEYWARD_PUBLIC_URL", "https://kw.example.com/").unwrap().public_url.unwrap(),
            "https://kw.example.com"
        );
        assert_eq!(
            with("KEYWARD_PUBLIC_URL", "http://10.0.0.1:8080/kw").unwrap().public_url.unwrap(),
            "http://10.0.0.1:8080/kw"
        );
        for bad in
            ["kw.example.com", "ftp://x", "https://", "https://a@b", "https://x/?q=1", "https://x/#f", "https://x y"]
        {
            assert_eq!(with("KEYWARD_PUBLIC_URL", bad).unwrap_err().variable, "KEYWARD_PUBLIC_URL", "{bad}");
        }
        let default = settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap();
        assert_eq!(default.console_jwt_max_ttl, Duration::from_secs(3600));
        assert_eq!(with("KEYWARD_CONSOLE_JWT_MAX_TTL", "15m").unwrap().console_jwt_max_ttl, Duration::from_secs(900));
        assert_eq!(with("KEYWARD_CONSOLE_JWT_MAX_TTL", "7200").unwrap().console_jwt_max_ttl, Duration::from_secs(7200));
        for bad in ["0", "30s", "8d", "1y", "-1h", "h"] {
            assert_eq!(
                with("KEYWARD_CONSOLE_JWT_MAX_TTL", bad).unwrap_err().variable,
                "KEYWARD_CONSOLE_JWT_MAX_TTL",
                "{bad}"
            );
        }
    }

    #[test]
    fn key_cache_sync_is_parsed_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kw.db", dir.path().display());
        let with = |v: &str| settings(&[("KEYWARD_DATABASE_URL", &url), ("KEYWARD_KEY_CACHE_SYNC_MS", v)]);
        let poll = |ms| KeyCacheMode::Poll(Duration::from_millis(ms));
        assert_eq!(settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap().key_cache, poll(100));
        // PostgreSQL: each check reads the version unless asked otherwise (a revocation
        // must reach every instance's next request).
        let checkpoint_key = crypto::CheckpointSigner::generate("keyward.test");
        let pg = [
            ("KEYWARD_DATABASE_URL", "postgres://db/keyward"),
            ("KEYWARD_KEY_PEPPER", "pepper-0123456789abcdef0123456789abcdef"),
            ("KEYWARD_CONSOLE_JWT_SECRET", "console-0123456789abcdef0123456789abcdef"),
            ("KEYWARD_CHECKPOINT_KEY", &checkpoint_key),
        ];
        assert_eq!(settings(&pg).unwrap().key_cache, KeyCacheMode::CheckEachRequest);
        let pg_with = |v| [pg[0], pg[1], pg[2], pg[3], ("KEYWARD_KEY_CACHE_SYNC_MS", v)];
        assert_eq!(settings(&pg_with("100")).unwrap().key_cache, poll(100));
        assert_eq!(settings(&pg_with("0")).unwrap().key_cache, KeyCacheMode::Off);
        assert_eq!(with("250").unwrap().key_cache, poll(250));
        assert_eq!(with("0").unwrap().key_cache, KeyCacheMode::Off);
        for bad in ["-1", "0.5", "100ms", "10001"] {
            assert_eq!(with(bad).unwrap_err().variable, "KEYWARD_KEY_CACHE_SYNC_MS", "{bad}");
        }
    }

    #[test]
    fn sqlite_generates_secret_files_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kw.db", dir.path().display());
        let a = settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap();
        let b = settings(&[("KEYWARD_DATABASE_URL", &url)]).unwrap();
        assert_eq!(a.key_pepper, b.key_pepper);
        assert_ne!(a.key_pepper.expose(), a.console_jwt_secret.as_ref().unwrap().expose());
        for suffix in ["key_pepper", "console_jwt_secret"] {
            let path = dir.path().join(format!("kw.db.{suffix}"));
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{suffix}");
        }
        assert!(!format!("{a:?}").contains(a.key_pepper.expose()), "Debug must not print secrets");
    }
}
