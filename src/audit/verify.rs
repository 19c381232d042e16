//! Verification of the audit log.
//!
//! The source of truth is each chain's Merkle tree and the signed
//! checkpoints of it: `verify_against_checkpoint` recomputes a chain's tree
//! from its events and holds it against a checkpoint obtained earlier (the
//! insider who rewrites the log, its tree and its chain hashes consistently
//! cannot re-sign the checkpoint), and `verify_from` does the same from a
//! size already verified, reading only the events since. `verify_window` is
//! the bounded step the HTTP API takes. The hash-chain walk (`verify_chain`)
//! stays: it names edits that recompute nothing.

use super::tree::{Frontier, Hash};
use super::{canonical, write_canonical};
use crate::crypto::{chain_hash, open_note, ChainHash, GENESIS_HASH};
use crate::db::models::{now, to_naive, AuditRow, AuditRowRef};
use crate::db::{store, DbConn};
use crate::error::AppResult;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use tlog_tiles::{record_hash, split_stored_hash_index};

const PAGE: i64 = 1000;
const MAX_PROBLEMS: usize = 100;
/// Events whose leaves differ from the stored ones that are kept to tell
/// apart moved, inserted and altered events (each is tried at the others'
/// positions: quadratic, so bounded).
const MAX_MISMATCHES: usize = 256;

// ------------------------------------------------------------------ the hash chain

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Problem {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub chain_id: String,
    pub valid: bool,
    pub events_checked: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub problems: Vec<Problem>,
}

/// The hash chain's checks over consecutive events, from a known hash.
struct ChainWalk {
    expected_seq: i64,
    prev_hash: ChainHash,
    checked: i64,
    problems: Vec<Problem>,
}

impl ChainWalk {
    /// From the event after `after_seq`, whose prev_hash should be `prev_hash`
    /// (hex; a damaged one matches no event, so the walk reports it).
    fn new(after_seq: i64, prev_hash: &str) -> ChainWalk {
        let prev_hash = ChainHash::parse(prev_hash).unwrap_or(ChainHash::GENESIS);
        ChainWalk { expected_seq: after_seq + 1, prev_hash, checked: 0, problems: Vec::new() }
    }

    fn note(&mut self, seq: i64, problem: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { seq, problem });
        }
    }

    /// `canonical` is a buffer to write the event's canonical bytes in.
    fn step(&mut self, row: &AuditRowRef<'_>, canonical: &mut Vec<u8>) {
        canonical.clear();
        write_canonical(row, canonical);
        let hash_matches = chain_hash(&row.prev_hash, canonical) == row.hash;
        self.step_hashed(row, hash_matches);
    }

    /// As `step`, told whether the event's content hashes to its `hash` (computed apart).
    fn step_hashed(&mut self, row: &AuditRowRef<'_>, hash_matches: bool) {
        self.checked += 1;
        if row.seq != self.expected_seq {
            let expected = self.expected_seq;
            self.note(row.seq, format!("expected seq {expected}: events are missing or out of order"));
        }
        if row.prev_hash != self.prev_hash {
            self.note(row.seq, "prev_hash does not match the previous event's hash".into());
        }
        if !hash_matches {
            self.note(row.seq, "hash does not match the event's content: the event was edited".into());
        }
        self.expected_seq = row.seq + 1;
        self.prev_hash = row.hash;
    }

    /// After the chain's last event: does it end where the stored head says?
    fn finish(&mut self, head_seq: i64, head_hash: &str) {
        let last_seq = self.expected_seq - 1;
        if last_seq != head_seq || self.prev_hash != *head_hash {
            self.note(
                last_seq,
                format!("chain head says seq {head_seq}, events end at seq {last_seq}: events were deleted or the head was changed"),
            );
        }
    }
}

/// Walks one chain from its first event (or from after its archived prefix,
/// at the hash its last segment recorded) and compares it with the stored head.
pub fn verify_chain(conn: &mut DbConn, chain_id: &str) -> AppResult<Verification> {
    let (head_seq, head_hash) = store::load_chain_head(conn, chain_id)?.unwrap_or((0, GENESIS_HASH.to_string()));
    let (mut after, start_hash) = match store::last_archive(conn, chain_id)? {
        Some(a) => (a.last_seq, a.last_hash),
        None => (0, GENESIS_HASH.to_string()),
    };
    let mut walk = ChainWalk::new(after, &start_hash);
    let mut reader = store::ChainReader::open(conn, chain_id)?;
    let mut canonical = Vec::with_capacity(1024);
    loop {
        let page = reader.page(conn, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.rows().for_each(|row| walk.step(&row, &mut canonical));
    }
    walk.finish(head_seq, &head_hash);
    Ok(Verification {
        chain_id: chain_id.to_string(),
        valid: walk.problems.is_empty(),
        events_checked: walk.checked,
        head_seq,
        head_hash,
        problems: walk.problems,
    })
}

// ------------------------------------------------------------------ the tree and its checkpoints

/// What was found, by name (stable: scripts and tests match on it).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The checkpoint is not a signed note that verifies with the key: nothing in it is trusted.
    BadSignature,
    /// The note verifies but is not a checkpoint of one of this instance's chains.
    NotACheckpoint,
    /// The checkpoint's chain is not in the log at all.
    DroppedChain,
    /// The log holds fewer events than a checkpoint (or an earlier verification) covered.
    Truncated,
    /// Events are missing from the sequence (a gap in seq).
    Missing,
    /// An event that is in no tree: added to the log after the fact.
    Inserted,
    /// An event of the tree now stands at another seq.
    Reordered,
    /// An event's content no longer hashes to the leaf the tree holds for it.
    Altered,
    /// A stored tree hash differs from the one the events give, the events being intact.
    TreeAltered,
    /// The log and its tree agree with each other but not with the signed
    /// (or earlier verified) root: they were rewritten together.
    HistoryRewritten,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeProblem {
    pub kind: Finding,
    /// The first event concerned, if one can be named.
    pub seq: Option<i64>,
    /// One line, starting with what was found.
    pub message: String,
}

impl TreeProblem {
    fn new(kind: Finding, seq: Option<i64>, message: String) -> TreeProblem {
        TreeProblem { kind, seq, message }
    }
}

/// A tree size and root taken as true: from a signed checkpoint, or a
/// previous verification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trusted {
    pub size: u64,
    pub root: Hash,
}

impl Trusted {
    pub const EMPTY: Trusted = Trusted { size: 0, root: tlog_tiles::EMPTY_HASH };
}

/// A checkpoint note, opened: its chain and tree head.
#[derive(Debug, Clone)]
pub struct OpenedCheckpoint {
    pub chain_id: String,
    pub size: u64,
    pub root: Hash,
}

/// Checks a checkpoint note's signature with `verifier_key`, then parses its
/// body: a C2SP tlog-checkpoint whose origin is `<key name>/audit/<chain>`.
pub fn open_checkpoint(note: &[u8], verifier_key: &str) -> Result<OpenedCheckpoint, TreeProblem> {
    let body = open_note(note, verifier_key).map_err(|e| {
        TreeProblem::new(Finding::BadSignature, None, format!("bad signature: the checkpoint is not trusted: {e}"))
    })?;
    let not_a_checkpoint =
        |why: String| TreeProblem::new(Finding::NotACheckpoint, None, format!("not a checkpoint: {why}"));
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(&body)
        .map_err(|_| not_a_checkpoint("its body is not a C2SP tlog-checkpoint".into()))?;
    let key_name = verifier_key.trim().split('+').next().unwrap_or_default();
    let chain_id = checkpoint
        .origin()
        .strip_prefix(key_name)
        .and_then(|rest| rest.strip_prefix("/audit/"))
        .filter(|chain| !chain.is_empty())
        .ok_or_else(|| {
            not_a_checkpoint(format!("its origin {:?} is not {key_name}/audit/<chain>", checkpoint.origin()))
        })?;
    Ok(OpenedCheckpoint { chain_id: chain_id.to_string(), size: checkpoint.size(), root: *checkpoint.hash() })
}

/// The result of holding a chain's events against its tree and checkpoints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The chain, if the checkpoint could be opened.
    pub chain_id: Option<String>,
    pub valid: bool,
    /// The checkpoint's tree size, if it was opened.
    pub checkpoint_size: Option<u64>,
    /// The size the verification started from (0: the whole chain).
    pub verified_from: u64,
    /// The events the log holds (its head).
    pub log_size: u64,
    /// The events read: those after `verified_from`.
    pub events_read: u64,
    /// The recomputed root at `log_size`, when the whole way was recomputed.
    pub root: Option<String>,
    pub problems: Vec<TreeProblem>,
}

impl Report {
    fn failed(chain_id: Option<String>, checkpoint_size: Option<u64>, problem: TreeProblem) -> Report {
        Report {
            chain_id,
            valid: false,
            checkpoint_size,
            verified_from: 0,
            log_size: 0,
            events_read: 0,
            root: None,
            problems: vec![problem],
        }
    }

    /// The new trusted point, if the log verified: its size and recomputed root.
    pub fn verified(&self) -> Option<Trusted> {
        let root = Hash::parse_hash(self.root.as_deref()?).ok()?;
        self.valid.then_some(Trusted { size: self.log_size, root })
    }
}

/// Checks the database against a checkpoint obtained earlier: the signature
/// first (a bad one is reported and nothing else is trusted), then the chain
/// it names, recomputed from its first event.
pub fn verify_against_checkpoint(conn: &mut DbConn, verifier_key: &str, note: &[u8]) -> AppResult<Report> {
    verify_from(conn, verifier_key, note, Trusted::EMPTY)
}

/// As `verify_against_checkpoint`, from `trusted` (a size and root of the
/// same chain verified before): the stored tree at that size must still hash
/// to that root (which binds the untrusted stored frontier to it), and only
/// the events after it are read.
pub fn verify_from(conn: &mut DbConn, verifier_key: &str, note: &[u8], trusted: Trusted) -> AppResult<Report> {
    let checkpoint = match open_checkpoint(note, verifier_key) {
        Ok(c) => c,
        Err(problem) => return Ok(Report::failed(None, None, problem)),
    };
    let chain_id = checkpoint.chain_id.clone();
    let Some((head, _)) = store::load_chain_head(conn, &chain_id)? else {
        let problem = TreeProblem::new(
            Finding::DroppedChain,
            None,
            format!("dropped chain: the log has no chain {chain_id}; the checkpoint holds {} events", checkpoint.size),
        );
        return Ok(Report::failed(Some(chain_id), Some(checkpoint.size), problem));
    };
    let head = head.max(0) as u64;
    // Archived events are no longer here: start after them, from the stored
    // tree there (a checkpoint past it binds that tree: its recomputed root
    // must be the signed one; one before it is held by a consistency proof).
    // The segments themselves verify offline (`keyward audit verify-archive`).
    let trusted = match store::last_archive(conn, &chain_id)?.map(|a| a.last_seq.max(0) as u64) {
        Some(archived) if archived > trusted.size && archived <= head => {
            Trusted { size: archived, root: super::tree::root(conn, &chain_id, archived)? }
        }
        _ => trusted,
    };
    let mut report = Report {
        chain_id: Some(chain_id.clone()),
        valid: false,
        checkpoint_size: Some(checkpoint.size),
        verified_from: trusted.size,
        log_size: head,
        events_read: 0,
        root: None,
        problems: Vec::new(),
    };
    for (size, what) in [(checkpoint.size, "the checkpoint"), (trusted.size, "an earlier verification")] {
        if head < size {
            report.problems.push(TreeProblem::new(
                Finding::Truncated,
                Some(head as i64 + 1),
                format!("truncated: the log holds {head} events, {what} {size}"),
            ));
        }
    }
    if !report.problems.is_empty() {
        return Ok(report);
    }
    let walk = walk_tree(conn, &chain_id, trusted, head, &[checkpoint.size], None)?;
    report.events_read = walk.events_read;
    report.problems = walk.problems.clone();
    if walk.complete {
        report.root = Some(walk.frontier.root().to_string());
    }
    check_against(conn, &chain_id, &walk, trusted, &checkpoint, &mut report.problems)?;
    report.valid = report.problems.is_empty();
    Ok(report)
}

/// Holds a checkpoint against a walk: its root at the checkpoint's size, or,
/// for a checkpoint the walk started after, a consistency proof from the
/// stored tree to the trusted root.
fn check_against(
    conn: &mut DbConn,
    chain_id: &str,
    walk: &TreeWalk,
    trusted: Trusted,
    checkpoint: &OpenedCheckpoint,
    problems: &mut Vec<TreeProblem>,
) -> AppResult<()> {
    let m = checkpoint.size;
    let rewritten = |why: &str| {
        TreeProblem::new(
            Finding::HistoryRewritten,
            None,
            format!("history rewritten: the first {m} events no longer hash to the signed root ({why})"),
        )
    };
    if m <= trusted.size {
        if !consistent(conn, chain_id, trusted, m, checkpoint.root)? {
            problems.push(rewritten("the checkpoint is not a prefix of the tree verified before"));
        }
        return Ok(());
    }
    let Some(recomputed) = walk.roots.get(&m) else {
        // The walk stopped before (a gap it reports): the named problem says why.
        return Ok(());
    };
    if *recomputed == checkpoint.root {
        return Ok(());
    }
    // The events differ from the signed tree. If the stored tree still hashes
    // to the signed root, the events changed under it and the leaf problems
    // name them; if not, the tree was rewritten too.
    let stored = Frontier::try_load(conn, chain_id, m)?.map(|f| f.root());
    let leaf_problems = walk.problems.iter().any(|p| p.seq.is_some_and(|s| s as u64 <= m));
    if stored != Some(checkpoint.root) || !leaf_problems {
        problems.insert(0, rewritten("the log and its stored tree were rewritten together"));
    }
    Ok(())
}

/// Whether the tree of `size` with `root` is a prefix of the trusted tree,
/// by a consistency proof read from the stored hashes.
fn consistent(conn: &mut DbConn, chain_id: &str, trusted: Trusted, size: u64, root: Hash) -> AppResult<bool> {
    if size == trusted.size {
        return Ok(root == trusted.root);
    }
    if size == 0 {
        return Ok(root == tlog_tiles::EMPTY_HASH);
    }
    let hashes = super::tree::StoredHashes::new(conn, chain_id);
    let Ok(proof) = tlog_tiles::prove_tree(trusted.size, size, &hashes) else { return Ok(false) };
    Ok(tlog_tiles::check_tree(&proof, trusted.size, trusted.root, size, root).is_ok())
}

/// An event whose recomputed leaf differs from the stored one, as the walk
/// finds it (its row is read again afterwards, see `Mismatch`).
struct FoundMismatch {
    leaf: u64,
    seq: i64,
    stored: Option<Hash>,
}

/// An event whose recomputed leaf differs from the stored one.
#[derive(Clone)]
struct Mismatch {
    /// Its leaf index (seq - 1).
    leaf: u64,
    row: AuditRow,
    /// The stored leaf hash at that index, if there is one.
    stored: Option<Hash>,
}

/// A tree recomputed from the events after a trusted size, compared hash by
/// hash with the stored tree.
struct TreeWalk {
    frontier: Frontier,
    /// Recomputed roots at the sizes asked for.
    roots: HashMap<u64, Hash>,
    events_read: u64,
    /// Whether the walk reached the size it was asked to.
    complete: bool,
    problems: Vec<TreeProblem>,
}

/// Recomputes `chain_id`'s tree from `trusted` through the event with seq
/// `until`, reading the events in seq order in pages and each page's stored
/// hashes in one range scan; notes the roots at `roots_at`. The hash chain's
/// checks run over the same events when `chain` is given.
fn walk_tree(
    conn: &mut DbConn,
    chain_id: &str,
    trusted: Trusted,
    until: u64,
    roots_at: &[u64],
    mut chain: Option<&mut ChainWalk>,
) -> AppResult<TreeWalk> {
    let mut walk = TreeWalk {
        frontier: Frontier::default(),
        roots: HashMap::new(),
        events_read: 0,
        complete: false,
        problems: Vec::new(),
    };
    let note = |problems: &mut Vec<TreeProblem>, p: TreeProblem| {
        if problems.len() < MAX_PROBLEMS {
            problems.push(p);
        }
    };
    match Frontier::try_load(conn, chain_id, trusted.size)? {
        Some(f) if f.root() == trusted.root => walk.frontier = f,
        _ => {
            let m = trusted.size;
            note(
                &mut walk.problems,
                TreeProblem::new(
                    Finding::HistoryRewritten,
                    None,
                    format!("history rewritten: the stored tree at size {m} no longer hashes to the root verified before ({})", trusted.root),
                ),
            );
            return Ok(walk);
        }
    }
    if roots_at.contains(&trusted.size) {
        walk.roots.insert(trusted.size, trusted.root);
    }
    let mut mismatches: Vec<FoundMismatch> = Vec::new();
    let mut interior: Option<(u8, u64)> = None;
    let mut after = trusted.size as i64;
    // Past a missing leaf the tree cannot be recomputed; the hash chain's checks go on.
    let mut stopped = false;
    let mut reader = store::ChainReader::open(conn, chain_id)?;
    let mut read = |conn: &mut DbConn, after: i64| -> AppResult<store::EventPage> {
        if after.max(0) as u64 >= until {
            return Ok(store::EventPage::default());
        }
        let want = (until - after.max(0) as u64).min(PAGE as u64) as i64;
        reader.page(conn, after, want)
    };
    let mut page = read(conn, after)?;
    while let Some(last) = page.last() {
        after = last.seq;
        let (walk, mismatches, interior, stopped) = (&mut walk, &mut mismatches, &mut interior, &mut stopped);
        let mut chain = chain.as_deref_mut();
        // The page is hashed and walked on another thread while this one reads the next page.
        page = std::thread::scope(|s| {
            let walking = s.spawn(move || {
                let current = page;
                let hashes = hash_page(&current);
                let mut computed: Vec<(u64, Hash, usize)> = Vec::with_capacity(current.len() * 2);
                for (i, row) in current.rows().enumerate() {
                    if row.seq > until as i64 {
                        break;
                    }
                    walk.events_read += 1;
                    if let Some(c) = chain.as_deref_mut() {
                        c.step_hashed(&row, hashes[i].1);
                    }
                    if *stopped {
                        continue;
                    }
                    let expected = walk.frontier.size() as i64 + 1;
                    if row.seq < expected {
                        let message = format!("inserted event at seq {}: seq runs from 1 with no repeats", row.seq);
                        note(&mut walk.problems, TreeProblem::new(Finding::Inserted, Some(row.seq), message));
                        continue;
                    }
                    if row.seq > expected {
                        let to = row.seq - 1;
                        let which =
                            if to == expected { format!("seq {expected}") } else { format!("seqs {expected}..{to}") };
                        let message = format!(
                            "missing event at seq {expected}: the events jump from seq {} to {} ({which} absent)",
                            expected - 1,
                            row.seq
                        );
                        note(&mut walk.problems, TreeProblem::new(Finding::Missing, Some(expected), message));
                        *stopped = true;
                        continue;
                    }
                    walk.frontier.append_leaf_hash(hashes[i].0, |idx, h| computed.push((idx, h, i)));
                    if roots_at.contains(&walk.frontier.size()) {
                        walk.roots.insert(walk.frontier.size(), walk.frontier.root());
                    }
                }
                for (idx, h, i) in computed {
                    // Stored with the event that made it, at its offset among that event's hashes.
                    let row = current.row(i);
                    let offset = (idx - tlog_tiles::stored_hash_index(0, (row.seq - 1) as u64)) as usize * 32;
                    let stored_hash = row
                        .tree_hashes
                        .and_then(|b| b.get(offset..offset + 32))
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .map(Hash);
                    if stored_hash == Some(h) {
                        continue;
                    }
                    let (level, n) = split_stored_hash_index(idx);
                    if level == 0 {
                        if mismatches.len() < MAX_MISMATCHES {
                            mismatches.push(FoundMismatch { leaf: n, seq: row.seq, stored: stored_hash });
                        }
                    } else if interior.is_none() {
                        *interior = Some((level, n));
                    }
                }
            });
            let next = read(conn, after);
            walking.join().expect("walking a page does not panic");
            next
        })?;
    }
    walk.complete = walk.frontier.size() == until;
    if !walk.complete && walk.problems.is_empty() {
        let end = walk.frontier.size();
        note(
            &mut walk.problems,
            TreeProblem::new(
                Finding::Missing,
                Some(end as i64 + 1),
                format!(
                    "missing event at seq {}: the chain's head is at seq {until}, its events end at seq {end}",
                    end + 1
                ),
            ),
        );
    }
    // Rare (the log was tampered with): each mismatched event's whole row, to tell how.
    let mut rows = Vec::with_capacity(mismatches.len());
    for m in &mismatches {
        if let Some(row) = store::chain_events_after(conn, chain_id, m.seq - 1, 1)?.pop().filter(|r| r.seq == m.seq) {
            rows.push(Mismatch { leaf: m.leaf, row, stored: m.stored });
        }
    }
    let mismatches = rows;
    for p in classify(&mismatches) {
        note(&mut walk.problems, p);
    }
    if let (None, Some((level, n))) = (mismatches.first(), interior) {
        let (from, to) = (n << level, ((n + 1) << level).min(walk.frontier.size()));
        note(
            &mut walk.problems,
            TreeProblem::new(
                Finding::TreeAltered,
                Some(from as i64 + 1),
                format!(
                    "tree altered: the stored hash over events seq {}..{to} differs from the one the events give",
                    from + 1
                ),
            ),
        );
    }
    Ok(walk)
}

/// Each event's leaf hash, and whether its content hashes to its chain
/// `hash`: both from one canonical encoding, and independent of the other
/// events, so computed apart from the (sequential) walk.
fn hash_page(page: &store::EventPage) -> Vec<(Hash, bool)> {
    let mut canonical = Vec::with_capacity(1024);
    page.rows()
        .map(|row| {
            canonical.clear();
            write_canonical(&row, &mut canonical);
            (record_hash(&canonical), chain_hash(&row.prev_hash, &canonical) == row.hash)
        })
        .collect()
}

/// Names the events whose leaves differ from the tree hashes stored with
/// them (which travel with a row, so they name where it was appended): one
/// that hashes to its own stored leaf at another mismatched event's seq was
/// moved from there; one that hashes to nothing was inserted (another event
/// moved out of its seq, or it came with no hashes) or altered.
fn classify(mismatches: &[Mismatch]) -> Vec<TreeProblem> {
    let moved_from: Vec<Option<u64>> = mismatches
        .iter()
        .map(|m| {
            let own = m.stored?;
            mismatches.iter().map(|o| o.leaf).filter(|leaf| *leaf != m.leaf).find(|leaf| {
                let mut at = m.row.clone();
                at.seq = *leaf as i64 + 1;
                record_hash(&canonical(&at)) == own
            })
        })
        .collect();
    let originals_present: HashSet<u64> = moved_from.iter().flatten().copied().collect();
    let mut problems = Vec::new();
    // Moved events, as runs of consecutive seqs moved by the same distance.
    let mut run: Option<(u64, u64, i64)> = None; // (first leaf, last leaf, leaf - original)
    let flush = |run: Option<(u64, u64, i64)>, problems: &mut Vec<TreeProblem>| {
        let Some((a, b, d)) = run else { return };
        let (seq_a, seq_b) = (a as i64 + 1, b as i64 + 1);
        let message = if a == b {
            format!("reordered event at seq {seq_a}: it was the event at seq {}", seq_a - d)
        } else {
            format!("reordered events at seqs {seq_a}..{seq_b}: they were at seqs {}..{}", seq_a - d, seq_b - d)
        };
        problems.push(TreeProblem::new(Finding::Reordered, Some(seq_a), message));
    };
    for (m, from) in mismatches.iter().zip(&moved_from) {
        let seq = m.leaf as i64 + 1;
        match from {
            Some(j) => {
                let d = m.leaf as i64 - *j as i64;
                run = match run {
                    Some((a, b, rd)) if rd == d && b + 1 == m.leaf => Some((a, m.leaf, d)),
                    other => {
                        flush(other, &mut problems);
                        Some((m.leaf, m.leaf, d))
                    }
                };
            }
            None => {
                flush(run.take(), &mut problems);
                problems.push(if m.stored.is_none() || originals_present.contains(&m.leaf) {
                    TreeProblem::new(
                        Finding::Inserted,
                        Some(seq),
                        format!(
                            "inserted event at seq {seq}: event {} is in no tree the log was built as",
                            m.row.event_id
                        ),
                    )
                } else {
                    TreeProblem::new(
                        Finding::Altered,
                        Some(seq),
                        format!(
                            "event seq {seq} altered: its content no longer hashes to the leaf the tree holds for it"
                        ),
                    )
                });
            }
        }
    }
    flush(run, &mut problems);
    problems
}

// ------------------------------------------------------------------ the bounded step the API takes

/// One bounded verification of a chain, from where the previous one proved it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub chain_id: String,
    pub valid: bool,
    /// Events covered by this verdict: those proved before and those read now.
    pub events_checked: i64,
    pub head_seq: i64,
    pub head_hash: String,
    /// The hash chain's problems among the events read.
    pub problems: Vec<Problem>,
    /// The tree's and checkpoints' problems.
    pub tree_problems: Vec<TreeProblem>,
    /// Where this verification started: the size a previous one proved.
    pub verified_from: i64,
    /// The events proved so far (the next verification starts there).
    pub verified_through: i64,
    pub events_read: i64,
    /// The newest signed checkpoint held against the events, if any.
    pub checkpoint_size: Option<i64>,
    /// Whether it reached the head; if not, the next call goes on.
    pub complete: bool,
}

/// Verifies `chain_id` from the size a previous verification proved (its
/// stored frontier must still hash to the root proved there) through at most
/// `max_events` more: the hash chain, the tree hash by hash, and the newest
/// checkpoint signed within reach (its signature checked with
/// `verifier_key`). If all is well, the point reached is stored for the next
/// call. Reads O(`max_events` + log n) rows, however long the chain.
pub fn verify_window(conn: &mut DbConn, chain_id: &str, verifier_key: &str, max_events: u64) -> AppResult<Step> {
    let from = proved(conn, chain_id)?;
    Ok(verify_window_from(conn, chain_id, verifier_key, max_events, &from)?.0)
}

/// A point a verification starts from: a tree size and root proved, and
/// the hash chain's hash at that event.
#[derive(Debug, Clone)]
pub struct Proved {
    pub trusted: Trusted,
    pub chain_hash: String,
}

impl Proved {
    /// The start of every chain: nothing proved.
    pub fn genesis() -> Proved {
        Proved { trusted: Trusted::EMPTY, chain_hash: GENESIS_HASH.to_string() }
    }
}

/// Where the verifications so far proved `chain_id` (its start if nowhere).
pub fn proved(conn: &mut DbConn, chain_id: &str) -> AppResult<Proved> {
    match store::find_verified(conn, chain_id)? {
        Some(v) => match Hash::parse_hash(&v.root_hash) {
            Ok(root) => {
                Ok(Proved { trusted: Trusted { size: v.tree_size.max(0) as u64, root }, chain_hash: v.chain_hash })
            }
            Err(_) => start_of_log(conn, chain_id),
        },
        None => start_of_log(conn, chain_id),
    }
}

/// Where a verification of `chain_id` from its start begins: its first
/// event or, once retention archived a prefix, the event after it, from the
/// stored tree there and the hash its last segment recorded (a checkpoint
/// past it binds that tree; the segments verify offline).
pub fn start_of_log(conn: &mut DbConn, chain_id: &str) -> AppResult<Proved> {
    Ok(match store::last_archive(conn, chain_id)? {
        Some(a) if a.last_seq > 0 => {
            let size = a.last_seq as u64;
            Proved {
                trusted: Trusted { size, root: super::tree::root(conn, chain_id, size)? },
                chain_hash: a.last_hash,
            }
        }
        _ => Proved::genesis(),
    })
}

/// As `verify_window`, from `from` (a full verification passes
/// `Proved::genesis()`, then each window's result to the next); returns
/// the point this window proved, if it verified.
pub fn verify_window_from(
    conn: &mut DbConn,
    chain_id: &str,
    verifier_key: &str,
    max_events: u64,
    from: &Proved,
) -> AppResult<(Step, Option<Proved>)> {
    let (head_seq, head_hash) = store::load_chain_head(conn, chain_id)?.unwrap_or((0, GENESIS_HASH.to_string()));
    let head = head_seq.max(0) as u64;
    let (trusted, prev_hash) = (from.trusted, from.chain_hash.clone());
    let mut step = Step {
        chain_id: chain_id.to_string(),
        valid: false,
        events_checked: trusted.size as i64,
        head_seq,
        head_hash: head_hash.clone(),
        problems: Vec::new(),
        tree_problems: Vec::new(),
        verified_from: trusted.size as i64,
        verified_through: trusted.size as i64,
        events_read: 0,
        checkpoint_size: None,
        complete: false,
    };
    if head < trusted.size {
        step.tree_problems.push(TreeProblem::new(
            Finding::Truncated,
            Some(head_seq + 1),
            format!("truncated: the log holds {head} events, an earlier verification {}", trusted.size),
        ));
        return Ok((step, None));
    }
    let until = head.min(trusted.size.saturating_add(max_events));
    let checkpoint = match store::checkpoint_at_most(conn, chain_id, until as i64)? {
        Some(row) => match open_checkpoint(row.note.as_bytes(), verifier_key) {
            Ok(c) if c.chain_id == chain_id && c.size == row.tree_size as u64 => Some(c),
            Ok(_) => {
                let message =
                    format!("not a checkpoint: the one stored at size {} is of another chain or size", row.tree_size);
                step.tree_problems.push(TreeProblem::new(Finding::NotACheckpoint, None, message));
                None
            }
            Err(p) => {
                let message = format!("{} (the one stored at size {})", p.message, row.tree_size);
                step.tree_problems.push(TreeProblem::new(p.kind, None, message));
                None
            }
        },
        None => None,
    };
    let mut chain = ChainWalk::new(trusted.size as i64, &prev_hash);
    let roots_at: Vec<u64> = checkpoint.iter().map(|c| c.size).collect();
    let walk = walk_tree(conn, chain_id, trusted, until, &roots_at, Some(&mut chain))?;
    step.complete = until == head;
    if step.complete {
        chain.finish(head_seq, &head_hash);
    }
    step.tree_problems.extend(walk.problems.iter().cloned());
    if let Some(c) = &checkpoint {
        step.checkpoint_size = Some(c.size as i64);
        check_against(conn, chain_id, &walk, trusted, c, &mut step.tree_problems)?;
    }
    step.problems = chain.problems;
    step.events_read = walk.events_read as i64;
    step.events_checked = trusted.size as i64 + walk.events_read as i64;
    step.valid = step.problems.is_empty() && step.tree_problems.is_empty();
    if !(step.valid && walk.complete) {
        return Ok((step, None));
    }
    step.verified_through = until as i64;
    let root = walk.frontier.root();
    if until > trusted.size {
        store::save_verified(
            conn,
            &store::VerifiedRow {
                chain_id: chain_id.to_string(),
                tree_size: until as i64,
                root_hash: root.to_string(),
                chain_hash: chain.prev_hash.to_string(),
                verified_at: to_naive(now()),
            },
        )?;
    }
    Ok((step, Some(Proved { trusted: Trusted { size: until, root }, chain_hash: chain.prev_hash.to_string() })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn row(seq: i64, op: &str) -> AuditRow {
        AuditRow {
            event_id: crate::domain::event::EventId::parse(&format!("01900000-0000-7000-8000-{seq:012}")).unwrap(),
            chain_id: "t".into(),
            seq,
            occurred_at: NaiveDateTime::parse_from_str("2026-11-22 14:07:10", "%Y-%m-%d %H:%M:%S").unwrap(),
            operation: op.into(),
            outcome: crate::domain::event::Outcome::Allowed,
            reason: None,
            actor_type: crate::domain::event::ActorType::Member,
            actor_id: None,
            key_id: None,
            key_type: None,
            key_hint: None,
            request_id: format!("r{seq}"),
            client_ip: None,
            user_agent: None,
            status_code: 200,
            metadata: "{}".into(),
            payload: None,
            prev_hash: ChainHash::GENESIS,
            hash: ChainHash::GENESIS,
            tree_hashes: None,
        }
    }

    fn leaf(r: &AuditRow) -> Hash {
        record_hash(&canonical(r))
    }

    fn kinds(p: &[TreeProblem]) -> Vec<(Finding, Option<i64>)> {
        p.iter().map(|p| (p.kind, p.seq)).collect()
    }

    #[test]
    fn a_swap_is_named_reordered_an_edit_altered() {
        let (a, b) = (row(2, "x"), row(4, "y"));
        let (mut a_at_4, mut b_at_2) = (a.clone(), b.clone());
        a_at_4.seq = 4;
        b_at_2.seq = 2;
        // Each row carries the leaf hash it was appended with.
        let swapped = [
            Mismatch { leaf: 1, row: b_at_2, stored: Some(leaf(&b)) },
            Mismatch { leaf: 3, row: a_at_4, stored: Some(leaf(&a)) },
        ];
        let p = classify(&swapped);
        assert_eq!(kinds(&p), [(Finding::Reordered, Some(2)), (Finding::Reordered, Some(4))], "{p:?}");
        assert!(p[0].message.contains("was the event at seq 4"), "{p:?}");

        let mut edited = a.clone();
        edited.status_code = 401;
        let p = classify(&[Mismatch { leaf: 1, row: edited, stored: Some(leaf(&a)) }]);
        assert_eq!(kinds(&p), [(Finding::Altered, Some(2))]);
    }

    #[test]
    fn an_insertion_is_named_with_the_events_it_renumbered() {
        // Leaves 0..3 appended; an event inserted at seq 2 (with no tree hashes
        // of its own) pushes 2 and 3 to 3 and 4, which carry theirs along.
        let old: Vec<AuditRow> = (1..=3).map(|s| row(s, "x")).collect();
        let mut mismatches = vec![Mismatch { leaf: 1, row: row(2, "inserted"), stored: None }];
        mismatches.extend(old[1..].iter().map(|r| Mismatch {
            leaf: r.seq as u64,
            row: AuditRow { seq: r.seq + 1, ..r.clone() },
            stored: Some(leaf(r)),
        }));
        let p = classify(&mismatches);
        assert_eq!(kinds(&p), [(Finding::Inserted, Some(2)), (Finding::Reordered, Some(3))], "{p:?}");
        assert!(p[1].message.contains("seqs 3..4: they were at seqs 2..3"), "{p:?}");
    }
}
