//! Handlers of export jobs: e-Discovery archives and SIEM bulk exports, and their signed downloads.

use super::context::{commit, ok_with, query, JsonBody, KeyAuth, RequestEvent};
use super::pagination::Page;
use crate::db::models::{now, Export};
use crate::domain::event::EventFormat;
use crate::domain::exports::{ExportKind, ExportScope};
use crate::error::{AppError, AppResult};
use crate::service::exports::{self as jobs, export_view, link_refused, EdiscoveryRequest, ExportView};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Read;

#[derive(Serialize)]
struct OneExport<'a> {
    export: ExportView<'a>,
}

fn one(job: &Export) -> HttpResponse {
    ok_with(&OneExport { export: export_view(job) })
}

#[derive(Serialize)]
struct ExportPage<'a> {
    exports: Vec<ExportView<'a>>,
    total: i64,
    limit: i64,
    offset: i64,
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
    let job = commit(&state, &req, move |c| jobs::create_ediscovery(c, &tenant, &key, r)).await?;
    state.exports.wake();
    Ok(one(&job))
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
    let (rows, total) =
        state.read(move |c| jobs::list_exports(c, &tenant, ExportKind::Ediscovery, page.offset, page.limit)).await?;
    let exports = rows.iter().map(export_view).collect();
    Ok(ok_with(&ExportPage { exports, total, limit: page.limit, offset: page.offset }))
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
    #[serde(default)]
    format: EventFormat,
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
    let job = commit(&state, &req, move |c| {
        jobs::create_compliance(c, &tenant, &key, b.since, b.until, b.include_payload, b.format)
    })
    .await?;
    state.exports.wake();
    Ok(one(&job))
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
    let tenant = auth.0.tenant_id;
    let job = state.read(move |c| jobs::find_export(c, &tenant, kind, &q.uid)).await?;
    Ok(one(&job))
}

/// A signed link to a completed export, valid `DOWNLOAD_LINK_SECONDS`.
async fn download_url_of(
    auth: KeyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: ExportKind,
) -> AppResult<HttpResponse> {
    let q: ExportRef = query(&req)?;
    let tenant = auth.0.tenant_id;
    let job = state.read(move |c| jobs::find_export(c, &tenant, kind, &q.uid)).await?;
    let link = jobs::download_link(&state.links, &state.public_url, kind, &job, now().timestamp())?;
    let ctx = RequestEvent::of(&req);
    ctx.note("uid", json!(job.uid));
    ctx.note("expires_at", json!(link.expires_at));
    Ok(ok_with(&link))
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
    let linked = state.read(move |c| jobs::linked_export(c, &uid, kind)).await?;
    let (job, tenant) = jobs::verify_link(&state.links, kind, linked, link.expires, &link.sig)?;
    // keyward issued this link for this tenant: the event belongs to its chain.
    let event = RequestEvent::of(&req);
    event.link_proved(&job.tenant_id);
    event.note("uid", json!(job.uid));
    let path = jobs::servable_file(&state.settings.export_dir, &job, &tenant, link.expires, now().timestamp())?;
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
        kind.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(kind.content_type())
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
