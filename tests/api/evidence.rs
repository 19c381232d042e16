//! Evidence that verifies offline: the SIEM compliance export and the
//! e-Discovery archive carry a signed checkpoint and every event's inclusion
//! proof; `keyward audit verify-archive` checks a downloaded file with no
//! configuration, database or network, and catches one altered byte. The
//! proofs and the signature are also checked with independent code
//! (`ct-merkle`, `ring`).

use crate::both;
use crate::exports::{fetch, unzip, wait_done};
use crate::helpers::{key_get, key_post, Backend, TestApp};
use crate::merkle::open_with_ring;
use base64::Engine;
use ct_merkle::{InclusionProof, RootHash};
use keyward::audit::canonical;
use keyward::db::store;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Verdict {
    code: i32,
    summary: Value,
    stderr: String,
}

/// Runs the real `keyward audit verify-archive` on `bytes`, with an empty environment.
fn verify_archive(bytes: &[u8], public_key: &str) -> Verdict {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export");
    std::fs::write(&file, bytes).unwrap();
    run_cli(dir.path(), &["audit", "verify-archive", file.to_str().unwrap(), "--public-key", public_key])
}

fn run_cli(dir: &Path, args: &[&str]) -> Verdict {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env_clear()
        .current_dir(dir)
        .output()
        .expect("run keyward");
    let stdout = String::from_utf8(out.stdout).unwrap();
    Verdict {
        code: out.status.code().expect("exited"),
        summary: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

impl Verdict {
    #[track_caller]
    fn valid(&self) -> &Value {
        assert_eq!(self.code, 0, "summary: {}\nstderr: {}", self.summary, self.stderr);
        assert_eq!(self.summary["valid"], json!(true), "{}", self.summary);
        assert_eq!(self.summary["problems"], json!([]));
        &self.summary
    }

    /// Invalid, with exactly one problem, which names `event_id`.
    #[track_caller]
    fn caught(&self, event_id: &str, what: &str) {
        assert_eq!(self.code, 1, "{what}: summary {}\nstderr {}", self.summary, self.stderr);
        assert_eq!(self.summary["valid"], json!(false), "{what}");
        let problems = self.summary["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{what}: one problem: {problems:?}");
        assert!(problems[0].as_str().unwrap().contains(event_id), "{what}: the problem names the event: {problems:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line per problem: {}", self.stderr);
        assert!(lines[0].contains(event_id), "{}", lines[0]);
    }
}

/// Downloads a finished export through its signed link.
fn download(app: &TestApp, secret: &str, url_path: &str, uid: &str) -> Vec<u8> {
    let r = key_get(app, secret, &format!("{url_path}?uid={uid}"));
    let d = fetch(r.ok()["download_url"].as_str().unwrap());
    assert_eq!(d.status, 200);
    d.bytes
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Replaces line `i` of `text` with `f(line)`.
fn with_line(text: &str, i: usize, f: impl FnOnce(&str) -> String) -> String {
    let mut out: Vec<String> = text.lines().map(str::to_string).collect();
    out[i] = f(&out[i]);
    out.join("\n") + "\n"
}

/// The line's event with its proof changed by `f`.
fn with_proof(line: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v: Value = serde_json::from_str(line).unwrap();
    f(v["proof"].as_object_mut().unwrap());
    v.to_string()
}

/// One byte of the leaf changed: the last byte of the first `needle` in it becomes `to`.
fn alter_leaf(proof: &mut serde_json::Map<String, Value>, needle: &str, to: u8) {
    let mut leaf = B64.decode(proof["leaf"].as_str().unwrap()).unwrap();
    let at = leaf.windows(needle.len()).position(|w| w == needle.as_bytes()).expect("the needle is in the leaf");
    leaf[at + needle.len() - 1] = to;
    proof.insert("leaf".into(), json!(B64.encode(leaf)));
}

/// One byte of the proof's first hash flipped.
fn alter_inclusion(proof: &mut serde_json::Map<String, Value>) {
    let first = proof["inclusion"][0].as_str().expect("a proof with at least one hash").to_string();
    let mut h = B64.decode(first).unwrap();
    h[0] ^= 1;
    proof["inclusion"][0] = json!(B64.encode(h));
}

/// The event's proof checked with `ct-merkle` against the checkpoint body
/// read with `ring`, and its leaf compared with the stored row's canonical bytes.
fn check_independently(app: &TestApp, event: &Value, note: &str) {
    let body = open_with_ring(note, app.settings().checkpoint_signer.verifier_key());
    let size: u64 = body[1].parse().unwrap();
    let root: [u8; 32] = B64.decode(&body[2]).unwrap().try_into().unwrap();
    let root = RootHash::<Sha256>::new(root.into(), size);
    let proof = &event["proof"];
    let index = proof["leaf_index"].as_u64().unwrap();
    assert_eq!(proof["tree_size"], json!(size));
    let hashes: Vec<u8> =
        proof["inclusion"].as_array().unwrap().iter().flat_map(|h| B64.decode(h.as_str().unwrap()).unwrap()).collect();
    let inclusion = InclusionProof::<Sha256>::try_from_bytes(hashes).unwrap();
    let leaf = B64.decode(proof["leaf"].as_str().unwrap()).unwrap();
    root.verify_inclusion(&leaf, index, &inclusion).expect("ct-merkle verifies the proof");

    let seq = event["seq"].as_i64().unwrap();
    let row = store::chain_events_after(&mut app.db(), &app.tenant_id, seq - 1, 1).unwrap().remove(0);
    assert_eq!(row.seq, seq);
    assert_eq!(leaf, canonical(&row), "the leaf is the stored event's canonical bytes");
}

fn compliance_export_verifies_offline_and_one_altered_byte_is_caught(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    app.create_key("KEY_TYPE_EDISCOVERY");
    for _ in 0..3 {
        key_get(&app, &siem, "/v2/auth.whoami").ok();
    }
    let key = app.settings().checkpoint_signer.verifier_key().to_string();

    // Tier 1: events whose payload stays out carry their leaf's hash only.
    let r = key_post(&app, &siem, "/v2/enterprise.compliance.export.create", &json!({}));
    let uid = r.ok()["export"]["uid"].as_str().unwrap().to_string();
    let done = wait_done(&app, &siem, "/v2/enterprise.compliance.export.detail", &uid);
    assert_eq!(done["status"], json!("EXPORT_STATUS_COMPLETED"), "{done}");
    let tier1 = String::from_utf8(download(&app, &siem, "/v2/enterprise.compliance.export.downloadUrl", &uid)).unwrap();
    let events = lines(&tier1);
    let withheld = events.iter().filter(|e| e["proof"].get("leaf").is_none()).count();
    assert!(withheld >= 2, "the key creations' payloads are withheld, and so are their leaves");
    assert!(events.iter().all(|e| e["proof"].get("leaf").is_some() != e["proof"].get("leaf_hash").is_some()));
    let summary = verify_archive(tier1.as_bytes(), &key).valid().clone();
    assert_eq!(summary["events"], json!(events.len()));
    assert_eq!(summary["fields_unbound"], json!(withheld));
    for e in &events {
        if let Some(leaf) = e["proof"]["leaf"].as_str() {
            let leaf: Value = serde_json::from_slice(&B64.decode(leaf).unwrap()).unwrap();
            assert_eq!(leaf.as_array().unwrap().last(), Some(&Value::Null), "a shown leaf holds no payload");
        }
    }

    // Tier 2: every leaf is in the file.
    app.owner_post("/v2/enterprise.key_policy.update", &json!({"siem_tier2_enabled": true})).ok();
    let r = key_post(&app, &siem, "/v2/enterprise.compliance.export.create", &json!({"include_payload": true}));
    let uid = r.ok()["export"]["uid"].as_str().unwrap().to_string();
    let done = wait_done(&app, &siem, "/v2/enterprise.compliance.export.detail", &uid);
    assert_eq!(done["status"], json!("EXPORT_STATUS_COMPLETED"), "{done}");
    let bytes = download(&app, &siem, "/v2/enterprise.compliance.export.downloadUrl", &uid);
    let text = String::from_utf8(bytes).unwrap();
    let events = lines(&text);
    assert!(events.len() > 5, "{}", events.len());

    let summary = verify_archive(text.as_bytes(), &key).valid().clone();
    assert_eq!(summary["kind"], json!("ndjson"));
    assert_eq!(summary["events"], json!(events.len()));
    assert_eq!(summary["fields_unbound"], json!(0));
    let note = events[0]["proof"]["checkpoint"].as_str().unwrap();
    let origin = format!("{}/audit/{}", app.settings().checkpoint_signer.name(), app.tenant_id);
    assert_eq!(summary["checkpoint"]["origin"], json!(origin));
    let size = summary["checkpoint"]["tree_size"].as_i64().unwrap();
    assert!(size >= events.last().unwrap()["seq"].as_i64().unwrap(), "the checkpoint covers every event");
    assert!(events.iter().all(|e| e["proof"]["checkpoint"] == json!(note)), "one checkpoint for the file");
    // The checkpoint is one the instance keeps.
    let kept = store::find_checkpoint(&mut app.db(), &app.tenant_id, Some(size)).unwrap().expect("stored");
    assert_eq!(kept.note, note);

    // Independent code agrees, for events across the tree.
    for e in [&events[0], &events[events.len() / 2], events.last().unwrap()] {
        check_independently(&app, e, note);
    }

    let (i, whoami) = events.iter().enumerate().find(|(_, e)| e["operation"] == json!("auth.whoami")).unwrap();
    let id = whoami["event_id"].as_str().unwrap();
    // One byte of a shown field.
    let altered = with_line(&text, i, |l| l.replacen("\"auth.whoami\"", "\"auth.whoamj\"", 1));
    assert_eq!(altered.len(), text.len());
    verify_archive(altered.as_bytes(), &key).caught(id, "a shown field");
    // One byte of the leaf.
    let altered = with_line(&text, i, |l| with_proof(l, |p| alter_leaf(p, "auth.whoami", b'A')));
    verify_archive(altered.as_bytes(), &key).caught(id, "the leaf");
    // The shown field, the leaf and the chain hash alike, as an insider would
    // recompute them: only the proof no longer leads to the checkpoint.
    let altered = with_line(&text, i, |l| {
        let mut v: Value = serde_json::from_str(&l.replacen("\"auth.whoami\"", "\"auth.whoamj\"", 1)).unwrap();
        alter_leaf(v["proof"].as_object_mut().unwrap(), "auth.whoami", b'j');
        let leaf = B64.decode(v["proof"]["leaf"].as_str().unwrap()).unwrap();
        let prev = keyward::crypto::ChainHash::parse(v["prev_hash"].as_str().unwrap()).unwrap();
        v["hash"] = json!(keyward::crypto::chain_hash(&prev, &leaf));
        v.to_string()
    });
    let v = verify_archive(altered.as_bytes(), &key);
    v.caught(id, "field and leaf together");
    assert!(v.stderr.contains("is not at index"), "{}", v.stderr);
    // One byte of the proof.
    let altered = with_line(&text, i, |l| with_proof(l, alter_inclusion));
    verify_archive(altered.as_bytes(), &key).caught(id, "the proof");

    // Another instance's key does not open the checkpoint.
    let other = keyward::crypto::CheckpointSigner::parse(&keyward::crypto::CheckpointSigner::generate("elsewhere"))
        .unwrap()
        .verifier_key()
        .to_string();
    let v = verify_archive(text.as_bytes(), &other);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("checkpoint"), "{}", v.stderr);
}

/// Writes `files` as a ZIP archive.
fn zip_of(files: &BTreeMap<String, String>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn ediscovery_archive_verifies_offline_and_one_altered_byte_is_caught(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    app.create_key("KEY_TYPE_SIEM");
    app.owner_get("/v2/enterprise.key.list").ok();
    let key = app.settings().checkpoint_signer.verifier_key().to_string();

    let body = json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_FULL", "include_files": false,
                      "reason": "evidence"});
    let r = key_post(&app, &secret, "/v2/enterprise.export.create", &body);
    let uid = r.ok()["export"]["uid"].as_str().unwrap().to_string();
    let done = wait_done(&app, &secret, "/v2/enterprise.export.detail", &uid);
    assert_eq!(done["status"], json!("EXPORT_STATUS_COMPLETED"), "{done}");
    let bytes = download(&app, &secret, "/v2/enterprise.export.downloadUrl", &uid);

    let summary = verify_archive(&bytes, &key).valid().clone();
    let files = unzip(&bytes);
    let events = lines(&files["events.ndjson"]);
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(summary["kind"], json!("zip"));
    assert_eq!(summary["events"], json!(events.len()));
    assert_eq!(summary["fields_unbound"], json!(0), "FULL scope shows every leaf");
    let manifest: Value = serde_json::from_str(&files["manifest.json"]).unwrap();
    let note = manifest["checkpoint"].as_str().expect("the manifest carries the checkpoint");
    assert_eq!(summary["checkpoint"]["tree_size"], json!(events[0]["proof"]["tree_size"]));
    for e in &events {
        check_independently(&app, e, note);
    }

    // The archive rebuilt unaltered still verifies (the check is of content, not of ZIP bytes).
    verify_archive(&zip_of(&files), &key).valid();
    let altered_events = |f: &dyn Fn(&str) -> String| {
        let mut files = files.clone();
        files.insert("events.ndjson".into(), f(&files["events.ndjson"]));
        zip_of(&files)
    };
    let (i, list) = events.iter().enumerate().find(|(_, e)| e["operation"] == json!("enterprise.key.list")).unwrap();
    let id = list["event_id"].as_str().unwrap();
    // One byte of a shown field (the actor's id, a digit or letter changed).
    let actor = format!("\"id\":\"{}\"", app.owner_id);
    let mut changed = actor.clone().into_bytes();
    let at = changed.len() - 2;
    changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
    let changed = String::from_utf8(changed).unwrap();
    let archive = altered_events(&|t| with_line(t, i, |l| l.replacen(&actor, &changed, 1)));
    verify_archive(&archive, &key).caught(id, "a shown field in the archive");
    // One byte of the leaf.
    let archive =
        altered_events(&|t| with_line(t, i, |l| with_proof(l, |p| alter_leaf(p, "enterprise.key.list", b'E'))));
    verify_archive(&archive, &key).caught(id, "the leaf in the archive");
    // One byte of the proof.
    let archive = altered_events(&|t| with_line(t, i, |l| with_proof(l, alter_inclusion)));
    verify_archive(&archive, &key).caught(id, "the proof in the archive");
    // A dropped event disagrees with the manifest's count.
    let archive = altered_events(&|t| {
        let mut kept: Vec<&str> = t.lines().collect();
        kept.remove(i);
        kept.join("\n") + "\n"
    });
    let v = verify_archive(&archive, &key);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("counts"), "{}", v.stderr);
    // One byte of the checkpoint.
    let mut files_altered = files.clone();
    let bad_note = note.replacen(&format!("\n{}\n", summary["checkpoint"]["tree_size"]), "\n1\n", 1);
    assert_ne!(bad_note, note);
    files_altered.insert(
        "manifest.json".into(),
        files["manifest.json"].replace(&json!(note).to_string(), &json!(bad_note).to_string()),
    );
    let v = verify_archive(&zip_of(&files_altered), &key);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("signature"), "{}", v.stderr);
}

both!(
    compliance_export_verifies_offline_and_one_altered_byte_is_caught,
    ediscovery_archive_verifies_offline_and_one_altered_byte_is_caught,
);

/// Usage errors exit 2: no file, or a key that is no verifier key.
#[test]
fn verify_archive_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let key = keyward::crypto::CheckpointSigner::parse(&keyward::crypto::CheckpointSigner::generate("k"))
        .unwrap()
        .verifier_key()
        .to_string();
    let v = run_cli(dir.path(), &["audit", "verify-archive", "missing.zip", "--public-key", &key]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.stderr.contains("missing.zip"), "{}", v.stderr);
    std::fs::write(dir.path().join("empty.ndjson"), "").unwrap();
    let v = run_cli(dir.path(), &["audit", "verify-archive", "empty.ndjson", "--public-key", "not-a-key"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.stderr.contains("--public-key"), "{}", v.stderr);
    // The key may come from a file; an empty export holds nothing to disprove.
    std::fs::write(dir.path().join("key"), format!("{key}\n")).unwrap();
    let v = run_cli(dir.path(), &["audit", "verify-archive", "empty.ndjson", "--public-key", "key"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!(v.summary["events"], json!(0));
}
