//! Pushed SIEM delivery: each instance's worker thread takes the due sinks
//! one lease at a time and sends each the events of its tenant's chain after
//! its cursor (`delivered_through`), in batches of up to 100, in chain order.
//!
//! The chain is the outbox: nothing is written on the request path. The
//! cursor moves only after the receiver answered 2xx, and only while the
//! lease is still this worker's and nobody moved the cursor meanwhile (a
//! replay), so delivery is at least once: a batch whose answer was lost is
//! sent again, with the same `webhook-id` (sink id, first and last seq) and
//! the same event ids. Events the filter leaves out move the cursor unsent.
//! Retention archives nothing an ACTIVE sink has yet to deliver; events it
//! archived while a sink was DEAD (or before a replay's start) are skipped
//! (the cursor jumps over the gap).
//!
//! A failed try (no connection, timeout, non-2xx) waits a full-jitter
//! exponential backoff (a receiver's `Retry-After` is a minimum); a sink that
//! has failed for longer than `KEYWARD_SINK_DEAD_AFTER_SECS` becomes DEAD, with
//! an `enterprise.siem_sink.dead` event in its tenant's chain, until an owner replays it.

use super::writer::AuditWriter;
use super::{ActorType, EventDraft};
use crate::crypto::{self, SecretSealer};
use crate::db::models::{now, to_naive, to_utc, AuditRow, SiemSink};
use crate::db::{self, store, DbConn, DbUrl};
use crate::domain::authz::Unrouted;
use crate::domain::event::EventFormat;
use crate::domain::sinks::{self, Destinations, SinkFilter, SinkKind, BATCH_EVENTS};
use crate::error::{AppError, AppResult};
use crate::metrics::{Metrics, SinkFailureLabels};
use crate::service::{meta, siem};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The actor of the events the worker writes.
pub const WORKER_ACTOR: &str = "siem-sink-worker";
/// Batches one sink gets in one pass before the others get their turn.
const MAX_BATCHES_PER_PASS: usize = 20;
/// Sinks one pass looks at.
const SINKS_PER_PASS: i64 = 100;

/// The worker's timing (`KEYWARD_SINK_*`).
#[derive(Debug, Clone, Copy)]
pub struct SinkTiming {
    pub interval: Duration,
    pub timeout: Duration,
    pub retry_base: Duration,
    pub dead_after: Duration,
}

impl SinkTiming {
    /// A lease covers one batch: its request (bounded by the timeout) and the
    /// database work around it. A worker that stopped mid-batch holds it no longer.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timeout * 2 + Duration::from_secs(2)).unwrap_or(chrono::Duration::seconds(60))
    }
}

/// Why a try failed: a metric label and a short text for `last_error` (never a body or a URL).
struct Failure {
    reason: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

/// The delivery worker, owned by its thread; `start` hands back the handle
/// whose drop stops it.
pub struct SinkWorker {
    owner: String,
    sealer: SecretSealer,
    writer: AuditWriter,
    metrics: Arc<Metrics>,
    timing: SinkTiming,
    agent: ureq::Agent,
    rt: tokio::runtime::Runtime,
}

impl SinkWorker {
    pub fn start(
        url: DbUrl,
        options: db::ConnOptions,
        sealer: SecretSealer,
        writer: AuditWriter,
        metrics: Arc<Metrics>,
        timing: SinkTiming,
        destinations: Destinations,
    ) -> crate::threads::Stop {
        let (stop, rounds) = crate::threads::stop_handle();
        std::thread::Builder::new()
            .name("siem-sinks".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "SIEM sink delivery cannot start");
                        return;
                    }
                };
                let worker = SinkWorker {
                    owner: uuid::Uuid::new_v4().to_string(),
                    sealer,
                    writer,
                    metrics,
                    timing,
                    // No redirects: a receiver's 3xx is a failure, not a new destination.
                    agent: ureq::AgentBuilder::new()
                        .timeout(timing.timeout)
                        .redirects(0)
                        .resolver(PermittedAddresses(destinations))
                        .build(),
                    rt,
                };
                let mut conn: Option<DbConn> = None;
                while rounds.next(timing.interval) {
                    if conn.is_none() {
                        conn = db::establish_with(&url, options).ok();
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    let still_running = || rounds.next(Duration::ZERO);
                    if let Err(e) = worker.pass(c, &still_running) {
                        tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "SIEM sink pass failed; retrying");
                        conn = None;
                    }
                }
                tracing::debug!("SIEM sink delivery stopped");
            })
            .expect("spawn the SIEM sink thread");
        stop
    }

    /// One pass over the due sinks.
    fn pass(&self, conn: &mut DbConn, running: &dyn Fn() -> bool) -> AppResult<()> {
        let mut lag = 0;
        for sink in store::due_sinks(conn, &self.owner, to_naive(now()), SINKS_PER_PASS)? {
            if !running() {
                break;
            }
            // Caught up: nothing to lease (an idle sink costs a read, not a write, per pass).
            if crate::service::sinks::head_seq(conn, &sink.tenant_id)? <= sink.delivered_through {
                continue;
            }
            let at = now();
            if !store::take_sink_lease(conn, &sink.id, &self.owner, to_naive(at), to_naive(at + self.timing.lease()))? {
                continue; // another instance has it
            }
            let result = self.deliver(conn, &sink.id, running);
            store::release_sink_lease(conn, &sink.id, &self.owner)?;
            lag += result?;
        }
        self.metrics.sink_lag_events.set(lag);
        self.metrics.sink_dead.set(store::dead_sink_count(conn)?);
        Ok(())
    }

    /// Sends the sink's batches until it is caught up, fails, or had its turn; its lag after.
    fn deliver(&self, conn: &mut DbConn, id: &str, running: &dyn Fn() -> bool) -> AppResult<i64> {
        let mut lag = 0;
        for _ in 0..MAX_BATCHES_PER_PASS {
            let at = now();
            // Renew the lease for this batch; reread the sink (an owner may have changed it).
            if !store::take_sink_lease(conn, id, &self.owner, to_naive(at), to_naive(at + self.timing.lease()))? {
                return Ok(0);
            }
            let Some(sink) = store::leased_sink(conn, id, &self.owner, to_naive(at))? else { return Ok(0) };
            let head = crate::service::sinks::head_seq(conn, &sink.tenant_id)?;
            let rows = store::chain_events_after(conn, &sink.tenant_id, sink.delivered_through, BATCH_EVENTS)?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                // Behind the head with no event left after the cursor: retention
                // archived them before they were delivered. Skip to the head.
                if head > sink.delivered_through {
                    store::advance_sink(conn, id, &self.owner, sink.delivered_through, head, to_naive(now()))?;
                }
                return Ok(0);
            };
            let filter = SinkFilter::from_stored(sink.filter_operations.as_deref(), sink.filter_outcomes.as_deref())
                .map_err(|e| AppError::internal().caused_by(std::io::Error::other(e)))?;
            let chosen: Vec<&AuditRow> = rows.iter().filter(|r| filter.matches(&r.operation, r.outcome)).collect();
            if !chosen.is_empty() {
                if let Err(f) = self.send(conn, &sink, &chosen) {
                    self.failed(conn, &sink, f)?;
                    return Ok((head - sink.delivered_through).max(0));
                }
                self.metrics.sink_delivered_events.inc_by(chosen.len() as u64);
            }
            if !store::advance_sink(conn, id, &self.owner, sink.delivered_through, last, to_naive(now()))? {
                return Ok(0); // replayed, changed or taken over meanwhile: the next pass starts from the new cursor
            }
            lag = (head - last).max(0);
            if lag == 0 || !running() {
                return Ok(lag);
            }
        }
        Ok(lag)
    }

    /// One batch to the receiver; Ok on a 2xx answer.
    fn send(&self, conn: &mut DbConn, sink: &SiemSink, rows: &[&AuditRow]) -> Result<(), Failure> {
        let fail = |reason, message: &str| Failure { reason, message: message.to_string(), retry_after: None };
        let secret = self
            .sealer
            .open(&sink.id, &sink.secret_sealed)
            .and_then(|s| String::from_utf8(s).ok())
            .ok_or_else(|| fail("rejected", "the sink's credential cannot be opened (was the pepper changed?)"))?;
        let tier2 = store::find_tenant(conn, &sink.tenant_id)
            .ok()
            .flatten()
            .ok_or_else(|| fail("rejected", "the tenant cannot be read"))?
            .siem_tier2_enabled;
        let events = rows.iter().map(|r| (to_utc(r.occurred_at), siem::feed_event(r, tier2, sink.format)));
        let first_seq = rows.first().map_or(0, |r| r.seq);
        let last_seq = rows.last().map_or(0, |r| r.seq);
        let request = self.agent.post(&sink.url).set("Content-Type", "application/json").set("User-Agent", "keyward");
        let (request, body) = match sink.kind {
            SinkKind::Webhook => {
                let sent_at = Utc::now();
                let body = sinks::webhook_body(
                    &sent_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    events.map(|(_, e)| e).collect(),
                );
                let msg_id = webhook_id(&sink.id, first_seq, last_seq);
                let signature = crypto::webhook_signature(&secret, &msg_id, sent_at.timestamp(), &body)
                    .ok_or_else(|| fail("rejected", "the sink's webhook secret is not a whsec_ secret"))?;
                let request = request
                    .set("webhook-id", &msg_id)
                    .set("webhook-timestamp", &sent_at.timestamp().to_string())
                    .set("webhook-signature", &signature);
                (request, body)
            }
            SinkKind::SplunkHec => {
                let sourcetype = match sink.format {
                    EventFormat::Keyward => "keyward:audit",
                    EventFormat::Ocsf => "ocsf",
                };
                let body = sinks::hec_body(sourcetype, events.map(|(t, e)| (t.timestamp_millis(), e)).collect());
                (request.set("Authorization", &format!("Splunk {secret}")), body)
            }
        };
        match request.send_bytes(&body) {
            Ok(r) if (200..300).contains(&r.status()) => Ok(()),
            Ok(r) => Err(fail("status", &format!("HTTP {}", r.status()))),
            Err(ureq::Error::Status(code, r)) => Err(Failure {
                reason: "status",
                message: format!("HTTP {code}"),
                retry_after: r.header("retry-after").and_then(sinks::parse_retry_after),
            }),
            Err(ureq::Error::Transport(t)) => Err(transport_failure(&t)),
        }
    }

    /// Records a failed try: the next one after a backoff, or DEAD once it has failed too long.
    fn failed(&self, conn: &mut DbConn, sink: &SiemSink, f: Failure) -> AppResult<()> {
        self.metrics.sink_failures.get_or_create(&SinkFailureLabels { reason: f.reason }).inc();
        let at = now();
        let failing_since = sink.failing_since.map_or(at, to_utc);
        let dead_after = chrono::Duration::from_std(self.timing.dead_after).unwrap_or(chrono::Duration::days(1));
        let message = sinks::short_error(&f.message);
        if at - failing_since >= dead_after {
            return self.kill(sink, failing_since, &message);
        }
        let failures = u32::try_from(sink.consecutive_failures).unwrap_or(0).saturating_add(1);
        let unit = u64::from_be_bytes(crypto::random_bytes::<8>()) as f64 / (u64::MAX as f64 + 1.0);
        let wait = sinks::backoff(self.timing.retry_base, failures, f.retry_after, unit);
        let next = at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(300));
        tracing::info!(sink_id = %sink.id, reason = f.reason, error = %message, wait_ms = wait.as_millis() as u64, "SIEM sink delivery failed; retrying later");
        store::record_sink_failure(conn, &sink.id, &self.owner, to_naive(failing_since), to_naive(next), &message)?;
        Ok(())
    }

    /// Makes the sink DEAD, with its event in its tenant's chain (one transaction).
    fn kill(&self, sink: &SiemSink, failing_since: DateTime<Utc>, message: &str) -> AppResult<()> {
        let mut draft = EventDraft::new(Unrouted::SiemSinkDead, crate::telemetry::new_request_id());
        draft.tenant_id = Some(sink.tenant_id.clone());
        draft.actor_type = ActorType::Service;
        draft.actor_id = Some(WORKER_ACTOR.to_string());
        draft.reason = Some("failing_too_long".into());
        let (id, owner) = (sink.id.clone(), self.owner.clone());
        let m = meta(json!({
            "sink_id": sink.id, "name": sink.name, "kind": sink.kind,
            "failing_since": crate::db::models::api_time(to_naive(failing_since)),
            "consecutive_failures": sink.consecutive_failures + 1,
            "delivered_through": sink.delivered_through, "last_error": message,
        }));
        let work = move |c: &mut DbConn| {
            if !store::kill_sink(c, &id, &owner, to_naive(now()))? {
                return Err(AppError::precondition("the sink changed meanwhile"));
            }
            Ok(((), m))
        };
        match self.rt.block_on(self.writer.commit(draft, work)).and_then(|r| r) {
            Ok(()) => {
                tracing::warn!(sink_id = %sink.id, error = %message, "SIEM sink is DEAD: it failed for longer than KEYWARD_SINK_DEAD_AFTER_SECS");
                Ok(())
            }
            Err(e) if e.code == crate::error::ErrorCode::FailedPrecondition => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The stable id of a batch: the same sink and range give the same id, so a
/// receiver drops a batch sent again.
pub fn webhook_id(sink_id: &str, first_seq: i64, last_seq: i64) -> String {
    let digest = crypto::sha256_hex(format!("{sink_id}:{first_seq}:{last_seq}").as_bytes());
    format!("msg_{}", &digest[..32])
}

/// Resolves a receiver's host and keeps only the addresses sinks may reach.
/// Checked here, at every connection, and not only when the URL is written:
/// a host name can resolve to an internal address, or start to later.
struct PermittedAddresses(Destinations);

/// Every address the receiver's host resolved to is one sinks may not reach.
#[derive(Debug)]
struct NotPermitted;

impl std::fmt::Display for NotPermitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the receiver's addresses are not public")
    }
}

impl std::error::Error for NotPermitted {}

impl ureq::Resolver for PermittedAddresses {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let resolved: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        let permitted: Vec<SocketAddr> = resolved.iter().copied().filter(|a| self.0.permits(a.ip())).collect();
        if permitted.is_empty() && !resolved.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, NotPermitted));
        }
        Ok(permitted)
    }
}

fn transport_failure(t: &ureq::Transport) -> Failure {
    let refused = std::error::Error::source(t)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .and_then(|e| e.get_ref())
        .is_some_and(|e| e.is::<NotPermitted>());
    if refused {
        return Failure {
            reason: "address",
            message: "the receiver's host resolves only to addresses that are not public (private, loopback, link-local or reserved), and the operator does not allow their network".into(),
            retry_after: None,
        };
    }
    let text = t.to_string().to_ascii_lowercase();
    let (reason, message) = if text.contains("timed out") || text.contains("timeout") {
        ("timeout", "timed out")
    } else {
        match t.kind() {
            ureq::ErrorKind::Dns => ("connect", "the receiver's host name does not resolve"),
            ureq::ErrorKind::ConnectionFailed => ("connect", "connection failed"),
            _ => ("connect", "transport error"),
        }
    };
    Failure { reason, message: message.into(), retry_after: None }
}
