//! Verification that catches an insider: someone with write access to the
//! database who truncates, edits (recomputing every hash they can), drops,
//! reorders or inserts events. A checkpoint obtained before is the anchor:
//! each tampering is found, named, and fails `keyward audit verify
//! --checkpoint` (the real binary) and the library call alike. Also the
//! incremental paths (the CLI's `--state`, the API's stored progress) and the
//! witness, against a small HTTP server that serves real checkpoints and
//! proofs of a real database.

use crate::both;
use crate::helpers::{Backend, TestApp};
use diesel::prelude::*;
use keyward::audit::verify::{self, Finding, Report};
use keyward::audit::{canonical, checkpoint, tree};
use keyward::db::{store, DbConn};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

// ------------------------------------------------------------------ set-up

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|_| panic!("JSON on stdout: {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs the `keyward` binary with exactly `env`.
fn keyward(env: &HashMap<&str, String>, args: &[&str]) -> Run {
    let out =
        Command::new(env!("CARGO_BIN_EXE_keyward")).args(args).env_clear().envs(env).output().expect("run keyward");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The environment that points the CLI at the app's database.
fn env_of(app: &TestApp) -> HashMap<&'static str, String> {
    let s = app.settings();
    HashMap::from([
        ("KEYWARD_DATABASE_URL", app.database_url.clone()),
        ("KEYWARD_KEY_PEPPER", s.key_pepper.expose().to_string()),
        ("KEYWARD_CONSOLE_JWT_SECRET", s.console_jwt_secret.as_ref().unwrap().expose().to_string()),
        ("KEYWARD_CHECKPOINT_KEY", s.checkpoint_key.expose().to_string()),
    ])
}

fn sql(conn: &mut DbConn, statement: &str) {
    diesel::sql_query(statement).execute(conn).unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn head(app: &TestApp) -> i64 {
    store::load_chain_head(&mut app.db(), &app.tenant_id).unwrap().unwrap().0
}

/// An app whose tenant chain holds a few events (one refused), stopped (no
/// writer appends behind the test's back), and a checkpoint of that chain
/// signed now: what an auditor saved earlier.
fn seeded(b: Backend) -> (TestApp, String) {
    let mut app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    app.get(
        "/v2/authz.check",
        &[("X-API-Key", &secret), ("X-Original-Method", "GET"), ("X-Original-URI", "/v2/team.user.list")],
    );
    for _ in 0..6 {
        app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).ok();
    }
    app.stop();
    let note = sign_now(&app);
    (app, note)
}

/// A checkpoint of the tenant's chain at its size now, as the instance signs it.
fn sign_now(app: &TestApp) -> String {
    let size = head(app) as u64;
    checkpoint::sign(&mut app.db(), &app.settings().checkpoint_signer, &app.tenant_id, size).unwrap().note
}

/// The verdict of the library and of the binary; they must agree.
fn verify_both_ways(app: &TestApp, note: &str) -> (Report, Run) {
    let key = app.settings().checkpoint_signer.verifier_key().to_string();
    let report = verify::verify_against_checkpoint(&mut app.db(), &key, note.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoint.txt");
    std::fs::write(&file, note).unwrap();
    let run = keyward(&env_of(app), &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    (report, run)
}

/// Tampering was found: exit 1, the named problem first among those found,
/// one `error:` line per problem, and the library saying the same.
#[track_caller]
fn assert_caught(app: &TestApp, note: &str, kind: Finding, line: &str) -> Report {
    let (report, run) = verify_both_ways(app, note);
    assert!(!report.valid, "tampering went unnoticed: {report:?}");
    assert!(report.problems.iter().any(|p| p.kind == kind), "{kind:?} not found: {:?}", report.problems);
    assert!(report.problems.iter().any(|p| p.message.contains(line)), "no {line:?} in {:?}", report.problems);
    assert_eq!(run.code, 1, "stdout {}\nstderr {}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), report.problems.len(), "{}", run.stderr);
    assert!(lines.iter().all(|l| l.starts_with("error: ")), "{}", run.stderr);
    assert!(run.stderr.contains(line), "{}", run.stderr);
    let out = run.json();
    assert_eq!(out["valid"], json!(false));
    let kinds: Vec<Value> = out["problems"].as_array().unwrap().iter().map(|p| p["kind"].clone()).collect();
    assert_eq!(
        kinds,
        report.problems.iter().map(|p| json!(p.kind)).collect::<Vec<_>>(),
        "the CLI and the library agree"
    );
    // The background verifier's full run, against the checkpoints stored
    // with the log, finds what edits the events (the anchor of a truncation,
    // a dropped chain or a forged note is the auditor's own checkpoint).
    if matches!(kind, Finding::HistoryRewritten | Finding::Altered | Finding::Reordered | Finding::Inserted) {
        let key = app.settings().checkpoint_signer.verifier_key().to_string();
        let metrics = keyward::metrics::Metrics::new();
        // (The stopped app's verifier may still be finishing its pass: its lease goes with it.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let job = loop {
            let run = keyward::audit::verifier::run_chain(&mut app.db(), &app.tenant_id, "test", &key, true, &metrics);
            if let Some(run) = run.unwrap() {
                break run;
            }
            assert!(std::time::Instant::now() < deadline, "the chain's lease was never let go");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(job.state, keyward::domain::verification::RunState::Failed, "{job:?}");
        assert!(job.findings.tree_problems.iter().any(|p| p.kind == kind), "{kind:?} not found by the job: {job:?}");
    }
    report
}

/// What an insider with the database (but not the signing key) does after
/// editing an event: recompute its chain hash and every later one, and the
/// whole tree, so that the log is consistent with itself again.
fn recompute_everything(app: &TestApp) {
    let chain = app.tenant_id.as_str();
    let mut conn = app.db();
    let rows = store::chain_events_after(&mut conn, chain, 0, i64::MAX).unwrap();
    let mut prev = keyward::crypto::ChainHash::GENESIS;
    for row in &rows {
        let hash = keyward::crypto::chain_hash(&prev, &canonical(row));
        sql(
            &mut conn,
            &format!(
                "UPDATE audit_events SET prev_hash = {}, hash = {} WHERE chain_id = '{chain}' AND seq = {}",
                app.bytes_sql(&prev.to_string()),
                app.bytes_sql(&hash.to_string()),
                row.seq
            ),
        );
        prev = hash;
    }
    sql(&mut conn, &format!("UPDATE audit_chains SET last_hash = '{prev}' WHERE chain_id = '{chain}'"));
    let mut frontier = tree::Frontier::default();
    for row in &rows {
        store::set_tree_hashes(&mut conn, chain, row.seq, &frontier.append_stored(&canonical(row))).unwrap();
    }
}

// ------------------------------------------------------------------ each tampering

fn a_clean_log_verifies(b: Backend) {
    let (app, note) = seeded(b);
    let (report, run) = verify_both_ways(&app, &note);
    assert!(report.valid, "{report:?}");
    assert_eq!(report.events_read, head(&app) as u64);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["valid"], json!(true));
    assert_eq!(run.stderr, "");
    // Another key's verifier refuses the note before anything else.
    let other =
        keyward::crypto::CheckpointSigner::parse(&keyward::crypto::CheckpointSigner::generate("keyward.test")).unwrap();
    let r = verify::verify_against_checkpoint(&mut app.db(), other.verifier_key(), note.as_bytes()).unwrap();
    assert_eq!(r.problems.iter().map(|p| p.kind).collect::<Vec<_>>(), [Finding::BadSignature], "{r:?}");
    // So does a note altered by one byte (its size).
    let size = head(&app).to_string();
    let altered = note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", head(&app) - 1), 1);
    assert_ne!(altered, note);
    assert_caught(&app, &altered, Finding::BadSignature, "bad signature");
}
both!(a_clean_log_verifies);

fn a_truncated_tail_with_its_head_moved_back_is_caught(b: Backend) {
    let (app, note) = seeded(b);
    let n = head(&app);
    let (k, chain) = (n - 3, app.tenant_id.clone());
    let mut conn = app.db();
    let keep_hash = app.query_strings(&format!(
        "SELECT {} AS v FROM audit_events WHERE chain_id = '{chain}' AND seq = {k}",
        app.hex_sql("hash")
    ));
    sql(&mut conn, &format!("DELETE FROM audit_events WHERE chain_id = '{chain}' AND seq > {k}"));
    // The tail's tree hashes went with its events.
    sql(
        &mut conn,
        &format!("UPDATE audit_chains SET last_seq = {k}, last_hash = '{}' WHERE chain_id = '{chain}'", keep_hash[0]),
    );
    // The hash chain alone sees nothing wrong: the head was moved back with the tail.
    assert!(keyward::admin::verify(&mut conn, Some(&chain)).unwrap()[0].valid);
    assert_caught(&app, &note, Finding::Truncated, &format!("truncated: the log holds {k} events, the checkpoint {n}"));
}
both!(a_truncated_tail_with_its_head_moved_back_is_caught);

fn an_edited_event_with_everything_recomputed_is_caught(b: Backend) {
    let (app, note) = seeded(b);
    // Hide the refusal (seq 3): make the 401 a 200, then recompute every hash.
    let chain = app.tenant_id.clone();
    sql(&mut app.db(), &format!("UPDATE audit_events SET status_code = 200, outcome = 'ALLOWED', reason = NULL WHERE chain_id = '{chain}' AND seq = 3"));
    recompute_everything(&app);
    // The log is consistent with itself: the hash chain verifies, and so does the stored tree.
    assert!(keyward::admin::verify(&mut app.db(), Some(&chain)).unwrap()[0].valid);
    let n = head(&app);
    let report = assert_caught(
        &app,
        &note,
        Finding::HistoryRewritten,
        &format!("history rewritten: the first {n} events no longer hash to the signed root"),
    );
    assert_eq!(report.problems.len(), 1, "{report:?}");
}
both!(an_edited_event_with_everything_recomputed_is_caught);

fn an_edited_event_alone_is_named(b: Backend) {
    let (app, note) = seeded(b);
    let chain = app.tenant_id.clone();
    sql(&mut app.db(), &format!("UPDATE audit_events SET status_code = 200 WHERE chain_id = '{chain}' AND seq = 3"));
    let report = assert_caught(&app, &note, Finding::Altered, "event seq 3 altered");
    assert_eq!(report.problems.len(), 1, "the stored tree still holds the signed root: {report:?}");
}
both!(an_edited_event_alone_is_named);

fn a_dropped_chain_is_caught(b: Backend) {
    let (app, note) = seeded(b);
    let chain = app.tenant_id.clone();
    let mut conn = app.db();
    for table in ["audit_events", "audit_checkpoints", "audit_chains"] {
        sql(&mut conn, &format!("DELETE FROM {table} WHERE chain_id = '{chain}'"));
    }
    let n = store::find_checkpoint(&mut conn, &chain, None).unwrap();
    assert!(n.is_none());
    assert_caught(&app, &note, Finding::DroppedChain, &format!("dropped chain: the log has no chain {chain}"));
}
both!(a_dropped_chain_is_caught);

fn reordered_events_are_caught(b: Backend) {
    let (app, note) = seeded(b);
    let chain = app.tenant_id.clone();
    let mut conn = app.db();
    // Swap seqs 2 and 4 (through -1, for the unique (chain_id, seq)).
    for (from, to) in [(2, -1), (4, 2), (-1, 4)] {
        sql(&mut conn, &format!("UPDATE audit_events SET seq = {to} WHERE chain_id = '{chain}' AND seq = {from}"));
    }
    let report = assert_caught(&app, &note, Finding::Reordered, "reordered event at seq 2: it was the event at seq 4");
    assert!(report.problems.iter().any(|p| p.message.contains("reordered event at seq 4: it was the event at seq 2")));
    assert!(report.problems.iter().all(|p| p.kind == Finding::Reordered), "{report:?}");
}
both!(reordered_events_are_caught);

fn an_inserted_event_is_caught(b: Backend) {
    let (app, note) = seeded(b);
    let chain = app.tenant_id.clone();
    let n = head(&app);
    let mut conn = app.db();
    // Make room at seq 4 (two steps, for the unique (chain_id, seq)), then
    // add a made-up event there and move the head on.
    sql(&mut conn, &format!("UPDATE audit_events SET seq = seq + 1000 WHERE chain_id = '{chain}' AND seq >= 4"));
    sql(&mut conn, &format!("UPDATE audit_events SET seq = seq - 999 WHERE chain_id = '{chain}' AND seq >= 1000"));
    let mut forged = store::chain_events_after(&mut conn, &chain, 1, 1).unwrap().remove(0);
    forged.event_id = keyward::domain::event::EventId::new();
    forged.seq = 4;
    forged.request_id = "req_forged".into();
    store::insert_events(&mut conn, &[forged]).unwrap();
    sql(&mut conn, &format!("UPDATE audit_chains SET last_seq = {} WHERE chain_id = '{chain}'", n + 1));
    let report = assert_caught(&app, &note, Finding::Inserted, "inserted event at seq 4");
    let renumbered = format!("reordered events at seqs 5..{}: they were at seqs 4..{n}", n + 1);
    assert!(report.problems.iter().any(|p| p.message == renumbered), "{renumbered}: {report:?}");
}
both!(an_inserted_event_is_caught);

// ------------------------------------------------------------------ incremental

fn a_second_verification_reads_only_the_events_since(b: Backend) {
    let (mut app, note) = seeded(b);
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("first.txt");
    std::fs::write(&file, &note).unwrap();
    let env = env_of(&app);
    let args = |f: &Path| {
        vec![
            "audit".to_string(),
            "verify".into(),
            "--checkpoint".into(),
            f.display().to_string(),
            "--state".into(),
            state.path().join("s").display().to_string(),
        ]
    };
    let first = keyward(&env, &args(&file).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.json();
    let n1 = head(&app) as u64;
    assert_eq!(first["events_read"], json!(n1), "{first}");
    assert_eq!(first["verified_from"], json!(0));

    app.start();
    for _ in 0..4 {
        app.owner_get("/v2/enterprise.key.list").ok();
    }
    app.stop();
    let n2 = head(&app) as u64;
    assert!(n2 >= n1 + 4);
    let file2 = state.path().join("second.txt");
    std::fs::write(&file2, sign_now(&app)).unwrap();
    let second = keyward(&env, &args(&file2).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(second.code, 0, "{}", second.stderr);
    let second = second.json();
    assert_eq!(second["verified_from"], json!(n1), "{second}");
    assert_eq!(second["events_read"], json!(n2 - n1), "only the events since: {second}");
    // The older checkpoint still verifies from the newer state (a consistency proof, no event read).
    let again = keyward(&env, &args(&file).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["events_read"], json!(0));

    // Rewritten behind the state's back: the stored tree no longer gives the verified root.
    sql(
        &mut app.db(),
        &format!("UPDATE audit_events SET operation = 'auth.whoami' WHERE chain_id = '{}' AND seq = 2", app.tenant_id),
    );
    recompute_everything(&app);
    let caught = keyward(&env, &args(&file2).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(caught.code, 1, "{}", caught.stdout);
    assert!(caught.stderr.starts_with("error: history rewritten"), "{}", caught.stderr);
}
both!(a_second_verification_reads_only_the_events_since);

fn the_job_verifies_from_where_it_proved_the_chain(b: Backend) {
    // Incremental runs after the first (full) one.
    let app =
        TestApp::spawn_with(b, &[("KEYWARD_CHECKPOINT_INTERVAL_MS", "20"), ("KEYWARD_VERIFY_FULL_EVERY", "100000")]);
    app.create_key("KEY_TYPE_SIEM");
    let first = app.verification();
    assert_eq!(first["valid"], json!(true), "{first}");
    assert_eq!(first["complete"], json!(true), "{first}");
    assert_eq!(first["verified_through"], first["head_at_start"], "{first}");
    for _ in 0..3 {
        app.owner_get("/v2/enterprise.key.list").ok();
    }
    // Wait for a checkpoint past the first verification, so a later run holds one against the events.
    let through = first["verified_through"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store::find_checkpoint(&mut app.db(), &app.tenant_id, None)
        .unwrap()
        .is_none_or(|c| (c.tree_size as u64) <= through)
    {
        assert!(std::time::Instant::now() < deadline, "no checkpoint signed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = app.verification();
    assert_eq!(second["valid"], json!(true), "{second}");
    let from = second["verified_from"].as_i64().unwrap();
    assert!(from >= through as i64, "it starts where a run proved the chain: {second}");
    let read = second["events_read"].as_i64().unwrap();
    assert_eq!(read, second["verified_through"].as_i64().unwrap() - from, "only the events since: {second}");
    assert_eq!(second["verified_through"], second["head_at_start"], "{second}");
    assert_eq!(second["events_checked"], second["verified_through"]);

    // A consistent rewrite of the proved part: the stored tree no longer hashes to the proved root.
    sql(
        &mut app.db(),
        &format!("UPDATE audit_events SET operation = 'auth.whoami' WHERE chain_id = '{}' AND seq = 1", app.tenant_id),
    );
    recompute_everything(&app);
    let third = app.verification();
    assert_eq!(third["valid"], json!(false), "{third}");
    assert_eq!(third["state"], json!("failed"), "{third}");
    assert_eq!(third["tree_problems"][0]["kind"], json!("history_rewritten"), "{third}");
    // The failure stays: the next run finds it again.
    let fourth = app.verification();
    assert!(fourth["run_id"].as_i64() > third["run_id"].as_i64(), "{fourth}");
    assert_eq!(fourth["valid"], json!(false), "{fourth}");
    assert_eq!(fourth["tree_problems"][0]["kind"], json!("history_rewritten"), "{fourth}");
}
both!(the_job_verifies_from_where_it_proved_the_chain);

// ------------------------------------------------------------------ the witness

/// What the stand-in server answers, and the credentials it was sent.
#[derive(Default)]
struct Served {
    checkpoint: String,
    proofs: HashMap<(u64, u64), Vec<String>>,
    api_keys: Vec<String>,
}

/// A small HTTP server answering `enterprise.audit.checkpoint` and
/// `enterprise.audit.consistency` with what `served` holds. Its URL.
fn serve(served: Arc<Mutex<Served>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut api_key = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("x-api-key") {
                        api_key = v.trim().to_string();
                    }
                }
            }
            let target = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut s = served.lock().unwrap();
            s.api_keys.push(api_key);
            let body = if target == "/v2/enterprise.audit.checkpoint" {
                json!({"ok": true, "request_id": "req_1", "checkpoint": s.checkpoint})
            } else if let Some(q) = target.strip_prefix("/v2/enterprise.audit.consistency?") {
                let q: HashMap<String, u64> = q
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
                    .collect();
                let (from, to) = (q["from"], q["to"]);
                json!({"ok": true, "request_id": "req_2", "from": from, "to": to, "consistency": s.proofs[&(from, to)]})
            } else {
                json!({"ok": false})
            };
            let body = body.to_string();
            let status = if body.contains("\"ok\":true") { "200 OK" } else { "404 Not Found" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    url
}

fn proof(app: &TestApp, from: u64, to: u64) -> Vec<String> {
    tree::consistency_proof(&mut app.db(), &app.tenant_id, from, to).unwrap().iter().map(|h| h.to_string()).collect()
}

fn the_witness_follows_a_growing_log_and_catches_a_rewritten_one(b: Backend) {
    let (mut app, note1) = seeded(b);
    let n1 = head(&app) as u64;
    let served = Arc::new(Mutex::new(Served { checkpoint: note1.clone(), ..Default::default() }));
    let url = serve(served.clone());
    let state = tempfile::tempdir().unwrap();
    let key = app.settings().checkpoint_signer.verifier_key().to_string();
    let witness = |state: &Path| {
        let env = HashMap::from([("KEYWARD_WITNESS_API_KEY", "kw_live_witness".to_string())]);
        keyward(&env, &["audit", "witness", "--url", &url, "--public-key", &key, "--state", state.to_str().unwrap()])
    };

    let first = witness(state.path());
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.json()["verdict"], json!("first"));
    assert_eq!(served.lock().unwrap().api_keys, ["kw_live_witness"], "the key from the environment is sent");
    let again = witness(state.path());
    assert_eq!(again.json()["verdict"], json!("unchanged"), "{}", again.stderr);

    // The log grows; the witness proves the new checkpoint holds the one it kept.
    app.start();
    for _ in 0..5 {
        app.owner_get("/v2/enterprise.key.list").ok();
    }
    app.stop();
    let n2 = head(&app) as u64;
    let note2 = sign_now(&app);
    {
        let mut s = served.lock().unwrap();
        s.checkpoint = note2.clone();
        s.proofs.insert((n1, n2), proof(&app, n1, n2));
    }
    let before = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(state.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), before.path().join(f.file_name())).unwrap();
    }
    let grown = witness(state.path());
    assert_eq!(grown.code, 0, "{}", grown.stderr);
    let g = grown.json();
    assert_eq!(
        (g["verdict"].clone(), g["previous_size"].clone(), g["tree_size"].clone()),
        (json!("grown"), json!(n1), json!(n2))
    );

    // An insider rewrites event 2 and recomputes everything, and the instance
    // signs the rewritten tree: a checkpoint of a different tree.
    sql(
        &mut app.db(),
        &format!("UPDATE audit_events SET user_agent = 'insider' WHERE chain_id = '{}' AND seq = 2", app.tenant_id),
    );
    recompute_everything(&app);
    let rewritten =
        checkpoint::signed(&mut app.db(), &app.settings().checkpoint_signer, &app.tenant_id, n2).unwrap().note;
    assert_ne!(rewritten, note2);
    {
        let mut s = served.lock().unwrap();
        s.checkpoint = rewritten;
        s.proofs.insert((n1, n2), proof(&app, n1, n2));
    }
    // Against the kept checkpoint of the same size: two roots.
    let same = witness(state.path());
    assert_eq!(same.code, 1, "{}", same.stdout);
    assert!(
        same.stderr.starts_with("error: history rewritten") && same.stderr.contains("different roots"),
        "{}",
        same.stderr
    );
    assert_eq!(same.stderr.lines().count(), 1);
    // Against the earlier one: the rewritten tree's own consistency proof does not hold it.
    let grown_from_old = witness(before.path());
    assert_eq!(grown_from_old.code, 1, "{}", grown_from_old.stdout);
    assert!(grown_from_old.stderr.contains("consistency proof does not verify"), "{}", grown_from_old.stderr);
    // A rollback to the first checkpoint is refused too, and the kept one stays.
    served.lock().unwrap().checkpoint = note1;
    let back = witness(state.path());
    assert_eq!(back.code, 1);
    assert!(back.stderr.contains("rolled back"), "{}", back.stderr);
    let kept = std::fs::read_dir(state.path())
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(kept, [note2], "the state keeps the last good checkpoint");
}
both!(the_witness_follows_a_growing_log_and_catches_a_rewritten_one);

#[test]
fn the_witness_needs_a_credential_and_a_key() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path().to_str().unwrap();
    let none = keyward(
        &HashMap::new(),
        &["audit", "witness", "--url", "http://127.0.0.1:9", "--public-key", "k+00000000+AQ", "--state", s],
    );
    assert_eq!(none.code, 2);
    assert!(none.stderr.starts_with("error: give --api-key"), "{}", none.stderr);
    let env = HashMap::from([("KEYWARD_WITNESS_API_KEY", "x".to_string())]);
    let bad_key =
        keyward(&env, &["audit", "witness", "--url", "http://127.0.0.1:9", "--public-key", "nope", "--state", s]);
    assert_eq!(bad_key.code, 2, "{}", bad_key.stderr);
}

/// The witness against keyward itself, over HTTP: the checkpoint and
/// consistency endpoints, a SIEM key from the environment.
fn the_witness_follows_keyward_itself(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_CHECKPOINT_INTERVAL_MS", "20")]);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let state = tempfile::tempdir().unwrap();
    let key = app.settings().checkpoint_signer.verifier_key().to_string();
    // Waits for the signer to cover the chain as it is, then runs the witness.
    let witness_at = |size: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store::find_checkpoint(&mut app.db(), &app.tenant_id, None).unwrap().is_none_or(|c| c.tree_size < size) {
            assert!(std::time::Instant::now() < deadline, "no checkpoint at size {size}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let env = HashMap::from([("KEYWARD_WITNESS_API_KEY", siem.clone())]);
        let args =
            ["audit", "witness", "--url", &app.base, "--public-key", &key, "--state", state.path().to_str().unwrap()];
        keyward(&env, &args)
    };
    let first = witness_at(head(&app));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.json()["verdict"], json!("first"));
    for _ in 0..5 {
        app.get("/v2/auth.whoami", &[("X-API-Key", &siem)]).ok();
    }
    let grown = witness_at(head(&app));
    assert_eq!(grown.code, 0, "{}", grown.stderr);
    assert_eq!(grown.json()["verdict"], json!("grown"), "{}", grown.stdout);
}
both!(the_witness_follows_keyward_itself);
