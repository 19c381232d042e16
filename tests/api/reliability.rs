//! Reliability: a killed process loses no answered event and
//! leaves no half-made key; while the database cannot be written keyward fails
//! closed, and it recovers on its own when the database returns.

use crate::both;
use crate::helpers::{self, Backend, Resp, TestApp};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use keyward::db::{self, DbConn, DbUrl};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const CREATE: &str = "/v2/enterprise.key.create";
const ROTATE: &str = "/v2/enterprise.key.rotate";
const REVOKE: &str = "/v2/enterprise.key.revoke";
const WHOAMI: &str = "/v2/auth.whoami";

/// Rows of a query whose one column is named `v` and is text.
fn strings(conn: &mut DbConn, sql: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = Text)]
        v: String,
    }
    let rows: Result<Vec<V>, _> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(sql).load(c),
        DbConn::Postgres(c) => diesel::sql_query(sql).load(c),
    };
    rows.unwrap_or_else(|e| panic!("{sql}: {e}")).into_iter().map(|r| r.v).collect()
}

/// Polls `f` until it is true, at most `limit` (a bounded wait for recovery, not a timing assertion).
#[track_caller]
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the crash test checks on any database keyward has written: every
/// answered request's event is there, and keys and their events match both ways.
fn assert_consistent(conn: &mut DbConn, answered_ids: &[String]) {
    let stored: HashSet<String> = strings(conn, "SELECT request_id AS v FROM audit_events").into_iter().collect();
    let lost: Vec<&String> = answered_ids.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} answered requests have no audit event: {lost:?}", lost.len());

    let key_rows: HashSet<String> = strings(conn, "SELECT id AS v FROM api_keys").into_iter().collect();
    let made: HashSet<String> = strings(
        conn,
        "SELECT metadata AS v FROM audit_events WHERE outcome = 'ALLOWED' \
         AND operation IN ('enterprise.key.create', 'enterprise.key.rotate')",
    )
    .iter()
    .map(|m| {
        let m: Value = serde_json::from_str(m).expect("metadata is JSON");
        m["new_key_id"].as_str().unwrap_or_else(|| panic!("no new_key_id in {m}")).to_string()
    })
    .collect();
    let without_event: Vec<&String> = key_rows.difference(&made).collect();
    assert!(without_event.is_empty(), "key rows without their create/rotate event: {without_event:?}");
    let without_row: Vec<&String> = made.difference(&key_rows).collect();
    assert!(without_row.is_empty(), "create/rotate events whose key is missing: {without_row:?}");
}

// ------------------------------------------------------------------ the real binary

/// `keyward serve` as a child process, killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &Path, env: &HashMap<String, String>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .arg("serve")
            .env_clear()
            .envs(env)
            .env("KEYWARD_LISTEN", format!("127.0.0.1:{port}"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keyward serve");
        // Drain stderr for the child's whole life (a full pipe would stall it); keep the lines.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let (stderr, lines) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let started = line.contains("keyward starting");
                lines.lock().unwrap().push(line);
                if started {
                    let _ = tx.send(());
                }
            }
        });
        let server = Server { child, base: format!("http://127.0.0.1:{port}"), log };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            panic!("keyward serve did not start; it logged {:#?}", server.log.lock().unwrap());
        }
        // The listener is bound before that line; readiness follows.
        let agent = agent();
        eventually(
            Duration::from_secs(30),
            "keyward serve answers /readyz with 200",
            || matches!(agent.get(&format!("{}/readyz", server.base)).call(), Ok(r) if r.status() == 200),
        );
        server
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL keyward");
        let status = self.child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            for line in self.log.lock().unwrap().iter().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
                eprintln!("keyward log: {line}");
            }
        }
    }
}

fn agent() -> ureq::Agent {
    // No connection reuse: a POST must never be silently retried.
    ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).max_idle_connections(0).build()
}

/// One request; None when the server is gone (connection refused or reset).
fn call(agent: &ureq::Agent, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Option<Resp> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(_)) => return None,
    };
    let status = resp.status();
    let headers =
        resp.headers_names().into_iter().filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string()))).collect();
    // A body cut off by the kill is an unanswered request too.
    let text = resp.into_string().ok()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Some(Resp { status, headers, body, text })
}

/// Runs the CLI on the database; its stdout on success.
fn cli(dir: &Path, env: &HashMap<String, String>, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(dir)
        .output()
        .expect("run keyward");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "keyward {args:?} failed ({:?}): {stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

const THREADS: usize = 4;
/// Each client stops after this many requests even if keyward were never killed.
const REQUESTS_PER_THREAD: usize = 150;
/// keyward is killed once this many requests (of any status) have been answered.
const KILL_AFTER: usize = 200;

/// One client: create, whoami, rotate, revoke, … with keys of its own, until it
/// has made its requests or keyward is gone. Sends every answer's status on
/// `answers`; returns the request ids answered 2xx and whether keyward went away.
fn client(
    agent: ureq::Agent,
    base: String,
    owner_token: String,
    seed_secret: String,
    answers: mpsc::Sender<u16>,
) -> (Vec<String>, bool) {
    let auth = format!("Bearer {owner_token}");
    let owner = [("Authorization", auth.as_str())];
    let mut answered = Vec::new();
    // This client's live keys: (id, secret).
    let mut keys: Vec<(String, String)> = Vec::new();
    for i in 0..REQUESTS_PER_THREAD {
        let (resp, makes_key) = match (i % 4, keys.len()) {
            (0, n) if n < 4 => {
                let body = json!({"key_type": "KEY_TYPE_SIEM", "label": format!("load {i}")});
                (call(&agent, "POST", &format!("{base}{CREATE}"), &owner, Some(&body)), true)
            }
            (2, n) if n > 0 => {
                let (old, _) = keys.remove(0);
                let body = json!({"key_id": old, "grace_seconds": 0});
                (call(&agent, "POST", &format!("{base}{ROTATE}"), &owner, Some(&body)), true)
            }
            (3, n) if n > 1 => {
                let (old, _) = keys.pop().unwrap();
                let body = json!({"key_id": old, "reason": "load"});
                (call(&agent, "POST", &format!("{base}{REVOKE}"), &owner, Some(&body)), false)
            }
            _ => {
                let secret = keys.last().map_or(seed_secret.as_str(), |k| k.1.as_str());
                (call(&agent, "GET", &format!("{base}{WHOAMI}"), &[("X-API-Key", secret)], None), false)
            }
        };
        let Some(resp) = resp else { return (answered, true) };
        let _ = answers.send(resp.status);
        assert!((200..300).contains(&resp.status), "a refusal under load: {} {}", resp.status, resp.text);
        let request_id = resp.header("x-request-id").expect("every answer has x-request-id");
        assert_eq!(resp.body["request_id"], json!(request_id), "{}", resp.text);
        if makes_key {
            let id = resp.body["key"]["key_id"].as_str().expect("the new key's id").to_string();
            let secret = resp.body["secret"].as_str().expect("the new key's secret").to_string();
            keys.push((id, secret));
        }
        answered.push(request_id);
    }
    (answered, false)
}

fn a_killed_process_loses_no_answered_event_and_leaves_no_half_made_key(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_name) = match b {
        Backend::Sqlite => (format!("sqlite://{}/kw.db", dir.path().display()), None),
        Backend::Postgres => {
            let (url, name) = helpers::fresh_pg_database();
            (url, Some(name))
        }
    };
    let _drop_pg = pg_name.map(DropPgDatabase);
    let env: HashMap<String, String> = HashMap::from([
        ("KEYWARD_DATABASE_URL".into(), url.clone()),
        ("KEYWARD_KEY_PEPPER".into(), format!("pepper-{}", uuid::Uuid::new_v4().simple())),
        ("KEYWARD_CONSOLE_JWT_SECRET".into(), format!("console-{}", uuid::Uuid::new_v4().simple())),
        ("KEYWARD_CHECKPOINT_KEY".into(), keyward::crypto::CheckpointSigner::generate("keyward.test")),
        ("KEYWARD_LOG_FORMAT".into(), "json".into()),
        ("KEYWARD_EXPORT_DIR".into(), dir.path().join("exports").display().to_string()),
        // The load is far above a tenant's default budget; limiting is not what is tested here.
        ("KEYWARD_RATE_LIMIT_READ_PER_MINUTE".into(), "0".into()),
        ("KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE".into(), "0".into()),
    ]);
    if b == Backend::Postgres {
        cli(dir.path(), &env, &["migrate"]);
    }
    let tenant: Value = serde_json::from_str(
        cli(dir.path(), &env, &["tenant", "create", "--name", "Acme", "--owner-email", "o@acme.example"]).trim(),
    )
    .unwrap();
    let (tenant_id, owner_id) =
        (tenant["tenant_id"].as_str().unwrap().to_string(), tenant["owner_member_id"].as_str().unwrap().to_string());
    let owner_token =
        cli(dir.path(), &env, &["console-token", "--tenant", &tenant_id, "--member", &owner_id, "--ttl", "1h"])
            .trim()
            .to_string();

    let mut server = Server::start(dir.path(), &env);
    let agent = agent();
    let auth = format!("Bearer {owner_token}");
    // A key no client touches but whoami: it must still work after the crash.
    let seed = call(
        &agent,
        "POST",
        &format!("{}{CREATE}", server.base),
        &[("Authorization", &auth)],
        Some(&json!({"key_type": "KEY_TYPE_EDISCOVERY", "label": "seed"})),
    )
    .unwrap();
    assert_eq!(seed.status, 200, "{}", seed.text);
    let seed_id = seed.body["key"]["key_id"].as_str().unwrap().to_string();
    let seed_secret = seed.body["secret"].as_str().unwrap().to_string();
    let mut answered_ids = vec![seed.header("x-request-id").unwrap()];

    let (tx, rx) = mpsc::channel();
    let clients: Vec<_> = (0..THREADS)
        .map(|_| {
            let (agent, base, token, secret, tx) =
                (agent.clone(), server.base.clone(), owner_token.clone(), seed_secret.clone(), tx.clone());
            std::thread::spawn(move || client(agent, base, token, secret, tx))
        })
        .collect();
    drop(tx);
    for n in 0..KILL_AFTER {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(_) => {}
            Err(e) => panic!("only {n} requests answered before the load ended ({e})"),
        }
    }
    server.kill();

    let mut interrupted = 0;
    for c in clients {
        let (answered, cut_off) = c.join().expect("a client thread panicked");
        answered_ids.extend(answered);
        interrupted += usize::from(cut_off);
    }
    assert!(interrupted > 0, "the kill came while clients were still sending");
    assert!(answered_ids.len() > KILL_AFTER, "{} answered with 2xx", answered_ids.len());

    // The restarted process runs on what the killed one left, and it is whole.
    let server = Server::start(dir.path(), &env);
    let mut conn = db::establish(&DbUrl::parse(&url).unwrap()).unwrap();
    assert_consistent(&mut conn, &answered_ids);
    let verify: Value = serde_json::from_str(cli(dir.path(), &env, &["audit", "verify"]).trim()).unwrap();
    assert_eq!(verify["valid"], json!(true), "{verify}");
    assert!(verify["chains"].as_array().unwrap().iter().any(|c| c["chain_id"] == json!(tenant_id)), "{verify}");

    let who = call(&agent, "GET", &format!("{}{WHOAMI}", server.base), &[("X-API-Key", &seed_secret)], None).unwrap();
    assert_eq!(who.status, 200, "{}", who.text);
    assert_eq!(who.body["caller"]["key_id"], json!(seed_id));
    let more = call(
        &agent,
        "POST",
        &format!("{}{CREATE}", server.base),
        &[("Authorization", &auth)],
        Some(&json!({"key_type": "KEY_TYPE_SIEM", "label": "after the crash"})),
    )
    .unwrap();
    assert_eq!(more.status, 200, "{}", more.text);
    answered_ids.push(who.header("x-request-id").unwrap());
    answered_ids.push(more.header("x-request-id").unwrap());
    assert_consistent(&mut conn, &answered_ids);
    let verify: Value = serde_json::from_str(cli(dir.path(), &env, &["audit", "verify"]).trim()).unwrap();
    assert_eq!(verify["valid"], json!(true), "{verify}");
}
both!(a_killed_process_loses_no_answered_event_and_leaves_no_half_made_key);

/// Drops a PostgreSQL test database at the end, passing or not.
struct DropPgDatabase(String);

impl Drop for DropPgDatabase {
    fn drop(&mut self) {
        let _ = helpers::pg_admin().batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0));
    }
}

// ------------------------------------------------------------------ fail closed

/// Makes the app's database unwritable until dropped: SQLite, another
/// connection holds the write lock; PostgreSQL, the database refuses
/// connections and keyward's are terminated.
enum Outage {
    Sqlite(diesel::SqliteConnection),
    Postgres(String),
}

impl Outage {
    fn begin(app: &TestApp) -> Outage {
        match app.settings().database_url.clone() {
            DbUrl::Sqlite(path) => {
                let mut c = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                c.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE").expect("take the write lock");
                Outage::Sqlite(c)
            }
            DbUrl::Postgres(url) => {
                let name = url.rsplit('/').next().unwrap().to_string();
                helpers::pg_admin()
                    .batch_execute(&format!(
                        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false; \
                         SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid();"
                    ))
                    .expect("cut the database off");
                Outage::Postgres(name)
            }
        }
    }

    fn end(self) {}
}

impl Drop for Outage {
    fn drop(&mut self) {
        match self {
            Outage::Sqlite(c) => c.batch_execute("ROLLBACK").expect("release the write lock"),
            Outage::Postgres(name) => helpers::pg_admin()
                .batch_execute(&format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"))
                .expect("let connections in again"),
        }
    }
}

#[track_caller]
fn assert_unavailable(app: &TestApp, r: &Resp) {
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unavailable"), "{}", r.text);
    assert_eq!(r.body["ok"], json!(false));
    let rid = r.header("x-request-id").expect("x-request-id");
    assert!(app.event_by_request_id(&rid).is_none(), "a refused request left an event");
}

/// Everything a refused request could have changed: the keys (with their use) and the events.
fn snapshot(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let keys = app.query_strings(
        "SELECT id || ' ' || COALESCE(CAST(last_used_at AS TEXT), '-') || ' ' || COALESCE(CAST(revoked_at AS TEXT), '-') \
         AS v FROM api_keys ORDER BY id",
    );
    let events =
        app.query_strings(&format!("SELECT {} AS v FROM audit_events ORDER BY event_id", app.event_id_sql("event_id")));
    (keys, events)
}

fn an_unwritable_database_fails_closed_and_recovers_without_a_restart(b: Backend) {
    // SQLite: a write waits this long for the lock before it fails.
    let app = TestApp::spawn_with(b, &[("KEYWARD_SQLITE_BUSY_TIMEOUT_MS", "200")]);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    assert_eq!(app.get(WHOAMI, &[("X-API-Key", &secret)]).status, 200);
    assert_eq!(app.get("/readyz", &[]).status, 200);
    let before = snapshot(&app);
    let base = app.base.clone();

    let outage = Outage::begin(&app);
    // At once: on PostgreSQL each first waits for the read pool to give up.
    let (create, whoami, revoke) = std::thread::scope(|s| {
        let create =
            s.spawn(|| app.owner_post(CREATE, &json!({"key_type": "KEY_TYPE_SIEM", "label": "in the outage"})));
        let whoami = s.spawn(|| app.get(WHOAMI, &[("X-API-Key", &secret)]));
        let revoke = s.spawn(|| app.owner_post(REVOKE, &json!({"key_id": key_id, "reason": "in the outage"})));
        (create.join().unwrap(), whoami.join().unwrap(), revoke.join().unwrap())
    });
    let ready = app.get("/readyz", &[]);
    outage.end();

    assert_unavailable(&app, &create);
    assert_unavailable(&app, &whoami);
    assert_unavailable(&app, &revoke);
    assert_eq!(ready.status, 503, "/readyz during the outage: {}", ready.text);
    assert_eq!(ready.code().as_deref(), Some("unavailable"), "{}", ready.text);
    assert_eq!(snapshot(&app), before, "requests refused in the outage changed nothing");

    // The same instance recovers by itself: ready again, and the same requests succeed.
    eventually(Duration::from_secs(30), "/readyz is 200 again", || app.get("/readyz", &[]).status == 200);
    assert_eq!(app.base, base, "no restart");
    let r = app.get("/readyz", &[]);
    assert_eq!(r.body["status"], json!("ready"), "{}", r.text);

    let r = app.owner_post(CREATE, &json!({"key_type": "KEY_TYPE_SIEM", "label": "after the outage"}));
    let new_id = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    let ev = app.event_by_request_id(&r.header("x-request-id").unwrap()).expect("its event");
    assert_eq!(ev["metadata"]["new_key_id"], json!(new_id));
    let r = app.get(WHOAMI, &[("X-API-Key", &secret)]);
    assert_eq!(r.ok()["caller"]["key_id"], json!(key_id));
    assert!(app.event_by_request_id(&r.header("x-request-id").unwrap()).is_some());
    let r = app.owner_post(REVOKE, &json!({"key_id": key_id, "reason": "after the outage"}));
    assert_eq!(r.ok()["key"]["status"], json!("REVOKED"));
    assert!(app.event_by_request_id(&r.header("x-request-id").unwrap()).is_some());

    let mut conn = app.db();
    let chains = keyward::admin::verify(&mut conn, None).unwrap();
    assert!(chains.iter().all(|c| c.valid), "the chains verify");
}
both!(an_unwritable_database_fails_closed_and_recovers_without_a_restart);

/// PostgreSQL: when the database stops answering the `key_state` reads that
/// key checks wait for (here another session holds a lock on the table, as a
/// lost host would leave them hanging), a check fails closed with 503 within
/// its wait limit instead of holding the request, and checks work again once
/// the database answers.
#[test]
fn a_key_check_without_an_answer_fails_closed_and_recovers_postgres() {
    let app = TestApp::spawn(Backend::Postgres);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    assert_eq!(app.get(WHOAMI, &[("X-API-Key", &secret)]).status, 200);

    let mut blocker = app.db();
    blocker.batch_execute("BEGIN; LOCK TABLE key_state IN ACCESS EXCLUSIVE MODE").unwrap();
    let r = app.get(WHOAMI, &[("X-API-Key", &secret)]);
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unavailable"), "{}", r.text);
    blocker.batch_execute("ROLLBACK").unwrap();

    eventually(Duration::from_secs(30), "key checks answer again", || {
        app.get(WHOAMI, &[("X-API-Key", &secret)]).status == 200
    });
}

/// With the write lock held by another process (SQLite) or the audit table
/// locked by another session (PostgreSQL), a request fails closed within the
/// database wait (`KEYWARD_DB_WAIT_MS`, default 2 s: a queued job that waited
/// it out is not tried, a statement stops waiting for the lock after it), not
/// after the 10-14 s it once took; and `/readyz` is 503 from the first failed
/// write on. Once the lock is gone, the same instance serves again.
fn a_held_lock_fails_closed_within_the_database_wait(b: Backend) {
    let app = TestApp::spawn(b);
    let wait = app.settings().db_wait;
    assert_eq!(wait, Duration::from_secs(2), "the default bound");
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    assert_eq!(app.get(WHOAMI, &[("X-API-Key", &secret)]).status, 200);
    assert_eq!(app.get("/readyz", &[]).status, 200);

    let blocker: Box<dyn std::any::Any> = match app.settings().database_url.clone() {
        DbUrl::Sqlite(path) => {
            let mut c = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            c.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE").expect("take the write lock");
            Box::new(c)
        }
        DbUrl::Postgres(_) => {
            let mut c = app.db();
            c.batch_execute("BEGIN; LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE").expect("lock the log");
            Box::new(c)
        }
    };
    let started = std::time::Instant::now();
    let r = app.get(WHOAMI, &[("X-API-Key", &secret)]);
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unavailable"), "{}", r.text);
    // Two waits at most: one in the queue behind a group that is waiting, one for its own group.
    assert!(took < 2 * wait + Duration::from_secs(2), "503 after {took:?} (database wait {wait:?})");
    let ready = app.get("/readyz", &[]);
    assert_eq!(ready.status, 503, "/readyz after the first failed write: {}", ready.text);
    eprintln!("{:?}: 503 after {took:?}; /readyz 503 at once", b);
    drop(blocker);
    assert_unavailable(&app, &r);

    eventually(Duration::from_secs(30), "/readyz is 200 again", || app.get("/readyz", &[]).status == 200);
    assert_eq!(app.get(WHOAMI, &[("X-API-Key", &secret)]).status, 200);
}
both!(a_held_lock_fails_closed_within_the_database_wait);
