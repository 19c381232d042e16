//! SIEM sinks (console): an owner points keyward at a Standard Webhooks
//! receiver or Splunk HEC; the delivery worker (`audit::sinks`) pushes the
//! tenant's audit events there. A webhook's signing secret is generated here
//! and shown once, in the answer that made it; a HEC token is taken here.
//! Both are sealed before they reach the database, never shown again.

use super::context::{commit, ok_with, query, ConsoleAuth, JsonBody, NoParams};
use crate::crypto;
use crate::domain::event::EventFormat;
use crate::domain::sinks::{self, SinkFilter, SinkKind};
use crate::error::{AppError, AppResult};
use crate::service::sinks::{self as service, NewCredential, NewSink, SinkChanges, SinkView};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct SinkAnswer {
    sink: SinkView,
    /// A WEBHOOK sink's signing secret: in the answer that made it, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Serialize)]
struct SinkList {
    sinks: Vec<SinkView>,
}

pub(super) async fn list(auth: ConsoleAuth, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let _: NoParams = query(&req)?;
    let tenant = auth.0.tenant_id;
    let sinks = state.read(move |c| service::list_sinks(c, &tenant)).await?;
    Ok(ok_with(&SinkList { sinks }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSink {
    name: String,
    kind: SinkKind,
    url: String,
    #[serde(default)]
    format: EventFormat,
    filter_operations: Option<Vec<String>>,
    filter_outcomes: Option<Vec<String>>,
    /// SPLUNK_HEC: the HEC token (required); WEBHOOK: none (keyward makes the secret).
    token: Option<String>,
    /// Deliver from this seq of the tenant's chain (default: from now).
    from_seq: Option<i64>,
}

pub(super) async fn create(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: CreateSink = body.parse()?;
    let name = sinks::parse_name(&b.name).map_err(AppError::invalid)?;
    let url = sinks::parse_url(&b.url, &state.settings.sink_destinations).map_err(AppError::invalid)?.to_string();
    let filter = SinkFilter {
        operations: SinkFilter::parse_operations(b.filter_operations).map_err(AppError::invalid)?,
        outcomes: SinkFilter::parse_outcomes(b.filter_outcomes).map_err(AppError::invalid)?,
    };
    if b.from_seq.is_some_and(|s| s < 1) {
        return Err(AppError::invalid("from_seq must be 1 or more"));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let (credential, shown) = match (b.kind, b.token) {
        (SinkKind::Webhook, None) => {
            let secret = crypto::new_webhook_secret();
            (secret.clone(), Some(secret))
        }
        (SinkKind::Webhook, Some(_)) => {
            return Err(AppError::invalid("a WEBHOOK sink takes no token: keyward generates its signing secret"))
        }
        (SinkKind::SplunkHec, Some(token)) => (sinks::parse_hec_token(&token).map_err(AppError::invalid)?, None),
        (SinkKind::SplunkHec, None) => return Err(AppError::invalid("a SPLUNK_HEC sink needs its HEC `token`")),
    };
    let new = NewSink {
        secret_sealed: state.sealer.seal(&id, credential.as_bytes()),
        id,
        name,
        kind: b.kind,
        url,
        format: b.format,
        filter,
        from_seq: b.from_seq,
    };
    let tenant = auth.0.tenant_id;
    let sink = commit(&state, &req, move |c| service::create_sink(c, &tenant, new)).await?;
    Ok(ok_with(&SinkAnswer { sink, secret: shown }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSink {
    sink_id: String,
    name: Option<String>,
    url: Option<String>,
    format: Option<EventFormat>,
    /// Absent: unchanged; null: every operation.
    #[serde(default, deserialize_with = "super::context::present")]
    filter_operations: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "super::context::present")]
    filter_outcomes: Option<Option<Vec<String>>>,
    /// SPLUNK_HEC: a new HEC token.
    token: Option<String>,
    /// WEBHOOK: a new signing secret, shown once in this answer.
    #[serde(default)]
    rotate_secret: bool,
}

pub(super) async fn update(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: UpdateSink = body.parse()?;
    let sink_id = b.sink_id;
    let mut changes = SinkChanges {
        name: b.name.as_deref().map(sinks::parse_name).transpose().map_err(AppError::invalid)?,
        url: b
            .url
            .as_deref()
            .map(|u| sinks::parse_url(u, &state.settings.sink_destinations))
            .transpose()
            .map_err(AppError::invalid)?
            .map(|u| u.to_string()),
        format: b.format,
        filter_operations: b
            .filter_operations
            .map(SinkFilter::parse_operations)
            .transpose()
            .map_err(AppError::invalid)?,
        filter_outcomes: b.filter_outcomes.map(SinkFilter::parse_outcomes).transpose().map_err(AppError::invalid)?,
        credential: None,
    };
    let mut shown = None;
    match (b.token, b.rotate_secret) {
        (Some(_), true) => return Err(AppError::invalid("give a token or rotate_secret, not both")),
        (Some(token), false) => {
            let token = sinks::parse_hec_token(&token).map_err(AppError::invalid)?;
            changes.credential = Some(NewCredential::Token(state.sealer.seal(&sink_id, token.as_bytes())));
        }
        (None, true) => {
            let secret = crypto::new_webhook_secret();
            changes.credential = Some(NewCredential::RotatedSecret(state.sealer.seal(&sink_id, secret.as_bytes())));
            shown = Some(secret);
        }
        (None, false) => {}
    }
    let tenant = auth.0.tenant_id;
    let sink = commit(&state, &req, move |c| service::update_sink(c, &tenant, &sink_id, changes)).await?;
    Ok(ok_with(&SinkAnswer { sink, secret: shown }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteSink {
    sink_id: String,
}

#[derive(Serialize)]
struct Deleted {
    sink_id: String,
    deleted: bool,
}

pub(super) async fn delete(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: DeleteSink = body.parse()?;
    let (tenant, id) = (auth.0.tenant_id, b.sink_id.clone());
    commit(&state, &req, move |c| service::delete_sink(c, &tenant, &id)).await?;
    Ok(ok_with(&Deleted { sink_id: b.sink_id, deleted: true }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaySink {
    sink_id: String,
    from_seq: i64,
}

pub(super) async fn replay(
    auth: ConsoleAuth,
    body: JsonBody,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let b: ReplaySink = body.parse()?;
    if b.from_seq < 1 {
        return Err(AppError::invalid("from_seq must be 1 or more"));
    }
    let tenant = auth.0.tenant_id;
    let sink = commit(&state, &req, move |c| service::replay_sink(c, &tenant, &b.sink_id, b.from_seq)).await?;
    Ok(ok_with(&SinkAnswer { sink, secret: None }))
}
