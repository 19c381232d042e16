#![allow(dead_code)]
//! The test harness: every test gets its own database (a SQLite file in a
//! temporary folder, or a fresh PostgreSQL database), its own keyward on
//! 127.0.0.1 port 0, and talks to it over real HTTP.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use keyward::auth::key_cache::KeyCacheMode;
use keyward::config::Settings;
use keyward::db::{self, DbConn, DbUrl};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test once per backend: `both!(name);` makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::helpers::Backend::Postgres)
            }
        }
    )*};
}

// ------------------------------------------------------------------ logs

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The ingest token of tests that plant it where a caller could: the log is
/// written as `serve` writes it, through the redacting writer that knows it.
pub const PLANTED_INGEST_TOKEN: &str = "planted-ingest-token-0123456789abcdefghij";

fn log_buffer() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuffer::default();
        let writer = buf.clone();
        let redactor = keyward::domain::redact::Redactor::new([PLANTED_INGEST_TOKEN]);
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,ureq=off,rustls=off"))
            .with_writer(keyward::telemetry::RedactingWriter::new(move || writer.clone(), redactor))
            .try_init();
        buf
    })
}

// ------------------------------------------------------------------ postgres

pub fn pg_base_url() -> String {
    std::env::var("KEYWARD_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn pg_admin() -> diesel::PgConnection {
    diesel::PgConnection::establish(&format!("{}/postgres", pg_base_url())).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {} ({e}). The PostgreSQL suite must run: start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
            pg_base_url()
        )
    })
}

/// Drops test databases left by earlier runs (once per test process). Names
/// carry the creating process id, so databases of test processes still
/// running beside this one are left alone.
fn sweep_old_pg_databases() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            datname: String,
        }
        let mut conn = pg_admin();
        let old: Vec<Name> = diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'kw_test_%'")
            .load(&mut conn)
            .unwrap_or_default();
        for n in old {
            let pid = n.datname.trim_start_matches("kw_test_").split('_').next().unwrap_or("");
            let alive = pid.parse::<u32>().is_ok_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", n.datname));
            }
        }
    });
}

pub fn fresh_pg_database() -> (String, String) {
    sweep_old_pg_databases();
    let name = format!("kw_test_{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    pg_admin().batch_execute(&format!("CREATE DATABASE \"{name}\"")).expect("create test database");
    (format!("{}/{name}", pg_base_url()), name)
}

// ------------------------------------------------------------------ responses

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
    pub fn code(&self) -> Option<String> {
        self.body["error"]["code"].as_str().map(str::to_owned)
    }
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200, got {}: {}", self.status, self.text);
        &self.body
    }
}

// ------------------------------------------------------------------ the app

pub struct TestApp {
    pub base: String,
    pub backend: Backend,
    pub tenant_id: String,
    pub owner_id: String,
    pub owner_token: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    settings: Settings,
    agent: ureq::Agent,
    handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
    pg_database: Option<String>,
    /// The app's data folder; a sibling holds none (it shares the first app's).
    _tmp: Option<tempfile::TempDir>,
}

/// Starts keyward on 127.0.0.1 port 0 in its own thread and actix system.
fn start_server(settings: &Settings) -> (u16, actix_web::dev::ServerHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let server_settings = settings.clone();
    let thread = std::thread::spawn(move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let port = listener.local_addr().unwrap().port();
        let system = actix_web::rt::System::new();
        let server = keyward::startup::build(server_settings, listener, Some(1)).expect("build the app");
        tx.send((port, server.handle())).unwrap();
        let _ = system.block_on(server);
    });
    let (port, handle) = rx.recv_timeout(Duration::from_secs(60)).expect("the app started");
    (port, handle, thread)
}

impl TestApp {
    /// Stops the server (its pool, audit writer and export runner go with it); the database stays.
    pub fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false))).join();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Starts a new server process-equivalent on the same database (a restart); the port changes.
    pub fn start(&mut self) {
        assert!(self.handle.is_none(), "stop the app first");
        let (port, handle, thread) = start_server(&self.settings);
        self.base = format!("http://127.0.0.1:{port}");
        self.handle = Some(handle);
        self.thread = Some(thread);
    }

    pub fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, &[])
    }

    /// Spawns with extra `KEYWARD_*` settings.
    pub fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        log_buffer();
        let tmp = tempfile::tempdir().expect("temp dir");
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/keyward.db", tmp.path().display()), None),
            Backend::Postgres => {
                let (url, name) = fresh_pg_database();
                (url, Some(name))
            }
        };
        let mut vars: HashMap<String, String> = HashMap::from([
            ("KEYWARD_DATABASE_URL".into(), database_url.clone()),
            ("KEYWARD_LISTEN".into(), "127.0.0.1:0".into()),
            ("KEYWARD_KEY_PEPPER".into(), format!("test-pepper-{}", uuid::Uuid::new_v4().simple())),
            ("KEYWARD_CONSOLE_JWT_SECRET".into(), format!("test-console-{}", uuid::Uuid::new_v4().simple())),
            ("KEYWARD_CHECKPOINT_KEY".into(), keyward::crypto::CheckpointSigner::generate("keyward.test")),
            ("KEYWARD_EXPORT_DIR".into(), tmp.path().join("exports").display().to_string()),
            // The background verifier runs often: tests wait for it, not a minute.
            ("KEYWARD_VERIFY_INTERVAL_MS".into(), "50".into()),
            // Each run reads the whole chain, so tampering with a proved event is found by the next.
            ("KEYWARD_VERIFY_FULL_EVERY".into(), "1".into()),
        ]);
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings");
        if backend == Backend::Postgres {
            let mut conn = db::establish(&settings.database_url).expect("connect to the test database");
            db::run_migrations(&mut conn).expect("migrate the test database");
        }

        let (port, handle, thread) = start_server(&settings);
        let mut conn = db::establish(&settings.database_url).unwrap();
        let (tenant_id, owner_id) = keyward::admin::create_tenant(&mut conn, "Acme", "owner@acme.example").unwrap();
        let owner_token = keyward::auth::console::mint_token(&settings, &tenant_id, &owner_id, 3600).unwrap();

        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            backend,
            tenant_id,
            owner_id,
            owner_token,
            database_url,
            data_dir: tmp.path().to_path_buf(),
            settings,
            // No connection reuse: a server may close a kept-alive connection after
            // answering without reading a body, and retrying a POST would be wrong.
            agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).max_idle_connections(0).build(),
            handle: Some(handle),
            thread: Some(thread),
            pg_database,
            _tmp: Some(tmp),
        }
    }

    /// A second keyward instance on this app's database, with the same settings
    /// (a clustered deployment: its own port, pool, audit writer and export runner).
    /// It shares the tenant, owner and tokens, creates nothing, and dropping it stops
    /// only its server; the database belongs to `self`, which must outlive it.
    pub fn sibling(&self) -> TestApp {
        let (port, handle, thread) = start_server(&self.settings);
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            backend: self.backend,
            tenant_id: self.tenant_id.clone(),
            owner_id: self.owner_id.clone(),
            owner_token: self.owner_token.clone(),
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            settings: self.settings.clone(),
            agent: self.agent.clone(),
            handle: Some(handle),
            thread: Some(thread),
            pg_database: None,
            _tmp: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn db(&self) -> DbConn {
        db::establish(&self.settings.database_url).expect("test connection")
    }

    pub fn request(&self, method: &str, path_and_query: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
        let mut req = self.agent.request(method, &format!("{}{}", self.base, path_and_query));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path_and_query}: transport error {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let text = resp.into_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, body, text }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, None)
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], json: &Value) -> Resp {
        let mut h = headers.to_vec();
        h.push(("Content-Type", "application/json"));
        self.request("POST", path, &h, Some(&json.to_string()))
    }

    pub fn bearer(token: &str) -> (&'static str, String) {
        ("Authorization", format!("Bearer {token}"))
    }

    pub fn owner_get(&self, path: &str) -> Resp {
        let auth = format!("Bearer {}", self.owner_token);
        self.get(path, &[("Authorization", &auth)])
    }

    pub fn owner_post(&self, path: &str, json: &Value) -> Resp {
        let auth = format!("Bearer {}", self.owner_token);
        self.post(path, &[("Authorization", &auth)], json)
    }

    pub fn new_tenant(&self, name: &str) -> (String, String, String) {
        let mut conn = self.db();
        let email = format!("owner@{}.example", name.to_lowercase().replace(' ', "-"));
        let (t, o) = keyward::admin::create_tenant(&mut conn, name, &email).unwrap();
        let token = self.token(&t, &o);
        (t, o, token)
    }

    pub fn add_member(&self, tenant: &str, role: &str) -> (String, String) {
        let mut conn = self.db();
        let email = format!("{}-{}@acme.example", role.to_lowercase(), uuid::Uuid::new_v4().simple());
        let role = keyward::domain::Role::parse(role).expect("a role");
        let id = keyward::admin::create_member(&mut conn, tenant, &email, role).unwrap();
        let token = self.token(tenant, &id);
        (id, token)
    }

    pub fn token(&self, tenant: &str, member: &str) -> String {
        keyward::auth::console::mint_token(&self.settings, tenant, member, 3600).unwrap()
    }

    #[track_caller]
    pub fn create_key(&self, key_type: &str) -> (String, String) {
        let r = self
            .owner_post("/v2/enterprise.key.create", &serde_json::json!({"key_type": key_type, "label": "test key"}));
        let body = r.ok();
        (body["key"]["key_id"].as_str().unwrap().to_string(), body["secret"].as_str().unwrap().to_string())
    }

    /// Changes the database behind the app's back (as the CLI or another
    /// instance would), then waits until the app has seen the change.
    pub fn exec_sql(&self, sql: &str) {
        let mut conn = self.db();
        diesel::sql_query(sql).execute(&mut conn).unwrap_or_else(|e| panic!("{sql}: {e}"));
        self.await_key_state_sync();
    }

    /// The database's `key_state` version: it moves with every change a key check reads.
    pub fn key_state_version(&self) -> i64 {
        keyward::db::store::key_state_version(&mut self.db()).expect("key_state version")
    }

    /// The tenant's chain as `enterprise.audit.verify` reports it once the
    /// background verifier completed a run that started after this call
    /// (so it saw the log as it is now), as `token` (a console token) sees it.
    pub fn verification_as(&self, token: &str) -> Value {
        let auth = format!("Bearer {token}");
        let get = || self.get("/v2/enterprise.audit.verify", &[("Authorization", &auth)]).ok()["verification"].clone();
        let first = get();
        let seen = first["run_id"].as_i64().unwrap_or(0).max(first["current_run"]["run_id"].as_i64().unwrap_or(0));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = get();
            if v["run_id"].as_i64().is_some_and(|id| id > seen) {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "no verification run completed after run {seen}: {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// As `verification_as`, as the owner.
    pub fn verification(&self) -> Value {
        self.verification_as(&self.owner_token.clone())
    }

    /// The `key_state` version this instance last saw, from `/metrics`.
    pub fn seen_key_state_version(&self) -> i64 {
        let metrics = self.get("/metrics", &[]).text;
        let line = metrics.lines().find(|l| l.starts_with("keyward_key_state_version ")).expect("the gauge");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Waits until this instance's key cache has seen the database's current
    /// `key_state` version (it polls every `KEYWARD_KEY_CACHE_SYNC_MS`), so a
    /// change made behind its back has reached it. Fails after 5 s.
    pub fn await_key_state_sync(&self) {
        if !matches!(self.settings.key_cache, KeyCacheMode::Poll(_)) || self.handle.is_none() {
            return; // every check reads the database (or its version), or no server running
        }
        let target = self.key_state_version();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.seen_key_state_version() < target {
            assert!(Instant::now() < deadline, "the app never saw key_state version {target}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SQL that shows an event id column (stored as 16 bytes) as the API
    /// shows it: hyphenated text.
    pub fn event_id_sql(&self, column: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!(
                "lower(substr(hex({column}), 1, 8) || '-' || substr(hex({column}), 9, 4) || '-' || \
                 substr(hex({column}), 13, 4) || '-' || substr(hex({column}), 17, 4) || '-' || substr(hex({column}), 21))"
            ),
            Backend::Postgres => format!("CAST(CAST(encode({column}, 'hex') AS uuid) AS TEXT)"),
        }
    }

    /// SQL that shows a hash column (stored as 32 bytes) as hex text.
    pub fn hex_sql(&self, column: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("lower(hex({column}))"),
            Backend::Postgres => format!("encode({column}, 'hex')"),
        }
    }

    /// SQL for the bytes of `hex`, to store in a hash column.
    pub fn bytes_sql(&self, hex: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("unhex('{hex}')"),
            Backend::Postgres => format!("decode('{hex}', 'hex')"),
        }
    }

    /// Rows of a query whose one column is named `v` and is text.
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        #[derive(QueryableByName)]
        struct V {
            #[diesel(sql_type = Text)]
            v: String,
        }
        let rows: Vec<V> = match self.db() {
            DbConn::Sqlite(mut c) => diesel::sql_query(sql).load(&mut c),
            DbConn::Postgres(mut c) => diesel::sql_query(sql).load(&mut c),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|r| r.v).collect()
    }

    /// Everything stored: the SQLite files' raw bytes, or every PostgreSQL row as JSON.
    pub fn dump_database(&self) -> String {
        match &self.settings.database_url {
            DbUrl::Sqlite(path) => {
                let mut out = String::new();
                for suffix in ["", "-wal", "-shm"] {
                    let p = PathBuf::from(format!("{}{suffix}", path.display()));
                    if let Ok(bytes) = std::fs::read(&p) {
                        out.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
                out
            }
            DbUrl::Postgres(_) => {
                let tables = self.query_strings("SELECT tablename AS v FROM pg_tables WHERE schemaname = 'public'");
                assert!(tables.len() >= 5, "expected keyward's tables, got {tables:?}");
                tables
                    .iter()
                    .flat_map(|t| self.query_strings(&format!("SELECT row_to_json(t)::text AS v FROM \"{t}\" t")))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    /// Everything this test process logged so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&log_buffer().0.lock().unwrap()).into_owned()
    }

    /// All audit events of a tenant as the API renders them, via the owner.
    pub fn audit_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v2/enterprise.audit.list?limit=1000&cursor={c}"),
                None => "/v2/enterprise.audit.list?limit=1000".to_string(),
            };
            let r = self.owner_get(&path);
            let body = r.ok().clone();
            out.extend(body["events"].as_array().unwrap().iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// The event of a request, by its request id, read straight from the database.
    pub fn event_by_request_id(&self, request_id: &str) -> Option<Value> {
        let mut conn = self.db();
        let chains = keyward::db::store::chain_ids(&mut conn).unwrap();
        for chain in chains {
            let mut after = 0;
            loop {
                let rows = keyward::db::store::chain_events_after(&mut conn, &chain, after, 1000).unwrap();
                let Some(last) = rows.last() else { break };
                after = last.seq;
                if let Some(r) = rows.iter().find(|r| r.request_id == request_id) {
                    return Some(keyward::audit::event_json(r));
                }
            }
        }
        None
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test shows what the service warned about.
            for line in self.logs().lines().filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\"")) {
                eprintln!("service log: {line}");
            }
        }
        // Stop the server so its pool and writer close their connections.
        self.stop();
        if let Some(name) = self.pg_database.take() {
            let _ = pg_admin().batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

// ------------------------------------------------------------------ raw HTTP

/// Sends one request as raw bytes on a fresh connection and reads the whole answer.
pub fn send(app: &TestApp, method: &str, target: &str, headers: &[(String, Vec<u8>)], body: Option<&[u8]>) -> Resp {
    send_from(app, None, method, target, headers, body)
}

/// [`send`] from a given local address (e.g. 127.0.0.2: another client as far as the server can tell).
pub fn send_from(
    app: &TestApp,
    from: Option<std::net::IpAddr>,
    method: &str,
    target: &str,
    headers: &[(String, Vec<u8>)],
    body: Option<&[u8]>,
) -> Resp {
    let addr = app.base.trim_start_matches("http://");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        req.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    if let Some(b) = body {
        req.extend_from_slice(b);
    }
    let mut stream = match from {
        None => TcpStream::connect(addr).expect("connect"),
        Some(ip) => {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.bind(&std::net::SocketAddr::new(ip, 0).into()).expect("bind the source address");
            let target: std::net::SocketAddr = addr.parse().unwrap();
            socket.connect(&target.into()).expect("connect");
            socket.into()
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(&req).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
        .unwrap_or_else(|| panic!("{method} {target}: unparsable response {:?}", String::from_utf8_lossy(&raw)))
}

pub fn parse_response(raw: &[u8]) -> Option<Resp> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Some(Resp { status, headers, body: json, text })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

// ------------------------------------------------------------------ shared assertions

/// A request with an enterprise key in `X-API-Key`.
pub fn key_get(app: &TestApp, secret: &str, path: &str) -> Resp {
    app.get(path, &[("X-API-Key", secret)])
}

pub fn key_post(app: &TestApp, secret: &str, path: &str, body: &Value) -> Resp {
    app.post(path, &[("X-API-Key", secret)], body)
}

/// The one audit event of a response, read from the database at once (events
/// commit before the answer). Checks that the header and body ids agree.
#[track_caller]
pub fn event_of(app: &TestApp, r: &Resp) -> Value {
    let rid = r.header("x-request-id").unwrap_or_else(|| panic!("no X-Request-Id on {}", r.text));
    // The envelope carries it; SCIM bodies and downloads do not.
    if let Some(body_id) = r.body.get("request_id") {
        assert_eq!(body_id, &serde_json::json!(rid), "body and header request ids differ");
    }
    let ids = app.query_strings(&format!(
        "SELECT {} AS v FROM audit_events WHERE request_id = '{rid}'",
        app.event_id_sql("event_id")
    ));
    assert_eq!(ids.len(), 1, "request {rid} has {} audit events", ids.len());
    app.event_by_request_id(&rid).expect("the event is committed before the response")
}

/// An error answer with `status` and `code`, whose audit event is DENIED with `reason`.
#[track_caller]
pub fn assert_refused(app: &TestApp, r: &Resp, status: u16, code: &str, reason: &str) -> Value {
    assert_eq!(r.status, status, "expected {status} {code}, got {}: {}", r.status, r.text);
    assert_eq!(r.body["ok"], serde_json::json!(false), "{}", r.text);
    assert_eq!(r.code().as_deref(), Some(code), "{}", r.text);
    let e = event_of(app, r);
    assert_eq!(e["outcome"], "DENIED", "{e}");
    assert_eq!(e["status_code"], serde_json::json!(status), "{e}");
    assert_eq!(e["reason"], serde_json::json!(reason), "{e}");
    e
}

/// An error whose audit reason is its code (validation, not found, preconditions).
#[track_caller]
pub fn assert_error(app: &TestApp, r: &Resp, status: u16, code: &str) -> Value {
    assert_refused(app, r, status, code, code)
}
