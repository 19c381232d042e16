//! The `keyward` command: serve, migrate, and operator tasks.

use clap::{Parser, Subcommand};
use keyward::config::Settings;
use keyward::domain::Role;
use keyward::telemetry::LogFormat;
use keyward::{admin, db, startup, telemetry};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "keyward", version, about = "Enterprise compliance key management")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on KEYWARD_LISTEN.
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Manage console members.
    Member {
        #[command(subcommand)]
        action: MemberAction,
    },
    /// Print a console JWT signed with KEYWARD_CONSOLE_JWT_SECRET.
    ConsoleToken {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        member: String,
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Read and verify the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum TenantAction {
    /// Create a tenant and its first OWNER.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
    },
}

#[derive(Subcommand)]
enum MemberAction {
    /// Add a console member.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Verify the hash chains (one tenant's, or all); exits 1 if any is broken.
    /// With --checkpoint: verify the database against a checkpoint obtained
    /// earlier (its signature, then the chain's tree recomputed from its events).
    Verify {
        #[arg(long, conflicts_with = "checkpoint")]
        tenant: Option<String>,
        /// A signed checkpoint note (as `enterprise.audit.checkpoint` or `keyward audit checkpoint` gave it).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
        /// Keep the last verified size and root per chain here: the next run reads only the events since.
        #[arg(long, value_name = "DIR", requires = "checkpoint")]
        state: Option<std::path::PathBuf>,
        /// The checkpoints' verifier key (default: that of KEYWARD_CHECKPOINT_KEY).
        #[arg(long, value_name = "KEY", requires = "checkpoint")]
        public_key: Option<String>,
    },
    /// Witness an instance's log over HTTP: fetch its latest checkpoint, check
    /// its signature and its consistency with the one kept from the last run,
    /// keep the new one. Exits 1 with one line if history was rewritten.
    Witness {
        /// The instance's base URL (https://keyward.example.com).
        #[arg(long)]
        url: String,
        /// The instance's checkpoint verifier key (`keyward audit public-key`).
        #[arg(long, value_name = "KEY")]
        public_key: String,
        /// Where the last checkpoint of each origin is kept between runs.
        #[arg(long, value_name = "DIR")]
        state: std::path::PathBuf,
        /// A SIEM key of the tenant, sent as X-API-Key.
        #[arg(long, env = "KEYWARD_WITNESS_API_KEY", hide_env_values = true, conflicts_with = "token")]
        api_key: Option<String>,
        /// Or a console token of an OWNER or AUDITOR, sent as a bearer token.
        #[arg(long, env = "KEYWARD_WITNESS_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Print events as NDJSON: a tenant's, or (--system) those no tenant could be told for.
    List {
        #[arg(long, conflicts_with = "system")]
        tenant: Option<String>,
        #[arg(long)]
        system: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Print the verifier key of the checkpoint signing key (what auditors and witnesses are given).
    PublicKey,
    /// Sign a checkpoint of every chain that grew now, and print each chain's newest checkpoint as JSON lines.
    Checkpoint,
    /// Run one retention pass now: move the events older than each tenant's
    /// audit_retention_days (and verified, and under a signed checkpoint) into
    /// archive segments under KEYWARD_ARCHIVE_DIR; print what was archived.
    Retain,
    /// Run one key notice pass now: write the enterprise.key.expiring and
    /// enterprise.key.expired events that are due (each once per key and
    /// threshold, whichever instance or pass comes first); print what was written.
    Notices,
    /// Check an export file (e-Discovery ZIP or SIEM compliance NDJSON) or an
    /// archive segment (gzip NDJSON) offline: its
    /// checkpoint's signature, every event's inclusion proof, and that each event's
    /// shown fields are its leaf's. Needs no configuration, database or network;
    /// exits 1 if anything does not verify.
    VerifyArchive {
        /// The downloaded export file.
        file: std::path::PathBuf,
        /// The verifier key (`keyward audit public-key`), or a file holding it.
        #[arg(long)]
        public_key: String,
    },
    /// Print a new checkpoint signing key for KEYWARD_CHECKPOINT_KEY (needs no configuration).
    NewCheckpointKey {
        /// The key's name: checkpoints' origins start with it (e.g. keyward.example.com).
        #[arg(long, default_value = keyward::config::GENERATED_CHECKPOINT_KEY_NAME)]
        name: String,
    },
}

/// A failure: one line on stderr and an exit code (2 for configuration).
struct Failure(u8, String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(1, e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn settings() -> Result<Settings, Failure> {
    Settings::from_env().map_err(|e| Failure(2, e.to_string()))
}

fn print_json(v: serde_json::Value) {
    println!("{v}");
}

/// `audit verify-archive`: the summary on stdout, one line per problem on stderr.
fn verify_archive(file: &std::path::Path, public_key: &str) -> Result<ExitCode, Failure> {
    let bytes = std::fs::read(file).map_err(|e| Failure(2, format!("cannot read {}: {e}", file.display())))?;
    let key = match std::path::Path::new(public_key) {
        p if p.is_file() => std::fs::read_to_string(p)
            .map_err(|e| Failure(2, format!("cannot read --public-key {}: {e}", p.display())))?
            .trim()
            .to_string(),
        _ => public_key.trim().to_string(),
    };
    signed_note_key_is_usable(&key)?;
    let mut report = keyward::audit::evidence::verify(&bytes, &key);
    if let Some(name) = file.file_name().and_then(|n| n.to_str()) {
        report.check_segment_name(name);
    }
    print_json(serde_json::to_value(&report).map_err(|e| Failure(1, e.to_string()))?);
    for problem in &report.problems {
        eprintln!("invalid: {problem}");
    }
    Ok(if report.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A malformed verifier key is a usage error (exit 2), not an invalid archive.
fn signed_note_key_is_usable(key: &str) -> Result<(), Failure> {
    keyward::crypto::check_verifier_key(key).map_err(|e| Failure(2, format!("--public-key: {e}")))
}

fn run(command: Command) -> Result<ExitCode, Failure> {
    if let Command::Audit { action: AuditAction::Witness { url, public_key, state, api_key, token } } = &command {
        return witness(url, public_key, state, api_key.as_deref(), token.as_deref());
    }
    if let Command::Audit { action: AuditAction::NewCheckpointKey { name } } = &command {
        if name.is_empty() || name.contains(|c: char| c == '+' || c.is_whitespace()) {
            return Err(Failure(2, "--name must be non-empty, without spaces or '+'".into()));
        }
        println!("{}", keyward::crypto::CheckpointSigner::generate(name));
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Audit { action: AuditAction::VerifyArchive { file, public_key } } = &command {
        return verify_archive(file, public_key);
    }
    let settings = settings()?;
    match command {
        Command::Serve => {
            telemetry::init(settings.log_format, settings.redactor());
            let listener = std::net::TcpListener::bind(settings.listen)
                .map_err(|e| Failure(2, format!("KEYWARD_LISTEN: cannot listen on {}: {e}", settings.listen)))?;
            tracing::info!(listen = %settings.listen, database = %settings.database_url.redacted(), "keyward starting");
            let server = startup::build(settings, listener, None)?;
            actix_web::rt::System::new().block_on(server)?;
        }
        Command::Migrate => {
            telemetry::init(LogFormat::Pretty, settings.redactor());
            let mut conn = db::establish(&settings.database_url)?;
            let ran = db::run_migrations(&mut conn)?;
            let built = keyward::audit::tree::build_missing(&mut conn).map_err(|e| e.to_string())?;
            print_json(serde_json::json!({"migrations_applied": ran, "audit_trees_built": built.len()}));
        }
        Command::Tenant { action: TenantAction::Create { name, owner_email } } => {
            let mut conn = admin::connect(&settings)?;
            let (tenant_id, owner) = admin::create_tenant(&mut conn, &name, &owner_email)?;
            print_json(serde_json::json!({"tenant_id": tenant_id, "owner_member_id": owner}));
        }
        Command::Member { action: MemberAction::Create { tenant, email, role } } => {
            let role = Role::parse(&role.to_ascii_uppercase())
                .ok_or_else(|| Failure(1, format!("--role {role:?} must be OWNER, ADMIN, AUDITOR or MEMBER")))?;
            let mut conn = admin::connect(&settings)?;
            let member_id = admin::create_member(&mut conn, &tenant, &email, role)?;
            print_json(serde_json::json!({"member_id": member_id}));
        }
        Command::ConsoleToken { tenant, member, ttl } => {
            let ttl = admin::parse_ttl(&ttl)?;
            let mut conn = admin::connect(&settings)?;
            println!("{}", admin::console_token(&mut conn, &settings, &tenant, &member, ttl)?);
        }
        Command::Audit { action: AuditAction::Verify { checkpoint: Some(file), state, public_key, .. } } => {
            let note = std::fs::read(&file).map_err(|e| Failure(2, format!("--checkpoint {}: {e}", file.display())))?;
            let key = public_key.as_deref().unwrap_or(settings.checkpoint_signer.verifier_key());
            let mut conn = admin::connect_to_verify(&settings)?;
            let report =
                admin::verify_checkpoint(&mut conn, key, &note, state.as_deref()).map_err(|e| Failure(2, e))?;
            print_json(serde_json::to_value(&report).expect("a report is JSON"));
            if !report.valid {
                for p in &report.problems {
                    eprintln!("error: {}", p.message);
                }
                return Ok(ExitCode::from(1));
            }
        }
        Command::Audit { action: AuditAction::Verify { tenant, .. } } => {
            let mut conn = admin::connect_to_verify(&settings)?;
            let chains = admin::verify(&mut conn, tenant.as_deref())?;
            let valid = chains.iter().all(|c| c.valid);
            print_json(serde_json::json!({"valid": valid, "chains": chains}));
            if !valid {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Audit { action: AuditAction::List { tenant, system, limit } } => {
            let mut conn = admin::connect(&settings)?;
            let chain = if system { None } else { tenant.as_deref() };
            if !system && tenant.is_none() {
                return Err(Failure(1, "give --tenant ID or --system".into()));
            }
            for event in admin::list_events(&mut conn, chain, limit)? {
                println!("{event}");
            }
        }
        Command::Audit { action: AuditAction::Retain } => {
            let mut conn = admin::connect(&settings)?;
            let report = admin::retain(&mut conn, &settings)?;
            print_json(serde_json::to_value(&report).expect("a report is JSON"));
            for f in &report.failed {
                eprintln!("error: chain {}: {}", f.chain_id, f.error);
            }
            if !report.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Audit { action: AuditAction::Notices } => {
            let mut conn = admin::connect(&settings)?;
            let report = admin::notices(&mut conn)?;
            print_json(serde_json::to_value(&report).expect("a report is JSON"));
            for f in &report.failed {
                eprintln!("error: tenant {} key {}: {}", f.tenant_id, f.key_id, f.error);
            }
            if !report.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Audit { action: AuditAction::PublicKey } => {
            println!("{}", settings.checkpoint_signer.verifier_key());
        }
        Command::Audit { action: AuditAction::Checkpoint } => {
            let mut conn = admin::connect(&settings)?;
            let signer = &settings.checkpoint_signer;
            keyward::audit::checkpoint::sign_grown(&mut conn, signer, &mut Default::default())?;
            for (chain_id, _) in keyward::db::store::chain_sizes(&mut conn)? {
                if let Some(c) = keyward::db::store::find_checkpoint(&mut conn, &chain_id, None)? {
                    print_json(
                        serde_json::json!({"chain_id": c.chain_id, "tree_size": c.tree_size, "checkpoint": c.note}),
                    );
                }
            }
        }
        Command::Audit {
            action:
                AuditAction::NewCheckpointKey { .. } | AuditAction::VerifyArchive { .. } | AuditAction::Witness { .. },
        } => {
            unreachable!("handled before settings")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `keyward audit witness`: needs no configuration, only the instance's URL and key.
fn witness(
    url: &str,
    public_key: &str,
    state: &std::path::Path,
    api_key: Option<&str>,
    token: Option<&str>,
) -> Result<ExitCode, Failure> {
    let credential = match (api_key, token) {
        (Some(k), _) if !k.trim().is_empty() => ("X-API-Key", k.trim().to_string()),
        (_, Some(t)) if !t.trim().is_empty() => ("Authorization", format!("Bearer {}", t.trim())),
        _ => {
            return Err(Failure(
                2,
                "give --api-key (or KEYWARD_WITNESS_API_KEY) or --token (or KEYWARD_WITNESS_TOKEN)".into(),
            ))
        }
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(Failure(2, format!("--url {url:?} must be an http(s) URL")));
    }
    if signed_note_key_name(public_key).is_none() {
        return Err(Failure(
            2,
            "--public-key must be a verifier key <name>+<id>+<base64> (keyward audit public-key)".into(),
        ));
    }
    let remote = keyward::witness::Remote { url: url.to_string(), credential };
    match keyward::witness::run(&remote, public_key, state) {
        Ok(outcome) => {
            print_json(serde_json::to_value(&outcome).expect("an outcome is JSON"));
            Ok(ExitCode::SUCCESS)
        }
        Err(keyward::witness::WitnessError(code, line)) => Err(Failure(code, line)),
    }
}

fn signed_note_key_name(key: &str) -> Option<&str> {
    let mut parts = key.trim().splitn(3, '+');
    let name = parts.next().filter(|n| !n.is_empty())?;
    parts.next().filter(|id| id.len() == 8)?;
    parts.next().filter(|k| !k.is_empty())?;
    Some(name)
}
