//! `deploy/nginx/keyward-gateway.conf` in a real nginx, in front of keyward and
//! of a service that records what reaches it: what the service sees, and what
//! callers get when keyward allows, refuses or rate-limits them.
//!
//! nginx is part of the suite: without it these tests fail, they never skip.

use crate::both;
use crate::helpers::{event_of, parse_response, send_from, Backend, Resp, TestApp};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEPLOY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx/keyward-gateway.conf");
const KEY_REFUSED: &str = "Invalid or missing enterprise API key";

/// Debian's nginx, or the one `KEYWARD_TEST_NGINX` names.
fn nginx_binary() -> PathBuf {
    let path = PathBuf::from(std::env::var("KEYWARD_TEST_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into()));
    assert!(
        path.is_file(),
        "nginx not found at {}: the gateway tests need a real nginx. Install Debian's \
         (`apt-get install -y nginx-light`, as .ci/run does) or set KEYWARD_TEST_NGINX.",
        path.display()
    );
    path
}

// ------------------------------------------------------------------ the service behind nginx

/// One request as the protected service received it.
#[derive(Debug, Clone)]
struct Received {
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    /// Every value of a header, in order (names are case-insensitive).
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// A tiny HTTP service that records each request and answers 200 with a body
/// of its own, so that a test can tell it reached the caller.
struct Service {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Service {
    fn start() -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the service");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    serve_one(stream, &seen);
                }
            }
        });
        Service { addr, received, stop }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_one(mut stream: TcpStream, seen: &Mutex<Vec<Received>>) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let answer = json!({"from": "service", "target": target}).to_string();
    seen.lock().unwrap().push(Received { target, headers, body });
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .as_bytes(),
    );
}

// ------------------------------------------------------------------ nginx

/// nginx with the deploy file, as its own unprivileged single process: its
/// configuration, pid, logs and temporary files in a temporary folder.
struct Nginx {
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

/// The deploy file with its placeholders filled, as envsubst would.
fn render(listen: &str, keyward: &str, service: &str) -> String {
    let text = std::fs::read_to_string(DEPLOY_FILE).expect("deploy/nginx/keyward-gateway.conf");
    // Only the comment at the top may name a placeholder before it is filled.
    let rendered = text
        .replace("${KEYWARD_GATEWAY_LISTEN}", listen)
        .replace("${KEYWARD_ADDR}", keyward)
        .replace("${KEYWARD_APP_ADDR}", service);
    let unfilled: Vec<&str> =
        rendered.lines().filter(|l| !l.trim_start().starts_with('#') && l.contains("${")).collect();
    assert!(unfilled.is_empty(), "placeholders left: {unfilled:?}");
    rendered
}

impl Nginx {
    fn start(keyward_base: &str, service: SocketAddr) -> Nginx {
        let binary = nginx_binary();
        let keyward = keyward_base.trim_start_matches("http://");
        // A free port can be taken between our probe and nginx's bind: try again then.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let dir = tempfile::tempdir().expect("nginx folder");
            let d = dir.path().display().to_string();
            std::fs::write(
                dir.path().join("keyward-gateway.conf"),
                render(&addr.to_string(), keyward, &service.to_string()),
            )
            .unwrap();
            let main = format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    \
                 proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
                 scgi_temp_path {d}/scgi;\n    include {d}/keyward-gateway.conf;\n}}\n"
            );
            std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
            let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            let child = Command::new(&binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
            let mut nginx = Nginx { addr, child, dir };
            match nginx.ready() {
                Ok(()) => return nginx,
                Err(e) => last_error = e,
            }
        }
        panic!("nginx did not start: {last_error}")
    }

    /// Waits until nginx accepts connections, or tells why it exited.
    fn ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("nginx exited ({status}): {}", self.logs()));
            }
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("nginx did not listen on {} within 20 s: {}", self.addr, self.logs()))
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// One request through nginx, on its own connection.
    fn send(&self, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
        self.send_from(None, method, target, headers, body)
    }

    /// [`Nginx::send`] from a given local address (another caller, as nginx sees it).
    fn send_from(
        &self,
        from: Option<IpAddr>,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or_default());
        let mut stream: TcpStream = match from {
            None => TcpStream::connect(self.addr).expect("connect to nginx"),
            Some(ip) => {
                let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                socket.bind(&SocketAddr::new(ip, 0).into()).expect("bind the source address");
                socket.connect(&self.addr.into()).expect("connect to nginx");
                socket.into()
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("nginx's answer");
        parse_response(&raw).unwrap_or_else(|| panic!("unparsable answer {:?}", String::from_utf8_lossy(&raw)))
    }

    fn get(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", target, headers, None)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// keyward, the service, and nginx in front of both.
fn gateway(app: &TestApp) -> (Service, Nginx) {
    let service = Service::start();
    let nginx = Nginx::start(&app.base, service.addr);
    (service, nginx)
}

/// The request ids of the gateway checks keyward audited, oldest first.
fn check_events(app: &TestApp) -> Vec<Value> {
    app.query_strings("SELECT request_id AS v FROM audit_events WHERE operation = 'authz.check' ORDER BY seq")
        .iter()
        .map(|rid| app.event_by_request_id(rid).expect("the check's event"))
        .collect()
}

#[track_caller]
fn assert_json_from_nginx(r: &Resp) {
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"), "{}", r.text);
    assert_eq!(r.body["ok"], json!(false), "{}", r.text);
    assert_eq!(r.header("x-request-id").as_deref(), r.body["request_id"].as_str(), "header and body ids agree");
}

fn nginx_forwards_keywards_identity_and_nothing_the_caller_claims(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let (service, nginx) = gateway(&app);

    // The caller claims another identity, in every spelling nginx might pass on.
    let uri = "/v2/team.asset.list?limit=5&keyword=rep";
    let r = nginx.get(
        uri,
        &[
            ("X-API-Key", &secret),
            ("X-Keyward-Tenant-Id", "forged-tenant"),
            ("X-Keyward-Key-Id", "forged-key"),
            ("X-Keyward-Key-Type", "forged"),
            ("x-keyward-key-type", "forged-again"),
            ("X_Keyward_Key_Type", "forged-underscore"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"from": "service", "target": uri}), "the caller gets the service's answer");

    let received = service.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.target, uri, "the service gets the URI keyward checked");
    assert_eq!(got.values("x-keyward-tenant-id"), [app.tenant_id.as_str()]);
    assert_eq!(got.values("x-keyward-key-id"), [key_id.as_str()]);
    assert_eq!(got.values("x-keyward-key-type"), ["KEY_TYPE_TEAM_ASSET_MGMT"]);
    for (name, value) in &got.headers {
        assert!(!value.contains("forged"), "a claimed identity reached the service: {name}: {value}");
        assert!(!value.contains(&secret), "the key reached the service in {name}");
    }
    // The stripping variant (the shipped default): the key stays at the gateway.
    assert_eq!(got.values("x-api-key"), Vec::<&str>::new());

    // keyward decided once, for the original request.
    let events = check_events(&app);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], json!("ALLOWED"));
    assert_eq!(events[0]["key_id"], json!(key_id));
    assert_eq!(events[0]["metadata"]["original_method"], json!("GET"));
    assert_eq!(events[0]["metadata"]["original_uri"], json!(uri));

    // The Bearer form of the key is checked, and kept from the service too;
    // the request's body goes to the service, not to keyward.
    let auth = format!("Bearer {secret}");
    let body = r#"{"asset_id":"a1","scope":"internal"}"#;
    let r = nginx.send("POST", "/v2/team.asset.update_scope", &[("Authorization", &auth)], Some(body));
    assert_eq!(r.status, 200, "{}", r.text);
    let received = service.received();
    assert_eq!(received.len(), 2);
    let got = &received[1];
    assert_eq!(got.body, body.as_bytes());
    assert_eq!(got.values("authorization"), Vec::<&str>::new(), "a keyward key in Authorization is stripped");
    assert_eq!(got.values("x-keyward-key-id"), [key_id.as_str()]);
    let events = check_events(&app);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["metadata"]["checked_operation"], json!("team.asset.update_scope"));

    // Any other Authorization is the service's business, and passes.
    let r = nginx.get("/v2/team.asset.list", &[("X-API-Key", &secret), ("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(service.received()[2].values("authorization"), ["Basic dXNlcjpwYXNz"]);
}
both!(nginx_forwards_keywards_identity_and_nothing_the_caller_claims);

/// A refused request: method, URI, the caller's headers, and the reason keyward audits.
type Refusal<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);

fn nginx_gives_the_caller_keywards_refusal_and_audits_it_once(b: Backend) {
    let app = TestApp::spawn(b);
    let (audit_id, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let (service, nginx) = gateway(&app);
    // keyward's own refusal, asked directly: nginx must answer the same bytes.
    let direct = app.get("/v2/authz.check", &[("X-Original-Method", "GET"), ("X-Original-URI", "/v2/team.asset.list")]);
    assert_eq!(direct.status, 401);
    let direct_id = direct.body["request_id"].as_str().unwrap().to_string();

    let unknown = keyward::crypto::new_key_secret(keyward::domain::KeyType::TeamAssetAudit);
    // The caller's own X-Original-* never reach keyward: nginx states the request.
    let claims_a_read =
        [("X-API-Key", audit.as_str()), ("X-Original-Method", "GET"), ("X-Original-URI", "/v2/team.asset.list")];
    let cases: [Refusal; 5] = [
        ("GET", "/v2/team.asset.list", vec![], "missing"),
        ("GET", "/v2/team.asset.list", vec![("X-API-Key", "hello")], "malformed"),
        ("GET", "/v2/team.asset.list", vec![("X-API-Key", &unknown)], "unknown_key"),
        ("POST", "/v2/team.asset.update_scope", vec![("X-API-Key", &audit)], "type_mismatch"),
        ("POST", "/v2/team.asset.update_scope", claims_a_read.to_vec(), "type_mismatch"),
    ];
    for (method, uri, headers, reason) in cases {
        let r = nginx.send(method, uri, &headers, (method == "POST").then_some("{}"));
        assert_eq!(r.status, 401, "{reason}: {}", r.text);
        assert_json_from_nginx(&r);
        assert_eq!(r.body["error"], json!({"code": "unauthenticated", "message": KEY_REFUSED}));
        let rid = r.body["request_id"].as_str().unwrap();
        assert_eq!(r.text, direct.text.replace(&direct_id, rid), "{reason}: keyward's body, byte for byte");
        // The id is keyward's: the event of this refusal, and only one.
        let ev = event_of(&app, &r);
        assert_eq!(ev["operation"], json!("authz.check"));
        assert_eq!(ev["outcome"], json!("DENIED"));
        assert_eq!(ev["reason"], json!(reason));
        assert_eq!(ev["metadata"]["original_uri"], json!(uri));
        if reason == "type_mismatch" {
            assert_eq!(ev["key_id"], json!(audit_id));
        }
        let n = app
            .query_strings(&format!("SELECT CAST(COUNT(*) AS TEXT) AS v FROM audit_events WHERE request_id = '{rid}'"));
        assert_eq!(n, ["1"], "{reason}: one event per refusal");
        for name in ["x-keyward-tenant-id", "x-keyward-key-id", "x-keyward-key-type"] {
            assert_eq!(r.header(name), None);
        }
    }
    assert_eq!(check_events(&app).len(), 5 + 1, "five refusals and the direct one, each audited once");
    assert!(service.received().is_empty(), "a refused request never reaches the service");
}
both!(nginx_gives_the_caller_keywards_refusal_and_audits_it_once);

fn nginx_turns_keywards_rate_limit_into_429_with_retry_after(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_RATE_LIMIT_READ_PER_MINUTE", "3")]);
    let (_, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let (service, nginx) = gateway(&app);
    for _ in 0..3 {
        let r = nginx.get("/v2/team.asset.list", &[("X-API-Key", &secret)]);
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = nginx.get("/v2/team.asset.list", &[("X-API-Key", &secret)]);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_json_from_nginx(&r);
    assert_eq!(r.body["error"]["code"], json!("rate_limited"));
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("authz.check"));
    assert_eq!(ev["reason"], json!("rate_limited"));
    assert_eq!(ev["status_code"], json!(429));
    assert_eq!(service.received().len(), 3, "the limited request never reaches the service");
    assert_eq!(check_events(&app).len(), 4);
}
both!(nginx_turns_keywards_rate_limit_into_429_with_retry_after);

fn nginx_fails_closed_when_keyward_does_not_answer(b: Backend) {
    let mut app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let (service, nginx) = gateway(&app);
    app.stop();
    let r = nginx.get("/v2/team.asset.list", &[("X-API-Key", &secret)]);
    assert_eq!(r.status, 503, "{}", r.text);
    assert_json_from_nginx(&r);
    assert_eq!(r.body["error"]["code"], json!("unavailable"));
    assert!(!r.body["request_id"].as_str().unwrap().is_empty(), "nginx's own request id");
    assert!(service.received().is_empty());
}
both!(nginx_fails_closed_when_keyward_does_not_answer);

/// With nginx's address in KEYWARD_TRUSTED_PROXIES, keyward sees each caller's
/// own address: key IP allowlists hold, audit events name the caller, and one
/// caller's refusals do not spend the others' budget.
fn behind_nginx_keyward_sees_the_callers_address(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_TRUSTED_PROXIES", "127.0.0.1"), ("KEYWARD_REFUSALS_PER_MINUTE", "2")]);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    app.owner_post("/v2/enterprise.key.update", &json!({"key_id": key_id, "ip_allowlist": ["127.0.0.2"]})).ok();
    let (service, nginx) = gateway(&app);
    let [allowed, other, flooder]: [IpAddr; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(|a| a.parse().unwrap());
    let list = |from: IpAddr, headers: &[(&str, &str)]| {
        nginx.send_from(Some(from), "GET", "/v2/team.asset.list", headers, None)
    };

    let r = list(allowed, &[("X-API-Key", &secret)]);
    assert_eq!(r.status, 200, "{}", r.text);
    let events = check_events(&app);
    assert_eq!(events.last().unwrap()["client_ip"], json!("127.0.0.2"));

    // Another caller claiming the allowed address is still itself.
    let r = list(other, &[("X-API-Key", &secret), ("X-Forwarded-For", "127.0.0.2")]);
    assert_eq!(r.status, 401, "{}", r.text);
    let ev = event_of(&app, &r);
    assert_eq!(ev["reason"], json!("ip_not_allowed"));
    assert_eq!(ev["client_ip"], json!("127.0.0.3"));

    // A caller's refusals spend its own budget (2), not the gateway's.
    let unknown = keyward::crypto::new_key_secret(keyward::domain::KeyType::TeamAssetAudit);
    for _ in 0..2 {
        assert_eq!(list(flooder, &[("X-API-Key", &unknown)]).status, 401);
    }
    let r = list(flooder, &[("X-API-Key", &unknown)]);
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    let r = list(allowed, &[("X-API-Key", &secret)]);
    assert_eq!(r.status, 200, "another caller behind the same gateway is not limited: {}", r.text);
    assert_eq!(service.received().len(), 2);

    // Only the gateway is believed: the same claim sent to keyward directly is ignored.
    let headers = [
        ("X-API-Key".to_string(), secret.clone().into_bytes()),
        ("X-Forwarded-For".to_string(), b"127.0.0.2".to_vec()),
        ("X-Original-Method".to_string(), b"GET".to_vec()),
        ("X-Original-URI".to_string(), b"/v2/team.asset.list".to_vec()),
    ];
    let r = send_from(&app, Some(other), "GET", "/v2/authz.check", &headers, None);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(event_of(&app, &r)["client_ip"], json!("127.0.0.3"));
}
both!(behind_nginx_keyward_sees_the_callers_address);

/// The placeholders are the ones the header comment names, each where it belongs.
#[test]
fn the_nginx_deploy_file_has_three_placeholders() {
    let rendered = render("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3");
    assert!(rendered.contains("listen 127.0.0.1:1;"));
    assert!(rendered.contains("server 127.0.0.1:2;"));
    assert!(rendered.contains("server 127.0.0.1:3;"));
}
