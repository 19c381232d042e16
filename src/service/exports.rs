//! Export jobs: e-Discovery archives (a ZIP of NDJSON about one member) and
//! SIEM bulk exports (NDJSON of a tenant's audit events).
//!
//! A request only records a PENDING job, with its audit event, in one
//! transaction (`create_*`, run by the audit writer); the background runner
//! (`crate::exports`) builds the file later. Files are fetched with a signed,
//! expiring link (`crypto::LinkSigner`); no key is needed for it.

use super::{meta, Meta};
use crate::crypto::LinkSigner;
use crate::db::models::{now, to_naive, to_utc, Export, Tenant};
use crate::db::{store, DbConn};
use crate::domain::event::EventFormat;
use crate::domain::exports::{self, ExportKind, ExportScope, ExportStatus, DOWNLOAD_LINK_SECONDS};
use crate::domain::member;
use crate::domain::TenantStatus;
use crate::error::{AppError, AppResult, ErrorCode};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The one answer to every bad link, whatever the reason (the audit event has it).
pub const LINK_REFUSED: &str = "invalid or expired download link";

pub fn link_refused(reason: &'static str) -> AppError {
    AppError { audit_reason: Some(reason), ..AppError::new(ErrorCode::Unauthenticated, LINK_REFUSED) }
}

fn rfc3339(t: NaiveDateTime) -> String {
    to_utc(t).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

// ---------------------------------------------------------------- the view

/// A job as the API shows it: the fields of every job, then those of its kind.
#[derive(Debug, Serialize)]
pub struct ExportView<'a> {
    pub uid: &'a str,
    pub status: ExportStatus,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub attempts: i32,
    pub error: Option<&'a str>,
    pub file_name: Option<&'a str>,
    pub file_size: Option<i64>,
    pub file_sha256: Option<&'a str>,
    #[serde(flatten)]
    pub request: RequestView<'a>,
}

/// What the job was asked for, by kind.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RequestView<'a> {
    Ediscovery {
        user_id: Option<&'a str>,
        scope: Option<ExportScope>,
        include_files: bool,
        start_time: Option<String>,
        end_time: Option<String>,
        reason: Option<&'a str>,
    },
    Compliance {
        since: Option<String>,
        until: Option<String>,
        include_payload: bool,
        format: EventFormat,
    },
}

pub fn export_view(e: &Export) -> ExportView<'_> {
    let request = match e.kind {
        ExportKind::Compliance => RequestView::Compliance {
            since: e.start_time.map(rfc3339),
            until: e.end_time.map(rfc3339),
            include_payload: e.include_payload,
            format: e.format,
        },
        ExportKind::Ediscovery => RequestView::Ediscovery {
            user_id: e.member_id.as_deref(),
            scope: e.scope,
            include_files: e.include_files,
            start_time: e.start_time.map(rfc3339),
            end_time: e.end_time.map(rfc3339),
            reason: e.reason.as_deref(),
        },
    };
    ExportView {
        uid: &e.uid,
        status: e.status,
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
        started_at: e.started_at.map(rfc3339),
        completed_at: e.completed_at.map(rfc3339),
        attempts: e.attempts,
        error: e.error.as_deref(),
        file_name: e.file_name.as_deref(),
        file_size: e.file_size,
        file_sha256: e.file_sha256.as_deref(),
        request,
    }
}

// ---------------------------------------------------------------- creating jobs

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
        let reason = crate::domain::text::reason(reason).map_err(AppError::invalid)?;
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
        kind,
        status: ExportStatus::Pending,
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
        format: EventFormat::Keyward,
    }
}

/// Records a PENDING e-Discovery job (in the request's transaction). The member
/// must be of the tenant; removed members can be exported too.
pub fn create_ediscovery(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    r: EdiscoveryRequest,
) -> AppResult<(Export, Meta)> {
    let found = match &r.subject {
        Subject::UserId(id) => store::find_member(conn, tenant_id, id)?,
        Subject::Email(e) => store::find_member_by_email(conn, tenant_id, e)?,
    };
    let m = found.ok_or_else(|| AppError::not_found("no team user with this user_id or email in the tenant"))?;
    let mut job = new_job(tenant_id, ExportKind::Ediscovery, key_id);
    job.member_id = Some(m.id.clone());
    job.scope = Some(r.scope);
    job.include_files = r.include_files;
    job.start_time = r.start_time.map(to_naive);
    job.end_time = r.end_time.map(to_naive);
    job.reason = Some(r.reason.clone());
    store::insert_export(conn, &job)?;
    let metadata = meta(json!({
        "uid": job.uid,
        "user_id": m.id,
        "scope": r.scope,
        "include_files": r.include_files,
        "start_time": job.start_time.map(rfc3339),
        "end_time": job.end_time.map(rfc3339),
        "reason": r.reason,
    }));
    Ok((job, metadata))
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
    format: EventFormat,
) -> AppResult<(Export, Meta)> {
    let tenant = store::find_tenant(conn, tenant_id)?.ok_or_else(AppError::internal)?;
    if include_payload && !tenant.siem_tier2_enabled {
        return Err(AppError::precondition(
            "include_payload needs Tier 2 access: the tenant owner must set siem_tier2_enabled in the key policy",
        ));
    }
    let mut job = new_job(tenant_id, ExportKind::Compliance, key_id);
    job.include_payload = include_payload;
    job.format = format;
    job.start_time = since.map(to_naive);
    job.end_time = Some(until.map(to_naive).unwrap_or(job.created_at));
    store::insert_export(conn, &job)?;
    let metadata = meta(json!({
        "uid": job.uid,
        "since": job.start_time.map(rfc3339),
        "until": job.end_time.map(rfc3339),
        "include_payload": include_payload,
        "format": format,
    }));
    Ok((job, metadata))
}

// ---------------------------------------------------------------- reading jobs

/// One job of the tenant and of this kind; anything else is not found.
pub fn find_export(conn: &mut DbConn, tenant_id: &str, kind: ExportKind, uid: &str) -> AppResult<Export> {
    store::find_export(conn, tenant_id, kind, uid)?.ok_or_else(|| AppError::not_found("no export with this uid"))
}

/// One page of the tenant's jobs of this kind, newest first, and how many there are in all.
pub fn list_exports(
    conn: &mut DbConn,
    tenant_id: &str,
    kind: ExportKind,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<Export>, i64)> {
    store::list_exports(conn, tenant_id, kind, offset, limit)
}

// ---------------------------------------------------------------- signed links

/// A signed link to a completed job's file.
#[derive(Debug, Serialize)]
pub struct DownloadLink {
    pub download_url: String,
    pub expires_at: String,
}

/// A link to a completed job, valid `DOWNLOAD_LINK_SECONDS` from `now`. The
/// origin is `public_url` (configuration), never anything the request says.
pub fn download_link(
    signer: &LinkSigner,
    public_url: &str,
    kind: ExportKind,
    job: &Export,
    now: i64,
) -> AppResult<DownloadLink> {
    if job.status != ExportStatus::Completed {
        return Err(AppError::precondition(format!(
            "the export is not ready for download: its status is {}",
            job.status.as_str()
        )));
    }
    let expires = now + DOWNLOAD_LINK_SECONDS;
    let sig = signer.sign(kind.as_str(), &job.tenant_id, &job.uid, expires);
    let download_url = format!("{public_url}{}?uid={}&expires={expires}&sig={sig}", kind.download_path(), job.uid);
    let expires_at = DateTime::from_timestamp(expires, 0)
        .ok_or_else(AppError::internal)?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(DownloadLink { download_url, expires_at })
}

/// The job a link names, if it is of this kind, with its tenant. (`None` is
/// not an error here: a bad link must not cost the connection a health check.)
pub fn linked_export(conn: &mut DbConn, uid: &str, kind: ExportKind) -> AppResult<Option<(Export, Tenant)>> {
    match store::find_export_by_uid(conn, kind, uid)? {
        Some(job) => Ok(store::find_tenant(conn, &job.tenant_id)?.map(|t| (job, t))),
        None => Ok(None),
    }
}

/// The linked job, if keyward signed this link to it; anything else is a bad link.
pub fn verify_link(
    signer: &LinkSigner,
    kind: ExportKind,
    linked: Option<(Export, Tenant)>,
    expires: i64,
    sig: &str,
) -> AppResult<(Export, Tenant)> {
    match linked {
        Some((job, tenant)) if signer.verify(kind.as_str(), &job.tenant_id, &job.uid, expires, sig) => {
            Ok((job, tenant))
        }
        _ => Err(link_refused("bad_signature")),
    }
}

/// The file a signed link may fetch now: the link has not expired, the tenant
/// is active (a suspended tenant's links stop with its keys), the job is completed.
pub fn servable_file(export_dir: &Path, job: &Export, tenant: &Tenant, expires: i64, now: i64) -> AppResult<PathBuf> {
    if expires < now {
        return Err(link_refused("link_expired"));
    }
    if tenant.status != TenantStatus::Active {
        return Err(link_refused("tenant_inactive"));
    }
    match (&job.file_name, job.status == ExportStatus::Completed) {
        (Some(name), true) => Ok(exports::file_path(export_dir, &job.tenant_id, name)),
        _ => Err(AppError::precondition("the export is not ready for download")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 1, 2).unwrap().and_hms_opt(h, 4, 5).unwrap()
    }

    #[test]
    fn views_show_the_fields_of_every_job_and_of_its_kind() {
        let mut job = new_job("t1", ExportKind::Ediscovery, "k1");
        job.uid = "u1".into();
        job.created_at = at(3);
        job.updated_at = at(4);
        job.member_id = Some("m1".into());
        job.scope = Some(ExportScope::Metadata);
        job.start_time = Some(at(1));
        job.reason = Some("matter 7".into());
        let common = json!({
            "uid": "u1", "status": "EXPORT_STATUS_PENDING", "created_at": "2026-01-02T03:04:05Z",
            "updated_at": "2026-01-02T04:04:05Z", "started_at": null, "completed_at": null, "attempts": 0,
            "error": null, "file_name": null, "file_size": null, "file_sha256": null,
        });
        let mut want = common.clone();
        want.as_object_mut().unwrap().extend(meta(json!({
            "user_id": "m1", "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
            "start_time": "2026-01-02T01:04:05Z", "end_time": null, "reason": "matter 7",
        })));
        assert_eq!(serde_json::to_value(export_view(&job)).unwrap(), want);

        job.kind = ExportKind::Compliance;
        job.include_payload = true;
        let mut want = common;
        want.as_object_mut().unwrap().extend(meta(json!({
            "since": "2026-01-02T01:04:05Z", "until": null, "include_payload": true, "format": "keyward",
        })));
        assert_eq!(serde_json::to_value(export_view(&job)).unwrap(), want);
    }

    #[test]
    fn windows_must_not_be_empty() {
        let t = |h| Some(at(h).and_utc());
        assert!(check_window("since", t(1), "until", t(2)).is_ok());
        assert!(check_window("since", t(2), "until", t(2)).is_err());
        assert!(check_window("since", None, "until", t(2)).is_ok());
    }
}
