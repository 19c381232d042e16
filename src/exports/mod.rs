//! Export jobs: e-Discovery archives (a ZIP of NDJSON about one member) and
//! SIEM bulk exports (NDJSON of a tenant's audit events).
//!
//! A request only records a PENDING job, with its audit event, in one
//! transaction (`create_*`, run by the audit writer). One runner per instance
//! (`runner`) takes jobs race-free, builds their files (`build`) and records
//! each status change as an event of the tenant's chain. Files are fetched with
//! a signed, expiring link (`crypto::LinkSigner`); no key is needed for it.

pub mod build;
pub mod runner;

use crate::db::models::{now, to_naive, to_utc, Export};
use crate::db::{store, DbConn};
use crate::domain::authz::Unrouted;
use crate::domain::exports::{ExportKind, ExportScope, ExportStatus};
use crate::domain::member;
use crate::error::{AppError, AppResult};
use crate::service::{meta, Meta};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Longest accepted `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;

pub fn kind_of(job: &Export) -> Option<ExportKind> {
    [ExportKind::Ediscovery, ExportKind::Compliance].into_iter().find(|k| k.as_str() == job.kind)
}

/// The audit operation of a job's status changes.
pub fn process_operation(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Ediscovery => Unrouted::ExportProcess,
        ExportKind::Compliance => Unrouted::ComplianceExportProcess,
    }
    .name()
}

/// The signed-link route of a kind.
pub fn download_path(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Ediscovery => "/v2/enterprise.export.download",
        ExportKind::Compliance => "/v2/enterprise.compliance.export.download",
    }
}

pub fn content_type(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Ediscovery => "application/zip",
        ExportKind::Compliance => "application/x-ndjson",
    }
}

pub fn extension(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Ediscovery => "zip",
        ExportKind::Compliance => "ndjson",
    }
}

/// Where a tenant's export files live: `<export_dir>/<tenant_id>/`.
pub fn tenant_dir(export_dir: &Path, tenant_id: &str) -> PathBuf {
    export_dir.join(tenant_id)
}

fn rfc3339(t: NaiveDateTime) -> String {
    to_utc(t).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A job as the API shows it.
pub fn export_json(e: &Export) -> Value {
    let mut v = json!({
        "uid": e.uid,
        "status": e.status,
        "created_at": rfc3339(e.created_at),
        "updated_at": rfc3339(e.updated_at),
        "started_at": e.started_at.map(rfc3339),
        "completed_at": e.completed_at.map(rfc3339),
        "attempts": e.attempts,
        "error": e.error,
        "file_name": e.file_name,
        "file_size": e.file_size,
        "file_sha256": e.file_sha256,
    });
    let extra = match kind_of(e) {
        Some(ExportKind::Compliance) => json!({
            "since": e.start_time.map(rfc3339),
            "until": e.end_time.map(rfc3339),
            "include_payload": e.include_payload,
        }),
        _ => json!({
            "user_id": e.member_id,
            "scope": e.scope,
            "include_files": e.include_files,
            "start_time": e.start_time.map(rfc3339),
            "end_time": e.end_time.map(rfc3339),
            "reason": e.reason,
        }),
    };
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    v
}

/// Who an e-Discovery export is about.
#[derive(Debug, Clone)]
pub enum Subject {
    UserId(String),
    Email(String),
}

/// What an e-Discovery export request asks for, validated.
#[derive(Debug, Clone)]
pub struct EdiscoveryRequest {
    pub subject: Subject,
    pub scope: ExportScope,
    pub include_files: bool,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub reason: String,
}

impl EdiscoveryRequest {
    pub fn parse(
        user_id: Option<String>,
        email: Option<String>,
        scope: ExportScope,
        include_files: bool,
        start_time: Option<DateTime<Utc>>,
        end_time: Option<DateTime<Utc>>,
        reason: &str,
    ) -> AppResult<EdiscoveryRequest> {
        let subject = match (user_id, email) {
            (Some(id), None) => {
                let id = id.trim().to_string();
                if id.is_empty() || id.len() > 200 {
                    return Err(AppError::invalid("user_id must be 1 to 200 characters"));
                }
                Subject::UserId(id)
            }
            (None, Some(e)) => Subject::Email(
                member::normalize_email(&e).ok_or_else(|| AppError::invalid("email is not a valid address"))?,
            ),
            _ => return Err(AppError::invalid("give exactly one of user_id and email")),
        };
        check_window("start_time", start_time, "end_time", end_time)?;
        let reason = reason.trim().to_string();
        if !(1..=MAX_REASON_CHARS).contains(&reason.chars().count()) {
            return Err(AppError::invalid(format!("reason must be 1 to {MAX_REASON_CHARS} characters")));
        }
        Ok(EdiscoveryRequest { subject, scope, include_files, start_time, end_time, reason })
    }
}

/// `[from, to)` must not be empty when both ends are given.
pub fn check_window(
    from_name: &str,
    from: Option<DateTime<Utc>>,
    to_name: &str,
    to: Option<DateTime<Utc>>,
) -> AppResult<()> {
    match (from, to) {
        (Some(f), Some(t)) if f >= t => Err(AppError::invalid(format!("{from_name} must be before {to_name}"))),
        _ => Ok(()),
    }
}

fn new_job(tenant_id: &str, kind: ExportKind, requested_by: &str) -> Export {
    let at = to_naive(now());
    Export {
        uid: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant_id.to_string(),
        kind: kind.as_str().to_string(),
        status: ExportStatus::Pending.as_str().to_string(),
        requested_by: requested_by.to_string(),
        member_id: None,
        scope: None,
        include_files: false,
        include_payload: false,
        start_time: None,
        end_time: None,
        reason: None,
        created_at: at,
        updated_at: at,
        started_at: None,
        completed_at: None,
        attempts: 0,
        error: None,
        file_name: None,
        file_size: None,
        file_sha256: None,
    }
}

/// Records a PENDING e-Discovery job (in the request's transaction). The member
/// must be of the tenant; removed members can be exported too.
pub fn create_ediscovery(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    r: EdiscoveryRequest,
) -> AppResult<(Value, Meta)> {
    let found = match &r.subject {
        Subject::UserId(id) => store::find_member(conn, tenant_id, id)?,
        Subject::Email(e) => store::find_member_by_email(conn, tenant_id, e)?,
    };
    let m = found.ok_or_else(|| AppError::not_found("no team user with this user_id or email in the tenant"))?;
    let mut job = new_job(tenant_id, ExportKind::Ediscovery, key_id);
    job.member_id = Some(m.id.clone());
    job.scope = Some(r.scope.as_str().to_string());
    job.include_files = r.include_files;
    job.start_time = r.start_time.map(to_naive);
    job.end_time = r.end_time.map(to_naive);
    job.reason = Some(r.reason.clone());
    store::insert_export(conn, &job)?;
    let metadata = meta(json!({
        "uid": job.uid,
        "user_id": m.id,
        "scope": r.scope.as_str(),
        "include_files": r.include_files,
        "start_time": job.start_time.map(rfc3339),
        "end_time": job.end_time.map(rfc3339),
        "reason": r.reason,
    }));
    Ok((export_json(&job), metadata))
}

/// Records a PENDING SIEM bulk export of `[since, until)`; `until` defaults to
/// now, so the file is the same whenever the job runs. Tier 2 payloads need the
/// tenant's signed data-processing agreement (`siem_tier2_enabled`).
pub fn create_compliance(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    include_payload: bool,
) -> AppResult<(Value, Meta)> {
    let tenant = store::find_tenant(conn, tenant_id)?.ok_or_else(AppError::internal)?;
    if include_payload && !tenant.siem_tier2_enabled {
        return Err(AppError::precondition(
            "include_payload needs Tier 2 access: the tenant owner must set siem_tier2_enabled in the key policy",
        ));
    }
    let mut job = new_job(tenant_id, ExportKind::Compliance, key_id);
    job.include_payload = include_payload;
    job.start_time = since.map(to_naive);
    job.end_time = Some(until.map(to_naive).unwrap_or(job.created_at));
    store::insert_export(conn, &job)?;
    let metadata = meta(json!({
        "uid": job.uid,
        "since": job.start_time.map(rfc3339),
        "until": job.end_time.map(rfc3339),
        "include_payload": include_payload,
    }));
    Ok((export_json(&job), metadata))
}
