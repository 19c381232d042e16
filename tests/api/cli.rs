//! The `keyward` command: bootstrap, console tokens, audit
//! verification and listing, configuration errors, and `serve`.

use crate::both;
use crate::helpers::{self, Backend, TestApp};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

// ------------------------------------------------------------------ running the binary

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `keyward args…` with exactly `env` (no inherited KEYWARD_*), in `dir`.
fn keyward(dir: &Path, env: &HashMap<String, String>, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(dir)
        .output()
        .expect("run keyward");
    Output {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

impl Output {
    #[track_caller]
    fn success(&self) -> &str {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Stdout as exactly one JSON object on one line.
    #[track_caller]
    fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one line of output: {:?}", self.stdout);
        let v: Value = serde_json::from_str(lines[0]).expect("JSON output");
        assert!(v.is_object(), "{v}");
        v
    }

    /// A failure: a non-zero exit and exactly one `error: …` line on stderr.
    #[track_caller]
    fn one_line_error(&self, code: Option<i32>) -> String {
        assert_ne!(self.code, 0, "expected a failure; stdout {}", self.stdout);
        if let Some(c) = code {
            assert_eq!(self.code, c, "exit code; stderr {}", self.stderr);
        }
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        lines[0].to_string()
    }
}

/// A fresh database for the CLI (and its environment), dropped at the end.
struct CliDb {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    pg_name: Option<String>,
}

impl CliDb {
    fn new(b: Backend) -> CliDb {
        let dir = tempfile::tempdir().unwrap();
        let mut env = HashMap::new();
        let mut pg_name = None;
        match b {
            Backend::Sqlite => {
                // Secrets are generated beside the database on first use.
                env.insert("KEYWARD_DATABASE_URL".into(), format!("sqlite://{}/kw.db", dir.path().display()));
            }
            Backend::Postgres => {
                let (url, name) = helpers::fresh_pg_database();
                env.insert("KEYWARD_DATABASE_URL".into(), url);
                env.insert("KEYWARD_KEY_PEPPER".into(), "p".repeat(40));
                env.insert(
                    "KEYWARD_CHECKPOINT_KEY".into(),
                    keyward::crypto::CheckpointSigner::generate("keyward.test"),
                );
                env.insert(
                    "KEYWARD_CONSOLE_JWT_SECRET".into(),
                    format!("console-secret-{}", uuid::Uuid::new_v4().simple()),
                );
                pg_name = Some(name);
            }
        }
        CliDb { dir, env, pg_name }
    }

    fn run(&self, args: &[&str]) -> Output {
        keyward(self.dir.path(), &self.env, args)
    }

    /// The settings the CLI reads (same environment, same generated files).
    fn settings(&self) -> keyward::config::Settings {
        keyward::config::Settings::from_lookup(|k| self.env.get(k).cloned()).unwrap()
    }

    fn conn(&self) -> keyward::db::DbConn {
        keyward::db::establish(&self.settings().database_url).unwrap()
    }
}

impl Drop for CliDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            if let Ok(mut c) = PgConnection::establish(&format!("{}/postgres", helpers::pg_base_url())) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        }
    }
}

/// The environment that points the CLI at a running test app's database.
fn env_of(app: &TestApp) -> HashMap<String, String> {
    let s = app.settings();
    HashMap::from([
        ("KEYWARD_DATABASE_URL".to_string(), app.database_url.clone()),
        ("KEYWARD_KEY_PEPPER".to_string(), s.key_pepper.expose().to_string()),
        ("KEYWARD_CONSOLE_JWT_SECRET".to_string(), s.console_jwt_secret.as_ref().unwrap().expose().to_string()),
        ("KEYWARD_CHECKPOINT_KEY".to_string(), s.checkpoint_key.expose().to_string()),
    ])
}

fn base64url_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c}"),
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn sql(conn: &mut keyward::db::DbConn, statement: &str) {
    diesel::sql_query(statement).execute(conn).unwrap_or_else(|e| panic!("{statement}: {e}"));
}

// ------------------------------------------------------------------ bootstrap and verify

fn cli_bootstraps_a_tenant_and_verifies_its_audit_chain(b: Backend) {
    let db = CliDb::new(b);
    if b == Backend::Postgres {
        // Clustered mode: instances and commands refuse an unmigrated schema.
        let early = db.run(&["tenant", "create", "--name", "Acme", "--owner-email", "o@acme.example"]);
        assert!(early.one_line_error(None).contains("keyward migrate"), "{}", early.stderr);
        let m = db.run(&["migrate"]);
        assert!(m.json()["migrations_applied"].as_u64().unwrap() >= 1, "{}", m.stdout);
    }

    let t = db.run(&["tenant", "create", "--name", "Acme", "--owner-email", "o@acme.example"]);
    t.success();
    let t = t.json();
    let tenant = t["tenant_id"].as_str().unwrap().to_string();
    let owner = t["owner_member_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&tenant).is_ok() && uuid::Uuid::parse_str(&owner).is_ok(), "{t}");
    assert_eq!(t.as_object().unwrap().len(), 2, "{t}");

    let m = db.run(&["member", "create", "--tenant", &tenant, "--email", "a@acme.example", "--role", "AUDITOR"]);
    m.success();
    let m = m.json();
    let member = m["member_id"].as_str().unwrap().to_string();
    assert_eq!(m.as_object().unwrap().len(), 1, "{m}");
    assert_ne!(member, owner);

    let tok = db.run(&["console-token", "--tenant", &tenant, "--member", &member, "--ttl", "10m"]);
    let token = tok.success().trim().to_string();
    assert_eq!(tok.stdout.lines().count(), 1);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a bare JWT: {token}");
    let header: Value = serde_json::from_slice(&base64url_decode(parts[0])).unwrap();
    assert_eq!(header["alg"], json!("HS256"));
    let claims: Value = serde_json::from_slice(&base64url_decode(parts[1])).unwrap();
    assert_eq!(claims["sub"], json!(member));
    assert_eq!(claims["tid"], json!(tenant));
    assert_eq!(claims["iss"], json!("keyward-console"));
    assert_eq!(claims["aud"], json!("keyward"));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    // The library accepts it, with the settings the CLI used.
    let verifier = keyward::auth::console::ConsoleVerifier::new(&db.settings()).unwrap();
    let verified = verifier.verify_token(&token).expect("keyward accepts the CLI's token");
    assert_eq!((verified.sub.as_str(), verified.tid.as_str()), (member.as_str(), tenant.as_str()));

    // Every CLI change is in the tenant's chain, by the CLI, never with the token.
    let events = keyward::admin::list_events(&mut db.conn(), Some(&tenant), 100).unwrap();
    let ops: Vec<&str> = events.iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["tenant.create", "member.create", "console_token.issue"]);
    for e in &events {
        assert_eq!(e["actor"], json!({"type": "SERVICE", "id": "keyward-cli"}));
        assert!(!e.to_string().contains(&token));
    }
    assert_eq!(events[2]["metadata"]["member_id"], json!(member));

    let v = db.run(&["audit", "verify"]);
    v.success();
    let v = v.json();
    assert_eq!(v["valid"], json!(true), "{v}");
    let chain = v["chains"].as_array().unwrap().iter().find(|c| c["chain_id"] == json!(tenant)).cloned().unwrap();
    assert_eq!(chain["events_checked"], json!(3), "{v}");
    assert_eq!(chain["problems"], json!([]));
    let vt = db.run(&["audit", "verify", "--tenant", &tenant]);
    vt.success();
    assert_eq!(vt.json()["chains"].as_array().unwrap().len(), 1);

    // Tamper: the member was an OWNER, says the edited event.
    sql(
        &mut db.conn(),
        &format!("UPDATE audit_events SET metadata = '{{\"role\":\"OWNER\"}}' WHERE chain_id = '{tenant}' AND seq = 2"),
    );
    for args in [vec!["audit", "verify"], vec!["audit", "verify", "--tenant", tenant.as_str()]] {
        let bad = db.run(&args);
        assert_eq!(bad.code, 1, "{args:?}: {} {}", bad.stdout, bad.stderr);
        let bad = bad.json();
        assert_eq!(bad["valid"], json!(false), "{bad}");
        let chain = bad["chains"].as_array().unwrap().iter().find(|c| c["chain_id"] == json!(tenant)).cloned().unwrap();
        assert_eq!(chain["valid"], json!(false));
        let seqs: Vec<i64> = chain["problems"].as_array().unwrap().iter().map(|p| p["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, vec![2], "{chain}");
    }
}
both!(cli_bootstraps_a_tenant_and_verifies_its_audit_chain);

fn cli_token_and_audit_list_work_with_a_running_server(b: Backend) {
    let app = TestApp::spawn(b);
    let env = env_of(&app);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| keyward(dir.path(), &env, args);

    let m =
        run(&["member", "create", "--tenant", &app.tenant_id, "--email", "audit@acme.example", "--role", "auditor"]);
    m.success();
    let member = m.json()["member_id"].as_str().unwrap().to_string();
    let tok = run(&["console-token", "--tenant", &app.tenant_id, "--member", &member]);
    let token = tok.success().trim().to_string();

    // The server takes the CLI's token, with the role from its own table.
    let r = app.get("/v2/auth.whoami", &[("Authorization", &format!("Bearer {token}"))]);
    let caller = &r.ok()["caller"];
    assert_eq!(caller["type"], json!("MEMBER"));
    assert_eq!(caller["member_id"], json!(member));
    assert_eq!(caller["role"], json!("AUDITOR"));
    let r = app.get("/v2/enterprise.audit.list", &[("Authorization", &format!("Bearer {token}"))]);
    let ops: Vec<Value> = r.ok()["events"].as_array().unwrap().iter().map(|e| e["operation"].clone()).collect();
    assert!(ops.contains(&json!("member.create")) && ops.contains(&json!("console_token.issue")), "{ops:?}");

    // Events no tenant can be told for are the operators' to read.
    let unknown = keyward::crypto::new_key_secret(keyward::domain::KeyType::Siem);
    let refused = app.get("/v2/auth.whoami", &[("X-API-Key", &unknown)]);
    assert_eq!(refused.status, 401);
    let rid = refused.body["request_id"].as_str().unwrap().to_string();
    let sys = run(&["audit", "list", "--system"]);
    sys.success();
    let lines: Vec<Value> = sys.stdout.lines().map(|l| serde_json::from_str(l).expect("NDJSON")).collect();
    assert!(!lines.is_empty());
    for (i, e) in lines.iter().enumerate() {
        assert_eq!(e["tenant_id"], Value::Null, "{e}");
        assert_eq!(e["seq"], json!(i + 1));
    }
    let mine: Vec<&Value> = lines.iter().filter(|e| e["request_id"] == json!(rid)).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["reason"], json!("unknown_key"));
    assert!(!sys.stdout.contains(&unknown));

    // A tenant's events, in order, as the API shows them.
    let listed = run(&["audit", "list", "--tenant", &app.tenant_id, "--limit", "2"]);
    listed.success();
    let lines: Vec<Value> = listed.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["operation"], json!("tenant.create"));
    assert_eq!(lines[1]["seq"], json!(2));
    assert_eq!(lines[0]["hash"], lines[1]["prev_hash"]);
    assert!(!listed.stdout.contains(&token));

    let neither = run(&["audit", "list"]);
    neither.one_line_error(Some(1));

    // And every chain of the running service verifies.
    let v = run(&["audit", "verify"]);
    v.success();
    assert_eq!(v.json()["valid"], json!(true));
}
both!(cli_token_and_audit_list_work_with_a_running_server);

// ------------------------------------------------------------------ embedded secrets

#[test]
fn cli_generates_embedded_secrets_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let db = CliDb::new(Backend::Sqlite);
    let t = db.run(&["tenant", "create", "--name", "Acme", "--owner-email", "o@acme.example"]);
    t.success();
    let tenant = t.json()["tenant_id"].as_str().unwrap().to_string();
    let owner = t.json()["owner_member_id"].as_str().unwrap().to_string();
    assert!(db.dir.path().join("kw.db").exists());

    let read = |suffix: &str| -> (String, u32) {
        let p: PathBuf = db.dir.path().join(format!("kw.db.{suffix}"));
        let mode = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode();
        (std::fs::read_to_string(&p).unwrap(), mode & 0o777)
    };
    let (pepper, pepper_mode) = read("key_pepper");
    let (jwt, jwt_mode) = read("console_jwt_secret");
    assert_eq!(pepper_mode, 0o600);
    assert_eq!(jwt_mode, 0o600);
    // The database itself (audit payloads) and SQLite's WAL beside it are owner-only too.
    for file in ["kw.db", "kw.db-wal"] {
        let p = db.dir.path().join(file);
        if p.exists() {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    assert!(pepper.trim().len() >= 32 && jwt.trim().len() >= 32);
    assert_ne!(pepper.trim(), jwt.trim());

    // A second command reuses them: its token verifies with the first file's secret.
    let tok = db.run(&["console-token", "--tenant", &tenant, "--member", &owner]);
    let token = tok.success().trim().to_string();
    assert_eq!(read("key_pepper").0, pepper);
    assert_eq!(read("console_jwt_secret").0, jwt);
    let key = jsonwebtoken::DecodingKey::from_secret(jwt.trim().as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["keyward"]);
    let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("signed with the file's secret");
    assert_eq!(data.claims["sub"], json!(owner));

    // Neither secret is written into the database.
    let mut dump = String::new();
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(db.dir.path().join(format!("kw.db{suffix}"))) {
            dump.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    assert!(dump.contains(&tenant));
    assert!(!dump.contains(pepper.trim()) && !dump.contains(jwt.trim()) && !dump.contains(&token));
}

// ------------------------------------------------------------------ errors

#[test]
fn cli_config_errors_name_the_variable_in_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/kw.db", dir.path().display());
    #[allow(clippy::type_complexity)]
    let cases: Vec<(Vec<(&str, String)>, Vec<&str>, &str)> = vec![
        (vec![("KEYWARD_DATABASE_URL", "mysql://x".into())], vec!["audit", "verify"], "KEYWARD_DATABASE_URL"),
        (vec![("KEYWARD_DATABASE_URL", "mysql://x".into())], vec!["serve"], "KEYWARD_DATABASE_URL"),
        (
            vec![("KEYWARD_DATABASE_URL", sqlite.clone()), ("KEYWARD_LISTEN", "nope".into())],
            vec!["serve"],
            "KEYWARD_LISTEN",
        ),
        (
            vec![("KEYWARD_DATABASE_URL", "postgres://postgres@127.0.0.1:1/kw".into())],
            vec!["tenant", "create", "--name", "A", "--owner-email", "o@a.example"],
            "KEYWARD_KEY_PEPPER",
        ),
        (
            vec![
                ("KEYWARD_DATABASE_URL", "postgres://postgres@127.0.0.1:1/kw".into()),
                ("KEYWARD_KEY_PEPPER", "p".repeat(40)),
            ],
            vec!["serve"],
            "KEYWARD_CONSOLE_JWT_SECRET",
        ),
        (
            vec![("KEYWARD_DATABASE_URL", sqlite.clone()), ("KEYWARD_KEY_PEPPER", "tiny-pepper".into())],
            vec!["audit", "verify"],
            "KEYWARD_KEY_PEPPER",
        ),
    ];
    for (vars, args, variable) in cases {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let out = keyward(dir.path(), &env, &args);
        let line = out.one_line_error(Some(2));
        assert!(line.contains(variable), "{args:?} {vars:?}: {line}");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        // A secret given in the environment is never printed back.
        assert!(!line.contains("tiny-pepper"), "{line}");
    }
    // Configuration errors stop before any file is made.
    assert!(!dir.path().join("kw.db").exists());
}

#[test]
fn cli_serve_on_a_busy_port_names_keyward_listen() {
    let db = CliDb::new(Backend::Sqlite);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut env = db.env.clone();
    env.insert("KEYWARD_LISTEN".into(), busy.local_addr().unwrap().to_string());
    let out = keyward(db.dir.path(), &env, &["serve"]);
    let line = out.one_line_error(Some(2));
    assert!(line.contains("KEYWARD_LISTEN"), "{line}");
}

#[test]
fn cli_refuses_bad_members_in_one_line() {
    let db = CliDb::new(Backend::Sqlite);
    let t = db.run(&["tenant", "create", "--name", "Acme", "--owner-email", "o@acme.example"]);
    t.success();
    let tenant = t.json()["tenant_id"].as_str().unwrap().to_string();

    let root = db.run(&["member", "create", "--tenant", &tenant, "--email", "r@acme.example", "--role", "ROOT"]);
    let line = root.one_line_error(None);
    assert!(line.contains("--role"), "{line}");
    assert!(root.stdout.is_empty());

    db.run(&["member", "create", "--tenant", &tenant, "--email", "a@acme.example", "--role", "AUDITOR"]).success();
    let dup = db.run(&["member", "create", "--tenant", &tenant, "--email", "A@acme.example", "--role", "MEMBER"]);
    let line = dup.one_line_error(None);
    assert!(line.contains("already exists"), "{line}");
    // The owner's address too.
    let dup_owner = db.run(&["member", "create", "--tenant", &tenant, "--email", "o@acme.example", "--role", "ADMIN"]);
    dup_owner.one_line_error(None);

    let nobody = db.run(&[
        "member",
        "create",
        "--tenant",
        &uuid::Uuid::new_v4().to_string(),
        "--email",
        "x@acme.example",
        "--role",
        "ADMIN",
    ]);
    nobody.one_line_error(None);
    let token = db.run(&["console-token", "--tenant", &tenant, "--member", &uuid::Uuid::new_v4().to_string()]);
    token.one_line_error(None);
    assert!(token.stdout.is_empty(), "no token for an unknown member");
    let ttl = db.run(&["console-token", "--tenant", &tenant, "--member", "x", "--ttl", "forever"]);
    assert!(ttl.one_line_error(None).contains("--ttl"));
    // Longer than keyward accepts (KEYWARD_CONSOLE_JWT_MAX_TTL, 1 h by default): no token that would be refused.
    let long = db.run(&["console-token", "--tenant", &tenant, "--member", "x", "--ttl", "2h"]);
    assert!(long.one_line_error(None).contains("KEYWARD_CONSOLE_JWT_MAX_TTL"));
    assert!(long.stdout.is_empty());

    // Refusals changed nothing: the owner and the one auditor, and a valid chain.
    let members: Vec<String> = {
        #[derive(QueryableByName)]
        struct V {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let keyward::db::DbConn::Sqlite(mut c) = db.conn() else { unreachable!() };
        diesel::sql_query(format!("SELECT email AS v FROM members WHERE tenant_id = '{tenant}' ORDER BY email"))
            .load::<V>(&mut c)
            .unwrap()
            .into_iter()
            .map(|r| r.v)
            .collect()
    };
    assert_eq!(members, ["a@acme.example", "o@acme.example"]);
    let v = db.run(&["audit", "verify"]);
    assert_eq!(v.json()["valid"], json!(true), "{}", v.stdout);
}

// ------------------------------------------------------------------ serve

/// Kills the child when the test ends, passing or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cli_serve_creates_and_migrates_the_database_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("data").join("kw.db");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("serve")
        .env_clear()
        .env("KEYWARD_DATABASE_URL", format!("sqlite://{}", db_path.display()))
        .env("KEYWARD_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keyward serve");
    let mut server = Server(child);

    // Wait for start-up: the listener is bound before the "keyward starting" log line.
    let stderr = server.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let started = line.contains("keyward starting");
                log.push(line);
                if started {
                    break;
                }
            }
            Err(e) => panic!("keyward serve did not start ({e}); it logged {log:#?}"),
        }
    }
    let first: Value = serde_json::from_str(log.last().unwrap()).expect("JSON logs by default");
    assert_eq!(first["level"], json!("INFO"), "{first}");

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = None;
    for _ in 0..50 {
        match agent.get(&format!("{base}/readyz")).call() {
            Ok(r) => {
                ready = Some(r);
                break;
            }
            Err(ureq::Error::Status(_, r)) => {
                ready = Some(r);
                break;
            }
            Err(ureq::Error::Transport(_)) => continue,
        }
    }
    let ready = ready.expect("keyward serve answers /readyz");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.into_json().unwrap();
    assert_eq!(body["ok"], json!(true));
    assert_eq!(body["status"], json!("ready"));

    // The database was created, migrated, with the secrets beside it.
    assert!(db_path.exists());
    let mut conn = keyward::db::establish(&keyward::db::DbUrl::Sqlite(db_path.clone())).unwrap();
    assert_eq!(keyward::db::is_migrated(&mut conn), Ok(true));
    assert!(dir.path().join("data/kw.db.key_pepper").exists());

    // It is the real service: an unknown route is the JSON envelope, audited.
    let r = match agent.get(&format!("{base}/v2/nothing")).call() {
        Err(ureq::Error::Status(404, r)) => r,
        other => panic!("expected 404, got {other:?}"),
    };
    let rid = r.header("x-request-id").unwrap().to_string();
    let body: Value = r.into_json().unwrap();
    assert_eq!(body["error"]["code"], json!("not_found"));
    let system = keyward::admin::list_events(&mut conn, None, 100).unwrap();
    assert!(system.iter().any(|e| e["request_id"] == json!(rid)));

    drop(server);
}
