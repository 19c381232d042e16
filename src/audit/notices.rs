//! Key lifecycle notices: every `KEYWARD_NOTICE_INTERVAL_MS`, for each active
//! tenant whose `key_expiry_notice_days` is not empty, each live key (not
//! revoked, not replaced by a rotation) with an expiry (its own, or the end
//! of the tenant's maximum lifetime for its type when that comes first) gets, in its tenant's
//! chain, one `enterprise.key.expiring` event when it comes within a
//! threshold (the smallest one crossed, if a pass missed several) and one
//! `enterprise.key.expired` event once past its expiry. The event is all
//! there is: whatever delivers the tenant's audit events delivers notices.
//!
//! Once per key and kind, across passes, restarts and instances: the
//! notice's `key_notices` row and its event are written in one transaction,
//! and the row's insert decides (a row already there, from another pass or
//! instance, means no event). See `domain::notices` for the rules.

use super::writer::{commit_now_if, AuditWriter};
use super::{ActorType, EventDraft};
use crate::auth::key::clock_of;
use crate::db::models::{api_time, to_naive, ApiKey};
use crate::db::{self, store, DbConn, DbUrl};
use crate::domain::authz::Unrouted;
use crate::domain::lifetime::{self, LifetimePolicy, StatusReason};
use crate::domain::notices::{self, Due, NoticeDays, NoticeKind};
use crate::error::AppResult;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map};
use std::collections::HashMap;
use std::time::Duration;

/// The actor of notice events: keyward's own job.
pub const NOTICE_ACTOR: &str = "notice-job";
/// Tenants and keys are read this many at a time.
const PAGE: i64 = 200;

/// Where a pass commits its events.
pub enum Via<'a> {
    /// The running instance's audit writer (the background job).
    Writer(&'a AuditWriter),
    /// The pass's own connection (the CLI's `keyward audit notices`).
    Direct,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// `enterprise.key.expiring` events written.
    pub expiring: u64,
    /// `enterprise.key.expired` events written.
    pub expired: u64,
    /// Notices another pass or instance wrote first, or keys revoked or
    /// rotated since the pass read them (no event).
    pub already_sent: u64,
    /// Keys whose notice could not be written, and why (the others went on; the next pass retries).
    pub failed: Vec<Failed>,
}

impl PassReport {
    /// Adds what the pass wrote, and the keys it could not, to the instance's metrics.
    pub fn count(&self, metrics: &crate::metrics::Metrics) {
        use crate::metrics::NoticeLabels;
        metrics.key_notices.get_or_create(&NoticeLabels { kind: "expiring" }).inc_by(self.expiring);
        metrics.key_notices.get_or_create(&NoticeLabels { kind: "expired" }).inc_by(self.expired);
        metrics.key_notice_failures.inc_by(self.failed.len() as u64);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub tenant_id: String,
    pub key_id: String,
    pub error: String,
}

/// One pass over every tenant with notices on, at `now`.
pub fn pass(conn: &mut DbConn, via: &Via<'_>, now: DateTime<Utc>) -> AppResult<PassReport> {
    let mut report = PassReport::default();
    let mut after: Option<String> = None;
    loop {
        let tenants = store::tenants_with_notices(conn, after.as_deref(), PAGE)?;
        for (tenant_id, days, policy) in &tenants {
            tenant_pass(conn, via, (tenant_id, days, policy), now, &mut report)?;
        }
        match tenants.last() {
            Some((last, ..)) if tenants.len() as i64 == PAGE => after = Some(last.clone()),
            _ => return Ok(report),
        }
    }
}

fn tenant_pass(
    conn: &mut DbConn,
    via: &Via<'_>,
    (tenant_id, days, policy): (&str, &NoticeDays, &LifetimePolicy),
    now: DateTime<Utc>,
    report: &mut PassReport,
) -> AppResult<()> {
    let Some(horizon) = days.horizon() else { return Ok(()) };
    let horizon = to_naive(now + horizon);
    let mut after: Option<String> = None;
    loop {
        let keys = store::keys_due_notices(conn, tenant_id, horizon, policy, after.as_deref(), PAGE)?;
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        let mut sent: HashMap<String, Vec<NoticeKind>> = HashMap::new();
        for (key_id, kind) in store::notices_of(conn, tenant_id, &ids)? {
            sent.entry(key_id).or_default().push(kind);
        }
        for key in &keys {
            let Some(ends) = lifetime::effective_expiry(&clock_of(key), policy) else { continue };
            let already = sent.get(&key.id).map(Vec::as_slice).unwrap_or_default();
            let Some(due) = notices::due(days, ends.0, now, already) else { continue };
            match send(conn, via, key, ends, &due, now) {
                Ok(true) if due == Due::Expired => report.expired += 1,
                Ok(true) => report.expiring += 1,
                Ok(false) => report.already_sent += 1,
                Err(e) => {
                    tracing::warn!(tenant = %tenant_id, key_id = %key.id, error = %e, cause = e.cause_chain().as_deref(), "key notice not written; the next pass retries");
                    report.failed.push(Failed {
                        tenant_id: tenant_id.to_string(),
                        key_id: key.id.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
        match keys.last() {
            Some(last) if keys.len() as i64 == PAGE => after = Some(last.id.clone()),
            _ => return Ok(()),
        }
    }
}

/// Writes `key`'s notice with its event; false if it was already written.
/// `ends`: when and why the key stops (its own expiry, or the tenant's maximum lifetime).
fn send(
    conn: &mut DbConn,
    via: &Via<'_>,
    key: &ApiKey,
    (expires_at, ends_by): (DateTime<Utc>, StatusReason),
    due: &Due,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let (operation, threshold) = match due {
        Due::Expiring { threshold, .. } => (Unrouted::KeyExpiring, Some(*threshold)),
        Due::Expired => (Unrouted::KeyExpired, None),
    };
    let mut draft = EventDraft::new(operation, crate::telemetry::new_request_id());
    draft.tenant_id = Some(key.tenant_id.clone());
    draft.actor_type = ActorType::Service;
    draft.actor_id = Some(NOTICE_ACTOR.into());
    draft.key_id = Some(key.id.clone());
    draft.key_type = Some(key.key_type);
    draft.key_hint = Some(key.hint.clone());
    let mut metadata = Map::new();
    for (k, v) in [
        ("key_id", json!(key.id)),
        ("key_type", json!(key.key_type)),
        ("label", json!(key.label)),
        ("hint", json!(key.hint)),
        ("expires_at", json!(api_time(to_naive(expires_at)))),
        ("days_left", json!(notices::days_left(expires_at, now))),
        // `expired`: its own expiry; `tenant_policy`: the tenant's maximum lifetime for its type.
        ("expires_by", json!(ends_by)),
    ] {
        metadata.insert(k.into(), v);
    }
    if let Some(days) = threshold {
        metadata.insert("threshold".into(), json!(days));
    }
    let (tenant_id, key_id, kinds, at) = (key.tenant_id.clone(), key.id.clone(), due.kinds(), to_naive(now));
    let work = move |c: &mut DbConn| record(c, &tenant_id, &key_id, &kinds, at).map(|n| n.then_some(((), metadata)));
    let written = match via {
        Via::Writer(writer) => writer.commit_if_blocking(draft, work)??,
        Via::Direct => commit_now_if(conn, draft, work)?,
    };
    Ok(written.is_some())
}

/// In the event's transaction: records `kinds` for the key, the event's own
/// first. False (nothing written) if that one was already recorded, or the
/// key was revoked or rotated since the pass read it.
fn record(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    kinds: &[NoticeKind],
    at: NaiveDateTime,
) -> AppResult<bool> {
    let Some(key) = store::find_key(conn, tenant_id, key_id)? else { return Ok(false) };
    if key.revoked_at.is_some() || key.superseded_at.is_some() {
        return Ok(false);
    }
    let Some((first, rest)) = kinds.split_first() else { return Ok(false) };
    if !store::insert_notice(conn, tenant_id, key_id, *first, at)? {
        return Ok(false);
    }
    for kind in rest {
        store::insert_notice(conn, tenant_id, key_id, *kind, at)?;
    }
    Ok(true)
}

/// The notice job's thread; dropping the handle stops it.
pub struct NoticeJob;

impl NoticeJob {
    /// Starts the thread: a pass every `every`, reading on its own
    /// connection and writing through `writer`.
    pub fn start(
        url: DbUrl,
        options: db::ConnOptions,
        writer: AuditWriter,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        every: Duration,
    ) -> crate::threads::Stop {
        let (stop, rounds) = crate::threads::stop_handle();
        std::thread::Builder::new()
            .name("key-notices".into())
            .spawn(move || {
                let mut conn: Option<DbConn> = None;
                while rounds.next(every) {
                    if conn.is_none() {
                        conn = db::establish_with(&url, options).ok();
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    match pass(c, &Via::Writer(&writer), Utc::now()) {
                        // Each failed key was logged; the next round tries again.
                        Ok(report) => report.count(&metrics),
                        Err(e) => {
                            tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "key notice pass failed; retrying");
                            conn = None;
                        }
                    }
                }
                tracing::debug!("key notices stopped");
            })
            .expect("spawn the key notice thread");
        stop
    }
}
