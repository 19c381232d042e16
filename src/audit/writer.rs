//! The durable audit writer.
//!
//! One thread owns one database connection and commits requests' events in
//! groups: it takes every job waiting in the queue, runs them in one
//! transaction (each job's own change inside a savepoint, so one failing job
//! does not undo the others), appends their events to the per-tenant hash
//! chains and commits once. Each request is answered only after that commit,
//! so nothing is lost, and one fsync serves many requests.
//!
//! If the commit fails, every job of the group gets `unavailable` and nothing
//! of it is stored (fail closed); the connection is dropped and re-made for
//! the next group, so the service recovers without a restart.
//!
//! On SQLite the commit and its fsync are pipelined: the writer commits a
//! group without waiting for the disk (`synchronous = NORMAL`), hands its
//! answers to a second thread that fsyncs the WAL file and only then answers,
//! and meanwhile commits the next group. An answer still leaves only after its
//! event is on disk (what `synchronous = FULL` gives), but the writer's CPU
//! work overlaps the disk's. A failed fsync answers `unavailable`.
//! Checkpoints (copying the WAL back into the database file, with two fsyncs
//! of their own) run mostly on a third thread with its own connection, at
//! most every [`CHECKPOINT_EVERY`], so that few groups wait behind one.
//!
//! The writer also tells readiness whether it can commit: after a failed group
//! it is unhealthy, and while no job comes it probes the database every
//! [`PROBE_INTERVAL`] (reconnecting, taking the write lock in a transaction it
//! rolls back) until a probe or a group succeeds. The flag only feeds
//! `/readyz`: groups are always tried, whatever it says.

use super::chain::{Chains, GroupHeads};
use super::EventDraft;
use crate::db::models::{now, to_naive, AuditRow};
use crate::db::{self, store, ConnOptions, DbConn, DbUrl};
use crate::domain::redact::Redactor;
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use diesel::r2d2::R2D2Connection;
use diesel::Connection;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 512;
/// Jobs waiting beyond this make callers wait for room (back-pressure).
const QUEUE_CAPACITY: usize = 8192;
/// While unhealthy, how often the writer checks whether it can write again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// While unhealthy, how often the writer looks for jobs between probes.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// SQLite: the least time between two checkpoints of the WAL, while groups commit.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);
/// SQLite: the WAL pages after which the writer checkpoints (and so lets the
/// WAL start over) itself, beside the checkpoint thread.
const WRITER_CHECKPOINT_PAGES: u32 = 1000;

/// One caller's part of a group: the change to make in its event's
/// transaction, if any, and how the caller hears the outcome, in the type it
/// waits for. The writer sees only this trait; each caller's result type
/// stays between the caller and its own job.
trait Change: Send {
    /// Whether there is a change to make besides appending the event.
    fn changes(&self) -> bool;
    /// Makes the change, in a savepoint of the group's transaction; returns
    /// Tier 1 metadata for the event.
    fn run(&mut self, conn: &mut DbConn) -> AppResult<Map<String, Value>>;
    /// The group's outcome (`Ok(result of run)` once committed and durable).
    fn answer(self: Box<Self>, outcome: Committed<()>);
    /// After `run`: whether the job's event is appended. Only a conditional
    /// job declines it (its work found nothing to do, or failed).
    fn keeps_event(&self) -> bool {
        true
    }
}

/// An event with nothing else to change.
struct RecordOnly(oneshot::Sender<Committed<()>>);

impl Change for RecordOnly {
    fn changes(&self) -> bool {
        false
    }
    fn run(&mut self, _: &mut DbConn) -> AppResult<Map<String, Value>> {
        Ok(Map::new())
    }
    fn answer(self: Box<Self>, outcome: Committed<()>) {
        let _ = self.0.send(outcome);
    }
}

/// A change whose value `T` reaches its caller once its group is durable.
struct Typed<T, F> {
    work: Option<F>,
    value: Option<T>,
    reply: oneshot::Sender<Committed<T>>,
}

impl<T, F> Change for Typed<T, F>
where
    T: Send,
    F: FnOnce(&mut DbConn) -> AppResult<(T, Map<String, Value>)> + Send,
{
    fn changes(&self) -> bool {
        true
    }
    fn run(&mut self, conn: &mut DbConn) -> AppResult<Map<String, Value>> {
        let work = self.work.take().ok_or_else(AppError::internal)?;
        let (value, metadata) = work(conn)?;
        self.value = Some(value);
        Ok(metadata)
    }
    fn answer(self: Box<Self>, outcome: Committed<()>) {
        let Typed { value, reply, .. } = *self;
        let _ = reply.send(outcome.map(|done| done.and_then(|()| value.ok_or_else(AppError::internal))));
    }
}

/// A change whose event is written only if its work says so: `Ok(None)`
/// (nothing to do) and errors append no event; the caller hears `None`.
struct Conditional<T, F> {
    work: Option<F>,
    value: Option<Option<T>>,
    keep: bool,
    reply: oneshot::Sender<Committed<Option<T>>>,
}

impl<T, F> Change for Conditional<T, F>
where
    T: Send,
    F: FnOnce(&mut DbConn) -> AppResult<Option<(T, Map<String, Value>)>> + Send,
{
    fn changes(&self) -> bool {
        true
    }
    fn run(&mut self, conn: &mut DbConn) -> AppResult<Map<String, Value>> {
        let work = self.work.take().ok_or_else(AppError::internal)?;
        self.keep = false;
        match work(conn)? {
            Some((value, metadata)) => {
                self.keep = true;
                self.value = Some(Some(value));
                Ok(metadata)
            }
            None => {
                self.value = Some(None);
                Ok(Map::new())
            }
        }
    }
    fn answer(self: Box<Self>, outcome: Committed<()>) {
        let Conditional { value, reply, .. } = *self;
        let _ = reply.send(outcome.map(|done| done.and_then(|()| value.ok_or_else(AppError::internal))));
    }
    fn keeps_event(&self) -> bool {
        self.keep
    }
}

fn conditional<T: Send + 'static>(
    work: impl FnOnce(&mut DbConn) -> AppResult<Option<(T, Map<String, Value>)>> + Send + 'static,
) -> (Box<dyn Change>, oneshot::Receiver<Committed<Option<T>>>) {
    let (reply, answer) = oneshot::channel();
    (Box::new(Conditional { work: Some(work), value: None, keep: false, reply }), answer)
}

fn typed<T: Send + 'static>(
    work: impl FnOnce(&mut DbConn) -> AppResult<(T, Map<String, Value>)> + Send + 'static,
) -> (Box<dyn Change>, oneshot::Receiver<Committed<T>>) {
    let (reply, answer) = oneshot::channel();
    (Box::new(Typed { work: Some(work), value: None, reply }), answer)
}

/// Work of another component that rides on every group the writer commits
/// (a key's `last_used_*`, the key cache), handed to the writer at start-up:
/// the writer itself knows nothing of keys or caches.
pub trait GroupHook: Send {
    /// Inside the group's transaction, once its events are appended; an
    /// error fails the whole group.
    fn in_group(&mut self, conn: &mut DbConn, group: &Group<'_>) -> AppResult<()>;
    /// Whether `in_group` would write anything for a group of only these
    /// events that changes nothing else (PostgreSQL may then append them
    /// without a transaction of their own, and without calling `in_group`).
    fn writes_for(&self, events: &[EventDraft]) -> bool;
    /// After the group, committed (and durable) or rolled back; before any
    /// of its callers is answered.
    fn finished(&mut self, committed: bool);
}

/// What a hook sees of a group being committed.
pub struct Group<'a> {
    pub events: &'a [EventDraft],
    /// The stored events, in the same order.
    pub rows: &'a [AuditRow],
    /// Some job of the group changed something beside appending its event.
    pub changed: bool,
}

/// `Ok(result of the work)` once the event is committed (the work may itself
/// have failed, and its event then records the refusal); `Err` when nothing
/// could be committed.
pub type Committed<T> = Result<AppResult<T>, AppError>;

struct Job {
    /// A job still queued [`ConnOptions::wait`] after this is answered 503 untried.
    enqueued: Instant,
    draft: EventDraft,
    change: Box<dyn Change>,
}

/// When the group being committed started, for readiness: a group that takes
/// longer than the database wait is a failed write, even before it fails.
struct InFlight {
    base: Instant,
    /// Microseconds after `base` at which the current group started; 0 while idle.
    started_us: AtomicU64,
}

impl InFlight {
    fn now_us(&self) -> u64 {
        (self.base.elapsed().as_micros() as u64).max(1)
    }
    fn start(&self) {
        self.started_us.store(self.now_us(), Ordering::Release);
    }
    fn stop(&self) {
        self.started_us.store(0, Ordering::Release);
    }
    fn longer_than(&self, wait: Duration) -> bool {
        let started = self.started_us.load(Ordering::Acquire);
        started != 0 && self.now_us().saturating_sub(started) > wait.as_micros() as u64
    }
}

#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    in_flight: Arc<InFlight>,
    wait: Duration,
    healthy: Arc<AtomicBool>,
    /// Set by the WAL syncer after a failed fsync, cleared after a good one.
    sync_failed: Arc<AtomicBool>,
}

impl AuditWriter {
    pub fn start(
        url: DbUrl,
        options: ConnOptions,
        metrics: Arc<Metrics>,
        chains: Chains,
        hooks: Vec<Box<dyn GroupHook>>,
        redactor: Redactor,
    ) -> AuditWriter {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let healthy = Arc::new(AtomicBool::new(true));
        let in_flight = Arc::new(InFlight { base: Instant::now(), started_us: AtomicU64::new(0) });
        let wait = options.wait;
        let sync_failed = Arc::new(AtomicBool::new(false));
        let wal_sync = match &url {
            DbUrl::Sqlite(path) => Some(WalSync::start(
                wal_path(path),
                sync_failed.clone(),
                metrics.audit_fsync_seconds.clone(),
                start_checkpointer(url.clone(), options),
            )),
            DbUrl::Postgres(_) => None,
        };
        let thread = Writer {
            url,
            options,
            conn: None,
            in_flight: in_flight.clone(),
            healthy: healthy.clone(),
            metrics: metrics.clone(),
            hooks,
            chains,
            redactor: Arc::new(redactor),
            wal_sync,
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || thread.run(rx))
            .expect("spawn the audit writer thread");
        AuditWriter { tx, metrics, in_flight, wait, healthy, sync_failed }
    }

    /// False from a failed group (or fsync), a job that waited out the database
    /// wait, or a group in progress for longer than it, until the writer has
    /// committed or probed successfully again.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
            && !self.sync_failed.load(Ordering::Acquire)
            && !self.in_flight.longer_than(self.wait)
    }

    /// Commits an event that records a request and changes nothing else.
    pub async fn record(&self, draft: EventDraft) -> Result<(), AppError> {
        let (reply, answer) = oneshot::channel();
        self.submit(draft, Box::new(RecordOnly(reply))).await?;
        answer.await.unwrap_or_else(|_| Err(AppError::unavailable())).map(|_| ())
    }

    /// Runs `work` and commits its event in one transaction.
    pub async fn commit<T: Send + 'static>(
        &self,
        draft: EventDraft,
        work: impl FnOnce(&mut DbConn) -> AppResult<(T, Map<String, Value>)> + Send + 'static,
    ) -> Committed<T> {
        let (change, answer) = typed(work);
        self.submit(draft, change).await?;
        answer.await.unwrap_or_else(|_| Err(AppError::unavailable()))
    }

    /// Runs `work` and, only if it returns `Some`, commits its event with it
    /// in one transaction (`None`: nothing done, no event), from a thread
    /// outside the async runtime (background jobs).
    pub fn commit_if_blocking<T: Send + 'static>(
        &self,
        draft: EventDraft,
        work: impl FnOnce(&mut DbConn) -> AppResult<Option<(T, Map<String, Value>)>> + Send + 'static,
    ) -> Committed<Option<T>> {
        let (change, answer) = conditional(work);
        self.metrics.audit_queue_depth.inc();
        if self.tx.blocking_send(Job { enqueued: Instant::now(), draft, change }).is_err() {
            self.metrics.audit_queue_depth.dec();
            return Err(AppError::unavailable());
        }
        answer.blocking_recv().unwrap_or_else(|_| Err(AppError::unavailable()))
    }

    /// [`record`](Self::record) from a thread outside the async runtime (background summaries).
    pub fn record_blocking(&self, draft: EventDraft) -> Result<(), AppError> {
        let (reply, answer) = oneshot::channel();
        self.metrics.audit_queue_depth.inc();
        let job = Job { enqueued: Instant::now(), draft, change: Box::new(RecordOnly(reply)) };
        if self.tx.blocking_send(job).is_err() {
            self.metrics.audit_queue_depth.dec();
            return Err(AppError::unavailable());
        }
        answer.blocking_recv().unwrap_or_else(|_| Err(AppError::unavailable())).map(|_| ())
    }

    /// Queues a job; its answer comes through its own channel.
    async fn submit(&self, draft: EventDraft, change: Box<dyn Change>) -> Result<(), AppError> {
        self.metrics.audit_queue_depth.inc();
        if self.tx.send(Job { enqueued: Instant::now(), draft, change }).await.is_err() {
            self.metrics.audit_queue_depth.dec();
            return Err(AppError::unavailable());
        }
        Ok(())
    }
}

/// The writer thread's own state.
struct Writer {
    url: DbUrl,
    options: ConnOptions,
    /// None until first needed, and after a failure (re-made for the next group).
    conn: Option<DbConn>,
    in_flight: Arc<InFlight>,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// What other components do with each group (see [`GroupHook`]).
    hooks: Vec<Box<dyn GroupHook>>,
    /// SQLite: where committed groups wait for their fsync before being answered.
    wal_sync: Option<WalSync>,
    /// Redacts caller-controlled fields as each event is built.
    redactor: Arc<Redactor>,
    /// Where events go: the tenants' chains.
    chains: Chains,
}

type Answers = Vec<(Box<dyn Change>, AppResult<()>)>;

/// The thread that makes committed SQLite groups durable, then answers them,
/// and the one that checkpoints the WAL.
struct WalSync {
    tx: std::sync::mpsc::Sender<Answers>,
    /// A word after each group committed (dropped if one is already waiting).
    checkpoints: Option<std::sync::mpsc::SyncSender<()>>,
}

fn wal_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

impl WalSync {
    fn start(
        wal: std::path::PathBuf,
        sync_failed: Arc<AtomicBool>,
        fsync_seconds: Histogram,
        checkpoints: Option<std::sync::mpsc::SyncSender<()>>,
    ) -> WalSync {
        let (tx, rx) = std::sync::mpsc::channel::<Answers>();
        std::thread::Builder::new()
            .name("audit-wal-sync".into())
            .spawn(move || {
                // Ends when the writer thread, the only sender, is gone.
                while let Ok(first) = rx.recv() {
                    // Every group committed meanwhile is covered by the one fsync.
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    // Opened by path each time: the fsync must reach the WAL file
                    // SQLite writes now (it is re-created if every connection closed).
                    let started = Instant::now();
                    let synced = std::fs::File::open(&wal).and_then(|f| f.sync_data());
                    fsync_seconds.observe(started.elapsed().as_secs_f64());
                    match &synced {
                        Ok(()) => {
                            if sync_failed.swap(false, Ordering::AcqRel) {
                                tracing::info!("audit log fsync works again");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, wal = %wal.display(), "audit log fsync failed; failing closed");
                            sync_failed.store(true, Ordering::Release);
                        }
                    }
                    for (change, result) in waiting.into_iter().flatten() {
                        change.answer(match synced {
                            Ok(()) => Ok(result),
                            Err(_) => Err(AppError::unavailable()),
                        });
                    }
                }
            })
            .expect("spawn the audit WAL sync thread");
        WalSync { tx, checkpoints }
    }
}

/// Starts the thread that checkpoints the WAL on a connection of its own,
/// after groups commit, at most every [`CHECKPOINT_EVERY`]. A PASSIVE
/// checkpoint copies what no reader still needs and waits for no one; the
/// writer goes on committing meanwhile. It ends with the writer.
///
/// The WAL starts over from its beginning only when a write transaction
/// begins with all of it copied, which a thread racing the writer seldom
/// sees: the writer still checkpoints, less often ([`WRITER_CHECKPOINT_PAGES`]),
/// and then finds most pages copied already.
fn start_checkpointer(url: DbUrl, options: ConnOptions) -> Option<std::sync::mpsc::SyncSender<()>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new().name("audit-wal-ckpt".into()).spawn(move || {
        let mut conn: Option<DbConn> = None;
        while rx.recv().is_ok() {
            let started = Instant::now();
            if conn.is_none() {
                conn = db::establish_with(&url, options).ok();
            }
            if let Some(c) = conn.as_mut() {
                if let Err(e) = diesel::connection::SimpleConnection::batch_execute(c, "PRAGMA wal_checkpoint(PASSIVE)")
                {
                    // The next group's word tries again, on a new connection.
                    tracing::debug!(error = %e, "WAL checkpoint failed");
                    conn = None;
                }
            }
            std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(started.elapsed()));
        }
    });
    match spawned {
        Ok(_) => Some(tx),
        // The writer checkpoints itself then (SQLite's own, every 250 pages).
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the WAL checkpoint thread; the writer checkpoints");
            None
        }
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        crate::threads::never_preempt_on_wakeup();
        while let Some(first) = self.next_job(&mut rx) {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.metrics.audit_queue_depth.dec_by(group.len() as i64);
            // Fail closed fast: a job that waited out the database wait is answered, untried.
            let (group, expired): (Vec<Job>, Vec<Job>) =
                group.into_iter().partition(|j| j.enqueued.elapsed() <= self.options.wait);
            if !expired.is_empty() {
                self.metrics.audit_write_failures.inc_by(expired.len() as u64);
                self.set_healthy(false);
                for job in expired {
                    job.change.answer(Err(AppError::unavailable()));
                }
            }
            if group.is_empty() {
                continue;
            }
            let (drafts, mut changes) = split(group);
            let mut chains = std::mem::take(&mut self.chains);
            let mut hooks = std::mem::take(&mut self.hooks);
            let (in_flight, redactor) = (self.in_flight.clone(), self.redactor.clone());
            in_flight.start();
            let Some(c) = self.connection() else {
                in_flight.stop();
                self.chains = chains;
                self.hooks = hooks;
                for change in changes {
                    change.answer(Err(AppError::unavailable()));
                }
                continue;
            };
            let started = Instant::now();
            // A group that only appends, and that no hook writes for, may skip the locked path.
            let only_appends = !changes.iter().any(|c| c.changes()) && !hooks.iter().any(|h| h.writes_for(&drafts));
            let fast = only_appends.then(|| append_only(c, &mut chains, &drafts, &redactor)).flatten();
            let path = if fast.is_some() { "known_head" } else { "locked" };
            let outcome = match fast {
                Some(outcome) => outcome,
                None => commit_group(c, &chains, drafts, &mut changes, &mut hooks, &redactor),
            };
            chains.finished(outcome.as_ref().ok().map(|(_, heads)| heads));
            in_flight.stop();
            self.chains = chains;
            for hook in &mut hooks {
                hook.finished(outcome.is_ok());
            }
            self.hooks = hooks;
            match outcome {
                Ok((results, _)) => {
                    self.metrics.audit_commit_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.record_group(path);
                    self.set_healthy(true);
                    let answers: Answers = changes.into_iter().zip(results).collect();
                    match &self.wal_sync {
                        Some(sync) => {
                            if let Err(unsent) = sync.tx.send(answers) {
                                for (change, _) in unsent.0 {
                                    change.answer(Err(AppError::unavailable()));
                                }
                            }
                            if let Some(checkpoints) = &sync.checkpoints {
                                let _ = checkpoints.try_send(());
                            }
                        }
                        // PostgreSQL's COMMIT returned after its own fsync.
                        None => {
                            for (change, result) in answers {
                                change.answer(Ok(result));
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "audit group not committed; failing closed");
                    self.metrics.audit_write_failures.inc_by(changes.len() as u64);
                    self.conn = None;
                    self.set_healthy(false);
                    for change in changes {
                        change.answer(Err(AppError::unavailable()));
                    }
                }
            }
        }
    }

    /// The next job; None once every sender is gone. While unhealthy, probes
    /// the database every [`PROBE_INTERVAL`] until a job comes.
    fn next_job(&mut self, rx: &mut mpsc::Receiver<Job>) -> Option<Job> {
        let mut last_probe = Instant::now();
        while !self.healthy.load(Ordering::Acquire) {
            match rx.try_recv() {
                Ok(job) => return Some(job),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            if last_probe.elapsed() >= PROBE_INTERVAL {
                self.probe();
                last_probe = Instant::now();
            } else {
                std::thread::sleep(IDLE_POLL);
            }
        }
        rx.blocking_recv()
    }

    /// The writer's connection, made if there is none; None (unhealthy) if it cannot be made.
    fn connection(&mut self) -> Option<&mut DbConn> {
        if self.conn.is_none() {
            let made = db::establish_with(&self.url, self.options).and_then(|mut c| {
                if let Some(sync) = &self.wal_sync {
                    // Commits do not wait for the disk here: the WAL syncer does, before answering.
                    // Beside the checkpoint thread, the writer checkpoints every 1000 WAL pages;
                    // without it, every 250 (SQLite's default: 1000), a shorter stall for the
                    // group that triggers it (p99 4.9-5.8 ms where 1000 gave 6.6-8.1 ms).
                    let pages = if sync.checkpoints.is_some() { WRITER_CHECKPOINT_PAGES } else { 250 };
                    diesel::connection::SimpleConnection::batch_execute(
                        &mut c,
                        &format!("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = {pages}"),
                    )
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                }
                Ok(c)
            });
            match made {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    // Said once per outage; the probes that follow would repeat it twice a second.
                    if self.healthy.load(Ordering::Acquire) {
                        tracing::warn!(error = %e, "audit writer cannot connect; failing closed");
                    } else {
                        tracing::debug!(error = %e, "audit writer still cannot connect");
                    }
                    self.set_healthy(false);
                }
            }
        }
        self.conn.as_mut()
    }

    /// Whether a group could commit now: connect if need be, and take the
    /// write lock in a transaction that is rolled back (it changes nothing).
    fn probe(&mut self) {
        let ok = self.connection().is_some_and(|c| can_write(c) && !c.is_broken());
        if !ok {
            self.conn = None;
        }
        self.set_healthy(ok);
    }

    fn set_healthy(&self, healthy: bool) {
        let was = self.healthy.swap(healthy, Ordering::AcqRel);
        if healthy && !was {
            tracing::info!("audit writer commits again");
        }
    }
}

/// Takes the write lock as a group would, then rolls back. Quiet: failing is
/// what is expected while the database is unwritable.
fn can_write(conn: &mut DbConn) -> bool {
    use diesel::result::Error;
    use diesel::RunQueryDsl;
    let rolled_back = match conn {
        // BEGIN IMMEDIATE waits (busy_timeout) for the lock like a group's first write does.
        DbConn::Sqlite(c) => c.immediate_transaction::<(), Error, _>(|_| Err(Error::RollbackTransaction)),
        DbConn::Postgres(c) => c.transaction::<(), Error, _>(|c| {
            diesel::sql_query("SELECT 1").execute(c)?;
            Err(Error::RollbackTransaction)
        }),
    };
    matches!(rolled_back, Err(Error::RollbackTransaction))
}

fn split(group: Vec<Job>) -> (Vec<EventDraft>, Vec<Box<dyn Change>>) {
    group.into_iter().map(|job| (job.draft, job.change)).unzip()
}

/// Commits one event with its change, on a connection of the caller's (CLI).
pub fn commit_now<T: Send + 'static>(
    conn: &mut DbConn,
    draft: EventDraft,
    work: impl FnOnce(&mut DbConn) -> AppResult<(T, Map<String, Value>)> + Send + 'static,
) -> AppResult<T> {
    let (change, mut answer) = typed(work);
    let mut changes = vec![change];
    let outcome = commit_group(conn, &Chains::default(), vec![draft], &mut changes, &mut [], &Redactor::default());
    let result = outcome.map(|(results, _)| results.into_iter().next().unwrap_or_else(|| Err(AppError::internal())));
    changes.into_iter().for_each(|c| c.answer(result.clone()));
    answer.try_recv().unwrap_or_else(|_| Err(AppError::internal()))?
}

/// [`commit_now`], for work that may decline its event (see
/// [`AuditWriter::commit_if_blocking`]), on a connection of the caller's (CLI).
pub fn commit_now_if<T: Send + 'static>(
    conn: &mut DbConn,
    draft: EventDraft,
    work: impl FnOnce(&mut DbConn) -> AppResult<Option<(T, Map<String, Value>)>> + Send + 'static,
) -> AppResult<Option<T>> {
    let (change, mut answer) = conditional(work);
    let mut changes = vec![change];
    let outcome = commit_group(conn, &Chains::default(), vec![draft], &mut changes, &mut [], &Redactor::default());
    let result = outcome.map(|(results, _)| results.into_iter().next().unwrap_or_else(|| Err(AppError::internal())));
    changes.into_iter().for_each(|c| c.answer(result.clone()));
    answer.try_recv().unwrap_or_else(|_| Err(AppError::internal()))?
}

/// Appends events that change nothing else, as one group, on a connection of
/// the caller's (tooling: seeding a large log for the benchmark).
pub fn append_now(conn: &mut DbConn, drafts: Vec<EventDraft>) -> AppResult<()> {
    let mut changes: Vec<Box<dyn Change>> =
        drafts.iter().map(|_| Box::new(RecordOnly(oneshot::channel().0)) as Box<dyn Change>).collect();
    commit_group(conn, &Chains::default(), drafts, &mut changes, &mut [], &Redactor::default()).map(|_| ())
}

/// Each job's result, and the heads of the chains the group appended to.
type GroupOutcome = (Vec<AppResult<()>>, GroupHeads);

/// One transaction: lock the chains involved, run each job's work in a
/// savepoint, append every event to its chain and tree, save the chain heads
/// and tree hashes, then let each hook do its part.
fn commit_group(
    conn: &mut DbConn,
    chains: &Chains,
    mut drafts: Vec<EventDraft>,
    changes: &mut [Box<dyn Change>],
    hooks: &mut [Box<dyn GroupHook>],
    redactor: &Redactor,
) -> Result<GroupOutcome, AppError> {
    conn.transaction::<_, AppError, _>(|conn| {
        store::take_write_lock(conn)?;
        let mut heads = chains.lock(conn, &drafts)?;
        let mut rows = Vec::with_capacity(drafts.len());
        let mut results = Vec::with_capacity(drafts.len());
        let changed = changes.iter().any(|c| c.changes());
        let mut declined = Vec::new();

        for (i, (draft, change)) in drafts.iter_mut().zip(changes.iter_mut()).enumerate() {
            let result = match change.changes() {
                false => Ok(()),
                true => match conn.transaction::<_, AppError, _>(|conn| change.run(conn)) {
                    Ok(metadata) => {
                        draft.metadata.extend(metadata);
                        Ok(())
                    }
                    Err(e) => {
                        draft.status_code = e.http_status().as_u16();
                        draft.reason = Some(e.reason().to_string());
                        Err(e)
                    }
                },
            };
            results.push(result);
            if !change.keeps_event() {
                declined.push(i);
                continue;
            }
            let mut row = event_row(draft, redactor);
            chains.place(conn, &mut heads, &mut row)?;
            rows.push(row);
        }
        if !declined.is_empty() {
            // Hooks see the events appended, beside their rows.
            let mut i = 0;
            drafts.retain(|_| {
                i += 1;
                !declined.contains(&(i - 1))
            });
        }
        if !rows.is_empty() {
            store::insert_events(conn, &rows)?;
        }
        heads.save(conn)?;
        let group = Group { events: &drafts, rows: &rows, changed };
        for hook in hooks.iter_mut() {
            hook.in_group(conn, &group)?;
        }
        Ok((results, heads))
    })
}

/// The draft's event, not yet placed in its chain (no `seq`, no hashes).
/// Every caller-controlled field passes `redactor` here, the one place events are built.
fn event_row(draft: &EventDraft, redactor: &Redactor) -> AuditRow {
    AuditRow {
        event_id: crate::domain::event::EventId::new(),
        chain_id: draft.chain_id().to_string(),
        seq: 0,
        occurred_at: to_naive(now()),
        operation: draft.operation.name().to_string(),
        outcome: crate::domain::event::Outcome::for_status(draft.status_code),
        reason: draft.reason.clone(),
        actor_type: draft.actor_type,
        actor_id: draft.actor_id.clone(),
        key_id: draft.key_id.clone(),
        key_type: draft.key_type,
        key_hint: draft.key_hint.clone(),
        request_id: draft.request_id.clone(),
        client_ip: draft.client_ip.clone(),
        user_agent: draft.user_agent.as_deref().map(|ua| redactor.text(ua).into_owned()),
        status_code: i32::from(draft.status_code),
        metadata: redacted_json(redactor, serde_json::to_string(&draft.metadata).expect("a JSON map serializes")),
        payload: draft.payload.as_ref().map(|p| redacted_json(redactor, p.to_string())),
        prev_hash: crate::crypto::ChainHash::GENESIS,
        hash: crate::crypto::ChainHash::GENESIS,
        tree_hashes: None,
    }
}

/// A JSON document as stored: unchanged when its text holds no secret, else
/// re-serialized with each string and key redacted (never redacted as text,
/// which could decode an escape into a quote).
fn redacted_json(redactor: &Redactor, text: String) -> String {
    if !redactor.holds_secret(&text) {
        return text;
    }
    let mut value: Value = serde_json::from_str(&text).expect("written by serde_json just before");
    redactor.json(&mut value);
    value.to_string()
}

/// A group that changes nothing: its events appended without a transaction
/// of their own, if the chains allow it (see [`Chains::append_on_known_head`]).
fn append_only(
    conn: &mut DbConn,
    chains: &mut Chains,
    drafts: &[EventDraft],
    redactor: &Redactor,
) -> Option<Result<GroupOutcome, AppError>> {
    if !chains.knows_the_head_of(drafts) {
        return None;
    }
    let mut rows: Vec<AuditRow> = drafts.iter().map(|d| event_row(d, redactor)).collect();
    let heads = chains.append_on_known_head(conn, &mut rows)?;
    Some(heads.map(|heads| (drafts.iter().map(|_| Ok(())).collect(), heads)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_answer() -> (Answers, oneshot::Receiver<Committed<()>>) {
        let (reply, answer) = oneshot::channel();
        (vec![(Box::new(RecordOnly(reply)) as Box<dyn Change>, Ok(()))], answer)
    }

    #[test]
    fn answers_wait_for_the_wal_fsync_and_fail_closed_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kw.db");
        let failed = Arc::new(AtomicBool::new(false));
        let fsyncs = Histogram::new([0.001]);
        let sync = WalSync::start(wal_path(&db), failed.clone(), fsyncs.clone(), None);

        // No WAL file to sync: the group is answered `unavailable`, and readiness says so.
        let (answers, answer) = one_answer();
        sync.tx.send(answers).unwrap();
        let got = answer.blocking_recv().unwrap();
        assert_eq!(got.err().map(|e| e.code), Some(crate::error::ErrorCode::Unavailable));
        assert!(failed.load(Ordering::Acquire));

        // Once the file can be synced, groups are answered with their results again.
        std::fs::write(wal_path(&db), b"frames").unwrap();
        let (answers, answer) = one_answer();
        sync.tx.send(answers).unwrap();
        assert!(matches!(answer.blocking_recv().unwrap(), Ok(Ok(()))));
        assert!(!failed.load(Ordering::Acquire));
    }

    /// A migrated database file in `dir`, and its size.
    fn new_database(dir: &std::path::Path) -> (DbUrl, std::path::PathBuf, u64) {
        let db = dir.join("kw.db");
        let url = DbUrl::parse(&format!("sqlite://{}", db.display())).unwrap();
        db::run_migrations(&mut db::establish(&url).unwrap()).unwrap();
        let size = std::fs::metadata(&db).unwrap().len();
        (url, db, size)
    }

    /// Records `count` events through a writer of its own, all at once (so a
    /// group is always waiting), each with a user agent of `agent_bytes`.
    /// Returns the writer: while it lives, its connections stay open (the
    /// last connection to close would checkpoint the WAL itself).
    fn record_all_at_once(url: DbUrl, count: usize, agent_bytes: usize) -> AuditWriter {
        // Thousands queued at once outwait the default 2 s in a debug build beside other
        // tests; these tests are about the WAL, not about failing closed.
        let patient = ConnOptions { wait: Duration::from_secs(120) };
        let writer = AuditWriter::start(
            url,
            patient,
            Arc::new(Metrics::new()),
            Chains::default(),
            Vec::new(),
            Redactor::default(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let writes = (0..count).map(|i| {
                let mut draft = EventDraft::new(crate::domain::authz::Op::AuthWhoami, format!("req_{i}"));
                draft.user_agent = Some(format!("{i:0>agent_bytes$}"));
                writer.record(draft)
            });
            for written in futures_util::future::join_all(writes).await {
                written.unwrap();
            }
        });
        writer
    }

    #[test]
    fn the_wal_is_checkpointed_into_the_database_while_groups_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (url, db, before) = new_database(dir.path());
        let _writer = record_all_at_once(url, 1_500, 200);
        // The events' pages reach the database file itself, not only the WAL.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&db).unwrap().len() < before + 200_000 {
            assert!(Instant::now() < deadline, "the database file stays at {} bytes", before);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_wal_starts_over_while_groups_commit_without_pause() {
        // Many more pages than the WAL may hold, always a group waiting: the
        // checkpoint thread never has the WAL to itself.
        let dir = tempfile::tempdir().unwrap();
        let (url, db, _) = new_database(dir.path());
        let _writer = record_all_at_once(url, 12_000, 800);
        let wal = std::fs::metadata(wal_path(&db)).map_or(0, |m| m.len());
        let database = std::fs::metadata(&db).unwrap().len();
        assert!(database > 10_000_000, "the events are in the database file: {database} bytes");
        // Unbounded, the WAL holds every frame ever written: as much as the database
        // or more (60,605,232 bytes beside 56 MB with the writer's checkpoints off).
        // Bounded, it restarts after about WRITER_CHECKPOINT_PAGES and whatever the
        // writer appends while a checkpoint is in progress, which grows with the
        // writer's speed and the machine's load: 10-32 % of the database measured.
        assert!(wal < database / 2, "the WAL stays bounded: {wal} bytes beside a {database}-byte database");
    }

    #[test]
    fn the_wal_is_the_database_path_with_a_suffix() {
        assert_eq!(wal_path(std::path::Path::new("/var/lib/kw.db")), std::path::PathBuf::from("/var/lib/kw.db-wal"));
    }
}
