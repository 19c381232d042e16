//! Leaked keys are revoked automatically: the secret-scanning partner
//! endpoint (`/v2/secret_scanning.report`, GitHub's protocol) takes reports
//! signed with real ECDSA P-256 test keys, revokes (or, notify-only, marks)
//! each keyward key it names with an event in the key's tenant chain, labels
//! every token by its SHA-256, and refuses and audits forged, altered and
//! replayed reports. No reported token is ever stored.

use crate::both;
use crate::helpers::{key_get, Backend, Resp, TestApp};
use base64::Engine;
use keyward::domain::KeyType;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

const REPORT: &str = "/v2/secret_scanning.report";

struct Partner {
    id: &'static str,
    pair: EcdsaKeyPair,
}

impl Partner {
    fn new(id: &'static str) -> Partner {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Partner { id, pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap() }
    }

    fn listed(&self, current: bool) -> Value {
        let pem = keyward::crypto::p256_public_key_pem(self.pair.public_key().as_ref());
        json!({"key_identifier": self.id, "key": pem, "is_current": current})
    }

    fn sign(&self, body: &[u8]) -> String {
        let sig = self.pair.sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

/// keyward with GitHub's two keys configured (the current one and one rotated out).
fn app_with_partners(b: Backend) -> (TestApp, Partner, Partner, tempfile::TempDir) {
    let (current, previous) = (Partner::new("gh-current"), Partner::new("gh-previous"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret_scanning_keys.json");
    let doc = json!({"public_keys": [current.listed(true), previous.listed(false)]});
    std::fs::write(&file, doc.to_string()).unwrap();
    let app = TestApp::spawn_with(
        b,
        &[("KEYWARD_SECRET_SCANNING_KEYS", file.to_str().unwrap()), crate::sinks::LOOPBACK_ALLOWED],
    );
    (app, current, previous, dir)
}

fn post(app: &TestApp, body: &[u8], id: Option<&str>, signature: Option<&str>) -> Resp {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(id) = id {
        headers.push(("Github-Public-Key-Identifier", id));
    }
    if let Some(s) = signature {
        headers.push(("Github-Public-Key-Signature", s));
    }
    app.request("POST", REPORT, &headers, Some(std::str::from_utf8(body).unwrap()))
}

fn signed(app: &TestApp, partner: &Partner, body: &[u8]) -> Resp {
    post(app, body, Some(partner.id), Some(&partner.sign(body)))
}

fn report(tokens: &[&str]) -> Vec<u8> {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({"token": t, "type": "keyward_enterprise_key",
                   "url": "https://github.com/octo/app/blob/0a1b2c/config/.env", "source": "content"})
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

fn sha256_hex(s: &str) -> String {
    keyward::crypto::sha256_hex(s.as_bytes())
}

/// Every event of every chain (tenants' and the system's), from the database.
fn all_events(app: &TestApp) -> Vec<Value> {
    let mut conn = app.db();
    let mut out = Vec::new();
    for chain in keyward::db::store::chain_ids(&mut conn).unwrap() {
        let mut after = 0;
        loop {
            let rows = keyward::db::store::chain_events_after(&mut conn, &chain, after, 1000).unwrap();
            let Some(last) = rows.last() else { break };
            after = last.seq;
            out.extend(rows.iter().map(keyward::audit::event_json));
        }
    }
    out
}

/// Every event a request wrote, in every chain.
fn events_of_request(app: &TestApp, r: &Resp) -> Vec<Value> {
    let rid = r.header("x-request-id").unwrap();
    all_events(app).into_iter().filter(|e| e["request_id"] == json!(rid)).collect()
}

fn only(events: &[Value], operation: &str) -> Vec<Value> {
    events.iter().filter(|e| e["operation"] == json!(operation)).cloned().collect()
}

#[track_caller]
fn assert_whoami(app: &TestApp, secret: &str, status: u16) {
    let r = key_get(app, secret, "/v2/auth.whoami");
    assert_eq!(r.status, status, "{}", r.text);
}

fn leaked_keys_are_revoked_and_every_token_labelled(b: Backend) {
    let (app, current, previous, _dir) = app_with_partners(b);
    let (live_id, live) = app.create_key("KEY_TYPE_SIEM");
    let (gone_id, gone) = app.create_key("KEY_TYPE_EDISCOVERY");
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": gone_id, "reason": "rotated out"})).ok();
    // Another tenant's key in the same report: each key's tenant is told in its own chain.
    let (other_tenant, _, other_token) = app.new_tenant("Globex");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &format!("Bearer {other_token}"))],
        &json!({"key_type": "KEY_TYPE_TEAM_USER_MGMT", "label": "okta"}),
    );
    let (other_id, other) =
        (r.ok()["key"]["key_id"].as_str().unwrap().to_string(), r.ok()["secret"].as_str().unwrap().to_string());
    let never_issued = keyward::crypto::new_key_secret(KeyType::Siem);
    let not_ours = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    assert_whoami(&app, &live, 200);

    let tokens = [live.as_str(), gone.as_str(), never_issued.as_str(), not_ours, other.as_str()];
    let body = report(&tokens);
    let r = signed(&app, &current, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let expected: Vec<Value> = tokens
        .iter()
        .zip(["true_positive", "true_positive", "false_positive", "false_positive", "true_positive"])
        .map(|(t, label)| json!({"token_hash": sha256_hex(t), "token_type": "keyward_enterprise_key", "label": label}))
        .collect();
    assert_eq!(r.body, json!(expected), "every token labelled, by its hash, in order");

    // The live keys are revoked at once, in both tenants.
    assert_whoami(&app, &live, 401);
    assert_whoami(&app, &other, 401);
    let detail = app.owner_get(&format!("/v2/enterprise.key.detail?key_id={live_id}"));
    assert_eq!(detail.ok()["key"]["status"], json!("REVOKED"), "{}", detail.text);

    // One event a key, in the key's tenant chain, naming the reason and the public URL.
    let events = events_of_request(&app, &r);
    let leaked = only(&events, "enterprise.key.leaked");
    assert_eq!(leaked.len(), 3, "{events:#?}");
    let of = |key: &str| leaked.iter().find(|e| e["key_id"] == json!(key)).unwrap().clone();
    for (key, tenant, action) in [
        (&live_id, &app.tenant_id, "REVOKED"),
        (&gone_id, &app.tenant_id, "ALREADY_REVOKED"),
        (&other_id, &other_tenant, "REVOKED"),
    ] {
        let e = of(key);
        assert_eq!(e["tenant_id"], json!(tenant), "{e}");
        assert_eq!(e["reason"], json!("leaked"));
        assert_eq!(e["outcome"], json!("ALLOWED"));
        assert_eq!(e["actor"], json!({"type": "SERVICE", "id": "secret-scanning"}));
        assert_eq!(e["metadata"]["action"], json!(action), "{e}");
        assert_eq!(e["metadata"]["url"], json!("https://github.com/octo/app/blob/0a1b2c/config/.env"));
        assert_eq!(e["metadata"]["source"], json!("content"));
    }
    // The report's own event, in the system chain: counts, never tokens.
    let own = only(&events, "secret_scanning.report");
    assert_eq!(own.len(), 1, "{events:#?}");
    assert_eq!(own[0]["outcome"], json!("ALLOWED"));
    assert_eq!(own[0]["tenant_id"], Value::Null);
    assert_eq!(own[0]["payload"], Value::Null, "the report body is never recorded");
    for (k, v) in [("tokens", 5), ("false_positives", 2), ("revoked", 2), ("already_revoked", 1), ("marked", 0)] {
        assert_eq!(own[0]["metadata"][k], json!(v), "{k}: {}", own[0]);
    }

    // A report signed with the key GitHub rotated out is accepted too; the leak is recorded once.
    let body = report(&[live.as_str()]);
    let r = signed(&app, &previous, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["label"], json!("true_positive"));
    let e = only(&events_of_request(&app, &r), "enterprise.key.leaked");
    assert_eq!(e[0]["metadata"]["action"], json!("ALREADY_REVOKED"));
    assert_eq!(e[0]["metadata"]["first_report"], json!(false));

    // No reported token anywhere: database, logs.
    let dump = app.dump_database();
    let logs = app.logs();
    for t in tokens {
        assert!(!dump.contains(t), "a reported token reached the database");
        assert!(!logs.contains(t), "a reported token reached the logs");
    }
}
both!(leaked_keys_are_revoked_and_every_token_labelled);

/// The tenant's sinks hear of the leak: its event is in the tenant's chain,
/// which every sink follows; the secret never travels with it.
fn a_leak_reaches_the_tenants_sinks(b: Backend) {
    let (app, current, _, _dir) = app_with_partners(b);
    let rx = crate::sinks::Receiver::start("/leaks", std::time::Duration::ZERO);
    let sink =
        json!({"name": "Leaks", "kind": "WEBHOOK", "url": rx.url, "filter_operations": ["enterprise.key.leaked"]});
    app.owner_post("/v2/enterprise.siem_sink.create", &sink).ok();
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let r = signed(&app, &current, &report(&[&secret]));
    assert_eq!(r.status, 200, "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let leaked = loop {
        let got: Vec<Value> = rx.received().iter().flat_map(crate::sinks::Received::events).collect();
        if let Some(e) = got.into_iter().find(|e| e["operation"] == "enterprise.key.leaked") {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "the leak never reached the sink");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(leaked["key_id"], json!(key_id), "{leaked}");
    assert_eq!(leaked["metadata"]["url"], json!("https://github.com/octo/app/blob/0a1b2c/config/.env"), "{leaked}");
    assert!(rx.received().iter().all(|r| !String::from_utf8_lossy(&r.body).contains(&secret)), "the secret travels");
}
both!(a_leak_reaches_the_tenants_sinks);

fn a_notify_only_tenant_has_its_key_marked_not_revoked(b: Backend) {
    let (app, current, _, _dir) = app_with_partners(b);
    let r = app.owner_post("/v2/enterprise.key_policy.update", &json!({"leaked_key_action": "NOTIFY"}));
    assert_eq!(r.ok()["policy"]["leaked_key_action"], json!("NOTIFY"));
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let r = signed(&app, &current, &report(&[secret.as_str()]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["label"], json!("true_positive"));
    assert_whoami(&app, &secret, 200);
    let e = only(&events_of_request(&app, &r), "enterprise.key.leaked");
    assert_eq!(e[0]["key_id"], json!(key_id));
    assert_eq!(e[0]["metadata"]["action"], json!("MARKED"));
    assert_eq!(e[0]["metadata"]["policy"], json!("NOTIFY"));
    let stored = app.query_strings(&format!("SELECT action AS v FROM key_leaks WHERE key_id = '{key_id}'"));
    assert_eq!(stored, vec!["MARKED".to_string()]);
    // A bad policy value is refused.
    let r = app.owner_post("/v2/enterprise.key_policy.update", &json!({"leaked_key_action": "IGNORE"}));
    assert_eq!(r.status, 400, "{}", r.text);
}
both!(a_notify_only_tenant_has_its_key_marked_not_revoked);

#[track_caller]
fn assert_report_refused(app: &TestApp, r: &Resp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["ok"], json!(false), "the SPEC envelope: {}", r.text);
    let events = events_of_request(app, r);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["operation"], json!("secret_scanning.report"));
    assert_eq!(events[0]["outcome"], json!("DENIED"));
    assert_eq!(events[0]["reason"], json!(reason), "{}", events[0]);
}

fn forged_altered_and_replayed_reports_are_refused_and_audited(b: Backend) {
    let (app, current, _, _dir) = app_with_partners(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    let body = report(&[secret.as_str()]);
    let forger = Partner::new("gh-current");

    // Forged: signed by a key that merely claims GitHub's identifier.
    assert_report_refused(&app, &signed(&app, &forger, &body), 401, "bad_signature");
    // Altered: one byte of a genuinely signed body.
    let signature = current.sign(&body);
    let mut altered = body.clone();
    let at = altered.iter().position(|&c| c == b'o').unwrap();
    altered[at] = b'O';
    assert_report_refused(&app, &post(&app, &altered, Some(current.id), Some(&signature)), 401, "bad_signature");
    // An identifier keyward does not know, a signature that is not base64, none at all.
    assert_report_refused(&app, &post(&app, &body, Some("gh-unknown"), Some(&signature)), 401, "unknown_signing_key");
    assert_report_refused(&app, &post(&app, &body, Some(current.id), Some("not*base64")), 401, "bad_signature");
    assert_report_refused(&app, &post(&app, &body, None, None), 401, "missing_signature");
    assert_report_refused(&app, &post(&app, &body, Some(current.id), None), 401, "missing_signature");
    // None of those touched the key.
    assert_whoami(&app, &secret, 200);

    // Signed but malformed: the signature holds, the report does not.
    assert_report_refused(&app, &signed(&app, &current, br#"{"token": "x"}"#), 400, "invalid_argument");

    // The genuine report once; then its replay is refused and changes nothing.
    let r = signed(&app, &current, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_whoami(&app, &secret, 401);
    let replay = post(&app, &body, Some(current.id), Some(&signature));
    assert_report_refused(&app, &replay, 409, "replayed");
    let leaked = all_events(&app).into_iter().filter(|e| e["operation"] == json!("enterprise.key.leaked")).count();
    assert_eq!(leaked, 1, "a replay acts on nothing");
}
both!(forged_altered_and_replayed_reports_are_refused_and_audited);

fn with_no_keys_configured_every_report_is_refused(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    let partner = Partner::new("gh-current");
    let r = signed(&app, &partner, &report(&[secret.as_str()]));
    assert_report_refused(&app, &r, 401, "not_configured");
    assert_whoami(&app, &secret, 200);
}
both!(with_no_keys_configured_every_report_is_refused);
