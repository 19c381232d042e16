//! The secret-scanning partner endpoint (GitHub's protocol): a signed JSON
//! array of `{token, type, url, source}` found in public. Each keyward key
//! found is revoked (or, under a notify-only policy, marked) with an event
//! `enterprise.key.leaked` in its tenant's chain; the answer labels every
//! token, by its SHA-256, `true_positive` (a keyward key) or
//! `false_positive`. The report's own event (system chain) counts them and
//! never holds a token; the body is never recorded.

use super::context::{commit, JsonBody, RequestEvent, SCANNING_PARTNER_ACTOR};
use crate::audit::{ActorType, EventDraft};
use crate::crypto;
use crate::db::models::{now, to_naive};
use crate::db::store;
use crate::domain::authz::Unrouted;
use crate::domain::leaks::{self, Label, LeakAction, TokenVerdict};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::leaks::{self as leak_service, LEAKED};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// The partner's key identifier and signature (base64 ECDSA P-256 over the body).
const KEY_IDENTIFIER: &str = "github-public-key-identifier";
const SIGNATURE: &str = "github-public-key-signature";

fn refused(reason: &'static str) -> AppError {
    AppError {
        audit_reason: Some(reason),
        ..AppError::new(ErrorCode::Unauthenticated, "The report's signature is missing or does not verify")
    }
}

pub(super) async fn report(body: JsonBody, req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (key_identifier, signature) = (header(KEY_IDENTIFIER), header(SIGNATURE));
    let keys = state.settings.secret_scanning_keys.clone().ok_or_else(|| refused("not_configured"))?;
    let raw = body.unrecorded_bytes()?;
    keys.verify(key_identifier.as_deref(), signature.as_deref(), &raw).map_err(|r| refused(r.reason()))?;
    RequestEvent::of(&req).partner_proved();
    let key_identifier = key_identifier.unwrap_or_default().trim().to_string();
    RequestEvent::of(&req).note("signing_key", json!(key_identifier));

    let reported = leaks::parse_report(&raw).map_err(AppError::invalid)?;
    let digest = crypto::sha256_hex(&raw);
    let seen = digest.clone();
    if state.read(move |c| store::report_seen(c, &seen)).await? {
        return Err(AppError {
            audit_reason: Some("replayed"),
            ..AppError::already_exists("this report was already received and acted on")
        });
    }

    let request_id = RequestEvent::of(&req).request_id().ok_or_else(AppError::internal)?;
    let client_ip = super::context::client_ip(&req).map(|ip| ip.to_string());
    let mut verdicts = Vec::with_capacity(reported.len());
    let (mut revoked, mut marked, mut already) = (0u32, 0u32, 0u32);
    for item in reported {
        let token_hash = crypto::sha256_hex(item.token.as_bytes());
        let token_type = item.token_type.clone();
        let (hasher, token) = (state.keys.hasher.clone(), item.token.clone());
        let found = state.read(move |c| leak_service::find_reported_key(c, &hasher, &token)).await?;
        let label = match found {
            None => Label::FalsePositive,
            Some(key) => {
                let mut draft = EventDraft::new(Unrouted::KeyLeaked, request_id.clone());
                draft.tenant_id = Some(key.tenant_id.clone());
                draft.actor_type = ActorType::Service;
                draft.actor_id = Some(SCANNING_PARTNER_ACTOR.into());
                draft.key_id = Some(key.id.clone());
                draft.key_type = Some(key.key_type);
                draft.key_hint = Some(key.hint.clone());
                draft.client_ip = client_ip.clone();
                draft.reason = Some(LEAKED.into());
                let (tenant_id, key_id) = (key.tenant_id.clone(), key.id.clone());
                let action = state
                    .writer
                    .commit(draft, move |c| leak_service::act_on_leak(c, &tenant_id, &key_id, &item))
                    .await??;
                match action {
                    LeakAction::Revoked => revoked += 1,
                    LeakAction::Marked => marked += 1,
                    LeakAction::AlreadyRevoked => already += 1,
                }
                Label::TruePositive
            }
        };
        verdicts.push(TokenVerdict { token_hash, token_type, label });
    }
    let total = verdicts.len();
    let false_positives = verdicts.iter().filter(|v| v.label == Label::FalsePositive).count();
    let at = to_naive(now());
    commit(&state, &req, move |c| {
        store::remember_report(c, &digest, &key_identifier, at)?;
        let m = json!({
            "tokens": total, "false_positives": false_positives,
            "revoked": revoked, "marked": marked, "already_revoked": already,
            "report_sha256": digest,
        });
        Ok(((), crate::service::meta(m)))
    })
    .await?;
    Ok(HttpResponse::Ok().json(verdicts))
}
