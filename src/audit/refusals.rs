//! Refusals over their address's budget, kept as evidence without a row per
//! packet: every window, one summary event per address (how many, for which
//! reasons, first and last time), on the system chain.

use super::writer::AuditWriter;
use super::{EventDraft, OUTCOME_DENIED};
use crate::domain::authz::Unrouted;
use crate::metrics::Metrics;
use crate::ratelimit::{RefusalBudget, RefusalTally, OVER_BUDGET};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The summary event of one address's tally.
pub fn summary_event(ip: IpAddr, tally: &RefusalTally, window: Duration) -> EventDraft {
    let mut draft = EventDraft::new(Unrouted::RefusalsSummarized, crate::telemetry::new_request_id());
    draft.client_ip = Some(ip.to_string());
    draft.status_code = 429;
    draft.reason = Some(OVER_BUDGET.to_string());
    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for (k, v) in [
        ("count", json!(tally.count)),
        ("reasons", json!(tally.reasons)),
        ("first_at", json!(at(tally.first))),
        ("last_at", json!(at(tally.last))),
        ("window_seconds", json!(window.as_secs())),
    ] {
        draft.metadata.insert(k.into(), v);
    }
    debug_assert_eq!(super::outcome_for(draft.status_code), OUTCOME_DENIED);
    draft
}

/// Writes the summaries every `window` until the handle is dropped, and
/// once more then (a stopping instance keeps the tallies it has).
pub fn spawn_summaries(
    budget: &Arc<RefusalBudget>,
    writer: AuditWriter,
    metrics: Arc<Metrics>,
    window: Duration,
) -> crate::threads::Stop {
    let budget = budget.clone();
    let (stop, rounds) = crate::threads::stop_handle();
    std::thread::Builder::new()
        .name("refusal-summaries".into())
        .spawn(move || {
            let mut going = true;
            while going {
                going = rounds.next(window);
                for (ip, tally) in budget.take_tallies() {
                    match writer.record_blocking(summary_event(ip, &tally, window)) {
                        Ok(()) => {
                            metrics.refusal_summaries.inc();
                        }
                        Err(_) => tracing::warn!(client_ip = %ip, count = tally.count, "refusal summary not written"),
                    }
                }
            }
        })
        .expect("spawn the refusal summary thread");
    stop
}
