//! Retention: a tenant's events older than its `audit_retention_days` move
//! out of the database into archive segments, files under the archive
//! folder (`<dir>/<chain id>/<first seq:020>-<last seq:020>.ndjson.gz`).
//!
//! A segment is a contiguous seq range of one chain, gzip NDJSON, one event
//! per line in the SIEM compliance export's form: the event, its canonical
//! bytes (`proof.leaf`) and its inclusion proof in the tree of a signed
//! checkpoint (`proof.checkpoint`), so `keyward audit verify-archive` checks
//! it offline with the verifier key alone. Only events already verified
//! (`audit_verifications`) and covered by a signed checkpoint are archived:
//! verification from the proved point never needs them again.
//!
//! The database keeps the archived events' tree hashes (`audit_tree_nodes`)
//! and every checkpoint: roots, inclusion and consistency proofs still cover
//! the whole tree. Events whose actor is a member under an active legal
//! hold stay in the database too (they are also in their segment); once
//! the hold is released a later pass deletes them.
//!
//! Crash safety: the file is written under a temporary name, fsynced,
//! renamed and its folder fsynced; then one transaction records the
//! segment, keeps the tree hashes and deletes the events. A crash between
//! the two leaves a file no row records: the next pass removes it and
//! writes the segment again (the same range gives the same name).

use super::evidence::Evidence;
use super::{event_json, SYSTEM_CHAIN};
use crate::crypto::Sha256Stream;
use crate::db::models::{now, to_naive};
use crate::db::{self, store, DbConn, DbUrl};
pub use crate::domain::segment::{parse_segment_name, segment_name};
use crate::domain::tenant::AuditRetention;
use crate::error::{AppError, AppResult, ErrorCode};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most events in one segment (a pass writes as many as it needs). Its
/// transaction holds SQLite's write lock, which every request's audit event
/// waits on: 10,000 events took 82 ms to record (debug build, this repo's
/// dev machine), where 100,000 would near `KEYWARD_DB_WAIT_MS`'s default.
pub const MAX_SEGMENT_EVENTS: i64 = 10_000;
const PAGE: i64 = 1000;

/// A segment to write: the chain's events `first..=last`, proven against `checkpoint`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub chain_id: String,
    pub first: i64,
    pub last: i64,
    pub checkpoint: store::CheckpointRow,
}

impl Plan {
    pub fn file_name(&self) -> String {
        segment_name(self.first, self.last)
    }
}

/// A segment written to disk, not yet recorded.
#[derive(Debug, Clone)]
pub struct Written {
    pub plan: Plan,
    pub sha256: String,
    pub event_count: i64,
    pub last_hash: String,
}

/// One segment a pass archived.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub chain_id: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub file: String,
    pub events: i64,
    pub checkpoint_size: i64,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub segments: Vec<Segment>,
    /// Events deleted from the database (archived, and not held).
    pub events_deleted: u64,
    /// Chains a pass could not archive, and why (the others went on).
    pub failed: Vec<Failed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub chain_id: String,
    pub error: String,
}

/// The last seq of a chain's archived prefix (0: nothing archived): events
/// through it are in archive segments, not the database (held ones excepted).
pub fn archived_through(conn: &mut DbConn, chain_id: &str) -> AppResult<i64> {
    Ok(store::last_archive(conn, chain_id)?.map_or(0, |a| a.last_seq))
}

/// Why a pass cannot archive: no folder for the segments.
pub fn no_archive_dir(tenant_id: &str) -> AppError {
    AppError::new(
        ErrorCode::FailedPrecondition,
        format!("tenant {tenant_id} sets audit_retention_days but KEYWARD_ARCHIVE_DIR is not set: nothing is archived"),
    )
}

/// One pass over every tenant with a retention, at `now`. Without an
/// archive folder it does nothing, and fails if a tenant needs one.
pub fn pass(conn: &mut DbConn, dir: Option<&Path>, now: DateTime<Utc>) -> AppResult<PassReport> {
    let mut report = PassReport::default();
    let tenants = store::tenants_with_retention(conn)?;
    let Some(dir) = dir else {
        return match tenants.first() {
            Some((tenant_id, _)) => Err(no_archive_dir(tenant_id)),
            None => Ok(report),
        };
    };
    for (tenant_id, days) in tenants {
        // The system chain is never archived (no tenant's policy covers it).
        if tenant_id == SYSTEM_CHAIN {
            continue;
        }
        let Some(cutoff) = AuditRetention::from_stored(Some(days)).cutoff(now) else { continue };
        if let Err(e) = archive_chain(conn, dir, &tenant_id, to_naive(cutoff), &mut report) {
            tracing::warn!(chain = %tenant_id, error = %e, cause = e.cause_chain().as_deref(), "cannot archive a chain's old events");
            report.failed.push(Failed { chain_id: tenant_id, error: e.to_string() });
        }
    }
    Ok(report)
}

/// Archives one chain's events older than `cutoff`, segment after segment.
fn archive_chain(
    conn: &mut DbConn,
    dir: &Path,
    chain_id: &str,
    cutoff: chrono::NaiveDateTime,
    report: &mut PassReport,
) -> AppResult<()> {
    report.events_deleted += forget_released(conn, chain_id)?;
    while let Some(plan) = plan(conn, chain_id, cutoff)? {
        let Some(written) = write_segment(conn, dir, &plan)? else { break };
        let Some((segment, deleted)) = record(conn, dir, &written)? else { break };
        report.events_deleted += deleted;
        report.segments.push(segment);
    }
    Ok(())
}

/// The next segment of `chain_id`: from after the archived prefix, its
/// events older than `cutoff` with no younger one before them, up to the
/// newest signed checkpoint within what verification proved and no further
/// than every ACTIVE sink of the tenant delivered. None: nothing to archive.
pub fn plan(conn: &mut DbConn, chain_id: &str, cutoff: chrono::NaiveDateTime) -> AppResult<Option<Plan>> {
    let after = store::last_archive(conn, chain_id)?.map_or(0, |a| a.last_seq);
    let Some(verified) = store::find_verified(conn, chain_id)? else { return Ok(None) };
    let Some(checkpoint) = store::checkpoint_at_most(conn, chain_id, verified.tree_size)? else { return Ok(None) };
    // Nothing a live sink has yet to deliver is archived (its tenant's chain is its outbox).
    let undelivered = store::slowest_active_sink(conn, chain_id)?.unwrap_or(i64::MAX);
    let bound = checkpoint.tree_size.min(after + MAX_SEGMENT_EVENTS).min(undelivered);
    if bound <= after {
        return Ok(None);
    }
    let last = match store::first_event_since(conn, chain_id, after, bound, cutoff)? {
        Some(young) => young - 1,
        None => bound,
    };
    Ok((last > after).then(|| Plan { chain_id: chain_id.to_string(), first: after + 1, last, checkpoint }))
}

/// Writes `plan`'s segment file (temporary name, fsync, rename, fsync of
/// the folder), first removing any file of the chain no row records from
/// `plan.first` on (a crash's leftovers). None: the plan is stale (another
/// pass archived the chain since), nothing written.
pub fn write_segment(conn: &mut DbConn, dir: &Path, plan: &Plan) -> AppResult<Option<Written>> {
    use diesel::Connection;
    let chain_dir = dir.join(&plan.chain_id);
    create_private_dir(&chain_dir)?;
    // Under the retention lock, from where the archived prefix ends now: a
    // file another pass wrote and is recording meanwhile is not touched
    // (its pass checks the file under the same lock before it commits).
    let current = conn.transaction::<_, AppError, _>(|conn| {
        store::take_write_lock(conn)?;
        store::lock_retention(conn, &plan.chain_id)?;
        let from = store::last_archive(conn, &plan.chain_id)?.map_or(0, |a| a.last_seq) + 1;
        // Another pass archived this chain since the plan: it is stale.
        Ok(from == plan.first && remove_unrecorded(&chain_dir, from).map(|()| true)?)
    })?;
    if !current {
        return Ok(None);
    }
    let name = plan.file_name();
    let tmp = chain_dir.join(format!("{name}.tmp"));
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?
    };
    let mut out = Hashing { inner: std::io::BufWriter::new(file), sha: Sha256Stream::new() };
    let evidence = Evidence::of_checkpoint(&plan.checkpoint);
    let mut gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
    let (mut expected, mut last_hash, mut count) = (plan.first, String::new(), 0i64);
    while expected <= plan.last {
        let rows = store::events_between(conn, &plan.chain_id, expected, plan.last, PAGE)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            if row.seq != expected {
                return Err(gap(&plan.chain_id, expected));
            }
            let mut line = event_json(row);
            let mut proof = evidence.proof(conn, row, true)?;
            proof.insert("checkpoint".into(), evidence.note().into());
            line.as_object_mut()
                .expect("an event is an object")
                .insert(super::evidence::PROOF_KEY.into(), proof.into());
            serde_json::to_writer(&mut gz, &line).map_err(|e| io(e.into()))?;
            gz.write_all(b"\n").map_err(io)?;
            last_hash = row.hash.to_string();
            expected += 1;
            count += 1;
        }
    }
    if expected != plan.last + 1 {
        return Err(gap(&plan.chain_id, expected));
    }
    gz.finish().map_err(io)?;
    out.inner.flush().map_err(io)?;
    let sha256 = std::mem::take(&mut out.sha).finish_hex();
    out.inner.get_ref().sync_all().map_err(io)?;
    drop(out);
    std::fs::rename(&tmp, chain_dir.join(&name)).map_err(io)?;
    std::fs::File::open(&chain_dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(Some(Written { plan: plan.clone(), sha256, event_count: count, last_hash }))
}

/// Records a written segment and moves its events out, in one transaction:
/// None if another pass recorded the chain's next segment meanwhile, or the
/// file is no longer the one written.
pub fn record(conn: &mut DbConn, dir: &Path, w: &Written) -> AppResult<Option<(Segment, u64)>> {
    use diesel::Connection;
    let plan = &w.plan;
    let recorded = conn.transaction::<_, AppError, _>(|conn| {
        store::take_write_lock(conn)?;
        store::lock_retention(conn, &plan.chain_id)?;
        if store::last_archive(conn, &plan.chain_id)?.map_or(0, |a| a.last_seq) != plan.first - 1 {
            return Ok(None);
        }
        // The file must still be the one written (another pass may have
        // replaced or removed it): never delete events whose file is not there.
        match std::fs::read(dir.join(&plan.chain_id).join(plan.file_name())) {
            Ok(bytes) if crate::crypto::sha256_hex(&bytes) == w.sha256 => {}
            _ => return Ok(None),
        }
        store::insert_archive(
            conn,
            &store::ArchiveRow {
                chain_id: plan.chain_id.clone(),
                first_seq: plan.first,
                last_seq: plan.last,
                file_name: plan.file_name(),
                sha256: w.sha256.clone(),
                event_count: w.event_count,
                last_hash: w.last_hash.clone(),
                checkpoint_size: plan.checkpoint.tree_size,
                created_at: to_naive(now()),
            },
        )?;
        store::keep_tree_nodes(conn, &plan.chain_id, plan.first, plan.last)?;
        let held = store::held_member_ids(conn, &plan.chain_id)?;
        Ok(Some(store::delete_archived_events(conn, &plan.chain_id, plan.last, &held)? as u64))
    })?;
    // Not recorded: the file stays until the next pass removes it (under the lock).
    let Some(deleted) = recorded else { return Ok(None) };
    tracing::info!(chain = %plan.chain_id, first_seq = plan.first, last_seq = plan.last, deleted, "archived audit events");
    let segment = Segment {
        chain_id: plan.chain_id.clone(),
        first_seq: plan.first,
        last_seq: plan.last,
        file: dir.join(&plan.chain_id).join(plan.file_name()).display().to_string(),
        events: w.event_count,
        checkpoint_size: plan.checkpoint.tree_size,
    };
    Ok(Some((segment, deleted)))
}

/// Deletes the archived events a released hold no longer keeps.
fn forget_released(conn: &mut DbConn, chain_id: &str) -> AppResult<u64> {
    use diesel::Connection;
    let Some(through) = store::last_archive(conn, chain_id)?.map(|a| a.last_seq) else { return Ok(0) };
    conn.transaction::<_, AppError, _>(|conn| {
        store::take_write_lock(conn)?;
        store::lock_retention(conn, chain_id)?;
        let held = store::held_member_ids(conn, chain_id)?;
        Ok(store::delete_archived_events(conn, chain_id, through, &held)? as u64)
    })
}

/// Removes files (and temporary ones) whose range starts at or after
/// `from`: no row records them (recorded segments end before it).
fn remove_unrecorded(chain_dir: &Path, from: i64) -> AppResult<()> {
    for entry in std::fs::read_dir(chain_dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let segment = name.strip_suffix(".tmp").unwrap_or(&name);
        if parse_segment_name(segment).is_some_and(|(first, _)| first >= from) {
            tracing::info!(file = %name, "removing an unrecorded archive segment (a pass that did not finish)");
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    Ok(())
}

fn create_private_dir(path: &Path) -> AppResult<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io)
}

fn gap(chain_id: &str, seq: i64) -> AppError {
    AppError::internal()
        .caused_by(std::io::Error::other(format!("chain {chain_id}: event seq {seq} is missing; nothing archived")))
}

fn io(e: std::io::Error) -> AppError {
    AppError::new(ErrorCode::Unavailable, "cannot write an archive segment").caused_by(e)
}

/// Hashes what it writes.
struct Hashing<W: Write> {
    inner: W,
    sha: Sha256Stream,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The retention job's thread; dropping the handle stops it.
pub struct RetentionJob;

impl RetentionJob {
    /// Starts the thread: a pass every `every`, on its own connection.
    pub fn start(url: DbUrl, options: db::ConnOptions, dir: Option<PathBuf>, every: Duration) -> crate::threads::Stop {
        let (stop, rounds) = crate::threads::stop_handle();
        std::thread::Builder::new()
            .name("audit-retention".into())
            .spawn(move || {
                let mut conn: Option<DbConn> = None;
                let mut told_no_dir = false;
                while rounds.next(every) {
                    if conn.is_none() {
                        conn = db::establish_with(&url, options).ok();
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    match pass(c, dir.as_deref(), Utc::now()) {
                        // Each failed chain was logged; the next round tries again.
                        Ok(_) => {}
                        Err(e) if e.code == ErrorCode::FailedPrecondition => {
                            if !told_no_dir {
                                tracing::warn!(error = %e, "audit retention does nothing");
                                told_no_dir = true;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "audit retention pass failed; retrying");
                            conn = None;
                        }
                    }
                }
                tracing::debug!("audit retention stopped");
            })
            .expect("spawn the audit retention thread");
        stop
    }
}
