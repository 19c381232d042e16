//! The background runner: one thread per instance that takes PENDING jobs,
//! builds their files and records every status change with its audit event.
//!
//! - Taking a job is one conditional UPDATE (`PENDING → PROCESSING`, one more
//!   attempt); only the runner that changed the row runs it, so instances
//!   sharing a database never run a job twice at once.
//! - A run holds a lease from `started_at`. At start-up and every
//!   `RECOVERY_INTERVAL`, runs whose lease ran out (a crashed or stopped
//!   instance) go back to PENDING, or to FAILED after `MAX_ATTEMPTS`. Every
//!   later change of a run is fenced by its attempt number, so a run that lost
//!   its lease changes nothing. On PostgreSQL a long run renews its lease.
//! - Creating a job wakes the runner at once (`wake`); it also polls every
//!   `POLL_INTERVAL`, so jobs created by another instance, or while no runner
//!   ran, are taken too.
//! - Where changes commit: on SQLite through the instance's audit writer (one
//!   writer connection per file, so the runner never races the writer for the
//!   write lock); on PostgreSQL on the runner's own connection, the change and
//!   its event in one transaction, with no event when another instance won.

use super::build::{self, BuildError, Built};
use crate::audit::writer::{commit_now, AuditWriter};
use crate::audit::{ActorType, EventDraft};
use crate::crypto::CheckpointSigner;
use crate::db::models::{now, to_naive, Export};
use crate::db::{self, store, DbConn, DbUrl};
use crate::domain::exports::{self, ExportStatus};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::{meta, Meta};
use chrono::NaiveDateTime;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a run may go without finishing (or, on PostgreSQL, renewing) before another runner takes it.
pub const LEASE_SECONDS: i64 = 300;
/// Runs of a job before it is FAILED for good.
pub const MAX_ATTEMPTS: i32 = 3;
/// A try that failed is retried after this long.
pub const RETRY_DELAY_SECONDS: i64 = 10;
/// The runner looks for work at least this often.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often expired leases are looked for (and once at start-up).
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(30);
/// The actor of the runner's audit events.
pub const WORKER_ACTOR: &str = "export-worker";
/// A commit refused as unavailable is tried this many times.
const COMMIT_TRIES: u32 = 5;
/// Jobs read per look for work.
const CLAIM_BATCH: i64 = 16;

// ---------------------------------------------------------------- the thread

/// A bell the handlers ring when a job is waiting, and the runner sleeps on.
#[derive(Default)]
struct Wake {
    /// How often it rang, and whether the runner must stop.
    state: Mutex<(u64, bool)>,
    cv: Condvar,
}

impl Wake {
    fn ring(&self, stop: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = s.0.wrapping_add(1);
        s.1 |= stop;
        self.cv.notify_all();
    }

    /// Sleeps until rung after `seen`, or for `timeout`. Returns what it saw:
    /// the count, and whether to stop.
    fn wait(&self, seen: u64, timeout: Duration) -> (u64, bool) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 != seen || s.1 {
            return *s;
        }
        let (s, _) = self.cv.wait_timeout(s, timeout).unwrap_or_else(|e| e.into_inner());
        *s
    }
}

/// This instance's export runner: ring it when a job is waiting; dropping it
/// stops the thread (which then lets go of its writer handle).
pub struct ExportRunner {
    wake: Arc<Wake>,
}

impl ExportRunner {
    /// Starts the runner thread; it owns its connection, its writer handle,
    /// its folder and the checkpoint signer its files' evidence is signed with.
    pub fn start(url: DbUrl, writer: AuditWriter, export_dir: PathBuf, signer: Arc<CheckpointSigner>) -> ExportRunner {
        let wake = Arc::new(Wake::default());
        let bell = wake.clone();
        std::thread::Builder::new()
            .name("export-runner".into())
            .spawn(move || run(&url, &writer, &export_dir, &signer, &bell))
            .expect("spawn the export runner thread");
        ExportRunner { wake }
    }

    /// Tells the runner that a job is waiting.
    pub fn wake(&self) {
        self.wake.ring(false);
    }
}

impl Drop for ExportRunner {
    fn drop(&mut self) {
        self.wake.ring(true);
    }
}

fn run(url: &DbUrl, writer: &AuditWriter, export_dir: &Path, signer: &CheckpointSigner, wake: &Wake) {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "export runner cannot start");
            return;
        }
    };
    let mut conn: Option<DbConn> = None;
    let mut last_recovery: Option<Instant> = None;
    // A ring before the first look is seen at the first wait (the count is past 0).
    let mut seen = 0;
    loop {
        if conn.is_none() {
            match db::establish(url) {
                Ok(c) => conn = Some(c),
                Err(e) => tracing::warn!(error = %e, "export runner cannot connect; retrying"),
            }
        }
        if let Some(c) = conn.as_mut() {
            let writer = url.is_sqlite().then_some((writer, &rt));
            let mut jobs = Jobs { conn: c, writer, export_dir, signer };
            let healthy = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if last_recovery.is_none_or(|t| t.elapsed() >= RECOVERY_INTERVAL) {
                    jobs.recover_stale()?;
                    last_recovery = Some(Instant::now());
                }
                jobs.run_pending()
            }));
            match healthy {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "export runner: database trouble; reconnecting");
                    conn = None;
                }
                Err(_) => {
                    tracing::error!("export runner: a job panicked; reconnecting");
                    conn = None;
                }
            }
        }
        let (now_seen, stop) = wake.wait(seen, POLL_INTERVAL);
        if stop {
            break;
        }
        seen = now_seen;
    }
    tracing::debug!("export runner stopped");
}

// ---------------------------------------------------------------- jobs

/// The runner's work on one connection. `writer`: commit through the audit
/// writer (SQLite); `None`: commit on `conn` (PostgreSQL, tools and tests).
pub struct Jobs<'a> {
    conn: &'a mut DbConn,
    writer: Option<(&'a AuditWriter, &'a tokio::runtime::Runtime)>,
    export_dir: &'a Path,
    signer: &'a CheckpointSigner,
}

/// A status change that found its row no longer in the expected state.
fn not_taken() -> AppError {
    AppError { audit_reason: Some("not_claimed"), ..AppError::precondition("the export job changed hands") }
}

impl<'a> Jobs<'a> {
    /// Jobs whose changes commit on `conn` itself, each with its audit event;
    /// their files' checkpoints are signed with `signer`.
    pub fn on_connection(conn: &'a mut DbConn, export_dir: &'a Path, signer: &'a CheckpointSigner) -> Jobs<'a> {
        Jobs { conn, writer: None, export_dir, signer }
    }

    /// Runs `change` and, if it changed the row, commits it with its event.
    /// `Ok(false)`: the row was not in the expected state (another runner won).
    fn commit_change<F>(&mut self, draft: EventDraft, change: F) -> AppResult<bool>
    where
        F: Fn(&mut DbConn) -> AppResult<bool> + Clone + Send + 'static,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            // One unit of work on either path: the change and its event commit together.
            let change = change.clone();
            let work = move |c: &mut DbConn| if change(c)? { Ok(((), Meta::new())) } else { Err(not_taken()) };
            let committed = match self.writer {
                Some((writer, rt)) => rt.block_on(writer.commit(draft.clone(), work)),
                None => Ok(commit_now(self.conn, draft.clone(), work)),
            };
            let result = match committed {
                Ok(Ok(())) => Ok(true),
                Ok(Err(e)) if e.audit_reason == Some("not_claimed") => Ok(false),
                Ok(Err(e)) | Err(e) => Err(e),
            };
            match result {
                Err(e) if e.code == ErrorCode::Unavailable && tries < COMMIT_TRIES => {
                    std::thread::sleep(Duration::from_millis(100 * u64::from(tries)));
                }
                other => return other,
            }
        }
    }

    fn draft(job: &Export, status: ExportStatus, extra: Value) -> EventDraft {
        let mut d = EventDraft::new(job.kind.process_operation(), crate::telemetry::new_request_id());
        d.tenant_id = Some(job.tenant_id.clone());
        d.actor_type = ActorType::Service;
        d.actor_id = Some(WORKER_ACTOR.to_string());
        d.metadata = meta(json!({"uid": job.uid, "status": status.as_str()}));
        d.metadata.extend(meta(extra));
        d
    }

    /// Puts runs whose lease ran out back to PENDING (or FAILED after `MAX_ATTEMPTS`). Returns how many.
    pub fn recover_stale(&mut self) -> AppResult<usize> {
        let cutoff = to_naive(now()) - chrono::Duration::seconds(LEASE_SECONDS);
        let mut recovered = 0;
        for job in store::stale_exports(self.conn, cutoff, 100)? {
            let changed = if job.attempts >= MAX_ATTEMPTS {
                let error = format!("gave up after {} attempts: the last run did not finish", job.attempts);
                let extra = json!({"reason": "lease_expired", "error": error});
                self.finish(&job, ExportStatus::Failed, Some(error), None, Some(cutoff), extra)?
            } else {
                self.requeue(&job, None, Some(cutoff), json!({"reason": "lease_expired", "attempts": job.attempts}))?
            };
            if changed {
                tracing::info!(uid = %job.uid, attempts = job.attempts, "export run lease expired; job taken back");
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Takes and runs every job that is waiting. Returns how many this caller ran.
    pub fn run_pending(&mut self) -> AppResult<usize> {
        let mut ran = 0;
        loop {
            let retry_before = to_naive(now()) - chrono::Duration::seconds(RETRY_DELAY_SECONDS);
            let jobs = store::runnable_exports(self.conn, retry_before, CLAIM_BATCH)?;
            if jobs.is_empty() {
                return Ok(ran);
            }
            let mut took_any = false;
            for job in jobs {
                if let Some(claimed) = self.claim(&job)? {
                    took_any = true;
                    self.run_claimed(claimed)?;
                    ran += 1;
                }
            }
            if !took_any {
                // Every job of the batch went to another runner; look again at the next poll.
                return Ok(ran);
            }
        }
    }

    /// PENDING → PROCESSING. `Some(row as claimed)` when this caller won it.
    fn claim(&mut self, job: &Export) -> AppResult<Option<Export>> {
        let draft = Self::draft(job, ExportStatus::Processing, json!({"attempt": job.attempts + 1}));
        let at = to_naive(now());
        let uid = job.uid.clone();
        if !self.commit_change(draft, move |c| store::claim_export(c, &uid, at))? {
            return Ok(None);
        }
        store::find_export(self.conn, &job.tenant_id, job.kind, &job.uid)
    }

    fn run_claimed(&mut self, job: Export) -> AppResult<()> {
        tracing::info!(uid = %job.uid, kind = job.kind.as_str(), attempt = job.attempts, "export run started");
        let renew = self.writer.is_none();
        let (uid, attempt) = (job.uid.clone(), job.attempts);
        let mut last_renewal = Instant::now();
        // On PostgreSQL other instances may take a run whose lease runs out: renew it while building.
        let mut heartbeat = move |c: &mut DbConn| -> Result<(), BuildError> {
            if renew && last_renewal.elapsed() >= Duration::from_secs((LEASE_SECONDS / 3) as u64) {
                if !store::renew_export_lease(c, &uid, attempt, to_naive(now()))? {
                    return Err(BuildError::LeaseLost);
                }
                last_renewal = Instant::now();
            }
            Ok(())
        };
        let outcome = build::build(self.conn, self.export_dir, &job, self.signer, &mut heartbeat);
        match outcome {
            Ok(built) => {
                let file = built.clone();
                let extra = json!({"file_size": built.size, "file_sha256": built.sha256});
                if !self.finish(&job, ExportStatus::Completed, None, Some(file), None, extra)? {
                    tracing::warn!(uid = %job.uid, "export run lost its lease before finishing; file dropped");
                    let _ = std::fs::remove_file(exports::file_path(self.export_dir, &job.tenant_id, &built.file_name));
                }
            }
            Err(BuildError::LeaseLost) => {
                tracing::warn!(uid = %job.uid, "export run lost its lease; stopped");
            }
            Err(e @ BuildError::Invalid(_)) => {
                self.finish(&job, ExportStatus::Failed, Some(e.message()), None, None, json!({"error": e.message()}))?;
            }
            Err(e @ BuildError::Transient(_)) => {
                if job.attempts >= MAX_ATTEMPTS {
                    let error = format!("gave up after {} attempts: {}", job.attempts, e.message());
                    self.finish(&job, ExportStatus::Failed, Some(error.clone()), None, None, json!({"error": error}))?;
                } else {
                    self.requeue(&job, Some(e.message()), None, json!({"error": e.message(), "retry": true}))?;
                }
            }
        }
        Ok(())
    }

    /// PROCESSING → COMPLETED | FAILED, fenced by the run's attempt.
    fn finish(
        &mut self,
        job: &Export,
        status: ExportStatus,
        error: Option<String>,
        file: Option<Built>,
        started_before: Option<NaiveDateTime>,
        extra: Value,
    ) -> AppResult<bool> {
        let draft = Self::draft(job, status, extra);
        let (uid, attempt, at) = (job.uid.clone(), job.attempts, to_naive(now()));
        let changed = self.commit_change(draft, move |c| {
            let f = file.as_ref().map(|b| (b.file_name.as_str(), b.size, b.sha256.as_str()));
            store::finish_export(c, &uid, attempt, status, at, error.as_deref(), f, started_before)
        })?;
        if changed {
            tracing::info!(uid = %job.uid, status = status.as_str(), "export run finished");
        }
        Ok(changed)
    }

    /// PROCESSING → PENDING, fenced by the run's attempt (and, for a lease, its start).
    fn requeue(
        &mut self,
        job: &Export,
        error: Option<String>,
        started_before: Option<NaiveDateTime>,
        extra: Value,
    ) -> AppResult<bool> {
        let draft = Self::draft(job, ExportStatus::Pending, extra);
        let (uid, attempt, at) = (job.uid.clone(), job.attempts, to_naive(now()));
        self.commit_change(draft, move |c| {
            store::requeue_export(c, &uid, attempt, at, error.as_deref(), started_before)
        })
    }
}
