//! Handlers of export jobs: e-Discovery archives and SIEM bulk exports, and their signed downloads.

use super::context::{commit, fields, ok, query, JsonBody, KeyAuth, RequestEvent};
use super::pagination::Page;
use crate::crypto::LinkSigner;
use crate::db::models::{now, Export};
use crate::db::store;
use crate::domain::exports::{ExportKind, ExportScope, ExportStatus, DOWNLOAD_LINK_SECONDS};
use crate::domain::TenantStatus;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::exports::{self as jobs, build, EdiscoveryRequest};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use std::io::Read;

/// The one answer to every bad link, whatever the reason (the audit event has it).
pub const LINK_REFUSED: &str = "invalid or expired download link";

fn link_refused(reason: &'static str) -> AppError {
    AppError { audit_reason: Some(reason), ..AppError::new(ErrorCode::Unauthenticated, LINK_REFUSED) }
}

/// One job of the caller's tenant and of this kind; anything else is not found.
async fn load(state: &AppState, tenant_id: String, kind: ExportKind, uid: String) -> AppResult<Export> {
    state
        .read(move |c| store::find_export(c, &tenant_id, kind.as_str(), &uid))
        .await?
        .ok_or_else(|| AppError::not_found("no export with this uid"))
}

// ---------------------------------------------------------------- e-Discovery

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateExport {
    user_id: Option<String>,
    email: Option<String>,
    scope: ExportScope,
    include_files: bool,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    reason: String,
}

pub(super) async fn create(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: CreateExport = body.parse()?;
    let r =
        EdiscoveryRequest::parse(b.user_id, b.email, b.scope, b.include_files, b.start_time, b.end_time, &b.reason)?;
    let (tenant, key) = (auth.0.tenant_id, auth.0.key_id);
    let export = commit(&state, &req, move |c| jobs::create_ediscovery(c, &tenant, &key, r)).await?;
    state.exports.wake();
    Ok(ok(fields(json!({"export": export}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRef {
    uid: String,
}

pub(super) async fn detail(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    detail_of(auth, req, state, ExportKind::Ediscovery).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListExports {
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list(auth: KeyAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let q: ListExports = query(&req)?;
    let page = Page::new(q.limit, q.offset)?;
    let tenant = auth.0.tenant_id;
    let (rows, total) = state
        .read(move |c| store::list_exports(c, &tenant, ExportKind::Ediscovery.as_str(), page.offset, page.limit))
        .await?;
    let items: Vec<_> = rows.iter().map(jobs::export_json).collect();
    Ok(ok(fields(json!({"exports": items, "total": total, "limit": page.limit, "offset": page.offset}))))
}

pub(super) async fn download_url(
    auth: KeyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    download_url_of(auth, req, state, ExportKind::Ediscovery).await
}

pub(super) async fn download(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    download_of(req, state, ExportKind::Ediscovery).await
}

// ---------------------------------------------------------------- SIEM bulk exports

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCompliance {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    include_payload: bool,
}

pub(super) async fn compliance_create(
    auth: KeyAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: CreateCompliance = body.parse()?;
    jobs::check_window("since", b.since, "until", b.until)?;
    let (tenant, key) = (auth.0.tenant_id, auth.0.key_id);
    let export =
        commit(&state, &req, move |c| jobs::create_compliance(c, &tenant, &key, b.since, b.until, b.include_payload))
            .await?;
    state.exports.wake();
    Ok(ok(fields(json!({"export": export}))))
}

pub(super) async fn compliance_detail(
    auth: KeyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    detail_of(auth, req, state, ExportKind::Compliance).await
}

pub(super) async fn compliance_download_url(
    auth: KeyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    download_url_of(auth, req, state, ExportKind::Compliance).await
}

pub(super) async fn compliance_download(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    download_of(req, state, ExportKind::Compliance).await
}

// ---------------------------------------------------------------- shared

async fn detail_of(
    auth: KeyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: ExportKind,
) -> AppResult<HttpResponse> {
    let q: ExportRef = query(&req)?;
    let job = load(&state, auth.0.tenant_id, kind, q.uid).await?;
    Ok(ok(fields(json!({"export": jobs::export_json(&job)}))))
}

/// A signed link to a completed export, valid `DOWNLOAD_LINK_SECONDS`.
async fn download_url_of(
    auth: KeyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: ExportKind,
) -> AppResult<HttpResponse> {
    let q: ExportRef = query(&req)?;
    let job = load(&state, auth.0.tenant_id, kind, q.uid).await?;
    if job.status != ExportStatus::Completed.as_str() {
        return Err(AppError::precondition(format!(
            "the export is not ready for download: its status is {}",
            job.status
        )));
    }
    let expires = now().timestamp() + DOWNLOAD_LINK_SECONDS;
    let sig = LinkSigner::new(state.settings.key_pepper.expose().as_bytes()).sign(
        kind.as_str(),
        &job.tenant_id,
        &job.uid,
        expires,
    );
    // The origin is configuration, never the request's Host or X-Forwarded-* headers.
    let url = format!("{}{}?uid={}&expires={expires}&sig={sig}", state.public_url, jobs::download_path(kind), job.uid);
    let expires_at = DateTime::from_timestamp(expires, 0)
        .ok_or_else(AppError::internal)?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ctx = RequestEvent::of(&req);
    ctx.note("uid", json!(job.uid));
    ctx.note("expires_at", json!(expires_at));
    Ok(ok(fields(json!({"download_url": url, "expires_at": expires_at}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    uid: String,
    expires: i64,
    sig: String,
}

/// Serves a file to whoever holds a valid signed link; no key is needed.
async fn download_of(req: HttpRequest, state: web::Data<AppState>, kind: ExportKind) -> AppResult<HttpResponse> {
    let link: Link = query(&req).map_err(|_| link_refused("bad_signature"))?;
    if link.uid.len() > 64 || link.sig.len() > 128 {
        return Err(link_refused("bad_signature"));
    }
    let uid = link.uid.clone();
    let found = state
        .read(move |c| match store::find_export_by_uid(c, &uid)? {
            Some(job) => Ok(store::find_tenant(c, &job.tenant_id)?.map(|t| (job, t))),
            None => Ok(None),
        })
        .await?;
    let (job, tenant) = found.filter(|(j, _)| j.kind == kind.as_str()).ok_or_else(|| link_refused("bad_signature"))?;
    let signer = LinkSigner::new(state.settings.key_pepper.expose().as_bytes());
    if !signer.verify(kind.as_str(), &job.tenant_id, &job.uid, link.expires, &link.sig) {
        return Err(link_refused("bad_signature"));
    }
    // keyward issued this link for this tenant: the event belongs to its chain.
    let event = RequestEvent::of(&req);
    event.link_proved(&job.tenant_id);
    event.note("uid", json!(job.uid));
    if link.expires < now().timestamp() {
        return Err(link_refused("link_expired"));
    }
    // A suspended tenant's links stop with its keys.
    if tenant.status != TenantStatus::Active {
        return Err(link_refused("tenant_inactive"));
    }
    let file_name = match (&job.file_name, job.status == ExportStatus::Completed.as_str()) {
        (Some(name), true) => name.clone(),
        _ => return Err(AppError::precondition("the export is not ready for download")),
    };
    let path = build::path_of(&state.settings.export_dir, &job, &file_name);
    let opened = web::block(move || std::fs::File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f))))
        .await
        .map_err(|_| AppError::internal())?;
    let (len, file) = match opened {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::not_found("the export file is no longer available"))
        }
        Err(e) => {
            tracing::error!(error = %e, uid = %job.uid, "export file cannot be opened");
            return Err(AppError::internal());
        }
    };
    let attachment = format!(
        "attachment; filename=\"keyward-{}-{}.{}\"",
        kind.as_str().to_ascii_lowercase(),
        job.uid,
        jobs::extension(kind)
    );
    Ok(HttpResponse::Ok()
        .content_type(jobs::content_type(kind))
        .insert_header((header::CONTENT_DISPOSITION, attachment))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .no_chunking(len)
        .streaming(file_stream(file)))
}

/// The file in 64 KiB chunks, each read off the async workers.
fn file_stream(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> + 'static {
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let read = web::block(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((file, buf))
        })
        .await;
        match read {
            Ok(Ok((_, buf))) if buf.is_empty() => None,
            Ok(Ok((file, buf))) => Some((Ok(web::Bytes::from(buf)), Some(file))),
            Ok(Err(e)) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
            Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
        }
    })
}
