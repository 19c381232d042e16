//! Operator actions behind the CLI (and the test harness): bootstrap tenants
//! and members, mint console tokens, verify and read the audit log. Each
//! change is audited with actor type SERVICE.

use crate::audit::verify::{verify_chain, verify_from, Report, Trusted, Verification};
use crate::audit::writer::commit_now;
use crate::audit::{event_json, ActorType, EventDraft, SYSTEM_CHAIN};
use crate::config::Settings;
use crate::db::{self, store, DbConn};
use crate::domain::authz::Unrouted;
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::service::team;
use crate::telemetry::new_request_id;
use serde_json::{json, Map, Value};

pub const CLI_ACTOR: &str = "keyward-cli";
/// Longest console token the CLI mints.
pub const MAX_TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;

fn draft(operation: Unrouted, tenant_id: Option<&str>) -> EventDraft {
    let mut d = EventDraft::new(operation, new_request_id());
    d.tenant_id = tenant_id.map(str::to_owned);
    d.actor_type = ActorType::Service;
    d.actor_id = Some(CLI_ACTOR.into());
    d
}

/// A connection for verifying the audit log: the schema is prepared, but no
/// audit tree is built or completed (that would rewrite what is verified).
pub fn connect_to_verify(settings: &Settings) -> AppResult<DbConn> {
    crate::startup::prepare_schema(&settings.database_url)
        .map_err(|m| AppError::new(crate::error::ErrorCode::Unavailable, m))
}

pub fn connect(settings: &Settings) -> AppResult<DbConn> {
    crate::startup::prepare_database(&settings.database_url)
        .map_err(|m| AppError::new(crate::error::ErrorCode::Unavailable, m))?;
    Ok(db::establish(&settings.database_url)?)
}

/// Creates a tenant and its first OWNER; returns (tenant_id, owner_member_id).
pub fn create_tenant(conn: &mut DbConn, name: &str, owner_email: &str) -> AppResult<(String, String)> {
    // The tenant's id is only known inside the work, so its creation event opens
    // the tenant's own chain: the draft names the chain afterwards.
    let (name, email) = (name.to_string(), owner_email.to_string());
    let tenant_id = uuid::Uuid::now_v7().to_string();
    let mut d = draft(Unrouted::TenantCreate, Some(&tenant_id));
    d.metadata.insert("source".into(), json!("cli"));
    let tid = tenant_id.clone();
    commit_now(conn, d, move |c| team::create_tenant_with_id(c, &tid, &name, &email))
}

pub fn create_member(conn: &mut DbConn, tenant_id: &str, email: &str, role: Role) -> AppResult<String> {
    let (tid, email) = (tenant_id.to_string(), email.to_string());
    if store::find_tenant(conn, tenant_id)?.is_none() {
        return Err(AppError::not_found(format!("no tenant {tenant_id}")));
    }
    commit_now(conn, draft(Unrouted::MemberCreate, Some(tenant_id)), move |c| {
        team::create_member(c, &tid, &email, role)
    })
}

/// Parses `1h`, `30m`, `45s`, `2d` or plain seconds.
pub fn parse_ttl(raw: &str) -> Result<i64, String> {
    let secs = crate::config::parse_duration_secs(raw)
        .ok_or_else(|| format!("--ttl {raw:?} is not a duration like 1h, 30m or 3600"))?;
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&secs) {
        return Err(format!("--ttl must be between 1 second and {} days", MAX_TOKEN_TTL_SECS / 86400));
    }
    Ok(secs)
}

/// Mints a console token for an active member, and audits that it was minted (never the token).
pub fn console_token(
    conn: &mut DbConn,
    settings: &Settings,
    tenant_id: &str,
    member_id: &str,
    ttl_secs: i64,
) -> AppResult<String> {
    let max = settings.console_jwt_max_ttl.as_secs() as i64;
    if ttl_secs > max {
        return Err(AppError::invalid(format!(
            "--ttl of {ttl_secs} s exceeds KEYWARD_CONSOLE_JWT_MAX_TTL ({max} s); keyward would refuse the token"
        )));
    }
    let member = store::find_member(conn, tenant_id, member_id)?
        .ok_or_else(|| AppError::not_found(format!("no member {member_id} in tenant {tenant_id}")))?;
    let token = crate::auth::console::mint_token(settings, tenant_id, &member.id, ttl_secs)?;
    let mut d = draft(Unrouted::ConsoleTokenIssue, Some(tenant_id));
    d.metadata =
        Map::from_iter([("member_id".to_string(), json!(member.id)), ("ttl_seconds".to_string(), json!(ttl_secs))]);
    commit_now(conn, d, |_| Ok(((), Map::new())))?;
    Ok(token)
}

/// Verifies one tenant's chain, or every chain (tenants and the system chain).
pub fn verify(conn: &mut DbConn, tenant_id: Option<&str>) -> AppResult<Vec<Verification>> {
    let chains = match tenant_id {
        Some(t) => vec![t.to_string()],
        None => store::chain_ids(conn)?,
    };
    chains.iter().map(|c| verify_chain(conn, c)).collect()
}

/// One retention pass now (`keyward audit retain`).
pub fn retain(conn: &mut DbConn, settings: &Settings) -> AppResult<crate::audit::retention::PassReport> {
    crate::audit::retention::pass(conn, settings.archive_dir.as_deref(), chrono::Utc::now())
}

/// One key notice pass now, its events committed on this connection.
pub fn notices(conn: &mut DbConn) -> AppResult<crate::audit::notices::PassReport> {
    crate::audit::notices::pass(conn, &crate::audit::notices::Via::Direct, chrono::Utc::now())
}

/// Events of one chain as JSON values (operators read tenant-less events with `SYSTEM_CHAIN`).
pub fn list_events(conn: &mut DbConn, chain: Option<&str>, limit: i64) -> AppResult<Vec<Value>> {
    let chain = chain.unwrap_or(SYSTEM_CHAIN);
    let rows = store::chain_events_after(conn, chain, 0, limit)?;
    Ok(rows.iter().map(event_json).collect())
}

/// Verifies the database against a checkpoint note obtained earlier. With a
/// state folder, starts from the size and root a previous run verified for
/// that chain (if any; only the events since are read) and, if the log
/// verifies, keeps the new ones there for the next run.
pub fn verify_checkpoint(
    conn: &mut DbConn,
    verifier_key: &str,
    note: &[u8],
    state_dir: Option<&std::path::Path>,
) -> Result<Report, String> {
    let opened = crate::audit::verify::open_checkpoint(note, verifier_key).ok();
    let state = match (state_dir, &opened) {
        (Some(dir), Some(c)) => {
            let origin =
                crate::audit::checkpoint::origin(verifier_key.split('+').next().unwrap_or_default(), &c.chain_id);
            Some(crate::witness::state_file(dir, &origin).with_extension("verified"))
        }
        _ => None,
    };
    let trusted = match &state {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                parse_trusted(&text).ok_or_else(|| format!("{}: not a verified size and root", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Trusted::EMPTY,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        },
        None => Trusted::EMPTY,
    };
    let report = verify_from(conn, verifier_key, note, trusted).map_err(|e| e.to_string())?;
    if let (Some(path), Some(dir), Some(point)) = (&state, state_dir, report.verified()) {
        let text = format!("{}\n{}\n", point.size, point.root);
        crate::witness::keep(dir, path, text.as_bytes()).map_err(|e| e.1)?;
    }
    Ok(report)
}

/// `<size>\n<base64 root>\n`, as `verify_checkpoint` keeps it.
fn parse_trusted(text: &str) -> Option<Trusted> {
    let mut lines = text.lines();
    let size = lines.next()?.parse().ok()?;
    let root = crate::audit::tree::Hash::parse_hash(lines.next()?).ok()?;
    Some(Trusted { size, root })
}
