//! Building export files: written under a temporary name, fsynced, then
//! renamed into place, so a reader never sees a partial file.

use crate::audit::evidence::{Evidence, ARCHIVE_EVENTS, ARCHIVE_MANIFEST, PROOF_KEY};
use crate::audit::{event_json, ocsf};
use crate::crypto::{self, CheckpointSigner, Sha256Stream};
use crate::db::models::{now, AuditRow, Export};
use crate::db::store::{self, EventFilter};
use crate::db::DbConn;
use crate::domain::event::EventFormat;
use crate::domain::exports::{tenant_dir, ExportKind, ExportScope};
use crate::domain::redact;
use crate::error::AppError;
use crate::service::{assets::asset_view, team::team_user_view};
use serde_json::{json, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// Events read per query while a file is written.
const BATCH: i64 = 1000;

/// What the manifest says about file bodies.
pub const FILES_NOTE: &str = "keyward stores no file bodies: assets.ndjson lists the member's shared assets \
(metadata only) whether or not include_files was asked; fetch the bodies from the platform that stores them";

/// A finished file.
#[derive(Debug, Clone)]
pub struct Built {
    pub file_name: String,
    pub size: i64,
    pub sha256: String,
}

/// Why a build stopped.
#[derive(Debug)]
pub enum BuildError {
    /// The job cannot be built (bad row); retrying will not help.
    Invalid(String),
    /// A database or file-system failure; another attempt may succeed.
    Transient(String),
    /// The run's lease was taken over by another runner; its file is not wanted.
    LeaseLost,
}

impl BuildError {
    /// What the job's `error` field says (no internal detail beyond the kind of failure).
    pub fn message(&self) -> String {
        match self {
            BuildError::Invalid(m) | BuildError::Transient(m) => m.clone(),
            BuildError::LeaseLost => "the run lost its lease to another runner".into(),
        }
    }
}

impl From<AppError> for BuildError {
    fn from(e: AppError) -> Self {
        BuildError::Transient(format!("database: {}", e.code.as_str()))
    }
}

impl From<io::Error> for BuildError {
    fn from(e: io::Error) -> Self {
        tracing::warn!(error = %e, "export file could not be written");
        BuildError::Transient(format!("the export file could not be written ({})", e.kind()))
    }
}

impl From<zip::result::ZipError> for BuildError {
    fn from(e: zip::result::ZipError) -> Self {
        tracing::warn!(error = %e, "export archive could not be written");
        BuildError::Transient("the export archive could not be written".into())
    }
}

/// Called between batches; `Err` stops the build (the runner renews its lease there).
pub type Heartbeat<'a> = dyn FnMut(&mut DbConn) -> Result<(), BuildError> + 'a;

/// The file name of a run: the attempt is part of it, so a run that lost its
/// lease can never overwrite the file of the run that took over.
pub fn file_name(job: &Export, kind: ExportKind) -> String {
    format!("{}-{}.{}", job.uid, job.attempts, kind.extension())
}

/// Builds the job's file and returns its name, size and SHA-256. The file
/// holds the tenant's events up to a checkpoint signed now with `signer`,
/// each with its proof against it (see `audit::evidence`).
pub fn build(
    conn: &mut DbConn,
    export_dir: &Path,
    job: &Export,
    signer: &CheckpointSigner,
    heartbeat: &mut Heartbeat<'_>,
) -> Result<Built, BuildError> {
    let kind = job.kind;
    let name = file_name(job, kind);
    let dir = tenant_dir(export_dir, &job.tenant_id);
    let evidence = Evidence::sign_now(conn, signer, &job.tenant_id)?;
    let path = write_atomically(&dir, &name, |file| match kind {
        ExportKind::Ediscovery => write_ediscovery(conn, job, &evidence, file, heartbeat),
        ExportKind::Compliance => write_compliance(conn, job, &evidence, file, heartbeat),
    })?;
    let (size, sha256) = hash_file(&path)?;
    Ok(Built { file_name: name, size: i64::try_from(size).unwrap_or(i64::MAX), sha256 })
}

/// Writes `<dir>/<name>` through a temporary file: fill, fsync, rename, fsync the folder.
fn write_atomically(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut File) -> Result<(), BuildError>,
) -> Result<PathBuf, BuildError> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", crypto::hex(&crypto::random_bytes::<8>())));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    let written = fill(&mut file).and_then(|()| file.sync_all().map_err(BuildError::from));
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let dest = dir.join(name);
    if let Err(e) = fs::rename(&tmp, &dest) {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(dest)
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256Stream::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hasher.finish_hex()));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
}

fn line(out: &mut impl Write, v: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

/// An event as an export shows it: Tier 2 `payload` only when asked (and
/// allowed), and its proof against the file's checkpoint, in keyward's JSON or
/// OCSF (which keeps keyward's view whole, proof included). The proof holds
/// the event's leaf (its canonical bytes) only where the file shows all the
/// leaf holds: a withheld payload stays withheld, its leaf is given as a hash.
fn exported_event(
    conn: &mut DbConn,
    evidence: &Evidence,
    row: &AuditRow,
    with_payload: bool,
    checkpoint_in_line: bool,
    format: EventFormat,
) -> Result<Value, BuildError> {
    let mut v = event_json(row);
    let mut leaf_shown = row.payload.is_none();
    if let Value::Object(m) = &mut v {
        if with_payload {
            // Stored payloads are redacted already; redact again so no export can carry a secret.
            if let Some(p) = m.get("payload").cloned() {
                let redacted = redact::redact(&p);
                leaf_shown = redacted == p;
                m.insert("payload".into(), redacted);
            }
        } else {
            m.remove("payload");
        }
        let mut proof = evidence.proof(conn, row, leaf_shown)?;
        if checkpoint_in_line {
            proof.insert("checkpoint".into(), Value::String(evidence.note().to_string()));
        }
        m.insert(PROOF_KEY.into(), Value::Object(proof));
    }
    Ok(match format {
        EventFormat::Keyward => v,
        EventFormat::Ocsf => ocsf::event(row, v),
    })
}

/// Streams a chain's matching events up to the evidence's checkpoint, in
/// sequence order, `BATCH` at a time. Returns how many.
fn each_event(
    conn: &mut DbConn,
    chain_id: &str,
    filter: &EventFilter,
    evidence: &Evidence,
    heartbeat: &mut Heartbeat<'_>,
    mut f: impl FnMut(&mut DbConn, &AuditRow) -> Result<(), BuildError>,
) -> Result<u64, BuildError> {
    let (mut after, mut count) = (0i64, 0u64);
    let last_proven = evidence.tree_size() as i64;
    loop {
        heartbeat(conn)?;
        let rows = store::filtered_events(conn, chain_id, filter, after, BATCH)?;
        for row in rows.iter().take_while(|r| r.seq <= last_proven) {
            f(conn, row)?;
            count += 1;
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == BATCH && last.seq < last_proven => after = last.seq,
            _ => return Ok(count),
        }
    }
}

fn write_compliance(
    conn: &mut DbConn,
    job: &Export,
    evidence: &Evidence,
    file: &mut File,
    heartbeat: &mut Heartbeat<'_>,
) -> Result<(), BuildError> {
    // Tier 2 is checked again at run time: a withdrawn agreement applies at once.
    let tier2 = job.include_payload && store::find_tenant(conn, &job.tenant_id)?.is_some_and(|t| t.siem_tier2_enabled);
    let filter = EventFilter { since: job.start_time, until: job.end_time, ..EventFilter::default() };
    let mut out = BufWriter::new(file);
    // Every line carries the checkpoint: a SIEM may keep lines apart, each verifies alone.
    each_event(conn, &job.tenant_id, &filter, evidence, heartbeat, |conn, row| {
        Ok(line(&mut out, &exported_event(conn, evidence, row, tier2, true, job.format)?)?)
    })?;
    out.flush()?;
    Ok(())
}

fn write_ediscovery(
    conn: &mut DbConn,
    job: &Export,
    evidence: &Evidence,
    file: &mut File,
    heartbeat: &mut Heartbeat<'_>,
) -> Result<(), BuildError> {
    let member_id = job.member_id.clone().ok_or_else(|| BuildError::Invalid("the job names no member".into()))?;
    let member = store::find_member(conn, &job.tenant_id, &member_id)?
        .ok_or_else(|| BuildError::Invalid("the member no longer exists".into()))?;
    let full = job.scope == Some(ExportScope::Full);
    let assets = store::assets_of_owner(conn, &job.tenant_id, &member_id)?;

    let options =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).unix_permissions(0o600);
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));

    zip.start_file("member.ndjson", options)?;
    line(&mut zip, &team_user_view(&member))?;

    zip.start_file("assets.ndjson", options)?;
    for a in &assets {
        line(&mut zip, &asset_view(a))?;
    }

    zip.start_file(ARCHIVE_EVENTS, options)?;
    let filter = EventFilter {
        actor_id: Some(member_id.clone()),
        since: job.start_time,
        until: job.end_time,
        ..EventFilter::default()
    };
    let events = each_event(conn, &job.tenant_id, &filter, evidence, heartbeat, |conn, row| {
        Ok(line(&mut zip, &exported_event(conn, evidence, row, full, false, EventFormat::Keyward)?)?)
    })?;

    zip.start_file(ARCHIVE_MANIFEST, options)?;
    let manifest = json!({
        "uid": job.uid,
        "tenant_id": job.tenant_id,
        "member_id": member_id,
        "member_status": member.status,
        "scope": job.scope,
        "include_files": job.include_files,
        "start_time": job.start_time.map(crate::audit::format_time),
        "end_time": job.end_time.map(crate::audit::format_time),
        "reason": job.reason,
        "generated_at": crate::audit::format_time(crate::db::models::to_naive(now())),
        "files": ["member.ndjson", "assets.ndjson", "events.ndjson"],
        "counts": {"member": 1, "assets": assets.len(), "events": events},
        "event_payloads": if full { "included (redacted)" } else { "left out (metadata scope)" },
        "files_note": FILES_NOTE,
        // The signed checkpoint every event's proof in events.ndjson leads to.
        "checkpoint": evidence.note(),
    });
    serde_json::to_writer_pretty(&mut zip, &manifest).map_err(io::Error::from)?;

    let mut inner = zip.finish()?;
    inner.flush()?;
    Ok(())
}
