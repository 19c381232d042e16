//! Pushed SIEM delivery: real receivers in this process (a small HTTP/1.1
//! server on 127.0.0.1 port 0 whose behaviour each test scripts) take what
//! keyward's sink worker sends: Standard Webhooks batches, checked here with
//! an HMAC written independently of keyward's, and Splunk HEC batches.

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CREATE: &str = "/v2/enterprise.siem_sink.create";
const LIST: &str = "/v2/enterprise.siem_sink.list";
const UPDATE: &str = "/v2/enterprise.siem_sink.update";
const DELETE: &str = "/v2/enterprise.siem_sink.delete";
const REPLAY: &str = "/v2/enterprise.siem_sink.replay";
/// The worker's timeout in these tests; a stalled receiver waits longer.
const TIMEOUT_MS: u64 = 500;

/// The worker's timing in these tests.
const FAST: [(&str, &str); 3] =
    [("KEYWARD_SINK_INTERVAL_MS", "20"), ("KEYWARD_SINK_TIMEOUT_MS", "500"), ("KEYWARD_SINK_RETRY_BASE_MS", "20")];
/// The receivers listen on loopback, which sinks reach only when the operator allows it.
pub(crate) const LOOPBACK_ALLOWED: (&str, &str) = ("KEYWARD_SINK_ALLOWED_NETWORKS", "127.0.0.0/8");

fn spawn(b: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut v = FAST.to_vec();
    v.push(LOOPBACK_ALLOWED);
    v.extend_from_slice(extra);
    TestApp::spawn_with(b, &v)
}

// ------------------------------------------------------------------ the receiver

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Accept,
    Status(u16),
    /// 429 with `Retry-After: n` seconds.
    RetryAfter(u64),
    /// Reads the request, answers nothing until well past keyward's timeout.
    Stall,
}

#[derive(Debug, Clone)]
pub(crate) struct Received {
    at: Instant,
    headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
    behaviour: Behaviour,
}

impl Received {
    fn accepted(&self) -> bool {
        self.behaviour == Behaviour::Accept
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The events of a webhook body (`data`) or of a HEC batch (each line's `event`).
    pub(crate) fn events(&self) -> Vec<Value> {
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            if let Some(data) = v.get("data") {
                return data.as_array().unwrap().clone();
            }
        }
        String::from_utf8_lossy(&self.body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
            .collect()
    }
}

#[derive(Default)]
struct ReceiverState {
    script: VecDeque<Behaviour>,
    otherwise: Option<Behaviour>,
    received: Vec<Received>,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<Mutex<ReceiverState>>,
    /// How long an accepted request is held before its answer (to see overlaps).
    hold: Duration,
}

impl Receiver {
    pub(crate) fn start(path: &str, hold: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}{path}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(ReceiverState { otherwise: Some(Behaviour::Accept), ..Default::default() }));
        let r = Receiver { url, state: state.clone(), hold };
        let rr = r.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let rr = rr.clone();
                std::thread::spawn(move || rr.serve(stream));
            }
        });
        r
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut stream = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let behaviour = {
                let mut s = self.state.lock().unwrap();
                let b = s.script.pop_front().or(s.otherwise).unwrap_or(Behaviour::Accept);
                s.in_flight += 1;
                s.max_in_flight = s.max_in_flight.max(s.in_flight);
                s.received.push(Received { at: Instant::now(), headers, body, behaviour: b });
                b
            };
            let answer = match behaviour {
                Behaviour::Accept => {
                    std::thread::sleep(self.hold);
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}".to_string()
                }
                Behaviour::Status(code) => format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\n\r\n"),
                Behaviour::RetryAfter(secs) => {
                    format!("HTTP/1.1 429 Too Many\r\nRetry-After: {secs}\r\nContent-Length: 0\r\n\r\n")
                }
                Behaviour::Stall => {
                    std::thread::sleep(Duration::from_millis(TIMEOUT_MS * 3));
                    String::new()
                }
            };
            self.state.lock().unwrap().in_flight -= 1;
            if answer.is_empty() || stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn script(&self, steps: &[Behaviour], otherwise: Behaviour) {
        let mut s = self.state.lock().unwrap();
        s.script = steps.iter().copied().collect();
        s.otherwise = Some(otherwise);
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// Seqs of events in accepted requests, in the order they arrived.
    fn accepted_seqs(&self) -> Vec<i64> {
        self.received().iter().filter(|r| r.accepted()).flat_map(|r| r.events()).map(|e| seq_of(&e)).collect()
    }

    /// Waits until accepted requests hold every seq through `through`.
    #[track_caller]
    fn await_through(&self, through: i64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.accepted_seqs().iter().any(|s| *s >= through) {
                return;
            }
            assert!(Instant::now() < deadline, "seq {through} never arrived; got {:?}", self.accepted_seqs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An event's seq, in keyward's JSON or OCSF (`metadata.sequence`).
fn seq_of(e: &Value) -> i64 {
    e["seq"].as_i64().or_else(|| e["metadata"]["sequence"].as_i64()).expect("an event with its seq")
}

fn event_id_of(e: &Value) -> String {
    e["event_id"].as_str().or_else(|| e["metadata"]["uid"].as_str()).expect("an event id").to_string()
}

// ------------------------------------------------------------------ helpers

/// HMAC-SHA256 written out from RFC 2104 (independent of keyward's crypto).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(msg).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
}

/// Whether a Standard Webhooks request is signed with the secret.
fn signed_with(r: &Received, secret: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").expect("whsec_ secret")).unwrap();
    let (id, ts) = (r.header("webhook-id"), r.header("webhook-timestamp"));
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let expected = format!("v1,{}", b64.encode(hmac_sha256(&key, &signed)));
    r.header("webhook-signature").split(' ').any(|s| s == expected)
}

/// Checks a Standard Webhooks request: its headers, its body and its signature with the secret.
#[track_caller]
fn assert_signed(r: &Received, secret: &str) {
    assert!(r.header("webhook-id").starts_with("msg_"), "{:?}", r.headers);
    let ts: i64 = r.header("webhook-timestamp").parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 120, "a fresh timestamp");
    assert!(signed_with(r, secret), "not signed with the secret: {:?}", r.headers);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["type"], "keyward.audit.events");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
}

fn head_seq(app: &TestApp) -> i64 {
    app.owner_get(LIST).ok()["sinks"]
        .as_array()
        .and_then(|s| s.first())
        .map_or_else(|| app.audit_events().iter().map(seq_of).max().unwrap_or(0), |s| s["head_seq"].as_i64().unwrap())
}

fn sink_of(app: &TestApp, id: &str) -> Value {
    let list = app.owner_get(LIST);
    list.ok()["sinks"].as_array().unwrap().iter().find(|s| s["sink_id"] == id).cloned().expect("the sink is listed")
}

/// Waits until the sink's cursor has passed `through`.
#[track_caller]
fn await_cursor(app: &TestApp, id: &str, through: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink_of(app, id)["delivered_through"].as_i64().unwrap() < through {
        assert!(Instant::now() < deadline, "the cursor never passed {through}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes `n` audit events (whoami calls of the owner).
fn make_events(app: &TestApp, n: usize) {
    for _ in 0..n {
        app.owner_get("/v2/auth.whoami").ok();
    }
}

fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text = app.get("/metrics", &[]).text;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Every event seq in `from..=through` arrived, in chain order: each new seq
/// is the next one (a re-sent batch only repeats what came before).
#[track_caller]
fn assert_in_order(seqs: &[i64], from: i64, through: i64) {
    let distinct: BTreeSet<i64> = seqs.iter().copied().filter(|s| *s <= through).collect();
    let want: BTreeSet<i64> = (from..=through).collect();
    assert_eq!(distinct, want, "every event from {from} to {through} arrived");
    let mut high = from - 1;
    for s in seqs {
        if *s > high {
            assert_eq!(*s, high + 1, "no gap, no reordering: {seqs:?}");
            high = *s;
        }
    }
}

// ------------------------------------------------------------------ tests

/// A webhook gets every event after its creation, signed per Standard
/// Webhooks; the secret is shown once and is nowhere else. Another
/// tenant's sink gets its own tenant's events only.
fn webhook_batches_are_signed_and_complete(b: Backend) {
    let app = spawn(b, &[]);
    let rx = Receiver::start("/hook", Duration::ZERO);
    let r = app.owner_post(CREATE, &json!({"name": "Webhook", "kind": "WEBHOOK", "url": rx.url}));
    let body = r.ok().clone();
    let secret = body["secret"].as_str().expect("the secret, once").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let sink = body["sink"].clone();
    let id = sink["sink_id"].as_str().unwrap().to_string();
    assert_eq!(sink["state"], "ACTIVE");
    assert_eq!(sink["format"], "keyward");
    let start = sink["delivered_through"].as_i64().unwrap();
    assert_eq!(start, sink["head_seq"].as_i64().unwrap(), "a new sink starts now");

    let (other_tenant, _, other_token) = app.new_tenant("Other");
    let other_rx = Receiver::start("/other", Duration::ZERO);
    let other = app.post(
        CREATE,
        &[("Authorization", &format!("Bearer {other_token}"))],
        &json!({"name": "Webhook", "kind": "WEBHOOK", "url": other_rx.url}),
    );
    other.ok();

    make_events(&app, 130);
    let through = head_seq(&app);
    rx.await_through(through, 30);
    let got = rx.received();
    for r in &got {
        assert_signed(r, &secret);
    }
    assert!(got.len() >= 2, "130 events take two batches of at most 100");
    assert!(got.iter().all(|r| r.events().len() <= 100));
    let seqs = rx.accepted_seqs();
    assert_in_order(&seqs, start + 1, through);
    for e in got.iter().flat_map(Received::events) {
        assert_eq!(e["tenant_id"], json!(app.tenant_id), "only the tenant's own events");
    }
    // The audit log and the deliveries agree event for event.
    let log: BTreeMap<i64, String> =
        app.audit_events().iter().map(|e| (seq_of(e), event_id_of(e))).filter(|(s, _)| *s > start).collect();
    for e in got.iter().flat_map(Received::events) {
        assert_eq!(log.get(&seq_of(&e)), Some(&event_id_of(&e)));
    }
    other_rx.await_through(1, 30);
    for e in other_rx.received().iter().flat_map(Received::events) {
        assert_eq!(e["tenant_id"], json!(other_tenant), "B's sink gets B's events only");
    }

    // The secret is never shown or stored again.
    let listed = app.owner_get(LIST).text;
    assert!(!listed.contains(&secret) && listed.contains(&id));
    let updated = app.owner_post(UPDATE, &json!({"sink_id": id, "name": "Renamed"}));
    assert!(updated.ok()["secret"].is_null() && !updated.text.contains(&secret));
    assert!(!app.dump_database().contains(&secret), "the secret is stored sealed");
    assert!(!app.logs().contains(&secret));
    let events = serde_json::to_string(&app.audit_events()).unwrap();
    assert!(!events.contains(&secret));
    let b64_key = secret.trim_start_matches("whsec_");
    assert!(!app.dump_database().contains(b64_key) && !events.contains(b64_key));
    let created = app.audit_events().into_iter().find(|e| e["operation"] == "enterprise.siem_sink.create").unwrap();
    assert_eq!(created["metadata"]["sink_id"], json!(id));
    assert_eq!(created["metadata"]["host"], json!("127.0.0.1"));

    // A rotated secret signs from then on; the old one is not shown.
    let rotated = app.owner_post(UPDATE, &json!({"sink_id": id, "rotate_secret": true}));
    let new_secret = rotated.ok()["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let before = rx.received().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rx.received()[before..].iter().any(|r| signed_with(r, &new_secret)) {
        assert!(Instant::now() < deadline, "no batch was signed with the new secret");
        make_events(&app, 3);
        rx.await_through(head_seq(&app), 30);
    }
    make_events(&app, 3);
    rx.await_through(head_seq(&app), 30);
    // A batch read just before the rotation may still carry the old
    // signature; from the first with the new one, every batch has it.
    let after = &rx.received()[before..];
    let first_new = after.iter().position(|r| signed_with(r, &new_secret)).unwrap();
    for r in &after[..first_new] {
        assert_signed(r, &secret);
    }
    for r in &after[first_new..] {
        assert_signed(r, &new_secret);
    }
    assert!(metric(&app, "keyward_sink_delivered_events_total") >= 130.0);
    assert_eq!(metric(&app, "keyward_sink_dead "), 0.0);
    let text = app.get("/metrics", &[]).text;
    for name in
        ["keyward_sink_failures", "keyward_sink_lag_events", "keyward_sink_dead", "keyward_sink_delivered_events"]
    {
        assert!(text.contains(&format!("# TYPE {name}")) || text.contains(&format!("# HELP {name}")), "{name}");
    }
    assert!(!text.contains(&app.tenant_id) && !text.contains("127.0.0.1:"), "no tenant or URL labels");
    // Caught up (probes write no events): the lag drops to 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "keyward_sink_lag_events ") != 0.0 {
        assert!(Instant::now() < deadline, "the lag never reached 0");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Splunk HEC: the token in `Authorization: Splunk`, one JSON object per
/// event (OCSF here), the token sealed and never shown; a new token is used.
fn hec_batches_carry_the_token_and_ocsf_events(b: Backend) {
    let app = spawn(b, &[]);
    let rx = Receiver::start("/services/collector/event", Duration::ZERO);
    let token = format!("hec-{}", uuid::Uuid::new_v4());
    let r = app.owner_post(
        CREATE,
        &json!({"name": "Splunk", "kind": "SPLUNK_HEC", "url": rx.url, "format": "ocsf", "token": token, "from_seq": 1}),
    );
    let body = r.ok().clone();
    assert!(body.get("secret").is_none(), "a HEC sink has no keyward secret: {}", r.text);
    assert!(!r.text.contains(&token));
    let id = body["sink"]["sink_id"].as_str().unwrap().to_string();
    assert_eq!(body["sink"]["delivered_through"], 0, "from_seq 1: the whole chain");
    make_events(&app, 5);
    let through = head_seq(&app);
    rx.await_through(through, 30);
    let got = rx.received();
    for r in &got {
        assert_eq!(r.header("authorization"), format!("Splunk {token}"));
        for line in String::from_utf8_lossy(&r.body).lines() {
            let l: Value = serde_json::from_str(line).unwrap();
            assert_eq!(l["source"], "keyward");
            assert_eq!(l["sourcetype"], "ocsf");
            assert!(l["time"].as_f64().unwrap() > 1.7e9, "{l}");
            assert_eq!(l["event"]["metadata"]["product"]["name"], "keyward", "{l}");
            assert!(l["event"]["class_uid"].as_u64().is_some(), "{l}");
        }
    }
    assert_in_order(&rx.accepted_seqs(), 1, through);
    // What Splunk got is OCSF as the maintained validator reads it.
    let events: Vec<Value> = got.iter().flat_map(Received::events).collect();
    crate::ocsf::validate(&events);

    // The token is sealed; list, update answers, events and logs never hold it.
    assert!(!app.dump_database().contains(&token));
    assert!(!app.owner_get(LIST).text.contains(&token));
    let new_token = format!("hec-{}", uuid::Uuid::new_v4());
    let u = app.owner_post(UPDATE, &json!({"sink_id": id, "token": new_token}));
    assert!(!u.ok().to_string().contains(&new_token));
    let events = serde_json::to_string(&app.audit_events()).unwrap();
    assert!(!events.contains(&token) && !events.contains(&new_token), "no token in the audit log");
    assert!(!app.logs().contains(&token) && !app.logs().contains(&new_token));
    let before = rx.received().len();
    make_events(&app, 2);
    rx.await_through(head_seq(&app), 30);
    assert!(rx.received()[before..].iter().all(|r| r.header("authorization") == format!("Splunk {new_token}")));
    assert!(!app.dump_database().contains(&new_token));
}

/// A receiver that answers 500, then 429 with Retry-After, then stalls past
/// the timeout, then accepts: every event arrives, in order; an event seen
/// twice came both times with the same webhook-id.
fn failing_receivers_get_everything_in_order(b: Backend) {
    let app = spawn(b, &[]);
    make_events(&app, 150);
    let rx = Receiver::start("/flaky", Duration::ZERO);
    rx.script(
        &[Behaviour::Status(500), Behaviour::RetryAfter(1), Behaviour::Stall, Behaviour::Status(503)],
        Behaviour::Accept,
    );
    let r = app.owner_post(CREATE, &json!({"name": "Flaky", "kind": "WEBHOOK", "url": rx.url, "from_seq": 1}));
    let secret = r.ok()["secret"].as_str().unwrap().to_string();
    let id = r.body["sink"]["sink_id"].as_str().unwrap().to_string();
    // No request to keyward while the receiver fails: the batches stay the same.
    let through = r.body["sink"]["head_seq"].as_i64().unwrap() + 1;
    rx.await_through(through, 60);
    let got = rx.received();
    assert!(got.len() >= 6, "four failures then two batches: {}", got.len());
    assert_eq!(
        got[..4].iter().map(|r| r.behaviour).collect::<Vec<_>>()[..4],
        [Behaviour::Status(500), Behaviour::RetryAfter(1), Behaviour::Stall, Behaviour::Status(503)]
    );
    assert!(got[2].at - got[1].at >= Duration::from_secs(1), "Retry-After is a minimum wait");
    let mut ids_of_event: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in &got {
        assert_signed(r, &secret);
        for e in r.events() {
            ids_of_event.entry(event_id_of(&e)).or_default().insert(r.header("webhook-id").to_string());
        }
    }
    for (event, ids) in &ids_of_event {
        assert_eq!(ids.len(), 1, "event {event} came under several webhook-ids: {ids:?}");
    }
    let seqs = rx.accepted_seqs();
    assert_in_order(&seqs, 1, through);
    assert_eq!(seqs.len() as i64, through, "accepted once each");
    assert!(metric(&app, "keyward_sink_failures_total{reason=\"status\"}") >= 3.0);
    assert!(metric(&app, "keyward_sink_failures_total{reason=\"timeout\"}") >= 1.0);
    let s = sink_of(&app, &id);
    assert_eq!(s["consecutive_failures"], 0, "{s}");
    assert!(s["last_error"].is_null() && s["failing_since"].is_null(), "{s}");
}

/// keyward stopped in the middle of a delivery and started again on the same
/// database: nothing is lost, and what was sent twice has its webhook-id.
fn a_restart_mid_delivery_loses_nothing(b: Backend) {
    let mut app = spawn(b, &[]);
    make_events(&app, 250);
    let rx = Receiver::start("/restart", Duration::ZERO);
    rx.script(&[Behaviour::Accept, Behaviour::Stall], Behaviour::Stall);
    let r = app.owner_post(CREATE, &json!({"name": "Restart", "kind": "WEBHOOK", "url": rx.url, "from_seq": 1}));
    let through = r.ok()["sink"]["head_seq"].as_i64().unwrap() + 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.received().len() < 2 {
        assert!(Instant::now() < deadline, "the second batch never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    app.stop();
    rx.script(&[], Behaviour::Accept);
    app.start();
    rx.await_through(through, 60);
    let seqs = rx.accepted_seqs();
    assert_in_order(&seqs, 1, through);
    let mut ids_of_event: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in rx.received() {
        for e in r.events() {
            ids_of_event.entry(event_id_of(&e)).or_default().insert(r.header("webhook-id").to_string());
        }
    }
    assert!(ids_of_event.values().all(|ids| ids.len() == 1), "re-sent batches keep their id");
}

/// A receiver down for longer than allowed: the sink is DEAD (with its
/// event, its gauge); replay brings everything back from the cursor.
fn dead_sinks_come_back_with_replay(b: Backend) {
    let app = spawn(b, &[("KEYWARD_SINK_DEAD_AFTER_SECS", "1")]);
    let rx = Receiver::start("/down", Duration::ZERO);
    rx.script(&[], Behaviour::Status(500));
    let r = app.owner_post(
        CREATE,
        &json!({"name": "Down", "kind": "WEBHOOK", "url": rx.url, "from_seq": 1, "format": "ocsf"}),
    );
    let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let s = sink_of(&app, &id);
        if s["state"] == "DEAD" {
            break s;
        }
        assert!(Instant::now() < deadline, "never DEAD: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(dead["delivered_through"], 0);
    assert!(dead["last_error"].as_str().unwrap().contains("500"), "{dead}");
    assert!(!dead["failing_since"].is_null());
    let event = app
        .audit_events()
        .into_iter()
        .find(|e| e["operation"] == "enterprise.siem_sink.dead")
        .expect("the DEAD event is in the tenant's chain");
    assert_eq!(event["metadata"]["sink_id"], json!(id));
    assert_eq!(event["actor"]["type"], "SERVICE");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "keyward_sink_dead ") != 1.0 {
        assert!(Instant::now() < deadline, "the dead gauge");
        std::thread::sleep(Duration::from_millis(20));
    }
    // DEAD: no longer tried.
    let tries = rx.received().len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.received().len(), tries, "a DEAD sink is not tried");

    rx.script(&[], Behaviour::Accept);
    let replayed = app.owner_post(REPLAY, &json!({"sink_id": id, "from_seq": 1}));
    let s = replayed.ok()["sink"].clone();
    assert_eq!((s["state"].as_str(), s["delivered_through"].as_i64()), (Some("ACTIVE"), Some(0)));
    let through = s["head_seq"].as_i64().unwrap() + 1;
    rx.await_through(through, 30);
    assert_in_order(&rx.accepted_seqs(), 1, through);
    // The sink's own events (created, DEAD, replayed) validate as OCSF too.
    let delivered: Vec<Value> = rx.received().iter().filter(|r| r.accepted()).flat_map(|r| r.events()).collect();
    let kinds: BTreeSet<&str> = delivered.iter().filter_map(|e| e["api"]["operation"].as_str()).collect();
    for kind in ["enterprise.siem_sink.create", "enterprise.siem_sink.dead", "enterprise.siem_sink.replay"] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    crate::ocsf::validate(&delivered);
    let replay_event =
        app.audit_events().into_iter().find(|e| e["operation"] == "enterprise.siem_sink.replay").unwrap();
    assert_eq!(replay_event["metadata"]["from_seq"], 1);
    // Replay beyond the head is bounded to it.
    let r = app.owner_post(REPLAY, &json!({"sink_id": id, "from_seq": 1_000_000}));
    let s = r.ok()["sink"].clone();
    assert_eq!(s["delivered_through"], s["head_seq"]);
}

/// keyward archiving into a folder of its own (kept while the guard lives),
/// checkpointing often and verifying only when a test asks.
fn spawn_archiving(b: Backend) -> (TestApp, std::path::PathBuf, tempfile::TempDir) {
    let archive_tmp = tempfile::tempdir().unwrap();
    let archive = archive_tmp.path().join("archive");
    let dir = archive.display().to_string();
    let app = spawn(
        b,
        &[
            ("KEYWARD_CHECKPOINT_INTERVAL_MS", "20"),
            ("KEYWARD_ARCHIVE_DIR", dir.as_str()),
            ("KEYWARD_VERIFY_INTERVAL_MS", "86400000"),
        ],
    );
    (app, archive, archive_tmp)
}

/// A signed checkpoint of the whole chain, verified as the job does (what retention needs first).
fn proved_to_the_head(app: &TestApp) {
    crate::retention::checkpoint_covering(app, crate::retention::head(app));
    crate::retention::verify_as_the_job(app);
}

/// Events that retention archived before the sink delivered them are
/// skipped: the cursor jumps to the first event still in the database.
fn events_archived_before_delivery_are_skipped(b: Backend) {
    let (app, archive, _archive_tmp) = spawn_archiving(b);
    make_events(&app, 10);
    app.owner_post("/v2/enterprise.key_policy.update", &json!({"audit_retention_days": 1})).ok();
    proved_to_the_head(&app);
    let report = crate::retention::pass_in(&app, &archive, 2);
    assert_eq!(report.segments.len(), 1, "{report:?}");
    let archived = report.segments[0].last_seq;
    assert!(archived >= 10, "{report:?}");

    let rx = Receiver::start("/late", Duration::ZERO);
    let r = app.owner_post(CREATE, &json!({"name": "Late", "kind": "WEBHOOK", "url": rx.url, "from_seq": 1}));
    let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["sink"]["delivered_through"], 0);
    make_events(&app, 3);
    let through = head_seq(&app);
    rx.await_through(through, 30);
    let seqs = rx.accepted_seqs();
    assert!(seqs.iter().all(|s| *s > archived), "archived events are not sent: {seqs:?}");
    assert_in_order(&seqs, archived + 1, through);
    await_cursor(&app, &id, through);
}

/// Retention archives nothing an ACTIVE sink has yet to deliver: a sink whose
/// receiver is down holds the archive back, gets every event once it is up,
/// and then the archive moves on. A DEAD sink holds nothing back.
fn retention_waits_for_active_sinks(b: Backend) {
    let (app, archive, _archive_tmp) = spawn_archiving(b);
    let rx = Receiver::start("/slow", Duration::ZERO);
    rx.script(&[], Behaviour::Status(500));
    let r = app.owner_post(CREATE, &json!({"name": "Slow", "kind": "WEBHOOK", "url": rx.url, "from_seq": 1}));
    let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    make_events(&app, 10);
    app.owner_post("/v2/enterprise.key_policy.update", &json!({"audit_retention_days": 1})).ok();
    proved_to_the_head(&app);
    let report = crate::retention::pass_in(&app, &archive, 2);
    assert!(report.segments.is_empty(), "nothing the sink still owes is archived: {report:?}");

    rx.script(&[], Behaviour::Accept);
    let through = head_seq(&app);
    rx.await_through(through, 30);
    assert_in_order(&rx.accepted_seqs(), 1, through);
    await_cursor(&app, &id, through);
    let report = crate::retention::pass_in(&app, &archive, 2);
    assert_eq!(report.segments.len(), 1, "{report:?}");
    assert!(report.segments[0].last_seq <= through, "{report:?}");

    // A DEAD sink far behind holds nothing back.
    app.exec_sql(&format!("UPDATE siem_sinks SET state = 'DEAD', delivered_through = 0 WHERE id = '{id}'"));
    make_events(&app, 5);
    proved_to_the_head(&app);
    let report = crate::retention::pass_in(&app, &archive, 2);
    assert_eq!(report.segments.len(), 1, "{report:?}");
}
both!(retention_waits_for_active_sinks);

/// Only the filtered operations and outcomes are sent; the others move the cursor.
fn filters_choose_operations_and_outcomes(b: Backend) {
    let app = spawn(b, &[]);
    let rx = Receiver::start("/filtered", Duration::ZERO);
    let r = app.owner_post(
        CREATE,
        &json!({"name": "Keys", "kind": "WEBHOOK", "url": rx.url,
                "filter_operations": ["enterprise.key.create", "enterprise.key.revoke"], "filter_outcomes": ["ALLOWED"]}),
    );
    let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["sink"]["filter_outcomes"], json!(["ALLOWED"]));
    let (k1, _) = app.create_key("KEY_TYPE_SIEM");
    let (_, auditor) = app.add_member(&app.tenant_id, "AUDITOR");
    let denied = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &format!("Bearer {auditor}"))],
        &json!({"key_type": "KEY_TYPE_SIEM", "label": "no"}),
    );
    assert_eq!(denied.status, 403);
    make_events(&app, 5);
    let (k2, _) = app.create_key("KEY_TYPE_EDISCOVERY");
    make_events(&app, 2);
    let through = head_seq(&app);
    await_cursor(&app, &id, through);
    let events: Vec<Value> = rx.received().iter().flat_map(Received::events).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e["operation"] == "enterprise.key.create" && e["outcome"] == "ALLOWED"));
    assert_eq!(events[0]["metadata"]["new_key_id"], json!(k1));
    assert_eq!(events[1]["metadata"]["new_key_id"], json!(k2));
    // Back to every operation: null.
    let r = app.owner_post(UPDATE, &json!({"sink_id": id, "filter_operations": null}));
    assert!(r.ok()["sink"]["filter_operations"].is_null());
    assert_eq!(r.body["sink"]["filter_outcomes"], json!(["ALLOWED"]), "an absent field is unchanged");
}

/// Key lifecycle notices and revocations reach a sink filtered on them, as
/// events of the tenant's chain (nothing sink-specific writes them).
fn key_notices_and_lifecycle_reach_a_filtered_sink(b: Backend) {
    let app = spawn(b, &[("KEYWARD_NOTICE_INTERVAL_MS", "86400000")]);
    let rx = Receiver::start("/lifecycle", Duration::ZERO);
    let ops = ["enterprise.key.expiring", "enterprise.key.expired", "enterprise.key.revoke", "enterprise.key.leaked"];
    let r = app.owner_post(
        CREATE,
        &json!({"name": "Lifecycle", "kind": "SPLUNK_HEC", "url": rx.url, "token": "t0k", "filter_operations": ops}),
    );
    let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    let expires_at = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "expiring", "expires_at": expires_at});
    let expiring =
        app.owner_post("/v2/enterprise.key.create", &body).ok()["key"]["key_id"].as_str().unwrap().to_string();
    let (revoked, _) = app.create_key("KEY_TYPE_EDISCOVERY");
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": revoked, "reason": "test"})).ok();
    let report = keyward::admin::notices(&mut app.db()).unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let through = head_seq(&app);
    await_cursor(&app, &id, through);
    let events: Vec<Value> = rx.received().iter().flat_map(Received::events).collect();
    let got: Vec<(&str, &str)> =
        events.iter().map(|e| (e["operation"].as_str().unwrap(), e["key_id"].as_str().unwrap_or(""))).collect();
    assert!(events.iter().all(|e| ops.contains(&e["operation"].as_str().unwrap())), "{got:?}");
    assert!(got.iter().any(|(op, _)| *op == "enterprise.key.revoke"), "{got:?}");
    assert!(got.contains(&("enterprise.key.expiring", expiring.as_str())), "{got:?}");
}

/// Two instances on one database: one delivery of a sink at a time, each event once.
fn two_instances_deliver_one_batch_at_a_time(b: Backend) {
    let app = spawn(b, &[]);
    let sibling = app.sibling();
    make_events(&app, 320);
    let rx = Receiver::start("/lease", Duration::from_millis(150));
    let r = app.owner_post(CREATE, &json!({"name": "Leased", "kind": "WEBHOOK", "url": rx.url, "from_seq": 1}));
    let through = r.ok()["sink"]["head_seq"].as_i64().unwrap() + 1;
    make_events(&sibling, 40);
    let through2 = head_seq(&sibling);
    assert!(through2 > through);
    rx.await_through(through2, 60);
    assert_eq!(rx.max_in_flight(), 1, "never two deliveries of one sink at once");
    let seqs = rx.accepted_seqs();
    assert_in_order(&seqs, 1, through2);
    let distinct: BTreeSet<i64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len(), seqs.len(), "each event once: no batch was delivered by both");
}

/// Hostile inputs are §7 400s and leave nothing half-written; roles hold.
fn hostile_sink_inputs_are_refused(b: Backend) {
    let app = spawn(b, &[]);
    let ok = json!({"name": "S", "kind": "WEBHOOK", "url": "https://siem.example.com/hook"});
    let with = |k: &str, v: Value| {
        let mut o = ok.clone();
        o[k] = v;
        o
    };
    let long_url = format!("https://siem.example.com/{}", "a".repeat(2100));
    for body in [
        with("url", json!("ftp://siem.example.com/")),
        with("url", json!("http://siem.example.com/")),
        with("url", json!("http://10.1.2.3/")),
        with("url", json!("https://user:pw@siem.example.com/")),
        with("url", json!("https://siem.example.com/#x")),
        with("url", json!("https://siem.example.com/hook?key=AIza0123")),
        with("url", json!("https://siem.example.com/\nx")),
        with("url", json!(long_url)),
        with("url", json!("")),
        with("url", json!(7)),
        with("kind", json!("SMTP")),
        with("kind", json!("webhook")),
        with("format", json!("cef")),
        with("name", json!("")),
        with("name", json!(" ")),
        with("name", json!("x".repeat(101))),
        with("name", json!("a\u{7}b")),
        with("filter_operations", json!([])),
        with("filter_operations", json!(["no.such.op"])),
        with("filter_operations", json!("enterprise.key.create")),
        with("filter_outcomes", json!(["MAYBE"])),
        with("filter_outcomes", json!([])),
        with("token", json!("tok")),
        with("from_seq", json!(0)),
        with("from_seq", json!(-5)),
        with("from_seq", json!("1")),
        with("surprise", json!(1)),
        json!({"name": "H", "kind": "SPLUNK_HEC", "url": "https://splunk.example/services/collector/event"}),
        json!({"name": "H", "kind": "SPLUNK_HEC", "url": "https://splunk.example/", "token": "has space"}),
        json!({"name": "H", "kind": "SPLUNK_HEC", "url": "https://splunk.example/", "token": "x".repeat(300)}),
        json!([1, 2]),
    ] {
        let r = app.owner_post(CREATE, &body);
        assert_error(&app, &r, 400, "invalid_argument");
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    }
    let huge = json!({"name": "S", "kind": "WEBHOOK", "url": "https://a.example/", "pad": "x".repeat(2_000_000)});
    let r = app.owner_post(CREATE, &huge);
    assert_eq!((r.status, r.code().as_deref()), (413, Some("invalid_argument")), "{}", r.text);
    assert_eq!(app.owner_get(LIST).ok()["sinks"], json!([]), "nothing half-written");

    let r = app.owner_post(CREATE, &ok);
    let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    assert_error(&app, &app.owner_post(CREATE, &ok), 409, "already_exists");
    let hec = app.owner_post(
        CREATE,
        &json!({"name": "H", "kind": "SPLUNK_HEC", "url": "https://splunk.example/", "token": "abc"}),
    );
    let hec_id = hec.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    for body in [
        json!({"sink_id": id, "token": "abc"}),
        json!({"sink_id": hec_id, "rotate_secret": true}),
        json!({"sink_id": hec_id, "token": "abc", "rotate_secret": true}),
        json!({"sink_id": id, "url": "http://example.com/"}),
        json!({"sink_id": id, "filter_outcomes": ["ALLOWED", "NOPE"]}),
        json!({"sink_id": id, "name": ""}),
        json!({"sink_id": id, "state": "ACTIVE"}),
        json!({"name": "no id"}),
    ] {
        assert_error(&app, &app.owner_post(UPDATE, &body), 400, "invalid_argument");
    }
    assert_error(&app, &app.owner_post(UPDATE, &json!({"sink_id": id, "name": "H"})), 409, "already_exists");
    for (path, body) in [
        (UPDATE, json!({"sink_id": "nope", "name": "x"})),
        (DELETE, json!({"sink_id": "nope"})),
        (REPLAY, json!({"sink_id": "nope", "from_seq": 1})),
    ] {
        assert_error(&app, &app.owner_post(path, &body), 404, "not_found");
    }
    assert_error(&app, &app.owner_post(REPLAY, &json!({"sink_id": id, "from_seq": 0})), 400, "invalid_argument");
    assert_error(&app, &app.owner_get(&format!("{LIST}?sink_id={id}")), 400, "invalid_argument");
    let s = sink_of(&app, &id);
    assert_eq!(s["name"], "S");
    assert_eq!(s["url"], "https://siem.example.com/hook");

    // Roles: auditors list, only owners change; admins and members neither.
    let (_, auditor) = app.add_member(&app.tenant_id, "AUDITOR");
    let (_, admin) = app.add_member(&app.tenant_id, "ADMIN");
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(app.get(LIST, &[("Authorization", &bearer(&auditor))]).ok()["sinks"].as_array().unwrap().len(), 2);
    assert_eq!(app.get(LIST, &[("Authorization", &bearer(&admin))]).status, 403);
    for t in [&auditor, &admin] {
        let r = app.post(DELETE, &[("Authorization", &bearer(t))], &json!({"sink_id": id}));
        assert_eq!(r.status, 403, "{}", r.text);
    }
    // Deleted: gone from the list, not delivered, its name free again.
    app.owner_post(DELETE, &json!({"sink_id": id})).ok();
    assert_error(&app, &app.owner_post(DELETE, &json!({"sink_id": id})), 404, "not_found");
    app.owner_post(CREATE, &ok).ok();
    assert_eq!(app.owner_get(LIST).ok()["sinks"].as_array().unwrap().len(), 2);
}

/// A tenant owner chooses a sink's URL, and keyward sends from inside the
/// operator's network. Unless the operator allows a network, sinks reach
/// public addresses only: a URL that names an internal address is refused
/// when it is written, and a host name that resolves to one is refused at
/// every connection, so nothing reaches the internal receiver.
fn sinks_reach_only_public_addresses_unless_the_operator_allows(b: Backend) {
    let app = TestApp::spawn_with(b, &FAST);
    let rx = Receiver::start("/internal", Duration::ZERO);
    let internal_urls = [
        rx.url.clone(),
        "https://169.254.169.254/latest/meta-data".into(),
        "https://[::ffff:10.0.0.1]/".into(),
        "https://[fd00::1]/hook".into(),
        "http://2130706433/".into(),
    ];
    for url in &internal_urls {
        let r = app.owner_post(CREATE, &json!({"name": "Internal", "kind": "WEBHOOK", "url": url}));
        assert_error(&app, &r, 400, "invalid_argument");
        let m = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains("not a public address"), "{url}: {m}");
    }
    assert_eq!(app.owner_get(LIST).ok()["sinks"], json!([]), "nothing half-written");

    let port = rx.url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_string();
    let by_name = format!("http://localhost:{port}/internal");
    let r = app.owner_post(CREATE, &json!({"name": "By name", "kind": "WEBHOOK", "url": by_name, "from_seq": 1}));
    let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    assert_error(&app, &app.owner_post(UPDATE, &json!({"sink_id": id, "url": rx.url})), 400, "invalid_argument");
    make_events(&app, 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = sink_of(&app, &id);
        if s["last_error"].as_str().is_some_and(|e| e.contains("not public")) {
            assert_eq!(s["delivered_through"], 0, "the cursor does not move: {s}");
            break;
        }
        assert!(Instant::now() < deadline, "the connection was never refused: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(metric(&app, "keyward_sink_failures_total{reason=\"address\"}") >= 1.0);
    assert!(rx.received().is_empty(), "nothing reached the internal receiver");
}

both!(sinks_reach_only_public_addresses_unless_the_operator_allows);

both!(
    webhook_batches_are_signed_and_complete,
    hec_batches_carry_the_token_and_ocsf_events,
    failing_receivers_get_everything_in_order,
    a_restart_mid_delivery_loses_nothing,
    dead_sinks_come_back_with_replay,
    filters_choose_operations_and_outcomes,
    events_archived_before_delivery_are_skipped,
    key_notices_and_lifecycle_reach_a_filtered_sink,
    two_instances_deliver_one_batch_at_a_time,
    hostile_sink_inputs_are_refused,
);
