//! The key lifecycle and the tenant key policy.

use crate::both;
use crate::helpers::{assert_error, event_of, Backend, Resp, TestApp};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::HashSet;

const KEY_REFUSED: &str = "Invalid or missing enterprise API key";
const CREATE: &str = "/v2/enterprise.key.create";
const LIST: &str = "/v2/enterprise.key.list";
const UPDATE: &str = "/v2/enterprise.key.update";
const ROTATE: &str = "/v2/enterprise.key.rotate";
const REVOKE: &str = "/v2/enterprise.key.revoke";
const POLICY: &str = "/v2/enterprise.key_policy.detail";
const POLICY_UPDATE: &str = "/v2/enterprise.key_policy.update";

const TYPES: [(&str, &str); 5] = [
    ("KEY_TYPE_EDISCOVERY", "ediscovery"),
    ("KEY_TYPE_SIEM", "siem"),
    ("KEY_TYPE_TEAM_USER_MGMT", "usermgmt"),
    ("KEY_TYPE_TEAM_ASSET_AUDIT", "assetaudit"),
    ("KEY_TYPE_TEAM_ASSET_MGMT", "assetmgmt"),
];

// ------------------------------------------------------------------ helpers

/// Now plus `d`, to the second (the API's precision).
fn in_(d: Duration) -> DateTime<Utc> {
    DateTime::from_timestamp((Utc::now() + d).timestamp(), 0).unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[track_caller]
fn parse_time(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("expected an RFC 3339 time, got {v}"));
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc)
}

/// `t` is `expected` give or take a minute.
#[track_caller]
fn assert_about(t: &Value, expected: DateTime<Utc>) {
    let got = parse_time(t);
    assert!((got - expected).num_seconds().abs() <= 60, "expected about {expected}, got {got}");
}

fn whoami(app: &TestApp, secret: &str) -> Resp {
    app.get("/v2/auth.whoami", &[("X-API-Key", secret)])
}

/// The key works: whoami answers with this key.
#[track_caller]
fn assert_key_works(app: &TestApp, secret: &str, key_id: &str) {
    let r = whoami(app, secret);
    assert_eq!(r.status, 200, "key {key_id} should work: {}", r.text);
    assert_eq!(r.body["caller"]["key_id"], json!(key_id));
}

/// The key is refused with the one 401 body, and its event names the key and `reason`.
#[track_caller]
fn assert_key_refused(app: &TestApp, secret: &str, key_id: &str, reason: &str) {
    let r = whoami(app, secret);
    assert_eq!(r.status, 401, "key {key_id} should be refused ({reason}): {}", r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"));
    assert_eq!(r.body["error"]["message"], json!(KEY_REFUSED));
    let ev = event_of(app, &r);
    assert_eq!(ev["reason"], json!(reason), "event: {ev}");
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["key_id"], json!(key_id));
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));
}

fn create(app: &TestApp, body: Value) -> Resp {
    app.owner_post(CREATE, &body)
}

fn detail(app: &TestApp, key_id: &str) -> Value {
    app.owner_get(&format!("/v2/enterprise.key.detail?key_id={key_id}")).ok()["key"].clone()
}

fn total(app: &TestApp, query: &str) -> u64 {
    app.owner_get(&format!("{LIST}?{query}")).ok()["total"].as_u64().unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["keys"].as_array().unwrap().iter().map(|k| k["key_id"].as_str().unwrap().to_string()).collect()
}

/// Every object key anywhere inside `v`.
fn field_names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                field_names(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| field_names(v, out)),
        _ => {}
    }
}

#[track_caller]
fn assert_no_hash_field(v: &Value) {
    let mut names = Vec::new();
    field_names(v, &mut names);
    assert!(!names.iter().any(|n| n.contains("hash")), "a hash field is exposed: {v}");
}

fn revoke(app: &TestApp, key_id: &str) {
    app.owner_post(REVOKE, &json!({"key_id": key_id, "reason": "test"})).ok();
}

// ------------------------------------------------------------------ create

fn create_issues_every_key_type(b: Backend) {
    let app = TestApp::spawn(b);
    for (key_type, tag) in TYPES {
        let r = create(&app, json!({"key_type": key_type, "label": format!("{tag} connector")}));
        let body = r.ok().clone();
        assert_no_hash_field(&body);
        let secret = body["secret"].as_str().unwrap();
        let key = &body["key"];
        let prefix = format!("kw_{tag}_");
        assert!(secret.starts_with(&prefix), "{secret} should start with {prefix}");
        assert!(secret.len() >= prefix.len() + 27, "{secret} is too short");
        assert!(secret[prefix.len()..].bytes().all(|c| c.is_ascii_alphanumeric()), "{secret}");
        let hint = key["hint"].as_str().unwrap();
        assert!(hint.starts_with(&prefix), "{hint}");
        assert!(hint.ends_with(&secret[secret.len() - 4..]), "hint {hint} vs secret");
        assert!(!hint.contains(&secret[prefix.len()..secret.len() - 4]), "hint leaks the secret");
        assert_eq!(key["key_type"], json!(key_type));
        assert_eq!(key["label"], json!(format!("{tag} connector")));
        assert_eq!(key["status"], json!("ACTIVE"));
        assert_eq!(key["status_reason"], Value::Null);
        assert_eq!(key["created_by"], json!(app.owner_id));
        assert_eq!(key["ip_allowlist"], json!([]));
        assert_about(&key["created_at"], Utc::now());
        let key_id = key["key_id"].as_str().unwrap();

        // Its event records the issuance, never the secret.
        let ev = event_of(&app, &r);
        assert_eq!(ev["operation"], json!("enterprise.key.create"));
        assert_eq!(ev["outcome"], json!("ALLOWED"));
        assert_eq!(ev["metadata"]["new_key_id"], json!(key_id));
        assert!(!ev.to_string().contains(secret), "the secret is in the audit event");

        // Detail and list never show a hash either, and the secret works.
        assert_no_hash_field(&detail(&app, key_id));
        assert_key_works(&app, secret, key_id);
        assert_eq!(whoami(&app, secret).body["caller"]["key_type"], json!(key_type));
    }
    let list = app.owner_get(LIST);
    assert_eq!(list.ok()["total"], json!(5));
    assert_no_hash_field(&list.body);
}
both!(create_issues_every_key_type);

fn user_management_expiry_defaults_to_and_is_capped_at_a_year(b: Backend) {
    let app = TestApp::spawn(b);
    let r = create(&app, json!({"key_type": "KEY_TYPE_TEAM_USER_MGMT", "label": "okta"}));
    assert_about(&r.ok()["key"]["expires_at"], Utc::now() + Duration::days(365));

    let at = in_(Duration::days(365) - Duration::minutes(5));
    let r = create(&app, json!({"key_type": "KEY_TYPE_TEAM_USER_MGMT", "label": "okta", "expires_at": rfc3339(at)}));
    assert_eq!(parse_time(&r.ok()["key"]["expires_at"]), at);

    let too_late = rfc3339(Utc::now() + Duration::days(366));
    let r = create(&app, json!({"key_type": "KEY_TYPE_TEAM_USER_MGMT", "label": "okta", "expires_at": too_late}));
    assert_error(&app, &r, 400, "invalid_argument");
    assert_eq!(total(&app, ""), 2);

    // Other types need no expiry, but may have a long one.
    for (key_type, _) in TYPES.iter().filter(|(t, _)| *t != "KEY_TYPE_TEAM_USER_MGMT") {
        let r = create(&app, json!({"key_type": key_type, "label": "no expiry"}));
        assert_eq!(r.ok()["key"]["expires_at"], Value::Null, "{key_type}");
    }
    let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "long", "expires_at": too_late}));
    assert_about(&r.ok()["key"]["expires_at"], Utc::now() + Duration::days(366));

    // An expiry in the past is refused for every type.
    let past = rfc3339(Utc::now() - Duration::hours(1));
    for (key_type, _) in TYPES {
        let r = create(&app, json!({"key_type": key_type, "label": "past", "expires_at": past}));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "bad", "expires_at": "next tuesday"}));
    assert_error(&app, &r, 400, "invalid_argument");
    assert_eq!(total(&app, ""), 7);
}
both!(user_management_expiry_defaults_to_and_is_capped_at_a_year);

fn create_validates_label_type_and_fields(b: Backend) {
    let app = TestApp::spawn(b);
    for label in [String::new(), "   ".to_string(), "x".repeat(101), "bad\nlabel".to_string()] {
        let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": label}));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "x".repeat(100)}));
    assert_eq!(r.ok()["key"]["label"], json!("x".repeat(100)));

    let r = create(&app, json!({"key_type": "KEY_TYPE_ROOT", "label": "root"}));
    assert_error(&app, &r, 400, "invalid_argument");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("key_type"), "the message should name key_type: {msg}");

    let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "x", "scopes": ["admin"]}));
    assert_error(&app, &r, 400, "invalid_argument");
    let r = create(&app, json!({"label": "no type"}));
    assert_error(&app, &r, 400, "invalid_argument");
    let r = app.request(
        "POST",
        CREATE,
        &[("Authorization", &format!("Bearer {}", app.owner_token)), ("Content-Type", "application/json")],
        Some("{not json"),
    );
    assert_error(&app, &r, 400, "invalid_argument");
    assert_eq!(total(&app, ""), 1);
}
both!(create_validates_label_type_and_fields);

// ------------------------------------------------------------------ list and detail

fn list_filters_and_pages(b: Backend) {
    let app = TestApp::spawn(b);
    let mut created = Vec::new();
    for key_type in ["KEY_TYPE_SIEM", "KEY_TYPE_EDISCOVERY", "KEY_TYPE_SIEM", "KEY_TYPE_EDISCOVERY", "KEY_TYPE_SIEM"] {
        created.push(app.create_key(key_type).0);
    }
    revoke(&app, &created[0]);

    let all = app.owner_get(LIST);
    let body = all.ok();
    assert_eq!(body["total"], json!(5));
    assert_eq!((body["limit"].clone(), body["offset"].clone()), (json!(100), json!(0)));
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(ids(body), newest_first, "newest first");

    assert_eq!(total(&app, "key_type=KEY_TYPE_SIEM"), 3);
    assert_eq!(total(&app, "key_type=KEY_TYPE_EDISCOVERY"), 2);
    assert_eq!(total(&app, "key_type=KEY_TYPE_TEAM_ASSET_AUDIT"), 0);
    let revoked = app.owner_get(&format!("{LIST}?status=REVOKED"));
    assert_eq!(ids(revoked.ok()), vec![created[0].clone()]);
    assert_eq!(revoked.body["total"], json!(1));
    assert_eq!(total(&app, "status=ACTIVE"), 4);
    assert_eq!(total(&app, "status=EXPIRED"), 0);
    let both_filters = app.owner_get(&format!("{LIST}?key_type=KEY_TYPE_SIEM&status=ACTIVE"));
    assert_eq!(ids(both_filters.ok()), vec![created[4].clone(), created[2].clone()]);
    assert_eq!(both_filters.body["total"], json!(2));

    // Pages: limit 2 from 0, 2 and 4 cover everything once; total is always the whole count.
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let page = app.owner_get(&format!("{LIST}?limit=2&offset={offset}"));
        let body = page.ok();
        assert_eq!(body["total"], json!(5));
        assert_eq!(body["limit"], json!(2));
        assert_eq!(body["offset"], json!(offset));
        seen.extend(ids(body));
    }
    assert_eq!(seen, newest_first);
    let beyond = app.owner_get(&format!("{LIST}?limit=2&offset=10"));
    assert_eq!(ids(beyond.ok()), Vec::<String>::new());
    assert_eq!(beyond.body["total"], json!(5));

    for bad in
        ["limit=0", "limit=1001", "offset=-1", "status=DELETED", "key_type=KEY_TYPE_ROOT", "limit=ten", "color=red"]
    {
        let r = app.owner_get(&format!("{LIST}?{bad}"));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    assert_eq!(total(&app, "limit=1000"), 5);
    assert_eq!(total(&app, "limit=1"), 5);
}
both!(list_filters_and_pages);

fn detail_shows_last_use_and_hides_other_tenants(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let key = detail(&app, &key_id);
    assert_eq!(key["key_id"], json!(key_id));
    assert_eq!(key["status"], json!("ACTIVE"));
    assert_eq!(key["last_used_at"], Value::Null);
    assert_eq!(key["last_used_ip"], Value::Null);

    assert_key_works(&app, &secret, &key_id);
    let key = detail(&app, &key_id);
    assert_about(&key["last_used_at"], Utc::now());
    assert_eq!(key["last_used_ip"], json!("127.0.0.1"));
    assert_no_hash_field(&key);

    // A refused use is not a use.
    app.exec_sql("UPDATE api_keys SET last_used_at = NULL, last_used_ip = NULL");
    app.owner_post(UPDATE, &json!({"key_id": key_id, "ip_allowlist": ["10.0.0.0/8"]})).ok();
    assert_key_refused(&app, &secret, &key_id, "ip_not_allowed");
    assert_eq!(detail(&app, &key_id)["last_used_at"], Value::Null);

    let r = app.owner_get(&format!("/v2/enterprise.key.detail?key_id={}", uuid::Uuid::new_v4()));
    assert_error(&app, &r, 404, "not_found");
    let r = app.owner_get("/v2/enterprise.key.detail?key_id=not-a-uuid");
    assert_error(&app, &r, 404, "not_found");
    let r = app.owner_get("/v2/enterprise.key.detail");
    assert_error(&app, &r, 400, "invalid_argument");

    // Tenant B's key is not found from A, and A's is not found from B.
    let (_, _, token_b) = app.new_tenant("Globex");
    let auth_b = format!("Bearer {token_b}");
    let r = app.post(CREATE, &[("Authorization", &auth_b)], &json!({"key_type": "KEY_TYPE_SIEM", "label": "b"}));
    let key_b = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    let r = app.owner_get(&format!("/v2/enterprise.key.detail?key_id={key_b}"));
    assert_error(&app, &r, 404, "not_found");
    let r = app.get(&format!("/v2/enterprise.key.detail?key_id={key_id}"), &[("Authorization", &auth_b)]);
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("not_found"));
    let r = app.get(&format!("/v2/enterprise.key.detail?key_id={key_b}"), &[("Authorization", &auth_b)]);
    assert_eq!(r.ok()["key"]["key_id"], json!(key_b));
    assert_eq!(ids(app.owner_get(LIST).ok()), vec![key_id.clone()]);

    // Nor can A change B's key.
    for (path, body) in [
        (UPDATE, json!({"key_id": key_b, "label": "mine now"})),
        (ROTATE, json!({"key_id": key_b})),
        (REVOKE, json!({"key_id": key_b, "reason": "mine now"})),
    ] {
        let r = app.owner_post(path, &body);
        assert_error(&app, &r, 404, "not_found");
    }
    let r = app.get(&format!("/v2/enterprise.key.detail?key_id={key_b}"), &[("Authorization", &auth_b)]);
    assert_eq!(r.ok()["key"]["status"], json!("ACTIVE"));
    assert_eq!(r.body["key"]["label"], json!("b"));
}
both!(detail_shows_last_use_and_hides_other_tenants);

// ------------------------------------------------------------------ update

fn update_changes_label_and_allowlist(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");

    let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "label": "Splunk prod"}));
    assert_eq!(r.ok()["key"]["label"], json!("Splunk prod"));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key.update"));
    assert_eq!(ev["metadata"]["label"], json!({"old": "test key", "new": "Splunk prod"}));
    assert_eq!(detail(&app, &key_id)["label"], json!("Splunk prod"));

    let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "ip_allowlist": ["10.0.0.0/8"]}));
    assert_eq!(r.ok()["key"]["ip_allowlist"], json!(["10.0.0.0/8"]));
    assert_eq!(r.body["key"]["label"], json!("Splunk prod"), "label kept");
    assert_key_refused(&app, &secret, &key_id, "ip_not_allowed");

    let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "ip_allowlist": ["10.0.0.0/8", "127.0.0.1/32"]}));
    assert_eq!(r.ok()["key"]["ip_allowlist"], json!(["10.0.0.0/8", "127.0.0.1/32"]));
    assert_key_works(&app, &secret, &key_id);

    let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "ip_allowlist": ["127.0.0.1/32"]}));
    r.ok();
    assert_key_works(&app, &secret, &key_id);

    for bad in [json!(["10.0.0.0/33"]), json!(["example.com"]), json!(["10.0.0.0/8", "nope"]), json!("10.0.0.0/8")] {
        let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "ip_allowlist": bad}));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    for bad_label in ["", &"y".repeat(101)] {
        let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "label": bad_label}));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "key_type": "KEY_TYPE_EDISCOVERY"}));
    assert_error(&app, &r, 400, "invalid_argument");
    // Nothing of the refused updates stuck.
    let key = detail(&app, &key_id);
    assert_eq!(key["ip_allowlist"], json!(["127.0.0.1/32"]));
    assert_eq!(key["label"], json!("Splunk prod"));
    assert_eq!(key["key_type"], json!("KEY_TYPE_SIEM"));

    // An empty list allows every address again.
    let r = app.owner_post(UPDATE, &json!({"key_id": key_id, "ip_allowlist": []}));
    assert_eq!(r.ok()["key"]["ip_allowlist"], json!([]));
    assert_key_works(&app, &secret, &key_id);
}
both!(update_changes_label_and_allowlist);

// ------------------------------------------------------------------ rotate

fn rotate_without_grace_stops_the_old_key_at_once(b: Backend) {
    let app = TestApp::spawn(b);
    let (old_id, old_secret) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let r = app.owner_post(ROTATE, &json!({"key_id": old_id, "grace_seconds": 0}));
    let body = r.ok().clone();
    assert_no_hash_field(&body);
    let new_secret = body["secret"].as_str().unwrap().to_string();
    let new_id = body["key"]["key_id"].as_str().unwrap().to_string();
    assert!(new_secret.starts_with("kw_assetmgmt_"), "{new_secret}");
    assert_ne!(new_secret, old_secret);
    assert_ne!(new_id, old_id);
    assert_eq!(body["key"]["key_type"], json!("KEY_TYPE_TEAM_ASSET_MGMT"));
    assert_eq!(body["key"]["label"], json!("test key"));
    assert_eq!(body["key"]["status"], json!("ACTIVE"));
    assert_eq!(body["key"]["rotated_from"], json!(old_id));
    assert_eq!(body["previous_key"]["key_id"], json!(old_id));
    assert_eq!(body["previous_key"]["rotated_to"], json!(new_id));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key.rotate"));
    assert_eq!(ev["metadata"]["old_key_id"], json!(old_id));
    assert_eq!(ev["metadata"]["new_key_id"], json!(new_id));
    assert!(!ev.to_string().contains(&new_secret));

    assert_key_refused(&app, &old_secret, &old_id, "expired");
    assert_key_works(&app, &new_secret, &new_id);
    let old = detail(&app, &old_id);
    assert_eq!(old["status"], json!("EXPIRED"));
    assert_eq!(old["status_reason"], json!("rotated"));

    // The default grace is 0 as well.
    let r = app.owner_post(ROTATE, &json!({"key_id": new_id}));
    let third = r.ok()["secret"].as_str().unwrap().to_string();
    let third_id = r.body["key"]["key_id"].as_str().unwrap().to_string();
    assert_key_refused(&app, &new_secret, &new_id, "expired");
    assert_key_works(&app, &third, &third_id);
}
both!(rotate_without_grace_stops_the_old_key_at_once);

fn rotate_with_grace_keeps_at_most_two_live_keys_per_chain(b: Backend) {
    let app = TestApp::spawn(b);
    let (k1, s1) = app.create_key("KEY_TYPE_SIEM");
    let r = app.owner_post(ROTATE, &json!({"key_id": k1, "grace_seconds": 3600}));
    let s2 = r.ok()["secret"].as_str().unwrap().to_string();
    let k2 = r.body["key"]["key_id"].as_str().unwrap().to_string();
    assert_about(&r.body["previous_key"]["grace_ends_at"], Utc::now() + Duration::hours(1));
    assert_eq!(r.body["previous_key"]["status"], json!("ACTIVE"));
    assert_key_works(&app, &s1, &k1);
    assert_key_works(&app, &s2, &k2);
    assert_eq!(total(&app, "status=ACTIVE"), 2);

    // The old key in its grace cannot be rotated again.
    let r = app.owner_post(ROTATE, &json!({"key_id": k1, "grace_seconds": 3600}));
    assert_error(&app, &r, 400, "failed_precondition");

    let r = app.owner_post(ROTATE, &json!({"key_id": k2, "grace_seconds": 3600}));
    let s3 = r.ok()["secret"].as_str().unwrap().to_string();
    let k3 = r.body["key"]["key_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["key"]["rotated_from"], json!(k2));
    assert_key_refused(&app, &s1, &k1, "expired");
    assert_key_works(&app, &s2, &k2);
    assert_key_works(&app, &s3, &k3);
    assert_eq!(total(&app, "status=ACTIVE"), 2);
    assert_eq!(total(&app, "status=EXPIRED"), 1);
    assert_eq!(detail(&app, &k1)["status_reason"], json!("rotated"));

    // The grace never outlives the old key's own expiry; the new key keeps the lifetime length.
    let soon = in_(Duration::minutes(10));
    let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "short", "expires_at": rfc3339(soon)}));
    let short = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    let r = app.owner_post(ROTATE, &json!({"key_id": short, "grace_seconds": 3600}));
    assert_eq!(parse_time(&r.ok()["previous_key"]["grace_ends_at"]), soon);
    assert_about(&r.body["key"]["expires_at"], soon);
}
both!(rotate_with_grace_keeps_at_most_two_live_keys_per_chain);

fn rotate_refuses_revoked_keys_and_bad_grace(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    for grace in [json!(604801), json!(-1), json!("an hour")] {
        let r = app.owner_post(ROTATE, &json!({"key_id": key_id, "grace_seconds": grace}));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = app.owner_post(ROTATE, &json!({"key_id": uuid::Uuid::new_v4().to_string()}));
    assert_error(&app, &r, 404, "not_found");
    // None of those rotated anything.
    assert_eq!(total(&app, ""), 1);
    assert_eq!(detail(&app, &key_id)["rotated_to"], Value::Null);
    assert_key_works(&app, &secret, &key_id);

    // The maximum grace is accepted.
    let (other, _) = app.create_key("KEY_TYPE_EDISCOVERY");
    let r = app.owner_post(ROTATE, &json!({"key_id": other, "grace_seconds": 604800}));
    assert_about(&r.ok()["previous_key"]["grace_ends_at"], Utc::now() + Duration::seconds(604800));

    revoke(&app, &key_id);
    let r = app.owner_post(ROTATE, &json!({"key_id": key_id, "grace_seconds": 60}));
    assert_error(&app, &r, 400, "failed_precondition");
    // An expired key cannot be rotated either.
    let (exp_id, _) = app.create_key("KEY_TYPE_EDISCOVERY");
    app.exec_sql(&format!("UPDATE api_keys SET expires_at = '2020-01-01 00:00:00' WHERE id = '{exp_id}'"));
    let r = app.owner_post(ROTATE, &json!({"key_id": exp_id}));
    assert_error(&app, &r, 400, "failed_precondition");
    assert_eq!(total(&app, ""), 4);
}
both!(rotate_refuses_revoked_keys_and_bad_grace);

// ------------------------------------------------------------------ revoke

fn revoke_stops_the_key_and_is_shown(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    assert_key_works(&app, &secret, &key_id);

    let r = app.owner_post(REVOKE, &json!({"key_id": key_id, "reason": "laptop stolen"}));
    let key = r.ok()["key"].clone();
    assert_eq!(key["status"], json!("REVOKED"));
    assert_eq!(key["revoke_reason"], json!("laptop stolen"));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key.revoke"));
    assert_eq!(ev["metadata"]["revoked_key_id"], json!(key_id));

    assert_key_refused(&app, &secret, &key_id, "revoked");
    let key = detail(&app, &key_id);
    assert_eq!(key["status"], json!("REVOKED"));
    assert_eq!(key["status_reason"], json!("revoked"));
    assert_eq!(key["revoke_reason"], json!("laptop stolen"));
    assert_about(&key["revoked_at"], Utc::now());

    let r = app.owner_post(REVOKE, &json!({"key_id": key_id, "reason": "again"}));
    assert_error(&app, &r, 400, "failed_precondition");
    assert_eq!(detail(&app, &key_id)["revoke_reason"], json!("laptop stolen"));

    let (other, other_secret) = app.create_key("KEY_TYPE_SIEM");
    for reason in [json!(""), json!("   "), json!("r".repeat(501))] {
        let r = app.owner_post(REVOKE, &json!({"key_id": other, "reason": reason}));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = app.owner_post(REVOKE, &json!({"key_id": other}));
    assert_error(&app, &r, 400, "invalid_argument");
    let r = app.owner_post(REVOKE, &json!({"key_id": uuid::Uuid::new_v4().to_string(), "reason": "x"}));
    assert_error(&app, &r, 404, "not_found");
    assert_key_works(&app, &other_secret, &other);
}
both!(revoke_stops_the_key_and_is_shown);

// ------------------------------------------------------------------ policy

fn key_policy_tightens_lifetimes(b: Backend) {
    let app = TestApp::spawn(b);
    let r = app.owner_get(POLICY);
    let policy = r.ok()["policy"].clone();
    assert_eq!(policy["max_lifetime_days"], json!({}));
    assert_eq!(policy["siem_tier2_enabled"], json!(false));

    let r = app.owner_post(POLICY_UPDATE, &json!({"max_lifetime_days": {"KEY_TYPE_SIEM": 30}}));
    assert_eq!(r.ok()["policy"]["max_lifetime_days"], json!({"KEY_TYPE_SIEM": 30}));
    assert_eq!(r.body["policy"]["siem_tier2_enabled"], json!(false));
    assert_about(&r.body["policy"]["updated_at"], Utc::now());
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key_policy.update"));
    assert_eq!(ev["metadata"]["max_lifetime_days"]["new"], json!({"KEY_TYPE_SIEM": 30}));
    assert_eq!(app.owner_get(POLICY).ok()["policy"]["max_lifetime_days"], json!({"KEY_TYPE_SIEM": 30}));

    let r = create(
        &app,
        json!({"key_type": "KEY_TYPE_SIEM", "label": "s", "expires_at": rfc3339(Utc::now() + Duration::days(31))}),
    );
    assert_error(&app, &r, 400, "invalid_argument");
    let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "s"}));
    assert_about(&r.ok()["key"]["expires_at"], Utc::now() + Duration::days(30));
    let within = in_(Duration::days(29));
    let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "s", "expires_at": rfc3339(within)}));
    assert_eq!(parse_time(&r.ok()["key"]["expires_at"]), within);
    // Other types are untouched.
    let r = create(&app, json!({"key_type": "KEY_TYPE_EDISCOVERY", "label": "e"}));
    assert_eq!(r.ok()["key"]["expires_at"], Value::Null);

    for bad in [
        json!({"max_lifetime_days": {"KEY_TYPE_TEAM_USER_MGMT": 366}}),
        json!({"max_lifetime_days": {"KEY_TYPE_SIEM": 0}}),
        json!({"max_lifetime_days": {"KEY_TYPE_SIEM": 3651}}),
        json!({"max_lifetime_days": {"KEY_TYPE_ROOT": 10}}),
        json!({"siem_tier2_enabled": "yes"}),
        json!({"retention_days": 10}),
    ] {
        let r = app.owner_post(POLICY_UPDATE, &bad);
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = app.owner_post(POLICY_UPDATE, &json!({"max_lifetime_days": {"KEY_TYPE_TEAM_USER_MGMT": 365}}));
    assert_eq!(r.ok()["policy"]["max_lifetime_days"], json!({"KEY_TYPE_TEAM_USER_MGMT": 365}));

    // siem_tier2_enabled round-trips and leaves the lifetimes alone.
    let r = app.owner_post(POLICY_UPDATE, &json!({"siem_tier2_enabled": true}));
    assert_eq!(r.ok()["policy"]["siem_tier2_enabled"], json!(true));
    let policy = app.owner_get(POLICY).ok()["policy"].clone();
    assert_eq!(policy["siem_tier2_enabled"], json!(true));
    assert_eq!(policy["max_lifetime_days"], json!({"KEY_TYPE_TEAM_USER_MGMT": 365}));
    let r = app.owner_post(POLICY_UPDATE, &json!({"siem_tier2_enabled": false}));
    assert_eq!(r.ok()["policy"]["siem_tier2_enabled"], json!(false));
    assert_eq!(app.owner_get(POLICY).ok()["policy"]["siem_tier2_enabled"], json!(false));
}
both!(key_policy_tightens_lifetimes);

fn tightened_policy_blocks_old_keys_without_deleting_them(b: Backend) {
    let app = TestApp::spawn(b);
    let (old_id, old_secret) = app.create_key("KEY_TYPE_SIEM");
    let (young_id, young_secret) = app.create_key("KEY_TYPE_SIEM");
    let (other_id, other_secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    app.exec_sql(&format!(
        "UPDATE api_keys SET created_at = '2020-01-01 00:00:00' WHERE id IN ('{old_id}', '{other_id}')"
    ));
    assert_key_works(&app, &old_secret, &old_id);

    app.owner_post(POLICY_UPDATE, &json!({"max_lifetime_days": {"KEY_TYPE_SIEM": 30}})).ok();

    let key = detail(&app, &old_id);
    assert_eq!(key["status"], json!("EXPIRED"));
    assert_eq!(key["status_reason"], json!("tenant_policy"));
    let list = app.owner_get(LIST);
    let listed = list.ok()["keys"].as_array().unwrap().iter().find(|k| k["key_id"] == json!(old_id)).cloned();
    let listed = listed.expect("the blocked key is still listed");
    assert_eq!(listed["status"], json!("EXPIRED"));
    assert_eq!(listed["status_reason"], json!("tenant_policy"));
    assert_eq!(list.body["total"], json!(3));
    let expired = app.owner_get(&format!("{LIST}?status=EXPIRED"));
    assert_eq!(ids(expired.ok()), vec![old_id.clone()]);
    assert_eq!(total(&app, "status=ACTIVE"), 2);

    assert_key_refused(&app, &old_secret, &old_id, "expired");
    assert_key_works(&app, &young_secret, &young_id);
    assert_key_works(&app, &other_secret, &other_id);
    assert_eq!(app.query_strings(&format!("SELECT id AS v FROM api_keys WHERE id = '{old_id}'")), vec![old_id.clone()]);

    // Loosening the policy again lets it verify (it was blocked, not deleted).
    app.owner_post(POLICY_UPDATE, &json!({"max_lifetime_days": {}})).ok();
    assert_eq!(detail(&app, &old_id)["status"], json!("ACTIVE"));
    assert_key_works(&app, &old_secret, &old_id);
}
both!(tightened_policy_blocks_old_keys_without_deleting_them);

// ------------------------------------------------------------------ the live-key cap

fn fifty_live_keys_is_the_cap(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE", "0")]);
    let mut keys = Vec::new();
    for i in 0..50 {
        let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": format!("k{i}")}));
        keys.push(r.ok()["key"]["key_id"].as_str().unwrap().to_string());
    }
    let r = create(&app, json!({"key_type": "KEY_TYPE_EDISCOVERY", "label": "51st"}));
    assert_error(&app, &r, 400, "failed_precondition");
    assert_eq!(total(&app, ""), 50);
    // A rotation would make a 51st live key, too.
    let r = app.owner_post(ROTATE, &json!({"key_id": keys[1], "grace_seconds": 3600}));
    assert_error(&app, &r, 400, "failed_precondition");
    assert_eq!(detail(&app, &keys[1])["rotated_to"], Value::Null);

    revoke(&app, &keys[0]);
    let r = create(&app, json!({"key_type": "KEY_TYPE_EDISCOVERY", "label": "51st"}));
    r.ok();
    let r = create(&app, json!({"key_type": "KEY_TYPE_EDISCOVERY", "label": "52nd"}));
    assert_error(&app, &r, 400, "failed_precondition");

    // An expired key does not count either.
    app.exec_sql(&format!("UPDATE api_keys SET expires_at = '2020-01-01 00:00:00' WHERE id = '{}'", keys[2]));
    create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": "after expiry"})).ok();
    assert_eq!(total(&app, "status=ACTIVE"), 50);

    // The cap is per tenant.
    let (_, _, token_b) = app.new_tenant("Globex");
    let auth_b = format!("Bearer {token_b}");
    let r = app.post(CREATE, &[("Authorization", &auth_b)], &json!({"key_type": "KEY_TYPE_SIEM", "label": "b"}));
    r.ok();
}
both!(fifty_live_keys_is_the_cap);

fn rotation_without_grace_works_at_the_cap(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE", "0")]);
    let mut keys = Vec::new();
    for i in 0..50 {
        let r = create(&app, json!({"key_type": "KEY_TYPE_SIEM", "label": format!("k{i}")}));
        keys.push(r.ok()["key"]["key_id"].as_str().unwrap().to_string());
    }
    // A leaked key must be replaceable at once even at the cap: with no grace the old key
    // stops as the new one starts, so the tenant still has 50 live keys, not 51.
    let r = app.owner_post(ROTATE, &json!({"key_id": keys[0], "grace_seconds": 0}));
    assert_eq!(r.status, 200, "rotation with grace 0 at the cap: {}", r.text);
    assert_eq!(r.body["previous_key"]["status"], json!("EXPIRED"));
    assert_eq!(total(&app, "status=ACTIVE"), 50);
}
both!(rotation_without_grace_works_at_the_cap);

fn concurrent_creates_never_pass_the_cap(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE", "0")]);
    let (tenant_b, _, token_b) = app.new_tenant("Racers");
    let url = format!("{}{CREATE}", app.base);
    let auth = format!("Bearer {token_b}");
    let barrier = std::sync::Barrier::new(100);
    let results: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let (url, auth, barrier) = (&url, &auth, &barrier);
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(60)).build();
                    let body = json!({"key_type": "KEY_TYPE_SIEM", "label": format!("racer {i}")}).to_string();
                    barrier.wait();
                    let resp = match agent
                        .post(url)
                        .set("Authorization", auth)
                        .set("Content-Type", "application/json")
                        .send_string(&body)
                    {
                        Ok(r) => r,
                        Err(ureq::Error::Status(_, r)) => r,
                        Err(e) => panic!("transport error: {e}"),
                    };
                    let status = resp.status();
                    (status, serde_json::from_str(&resp.into_string().unwrap()).unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let full = results.iter().filter(|(s, v)| *s == 400 && v["error"]["code"] == json!("failed_precondition")).count();
    assert_eq!(ok, 50, "successes: {ok}, refusals: {full}");
    assert_eq!(full, 50, "every other answer is failed_precondition: {results:?}");

    let auth_b = format!("Bearer {token_b}");
    let r = app.get(&format!("{LIST}?status=ACTIVE"), &[("Authorization", &auth_b)]);
    assert_eq!(r.ok()["total"], json!(50));
    let listed: HashSet<String> = ids(&r.body).into_iter().collect();
    let issued: HashSet<String> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v["key"]["key_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, issued);
    let stored = app.query_strings(&format!("SELECT id AS v FROM api_keys WHERE tenant_id = '{tenant_b}'"));
    assert_eq!(stored.len(), 50);
    // The first tenant is untouched.
    assert_eq!(total(&app, ""), 0);
}
both!(concurrent_creates_never_pass_the_cap);

// ------------------------------------------------------------------ storage

fn only_the_hash_is_stored(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let r = app.owner_post(ROTATE, &json!({"key_id": key_id, "grace_seconds": 60}));
    let rotated = r.ok()["secret"].as_str().unwrap().to_string();

    let hashes = app.query_strings("SELECT secret_hash AS v FROM api_keys");
    assert_eq!(hashes.len(), 2);
    for h in &hashes {
        assert_eq!(h.len(), 64, "{h}");
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()), "{h}");
        assert_ne!(h, &secret);
        assert_ne!(h, &rotated);
        assert_ne!(h, &keyward::crypto::sha256_hex(secret.as_bytes()), "an unpeppered hash");
    }
    assert_ne!(hashes[0], hashes[1]);

    // Use both (so events and last-use rows exist), then look for the secrets everywhere.
    assert_eq!(whoami(&app, &secret).status, 200);
    assert_eq!(whoami(&app, &rotated).status, 200);
    let dump = app.dump_database();
    assert!(dump.contains(&key_id), "the dump holds the data");
    for s in [&secret, &rotated] {
        assert!(!dump.contains(s.as_str()), "a secret is stored in the database");
        let random = &s[s.find('_').unwrap() + 1..];
        let random = &random[random.find('_').unwrap() + 1..];
        assert!(!dump.contains(random), "the secret's random part is stored");
        // keyward's own log lines (the test's HTTP client logs what it sends, secrets included).
        let leaked = app.logs().lines().any(|l| !l.contains(r#""target":"ureq"#) && l.contains(s.as_str()));
        assert!(!leaked, "a secret is in keyward's logs");
    }
}
both!(only_the_hash_is_stored);
