//! Evidence that verifies offline: export files carry a signed checkpoint of
//! the tenant's tree and, for every event they hold, its leaf and the RFC
//! 9162 inclusion proof tying it to that checkpoint.
//!
//! Each exported event line gets a `proof` object:
//! `{leaf_index, tree_size, inclusion: [base64 hash, …], leaf: base64}`,
//! where `leaf` is the event's canonical bytes (what the tree hashed). The
//! shown fields are checked against the leaf, so neither can be altered
//! alone. Where the leaf would show what the file withholds (a Tier 2
//! `payload` left out), the line has `leaf_hash` instead: its inclusion is
//! proven, its shown fields are not bound (the summary counts them).
//!
//! The checkpoint travels in each line's `proof.checkpoint` (SIEM compliance
//! NDJSON: every line stands alone) or once in `manifest.json`'s
//! `checkpoint` (e-Discovery ZIP). `verify` needs the file and the verifier
//! key, nothing else: no database, no network.

use super::checkpoint;
use super::tree::{self, Hash};
use super::CANONICAL_FIELDS;
use crate::crypto::{self, CheckpointSigner};
use crate::db::models::AuditRow;
use crate::db::{store, DbConn};
use crate::error::AppResult;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::io::Read;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key of the proof object in an exported event.
pub const PROOF_KEY: &str = "proof";
/// The e-Discovery archive's entries that carry evidence.
pub const ARCHIVE_EVENTS: &str = "events.ndjson";
pub const ARCHIVE_MANIFEST: &str = "manifest.json";

// ---------------------------------------------------------------- writing

/// A signed checkpoint of a chain, and the proofs of its events against it.
pub struct Evidence {
    chain_id: String,
    tree_size: u64,
    note: String,
}

impl Evidence {
    /// Signs (and stores) a checkpoint of `chain_id`'s tree as it is now:
    /// every event up to `tree_size()` can be proven against it.
    pub fn sign_now(conn: &mut DbConn, signer: &CheckpointSigner, chain_id: &str) -> AppResult<Evidence> {
        let size = store::load_chain_head(conn, chain_id)?.map_or(0, |(seq, _)| seq as u64);
        let row = checkpoint::sign(conn, signer, chain_id, size)?;
        Ok(Evidence { chain_id: chain_id.to_string(), tree_size: row.tree_size as u64, note: row.note })
    }

    /// Proofs against a checkpoint already signed and stored.
    pub fn of_checkpoint(row: &store::CheckpointRow) -> Evidence {
        Evidence { chain_id: row.chain_id.clone(), tree_size: row.tree_size as u64, note: row.note.clone() }
    }

    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    /// The signed checkpoint note.
    pub fn note(&self) -> &str {
        &self.note
    }

    /// The proof object of `row` (an event of the chain within the checkpoint).
    /// `leaf_shown`: whether the file may carry the event's canonical bytes
    /// (it shows everything they hold); otherwise only their hash goes in.
    pub fn proof(&self, conn: &mut DbConn, row: &AuditRow, leaf_shown: bool) -> AppResult<Map<String, Value>> {
        let leaf_index = (row.seq - 1) as u64;
        let inclusion = tree::inclusion_proof(conn, &self.chain_id, leaf_index, self.tree_size)?;
        let leaf = super::canonical(row);
        let mut proof = Map::new();
        proof.insert("leaf_index".into(), json!(leaf_index));
        proof.insert("tree_size".into(), json!(self.tree_size));
        proof.insert("inclusion".into(), json!(inclusion.iter().map(Hash::to_string).collect::<Vec<_>>()));
        if leaf_shown {
            proof.insert("leaf".into(), json!(B64.encode(&leaf)));
        } else {
            proof.insert("leaf_hash".into(), json!(tlog_tiles::record_hash(&leaf).to_string()));
        }
        Ok(proof)
    }
}

// ---------------------------------------------------------------- verifying

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub valid: bool,
    /// `zip` (e-Discovery archive), `ndjson` (SIEM compliance export) or
    /// `segment` (an archive segment retention wrote: gzip NDJSON).
    pub kind: &'static str,
    pub events: u64,
    /// A segment's first and last seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seqs: Option<[u64; 2]>,
    pub checkpoint: Option<CheckpointSummary>,
    /// Events proven in the tree whose shown fields are not bound to it (their leaf is withheld).
    pub fields_unbound: u64,
    pub problems: Vec<String>,
}

impl Report {
    /// A segment's events must be the range its file name gives
    /// (`<first>-<last>.ndjson.gz`): a line dropped at either end shows.
    pub fn check_segment_name(&mut self, file_name: &str) {
        let Some((first, last)) = crate::domain::segment::parse_segment_name(file_name) else { return };
        if self.kind != "segment" {
            return;
        }
        let named = [first.max(0) as u64, last.max(0) as u64];
        if self.seqs != Some(named) {
            let held = self.seqs.map_or("no events".to_string(), |[a, b]| format!("seqs {a}..{b}"));
            self.problems.push(format!("the file is named for seqs {first}..{last} but holds {held}"));
            self.valid = false;
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CheckpointSummary {
    pub origin: String,
    pub tree_size: u64,
}

/// An opened checkpoint: the tree every proof must lead to.
struct Opened {
    note: String,
    origin: String,
    size: u64,
    root: Hash,
}

fn open_checkpoint(note: &str, verifier_key: &str) -> Result<Opened, String> {
    let body = crypto::open_note(note.as_bytes(), verifier_key).map_err(|e| format!("the checkpoint: {e}"))?;
    let c = tlog_tiles::Checkpoint::from_bytes(&body)
        .map_err(|e| format!("the checkpoint: not a tlog checkpoint body ({e})"))?;
    Ok(Opened { note: note.to_string(), origin: c.origin().to_string(), size: c.size(), root: *c.hash() })
}

/// The most a gzip archive segment may inflate to.
const MAX_SEGMENT_BYTES: u64 = 16 << 30;

/// Checks an export file (ZIP archive or NDJSON) or an archive segment
/// (gzip NDJSON, see `audit::retention` and `domain::segment`) against `verifier_key`.
pub fn verify(file: &[u8], verifier_key: &str) -> Report {
    let mut check = Check::default();
    let kind = if file.starts_with(b"PK") {
        check.archive(file, verifier_key);
        "zip"
    } else if file.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        let inflated = flate2::read::GzDecoder::new(file).take(MAX_SEGMENT_BYTES).read_to_end(&mut text);
        match inflated {
            Ok(_) => {
                check.ndjson(&text, verifier_key);
                check.segment(&text);
            }
            Err(e) => check.problem(format!("the file is not readable gzip ({e})")),
        }
        "segment"
    } else {
        check.ndjson(file, verifier_key);
        "ndjson"
    };
    let seqs = match (kind, check.seen.iter().min(), check.seen.iter().max()) {
        ("segment", Some(lo), Some(hi)) => Some([lo + 1, hi + 1]),
        _ => None,
    };
    Report {
        valid: check.problems.is_empty(),
        kind,
        events: check.events,
        seqs,
        checkpoint: check.opened.map(|c| CheckpointSummary { origin: c.origin, tree_size: c.size }),
        fields_unbound: check.unbound,
        problems: check.problems,
    }
}

#[derive(Default)]
struct Check {
    opened: Option<Opened>,
    events: u64,
    unbound: u64,
    problems: Vec<String>,
    seen: HashSet<u64>,
}

impl Check {
    fn problem(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }

    fn archive(&mut self, file: &[u8], verifier_key: &str) {
        let mut zip = match zip::ZipArchive::new(std::io::Cursor::new(file)) {
            Ok(z) => z,
            Err(e) => return self.problem(format!("the file is not a readable ZIP archive ({e})")),
        };
        let mut entry = |name: &str| -> Result<String, String> {
            let mut f = zip.by_name(name).map_err(|_| format!("the archive has no {name}"))?;
            let mut text = String::new();
            f.read_to_string(&mut text).map_err(|e| format!("{name} cannot be read as text ({e})"))?;
            Ok(text)
        };
        let (manifest, events) = match (entry(ARCHIVE_MANIFEST), entry(ARCHIVE_EVENTS)) {
            (Ok(m), Ok(e)) => (m, e),
            (m, e) => {
                m.err().into_iter().chain(e.err()).for_each(|p| self.problem(p));
                return;
            }
        };
        let manifest: Value = match serde_json::from_str(&manifest) {
            Ok(v) => v,
            Err(e) => return self.problem(format!("{ARCHIVE_MANIFEST} is not JSON ({e})")),
        };
        let Some(note) = manifest.get("checkpoint").and_then(Value::as_str) else {
            return self.problem(format!("{ARCHIVE_MANIFEST} holds no checkpoint"));
        };
        match open_checkpoint(note, verifier_key) {
            Ok(c) => self.opened = Some(c),
            Err(p) => return self.problem(p),
        }
        if let Some(p) = manifest.get("tenant_id").and_then(Value::as_str).and_then(|t| self.other_chain(t)) {
            self.problem(format!("{ARCHIVE_MANIFEST}: {p}"));
        }
        for (i, line) in events.lines().enumerate() {
            self.line(line, &format!("{ARCHIVE_EVENTS} line {}", i + 1), false);
        }
        let counted = manifest.pointer("/counts/events").and_then(Value::as_u64);
        if counted != Some(self.events) {
            self.problem(format!(
                "{ARCHIVE_MANIFEST} counts {} events, {ARCHIVE_EVENTS} holds {}",
                counted.map_or("no".to_string(), |n| n.to_string()),
                self.events
            ));
        }
    }

    fn ndjson(&mut self, file: &[u8], verifier_key: &str) {
        let Ok(text) = std::str::from_utf8(file) else {
            return self.problem("the file is neither a ZIP archive nor UTF-8 NDJSON");
        };
        let mut notes = text.lines().filter_map(|l| {
            let v = keyward_event(serde_json::from_str(l).ok()?).ok()?;
            v.get(PROOF_KEY)?.get("checkpoint")?.as_str().map(str::to_string)
        });
        // Every line carries the same checkpoint; the first one opened is the one all must match.
        match notes.next() {
            Some(note) => match open_checkpoint(&note, verifier_key) {
                Ok(c) => self.opened = Some(c),
                Err(p) => return self.problem(p),
            },
            None if text.trim().is_empty() => return,
            None => return self.problem("no line carries a checkpoint"),
        }
        for (i, line) in text.lines().enumerate() {
            self.line(line, &format!("line {}", i + 1), true);
        }
    }

    /// An archive segment holds a contiguous run of the chain: no leaf
    /// missing between its first and last, each event chained to the one before.
    fn segment(&mut self, text: &[u8]) {
        if let (Some(lo), Some(hi)) = (self.seen.iter().min(), self.seen.iter().max()) {
            if hi - lo + 1 != self.seen.len() as u64 {
                let missing = (hi - lo + 1) - self.seen.len() as u64;
                self.problem(format!("the segment's events from seq {} to {} miss {missing}", lo + 1, hi + 1));
            }
        }
        let lines = String::from_utf8_lossy(text);
        let mut previous: Option<String> = None;
        for (i, line) in lines.lines().enumerate() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            if let (Some(before), Some(prev)) = (&previous, field("prev_hash")) {
                if *before != prev {
                    self.problem(format!("line {}: its prev_hash is not the previous line's hash", i + 1));
                }
            }
            previous = field("hash");
        }
    }

    /// Why `chain_id` is not the log the checkpoint's origin names, if it is not.
    fn other_chain(&self, chain_id: &str) -> Option<String> {
        let origin = &self.opened.as_ref()?.origin;
        (!origin.ends_with(&format!("/audit/{chain_id}")))
            .then(|| format!("chain {chain_id} is not the checkpoint's log ({origin})"))
    }

    /// One exported event (keyward's JSON, or OCSF around it): its proof, and
    /// its shown fields against its leaf.
    fn line(&mut self, line: &str, at: &str, checkpoint_in_line: bool) {
        self.events += 1;
        let event: Map<String, Value> = match serde_json::from_str(line).map(keyward_event) {
            Ok(Ok(Value::Object(m))) => m,
            Ok(Err(p)) => return self.problem(format!("{at}: {p}")),
            _ => return self.problem(format!("{at}: not a JSON object")),
        };
        let name = match (event.get("event_id").and_then(Value::as_str), event.get("seq")) {
            (Some(id), Some(seq)) => format!("event {id} (seq {seq}, {at})"),
            (Some(id), None) => format!("event {id} ({at})"),
            _ => format!("the event at {at}"),
        };
        if let Err(p) = self.event(&event, checkpoint_in_line) {
            self.problem(format!("{name}: {p}"));
        }
    }

    fn event(&mut self, event: &Map<String, Value>, checkpoint_in_line: bool) -> Result<(), String> {
        let proof = event.get(PROOF_KEY).and_then(Value::as_object).ok_or("no proof")?;
        let opened = self.opened.as_ref().expect("opened first");
        if checkpoint_in_line && proof.get("checkpoint").and_then(Value::as_str) != Some(opened.note.as_str()) {
            return Err("its checkpoint is not the file's checkpoint".into());
        }
        let (size, root) = (opened.size, opened.root);
        let number = |k: &str| proof.get(k).and_then(Value::as_u64).ok_or(format!("proof.{k} is not a number"));
        let (leaf_index, tree_size) = (number("leaf_index")?, number("tree_size")?);
        if tree_size != size {
            return Err(format!("its proof is for tree size {tree_size}, the checkpoint's is {size}"));
        }
        if event.get("seq").is_some_and(|seq| seq.as_u64() != Some(leaf_index + 1)) {
            return Err(format!("its seq is not leaf {leaf_index}'s"));
        }
        if !self.seen.insert(leaf_index) {
            return Err(format!("leaf {leaf_index} appears twice"));
        }
        let hash = |v: &Value| v.as_str().and_then(|s| Hash::parse_hash(s).ok());
        let inclusion: Vec<Hash> = proof
            .get("inclusion")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(hash).collect())
            .ok_or("proof.inclusion is not a list of base64 hashes")?;
        let leaf_hash = match (proof.get("leaf"), proof.get("leaf_hash")) {
            (Some(leaf), _) => {
                let bytes = leaf.as_str().and_then(|s| B64.decode(s).ok()).ok_or("proof.leaf is not base64")?;
                self.shown_fields_match(event, &bytes, leaf_index)?;
                tlog_tiles::record_hash(&bytes)
            }
            (None, Some(h)) => {
                self.unbound += 1;
                hash(h).ok_or("proof.leaf_hash is not a base64 hash")?
            }
            (None, None) => return Err("its proof has neither leaf nor leaf_hash".into()),
        };
        tlog_tiles::check_record(&inclusion, size, root, leaf_index, leaf_hash)
            .map_err(|_| format!("its leaf is not at index {leaf_index} of the checkpoint's tree"))
    }

    /// Every shown field must be what the leaf (the canonical column array) holds.
    fn shown_fields_match(&self, event: &Map<String, Value>, leaf: &[u8], leaf_index: u64) -> Result<(), String> {
        let Ok(Value::Array(values)) = serde_json::from_slice::<Value>(leaf) else {
            return Err("proof.leaf is not a canonical event (a JSON array)".into());
        };
        if values.len() > CANONICAL_FIELDS.len() {
            return Err("proof.leaf holds more fields than an event has".into());
        }
        let columns: Map<String, Value> =
            CANONICAL_FIELDS.iter().map(|c| c.to_string()).zip(values.iter().cloned()).collect();
        let column = |c: &str| columns.get(c).ok_or(format!("proof.leaf has no {c}"));
        let text = |v: &Value| v.as_str().map(|s| serde_json::from_str::<Value>(s).unwrap_or(Value::Null));
        let actor = |k: &str| event.get("actor").and_then(|a| a.get(k));
        let mut differ = Vec::new();
        for c in CANONICAL_FIELDS.iter().take(values.len()) {
            let stored = column(c)?;
            let (name, shown, leaf) = match *c {
                // Not shown: named by the checkpoint's origin instead.
                "chain_id" => continue,
                "actor_type" => ("actor.type", actor("type"), Some(stored.clone())),
                "actor_id" => ("actor.id", actor("id"), Some(stored.clone())),
                // Stored as JSON text, shown parsed; a payload the file withholds has no leaf.
                "metadata" => ("metadata", event.get("metadata"), text(stored)),
                "payload" if stored.is_null() && event.get("payload").is_none() => continue,
                "payload" => ("payload", event.get("payload"), text(stored).or(Some(Value::Null))),
                other => (other, event.get(other), Some(stored.clone())),
            };
            if shown != leaf.as_ref() {
                differ.push(name.to_string());
            }
        }
        // The leaf index the event is shown with is its place in the leaf: seq - 1.
        if let Some(shown) = event.get("leaf_index") {
            let place = column("seq")?.as_i64().map(|seq| seq - 1);
            if shown.as_i64() != place {
                differ.push("leaf_index".to_string());
            }
        }
        // Shown otherwise (under `actor`) or not at all: a key by these names would go unchecked.
        let unshown = ["chain_id", "actor_type", "actor_id"];
        let known = ["actor", "prev_hash", "hash", "leaf_index", PROOF_KEY];
        for key in event.keys() {
            if !known.contains(&key.as_str()) && (unshown.contains(&key.as_str()) || !columns.contains_key(key)) {
                differ.push(format!("{key} (not an event field)"));
            }
        }
        if !differ.is_empty() {
            return Err(format!("shown fields differ from its leaf: {}", differ.join(", ")));
        }
        if column("seq")?.as_u64() != Some(leaf_index + 1) {
            return Err(format!("its leaf is seq {}, not leaf {leaf_index}'s", column("seq")?));
        }
        let chain_id = column("chain_id")?.as_str().ok_or("proof.leaf's chain_id is not text")?;
        if let Some(p) = self.other_chain(chain_id) {
            return Err(format!("its leaf: {p}"));
        }
        // The chain hash, where shown, binds the event to the one before it too.
        if let (Some(Value::String(prev)), Some(Value::String(h))) = (event.get("prev_hash"), event.get("hash")) {
            let prev = crypto::ChainHash::parse(prev).ok_or("its prev_hash is not a hash")?;
            if crypto::chain_hash(&prev, leaf) != *h.as_str() {
                return Err("its hash is not SHA-256(prev_hash ‖ leaf)".into());
            }
        }
        Ok(())
    }
}

/// keyward's own event in an exported line: the line itself, or, in an OCSF
/// line, `unmapped.keyward.event`, whose identity the OCSF fields must repeat
/// (`metadata.uid` the event id, `metadata.sequence` its seq). The other OCSF
/// fields are derived from it and not proven.
fn keyward_event(line: Value) -> Result<Value, String> {
    let Some(inner) = line.pointer("/unmapped/keyward/event") else {
        return Ok(line);
    };
    let same = |outer: &str, field: &str| line.pointer(outer) == inner.get(field);
    if !same("/metadata/uid", "event_id") || !same("/metadata/sequence", "seq") {
        return Err("its OCSF metadata.uid and metadata.sequence are not its event's id and seq".into());
    }
    Ok(inner.clone())
}
