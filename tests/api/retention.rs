//! Retention with proofs: a tenant's `audit_retention_days` moves its old,
//! verified events into archive segments (real files in a temp folder) that
//! verify offline; the database keeps the tree, so proofs still answer;
//! held members' events stay; a restart and a crash mid-move lose nothing
//! and archive nothing twice.

use crate::both;
use crate::helpers::{assert_error, key_get, key_post, Backend, TestApp};
use base64::Engine;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use keyward::audit::retention::{self, PassReport};
use keyward::db::store;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const POLICY: &str = "/v2/enterprise.key_policy.detail";
const POLICY_UPDATE: &str = "/v2/enterprise.key_policy.update";
const PROOF: &str = "/v2/enterprise.audit.proof";
const CONSISTENCY: &str = "/v2/enterprise.audit.consistency";
const FAST_CHECKPOINTS: (&str, &str) = ("KEYWARD_CHECKPOINT_INTERVAL_MS", "20");

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn spawn(b: Backend, archive: &Path) -> TestApp {
    let dir = archive.display().to_string();
    TestApp::spawn_with(
        b,
        &[FAST_CHECKPOINTS, ("KEYWARD_ARCHIVE_DIR", dir.as_str()), ("KEYWARD_VERIFY_INTERVAL_MS", "86400000")],
    )
}

/// One retention pass as of `days` from now (the events are made old by
/// moving the pass's clock, not theirs).
pub(crate) fn pass_in(app: &TestApp, archive: &Path, days: i64) -> PassReport {
    retention::pass(&mut app.db(), Some(archive), chrono::Utc::now() + chrono::Duration::days(days)).unwrap()
}

pub(crate) fn head(app: &TestApp) -> i64 {
    store::load_chain_head(&mut app.db(), &app.tenant_id).unwrap().unwrap().0
}

/// Waits for a signed checkpoint of at least `size` events.
#[track_caller]
pub(crate) fn checkpoint_covering(app: &TestApp, size: i64) -> store::CheckpointRow {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = store::find_checkpoint(&mut app.db(), &app.tenant_id, None).unwrap() {
            if c.tree_size >= size {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "no checkpoint covering {size} events");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `enterprise.audit.verify` until it reaches the head; it must be valid.
#[track_caller]
/// Verifies the tenant's chain through its head as the background verifier
/// does, incrementally and then from its start (after the archived prefix),
/// both of which must pass. (The job itself does not run in these tests:
/// its interval is a day, so that nothing is verified that a test did not
/// verify.)
pub(crate) fn verify_as_the_job(app: &TestApp) {
    let key = app.settings().checkpoint_signer.verifier_key().to_string();
    let metrics = keyward::metrics::Metrics::new();
    for full in [false, true] {
        let run = keyward::audit::verifier::run_chain(&mut app.db(), &app.tenant_id, "test", &key, full, &metrics)
            .unwrap()
            .expect("no other verifier holds the lease");
        assert_eq!(run.state, keyward::domain::verification::RunState::Passed, "full: {full}: {:?}", run.findings);
        assert_eq!(run.verified_through, run.head_at_start, "full: {full}");
    }
}

/// Some events of the tenant: a console member reads the key policy.
fn events_by(app: &TestApp, token: &str, n: usize) {
    let bearer = format!("Bearer {token}");
    for _ in 0..n {
        let r = app.get(POLICY, &[("Authorization", bearer.as_str())]);
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

/// The chain's events still in the database: seq -> actor id.
fn db_events(app: &TestApp) -> BTreeMap<i64, Option<String>> {
    store::chain_events_after(&mut app.db(), &app.tenant_id, 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.actor_id))
        .collect()
}

fn inflate(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).unwrap();
    text
}

fn deflate(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// Every file in the chain's archive folder.
fn files(archive: &Path, chain: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(archive.join(chain)) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every archived line, by seq; a seq in two segments fails.
#[track_caller]
fn archived_lines(archive: &Path, chain: &str) -> BTreeMap<u64, Value> {
    let mut all = BTreeMap::new();
    for f in files(archive, chain) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let (first, last) = retention::parse_segment_name(&name).unwrap_or_else(|| panic!("a segment: {name}"));
        let text = inflate(&std::fs::read(&f).unwrap());
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len() as i64, last - first + 1, "{name} holds its range");
        for line in lines {
            let seq = line["seq"].as_u64().unwrap();
            assert!((first..=last).contains(&(seq as i64)), "{name}: seq {seq}");
            assert!(all.insert(seq, line).is_none(), "seq {seq} archived twice");
        }
    }
    all
}

/// Runs the real `keyward audit verify-archive` (empty environment): its exit code.
fn verify_archive_cli(file: &Path, key: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["audit", "verify-archive", file.to_str().unwrap(), "--public-key", key])
        .env_clear()
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// Runs the real `keyward audit retain` with the app's settings (and `archive`, if given).
fn retain_cli(app: &TestApp, archive: Option<&Path>) -> (i32, String, String) {
    let s = app.settings();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(["audit", "retain"])
        .env_clear()
        .env("KEYWARD_DATABASE_URL", &app.database_url)
        .env("KEYWARD_KEY_PEPPER", s.key_pepper.expose())
        .env("KEYWARD_CONSOLE_JWT_SECRET", s.console_jwt_secret.as_ref().unwrap().expose())
        .env("KEYWARD_CHECKPOINT_KEY", s.checkpoint_key.expose());
    if let Some(dir) = archive {
        cmd.env("KEYWARD_ARCHIVE_DIR", dir);
    }
    let out = cmd.output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap(), text(out.stdout), text(out.stderr))
}

fn root_of(note: &str, size: i64) -> RootHash<Sha256> {
    let root: [u8; 32] = b64().decode(note.lines().nth(2).unwrap()).unwrap().try_into().unwrap();
    RootHash::new(root.into(), size as u64)
}

fn hashes(v: &Value) -> Vec<u8> {
    v.as_array().unwrap().iter().flat_map(|h| b64().decode(h.as_str().unwrap()).unwrap()).collect()
}

// ------------------------------------------------------------------ the tests

fn retention_policy_is_set_and_shown(b: Backend) {
    let app = TestApp::spawn(b);
    assert_eq!(app.owner_get(POLICY).ok()["policy"]["audit_retention_days"], json!(null), "keep everything");
    for bad in [json!(0), json!(-3), json!(36_501), json!("30"), json!(1.5)] {
        let r = app.owner_post(POLICY_UPDATE, &json!({"audit_retention_days": bad}));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = app.owner_post(POLICY_UPDATE, &json!({"audit_retention_days": 30}));
    assert_eq!(r.ok()["policy"]["audit_retention_days"], json!(30), "{}", r.text);
    // Absent: unchanged.
    let r = app.owner_post(POLICY_UPDATE, &json!({"siem_tier2_enabled": true}));
    assert_eq!(r.ok()["policy"]["audit_retention_days"], json!(30), "{}", r.text);
    let e = app.audit_events().into_iter().rev().find(|e| e["operation"] == "enterprise.key_policy.update").unwrap();
    assert_eq!(e["metadata"]["audit_retention_days"], json!({"old": 30, "new": 30}), "{e}");
    let r = app.owner_post(POLICY_UPDATE, &json!({"audit_retention_days": null}));
    assert_eq!(r.ok()["policy"]["audit_retention_days"], json!(null), "{}", r.text);
    assert_eq!(app.owner_get(POLICY).ok()["policy"]["audit_retention_days"], json!(null));
    // No tenant retains: a pass without an archive folder does nothing.
    let report = retention::pass(&mut app.db(), None, chrono::Utc::now()).unwrap();
    assert!(report.segments.is_empty());
    // `keyward audit retain` runs a pass now: nothing is old yet.
    app.owner_post(POLICY_UPDATE, &json!({"audit_retention_days": 1})).ok();
    let archive = tempfile::tempdir().unwrap();
    let (code, out, err) = retain_cli(&app, Some(archive.path()));
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v, json!({"segments": [], "events_deleted": 0, "failed": []}), "{out}");
    if b == Backend::Postgres {
        let (code, out, err) = retain_cli(&app, None);
        assert_ne!(code, 0, "{out}");
        assert!(err.contains("KEYWARD_ARCHIVE_DIR"), "{err}");
    }
}
both!(retention_policy_is_set_and_shown);

fn retention_archives_with_proofs_across_a_restart_and_a_crash(b: Backend) {
    let archive_tmp = tempfile::tempdir().unwrap();
    let archive = archive_tmp.path().join("archive");
    let mut app = spawn(b, &archive);
    let tenant = app.tenant_id.clone();
    let key = app.settings().checkpoint_signer.verifier_key().to_string();
    let (_, ediscovery) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (held, held_token) = app.add_member(&tenant, "AUDITOR");
    let (_, free_token) = app.add_member(&tenant, "AUDITOR");
    events_by(&app, &held_token, 3);
    events_by(&app, &free_token, 3);
    let r =
        key_post(&app, &ediscovery, "/v2/enterprise.hold.create", &json!({"user_ids": [held], "reason": "case 17"}));
    let hold_uid = r.ok()["hold"]["uid"].as_str().unwrap().to_string();
    let r = app.owner_post(POLICY_UPDATE, &json!({"audit_retention_days": 1}));
    assert_eq!(r.status, 200, "{}", r.text);

    assert_eq!(app.owner_get("/v2/enterprise.audit.list").ok()["archived_through"], json!(0));
    // Nothing is old yet; nothing verified: nothing moves.
    assert!(pass_in(&app, &archive, 0).segments.is_empty());
    assert!(pass_in(&app, &archive, 2).segments.is_empty(), "unverified events are not archived");

    // --- first pass: everything verified and under a checkpoint moves out.
    checkpoint_covering(&app, head(&app));
    verify_as_the_job(&app);
    let report = pass_in(&app, &archive, 2);
    assert_eq!(report.segments.len(), 1, "{report:?}");
    let s1 = report.segments[0].clone();
    assert_eq!(s1.first_seq, 1);
    let verified: i64 = app.query_strings(&format!(
        "SELECT CAST(tree_size AS TEXT) AS v FROM audit_verifications WHERE chain_id = '{tenant}'"
    ))[0]
        .parse()
        .unwrap();
    assert!(s1.last_seq >= 8 && s1.last_seq <= verified, "{s1:?}, verified {verified}");
    assert_eq!(s1.checkpoint_size, s1.last_seq, "the newest checkpoint within the verified size");
    // The rows are gone, except the held member's.
    let left = db_events(&app);
    let kept: Vec<i64> = left.range(..=s1.last_seq).map(|(s, _)| *s).collect();
    assert!(!kept.is_empty(), "the held member's events stay");
    for s in &kept {
        assert_eq!(left[s].as_deref(), Some(held.as_str()), "seq {s} stays only if held");
    }
    let lines = archived_lines(&archive, &tenant);
    assert_eq!(lines.keys().copied().collect::<Vec<_>>(), (1..=s1.last_seq as u64).collect::<Vec<_>>());
    let held_archived = lines.values().filter(|l| l["actor"]["id"] == json!(held)).count();
    assert_eq!(held_archived, kept.len(), "held events are in their segment and in the database");
    // The list and the SIEM feed say how far the log is archived, and list only what the database holds.
    let page = app.owner_get("/v2/enterprise.audit.list?limit=1000");
    assert_eq!(page.ok()["archived_through"], json!(s1.last_seq), "{}", page.text);
    let listed: Vec<i64> = page.ok()["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(listed.iter().filter(|s| **s <= s1.last_seq).copied().collect::<Vec<_>>(), kept);
    let feed = key_get(&app, &siem, "/v2/enterprise.compliance.event.list?limit=1000");
    assert_eq!(feed.ok()["archived_through"], json!(s1.last_seq), "{}", feed.text);

    // The segment verifies offline, with the verifier key alone; an altered line does not.
    let file = PathBuf::from(&s1.file);
    let bytes = std::fs::read(&file).unwrap();
    let v = keyward::audit::evidence::verify(&bytes, &key);
    assert!(v.valid, "{v:?}");
    assert_eq!((v.kind, v.events), ("segment", s1.last_seq as u64));
    let (code, out) = verify_archive_cli(&file, &key);
    assert_eq!(code, 0, "{out}");
    let text = inflate(&bytes);
    let altered = text.replacen("\"status_code\":200", "\"status_code\":201", 1);
    assert_ne!(altered, text);
    let forged = archive_tmp.path().join("altered.ndjson.gz");
    std::fs::write(&forged, deflate(&altered)).unwrap();
    let (code, out) = verify_archive_cli(&forged, &key);
    assert_eq!(code, 1, "an altered line fails: {out}");
    assert!(out.contains("status_code"), "{out}");
    let dropped: Vec<&str> = text.lines().enumerate().filter(|(i, _)| *i != 3).map(|(_, l)| l).collect();
    std::fs::write(&forged, deflate(&(dropped.join("\n") + "\n"))).unwrap();
    assert_eq!(verify_archive_cli(&forged, &key).0, 1, "a dropped line fails");
    // The last line dropped: only the file's name tells.
    let lines_kept: Vec<&str> = text.lines().collect();
    let short = archive_tmp.path().join(file.file_name().unwrap());
    std::fs::write(&short, deflate(&(lines_kept[..lines_kept.len() - 1].join("\n") + "\n"))).unwrap();
    let (code, out) = verify_archive_cli(&short, &key);
    assert_eq!(code, 1, "a segment short of its named range fails: {out}");
    assert!(out.contains("named for seqs"), "{out}");

    // Inclusion of an archived (deleted) event and consistency still answer and verify.
    let (seq, line) =
        lines.iter().find(|(s, l)| !kept.contains(&(**s as i64)) && l["actor"]["id"] != json!(held)).unwrap();
    assert!(!left.contains_key(&(*seq as i64)), "seq {seq} is archived");
    let leaf = b64().decode(line["proof"]["leaf"].as_str().unwrap()).unwrap();
    let c = checkpoint_covering(&app, s1.last_seq);
    let r =
        app.owner_get(&format!("{PROOF}?event_id={}&tree_size={}", line["event_id"].as_str().unwrap(), c.tree_size));
    let proof = InclusionProof::<Sha256>::try_from_bytes(hashes(&r.ok()["inclusion"])).unwrap();
    root_of(&c.note, c.tree_size)
        .verify_inclusion(&leaf, seq - 1, &proof)
        .expect("an archived event is in the signed tree");
    let first_note = store::find_checkpoint(&mut app.db(), &tenant, Some(s1.checkpoint_size)).unwrap().unwrap().note;
    for from in [1, s1.last_seq / 2, s1.last_seq] {
        let r = app.owner_get(&format!("{CONSISTENCY}?from={from}&to={}", c.tree_size));
        let proof = ConsistencyProof::<Sha256>::try_from_bytes(hashes(&r.ok()["consistency"])).unwrap();
        if from == s1.last_seq {
            root_of(&c.note, c.tree_size)
                .verify_consistency(&root_of(&first_note, from), &proof)
                .expect("the tree after retention extends the archived one");
        } else {
            assert_eq!(r.status, 200, "{}", r.text);
        }
    }
    // The log still verifies: over HTTP and as the CLI does (hash chain after the archived prefix).
    events_by(&app, &free_token, 2);
    verify_as_the_job(&app);
    let chains = keyward::admin::verify(&mut app.db(), Some(&tenant)).unwrap();
    assert!(chains[0].valid, "{chains:?}");

    // --- restart: the next pass goes on from the archived prefix.
    app.stop();
    app.start();
    events_by(&app, &free_token, 3);
    checkpoint_covering(&app, head(&app));
    verify_as_the_job(&app);
    let report = pass_in(&app, &archive, 2);
    assert_eq!(report.segments.len(), 1, "{report:?}");
    let s2 = report.segments[0].clone();
    assert_eq!(s2.first_seq, s1.last_seq + 1, "no gap, no overlap");
    assert!(pass_in(&app, &archive, 2).segments.is_empty(), "a pass right after has nothing new");

    // --- crash mid-move: the file written, the transaction never run.
    events_by(&app, &free_token, 3);
    checkpoint_covering(&app, head(&app));
    verify_as_the_job(&app);
    let cutoff = (chrono::Utc::now() + chrono::Duration::days(1)).naive_utc();
    let plan = retention::plan(&mut app.db(), &tenant, cutoff).unwrap().expect("something to archive");
    assert_eq!(plan.first, s2.last_seq + 1);
    let written = retention::write_segment(&mut app.db(), &archive, &plan).unwrap().expect("the plan is current");
    // Its file replaced before the commit: not recorded, nothing deleted.
    let path = archive.join(&tenant).join(plan.file_name());
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, b"not the segment").unwrap();
    assert!(retention::record(&mut app.db(), &archive, &written).unwrap().is_none(), "a replaced file is recorded");
    std::fs::write(&path, good).unwrap();
    // A temporary file of a later write, cut short.
    let stray = archive.join(&tenant).join(format!("{}.tmp", retention::segment_name(plan.last + 1, plan.last + 5)));
    std::fs::write(&stray, b"\x1f\x8b half").unwrap();
    assert!(db_events(&app).contains_key(&plan.first), "nothing left the database");
    app.stop();
    app.start();
    let report = pass_in(&app, &archive, 2);
    assert!(!report.segments.is_empty(), "{report:?}");
    assert_eq!(report.segments[0].first_seq, plan.first);
    assert!(!stray.exists(), "a cut-short file is removed");
    // The plan made before is stale now: it writes nothing.
    assert!(retention::write_segment(&mut app.db(), &archive, &plan).unwrap().is_none());

    // Each event exactly once: in one segment, or (not archived, or held) in the database.
    let lines = archived_lines(&archive, &tenant);
    let last = *lines.keys().last().unwrap() as i64;
    assert_eq!(lines.keys().copied().collect::<Vec<_>>(), (1..=last as u64).collect::<Vec<_>>());
    let left = db_events(&app);
    let head_now = head(&app);
    for s in 1..=head_now {
        let in_db = left.contains_key(&s);
        let archived = s <= last;
        assert!(in_db || archived, "seq {s} lost");
        if in_db && archived {
            assert_eq!(left[&s].as_deref(), Some(held.as_str()), "seq {s} twice though not held");
        }
    }
    // Every file is a recorded segment, its hash the recorded one.
    let recorded = store::archives_of(&mut app.db(), &tenant).unwrap();
    let on_disk: Vec<String> =
        files(&archive, &tenant).iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(recorded.iter().map(|a| a.file_name.clone()).collect::<Vec<_>>(), on_disk);
    for a in &recorded {
        let bytes = std::fs::read(archive.join(&tenant).join(&a.file_name)).unwrap();
        assert_eq!(keyward::crypto::sha256_hex(&bytes), a.sha256);
        assert!(keyward::audit::evidence::verify(&bytes, &key).valid, "{}", a.file_name);
    }
    events_by(&app, &free_token, 1);
    verify_as_the_job(&app);
    let chains = keyward::admin::verify(&mut app.db(), Some(&tenant)).unwrap();
    assert!(chains[0].valid, "{chains:?}");
    // Against the newest signed checkpoint too (the CLI's `audit verify --checkpoint`).
    let c = checkpoint_covering(&app, head(&app));
    let report = keyward::admin::verify_checkpoint(&mut app.db(), &key, c.note.as_bytes(), None).unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.verified_from, last as u64, "starts after the archived prefix");

    // The hold released: the next pass lets its archived events go.
    let r = key_post(&app, &ediscovery, "/v2/enterprise.hold.release", &json!({"uid": hold_uid}));
    assert_eq!(r.status, 200, "{}", r.text);
    pass_in(&app, &archive, 2);
    assert!(db_events(&app).range(..=last).next().is_none(), "released events leave the database");
}
both!(retention_archives_with_proofs_across_a_restart_and_a_crash);

fn the_archive_folder_defaults_beside_sqlite_and_is_required_on_postgres(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_RETENTION_INTERVAL_MS", "20")]);
    match b {
        Backend::Sqlite => {
            assert_eq!(app.settings().archive_dir, Some(app.data_dir.join("keyward.db.archive")));
        }
        Backend::Postgres => {
            assert_eq!(app.settings().archive_dir, None);
            let r = app.owner_post(POLICY_UPDATE, &json!({"audit_retention_days": 7}));
            assert_eq!(r.status, 200, "{}", r.text);
            // The job says once that it does nothing; a pass says why.
            let said = format!("tenant {} sets audit_retention_days but KEYWARD_ARCHIVE_DIR is not set", app.tenant_id);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !app.logs().contains(&said) {
                assert!(Instant::now() < deadline, "the retention job never said it does nothing");
                std::thread::sleep(Duration::from_millis(10));
            }
            let e = retention::pass(&mut app.db(), None, chrono::Utc::now()).unwrap_err();
            assert!(e.to_string().contains("KEYWARD_ARCHIVE_DIR"), "{e}");
        }
    }
}
both!(the_archive_folder_defaults_beside_sqlite_and_is_required_on_postgres);
