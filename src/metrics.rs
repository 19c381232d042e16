//! Prometheus metrics: requests by operation and outcome, key-verification and
//! audit-commit latency, audit queue depth.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    // Static names from the operation table: no allocation per request.
    pub operation: &'static str,
    pub outcome: &'static str,
}

/// How a group of audit events was committed (see `audit::writer`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    /// `known_head`: one statement on the chain head the writer last left;
    /// `locked`: a transaction that locks the chain heads first.
    pub path: &'static str,
}

/// Why a SIEM sink delivery failed (see `audit::sinks`): `connect`, `timeout`, `status`, `rejected`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkFailureLabels {
    pub reason: &'static str,
}

/// How a verification run of a chain ended (see `audit::verifier`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// `passed` or `failed`.
    pub state: &'static str,
}

/// Which key lifecycle notice was written (see `audit::notices`): `expiring` or `expired`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoticeLabels {
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub audit_groups: Family<GroupLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub key_verification_seconds: Histogram,
    pub audit_commit_seconds: Histogram,
    pub audit_fsync_seconds: Histogram,
    pub audit_queue_depth: Gauge,
    pub key_cache_hits: Counter,
    pub key_cache_misses: Counter,
    pub key_state_version: Gauge,
    /// Refusals over their address's budget: counted here and in one summary event, not one row each.
    pub refusals_summarized: Counter,
    pub refusal_summaries: Counter,
    /// Audit writes that failed or timed out (fail closed).
    pub audit_write_failures: Counter,
    /// Events the background verifier read (and checked).
    pub audit_verify_events: Counter,
    /// Completed verification runs of a chain, by how they ended.
    pub audit_verify_runs: Family<RunLabels, Counter>,
    /// Chains being verified by this instance now.
    pub audit_verify_running: Gauge,
    /// The current pass's progress: events proved so far, and the heads it goes to (summed over its chains).
    pub audit_verify_through: Gauge,
    pub audit_verify_target: Gauge,
    /// When this instance last completed a verification pass over every chain (Unix seconds; 0: not yet).
    pub audit_verify_last_completed_seconds: Gauge,
    /// Chains whose last completed run failed, as of that pass.
    pub audit_verify_failing_chains: Gauge,
    /// Events delivered to SIEM sinks by this instance.
    pub sink_delivered_events: Counter,
    /// Failed deliveries, by reason (no tenant or URL labels).
    pub sink_failures: Family<SinkFailureLabels, Counter>,
    /// Events not yet delivered, summed over the sinks this instance's last pass looked at.
    pub sink_lag_events: Gauge,
    /// Sinks that are DEAD (all tenants), as of this instance's last pass.
    pub sink_dead: Gauge,
    /// Key lifecycle notices this instance wrote, by kind.
    pub key_notices: Family<NoticeLabels, Counter>,
    /// Keys whose notice this instance could not write in a pass (the next pass retries them).
    pub key_notice_failures: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keyward");
        let requests = Family::<RequestLabels, Counter>::default();
        // 20 µs … ~2.6 s
        let key_verification_seconds = Histogram::new(exponential_buckets(0.00002, 2.0, 18));
        let audit_commit_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 17));
        let audit_fsync_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 17));
        registry.register(
            "audit_fsync_seconds",
            "SQLite: time to fsync the WAL for committed groups of audit events (their answers wait for it)",
            audit_fsync_seconds.clone(),
        );
        let audit_queue_depth = Gauge::default();
        let audit_groups = Family::<GroupLabels, Counter>::default();
        registry.register("audit_groups", "Groups of audit events committed, by how", audit_groups.clone());
        registry.register("requests", "Requests by operation and outcome", requests.clone());
        registry.register(
            "key_verification_seconds",
            "Time to verify an enterprise API key",
            key_verification_seconds.clone(),
        );
        registry.register(
            "audit_commit_seconds",
            "Time to commit one group of audit events",
            audit_commit_seconds.clone(),
        );
        registry.register("audit_queue_depth", "Audit events waiting to be committed", audit_queue_depth.clone());
        let key_cache_hits = Counter::default();
        let key_cache_misses = Counter::default();
        let key_state_version = Gauge::default();
        registry.register("key_cache_hits", "Key checks answered from the verified-key cache", key_cache_hits.clone());
        registry.register("key_cache_misses", "Key checks that read the database", key_cache_misses.clone());
        registry.register(
            "key_state_version",
            "The database's key_state version this instance last saw (-1: none yet)",
            key_state_version.clone(),
        );
        let refusals_summarized = Counter::default();
        let refusal_summaries = Counter::default();
        let audit_write_failures = Counter::default();
        registry.register(
            "refusals_summarized",
            "Refusals over their client address's budget, answered without an event of their own",
            refusals_summarized.clone(),
        );
        registry.register(
            "refusal_summaries",
            "Summary events written for refusals over budget (one per address and window)",
            refusal_summaries.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit events that could not be committed in time; their requests answered 503",
            audit_write_failures.clone(),
        );
        let audit_verify_events = Counter::default();
        let audit_verify_runs = Family::<RunLabels, Counter>::default();
        let audit_verify_running = Gauge::default();
        let audit_verify_through = Gauge::default();
        let audit_verify_target = Gauge::default();
        let audit_verify_last_completed_seconds = Gauge::default();
        let audit_verify_failing_chains = Gauge::default();
        registry.register(
            "audit_verify_events",
            "Audit events the background verifier read and checked",
            audit_verify_events.clone(),
        );
        registry.register(
            "audit_verify_runs",
            "Completed verification runs of a chain, by state (passed, failed)",
            audit_verify_runs.clone(),
        );
        registry.register(
            "audit_verify_running",
            "Chains being verified by this instance now",
            audit_verify_running.clone(),
        );
        registry.register(
            "audit_verify_through",
            "The current verification pass: events proved so far, summed over its chains",
            audit_verify_through.clone(),
        );
        registry.register(
            "audit_verify_target",
            "The current verification pass: the chains' heads at its start, summed",
            audit_verify_target.clone(),
        );
        registry.register(
            "audit_verify_last_completed_seconds",
            "When the last verification pass over every chain completed (Unix time; 0: none yet)",
            audit_verify_last_completed_seconds.clone(),
        );
        registry.register(
            "audit_verify_failing_chains",
            "Chains whose last completed verification run failed",
            audit_verify_failing_chains.clone(),
        );
        let sink_delivered_events = Counter::default();
        let sink_failures = Family::<SinkFailureLabels, Counter>::default();
        let sink_lag_events = Gauge::default();
        let sink_dead = Gauge::default();
        registry.register(
            "sink_delivered_events",
            "Audit events delivered to SIEM sinks (at least once: a retried batch counts again)",
            sink_delivered_events.clone(),
        );
        registry.register(
            "sink_failures",
            "Failed SIEM sink deliveries, by reason (connect, address, timeout, status, rejected)",
            sink_failures.clone(),
        );
        registry.register(
            "sink_lag_events",
            "Audit events not yet delivered, summed over the sinks of this instance's last pass",
            sink_lag_events.clone(),
        );
        registry.register("sink_dead", "SIEM sinks that are DEAD (no longer tried until replayed)", sink_dead.clone());
        let key_notices = Family::<NoticeLabels, Counter>::default();
        let key_notice_failures = Counter::default();
        registry.register(
            "key_notices",
            "Key lifecycle notices written (one audit event each), by kind (expiring, expired)",
            key_notices.clone(),
        );
        registry.register(
            "key_notice_failures",
            "Keys whose lifecycle notice could not be written in a pass (retried the next pass)",
            key_notice_failures.clone(),
        );
        Metrics {
            key_notices,
            key_notice_failures,
            sink_delivered_events,
            sink_failures,
            sink_lag_events,
            sink_dead,
            audit_verify_events,
            audit_verify_runs,
            audit_verify_running,
            audit_verify_through,
            audit_verify_target,
            audit_verify_last_completed_seconds,
            audit_verify_failing_chains,
            refusals_summarized,
            refusal_summaries,
            audit_write_failures,
            registry,
            audit_groups,
            requests,
            key_verification_seconds,
            audit_commit_seconds,
            audit_fsync_seconds,
            audit_queue_depth,
            key_cache_hits,
            key_cache_misses,
            key_state_version,
        }
    }

    pub fn record_request(&self, operation: &'static str, outcome: &'static str) {
        self.requests.get_or_create(&RequestLabels { operation, outcome }).inc();
    }

    pub fn record_group(&self, path: &'static str) {
        self.audit_groups.get_or_create(&GroupLabels { path }).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
