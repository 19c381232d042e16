//! OCSF: the SIEM feed and the compliance export with `format=ocsf`. Every
//! kind of event keyward writes is checked against the OCSF schema by the
//! OCSF tooling from PyPI (`tests/ocsf/validate.sh`: ocsf-json-schema and
//! jsonschema), not by keyward's code; keyward's own fields survive, and an
//! OCSF export still verifies offline.

use crate::both;
use crate::exports::{fetch, wait_done};
use crate::helpers::{key_get, key_post, Backend, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const FEED: &str = "/v2/enterprise.compliance.event.list";

/// Runs the OCSF validator on `events`, for OCSF 1.1.0 (what keyward
/// declares) and 1.8.0 (the newest it packages). Returns its summary.
#[track_caller]
pub(crate) fn validate(events: &[Value]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ocsf/validate.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&file)
        .args(["1.1.0", "1.8.0"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the OCSF validator did not run (it needs python3 and PyPI for its first install):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "OCSF validation failed: {summary:#}");
    assert_eq!(summary["events"], json!(events.len()));
    summary
}

/// Every page of the feed in `format`.
fn feed(app: &TestApp, siem: &str, format: &str) -> Vec<Value> {
    let (mut out, mut cursor) = (Vec::new(), String::new());
    loop {
        let r = key_get(app, siem, &format!("{FEED}?limit=50&format={format}{cursor}"));
        let body = r.ok().clone();
        out.extend(body["events"].as_array().unwrap().iter().cloned());
        if !body["has_more"].as_bool().unwrap() {
            return out;
        }
        cursor = format!("&cursor={}", body["next_cursor"].as_str().unwrap());
    }
}

/// Writes one event of every kind into the tenant's log: key and member
/// lifecycle, key uses, gateway checks allowed and refused, refusals for each
/// reason, failed calls, export jobs. Returns the SIEM key's secret.
fn every_kind_of_event(app: &TestApp) -> String {
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (um_id, um) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    // Key lifecycle: create, update, rotate, revoke.
    app.owner_post("/v2/enterprise.key.update", &json!({"key_id": um_id, "label": "Okta"})).ok();
    let (spare, spare_secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    app.owner_post("/v2/enterprise.key.rotate", &json!({"key_id": spare})).ok();
    let (gone, gone_secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": gone, "reason": "test"})).ok();
    // Member lifecycle through the team API and SCIM.
    let r = key_post(app, &um, "/v2/team.user.create", &json!({"email": "ada@acme.example", "role": "AUDITOR"}));
    let ada = r.ok()["team_user"]["team_user_id"].as_str().unwrap().to_string();
    key_post(app, &um, "/v2/team.user.update", &json!({"team_user_id": ada, "status": "USER_STATUS_INACTIVE"})).ok();
    key_post(app, &um, "/v2/team.user.update", &json!({"team_user_id": ada, "status": "USER_STATUS_ACTIVE"})).ok();
    key_post(app, &um, "/v2/team.user.update", &json!({"team_user_id": ada, "role": "ADMIN"})).ok();
    key_post(app, &um, "/v2/team.user.remove", &json!({"team_user_id": ada})).ok();
    let scim = [("Authorization", format!("Bearer {um}")), ("Content-Type", "application/scim+json".to_string())];
    let scim: Vec<(&str, &str)> = scim.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "grace@acme.example",
                      "emails": [{"value": "grace@acme.example", "primary": true}], "active": true});
    let r = app.request("POST", "/scim/v2/Users", &scim, Some(&user.to_string()));
    assert_eq!(r.status, 201, "{}", r.text);
    let grace = r.body["id"].as_str().unwrap().to_string();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let r = app.request("PATCH", &format!("/scim/v2/Users/{grace}"), &scim, Some(&patch.to_string()));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.request("DELETE", &format!("/scim/v2/Users/{grace}"), &scim, None);
    assert_eq!(r.status, 204, "{}", r.text);
    // Key uses and gateway checks.
    key_get(app, &siem, "/v2/auth.whoami").ok();
    let check = |secret: &str| {
        app.get(
            "/v2/authz.check",
            &[("X-API-Key", secret), ("X-Original-Method", "GET"), ("X-Original-URI", "/v2/team.user.list")],
        )
    };
    assert_eq!(check(&um).status, 200);
    assert_eq!(check(&siem).status, 401, "the wrong key type");
    // Refusals: revoked, unknown, malformed, missing, rotated-out and wrong-type keys.
    assert_eq!(key_get(app, &gone_secret, "/v2/auth.whoami").status, 401);
    let unknown = format!("{}x", &spare_secret[..spare_secret.len() - 1]);
    assert_eq!(key_get(app, &unknown, "/v2/auth.whoami").status, 401);
    assert_eq!(key_get(app, "hello", "/v2/auth.whoami").status, 401);
    assert_eq!(app.get("/v2/team.user.list", &[]).status, 401);
    assert_eq!(key_get(app, &siem, "/v2/team.user.list").status, 401);
    // Failed calls: a bad body, a missing member.
    assert_eq!(key_post(app, &um, "/v2/team.user.create", &json!({"email": "nope"})).status, 400);
    assert_eq!(key_get(app, &um, "/v2/team.user.detail?team_user_id=00000000-0000-0000-0000-000000000000").status, 404);
    // Console reads and a policy change.
    app.owner_get("/v2/enterprise.audit.list?limit=1").ok();
    app.owner_post("/v2/enterprise.key_policy.update", &json!({"siem_tier2_enabled": true})).ok();
    // Key lifecycle notices: 14 days ahead, the last day, expired. The expired
    // key's expiry is moved in the database (no waiting for it).
    let soon = |expires_in: chrono::Duration| {
        let at = (chrono::Utc::now() + expires_in).to_rfc3339();
        let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "notice", "expires_at": at});
        app.owner_post("/v2/enterprise.key.create", &body).ok()["key"]["key_id"].as_str().unwrap().to_string()
    };
    soon(chrono::Duration::days(5));
    soon(chrono::Duration::hours(20));
    let expired = soon(chrono::Duration::days(3));
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).naive_utc().format("%Y-%m-%d %H:%M:%S%.6f");
    app.exec_sql(&format!("UPDATE api_keys SET expires_at = '{past}' WHERE id = '{expired}'"));
    // (The app's own job may have run first: either way each notice is written once.)
    let notices = keyward::admin::notices(&mut app.db()).unwrap();
    assert!(notices.failed.is_empty(), "{notices:?}");
    // An export job: its creation and the runner's events.
    let r = key_post(app, &siem, "/v2/enterprise.compliance.export.create", &json!({}));
    let uid = r.ok()["export"]["uid"].as_str().unwrap().to_string();
    wait_done(app, &siem, "/v2/enterprise.compliance.export.detail", &uid);
    siem
}

fn ocsf_feed_covers_every_event_and_validates(b: Backend) {
    let app = TestApp::spawn(b);
    let siem = every_kind_of_event(&app);
    let keyward = feed(&app, &siem, "keyward");
    let ocsf = feed(&app, &siem, "ocsf");
    // The OCSF feed also holds the keyward feed's own polls, written after it.
    assert!(ocsf.len() > keyward.len(), "one OCSF event for each of keyward's");

    let summary = validate(&ocsf);
    for class in ["3001", "3002", "6003"] {
        assert!(summary["classes"][class].as_u64().unwrap_or(0) > 0, "no event of class {class}: {summary}");
    }

    let mut classes = BTreeMap::new();
    for (k, o) in keyward.iter().zip(&ocsf) {
        // keyward's own fields survive, for dedupe and verification.
        assert_eq!(o["metadata"]["uid"], k["event_id"], "{o}");
        assert_eq!(o["metadata"]["sequence"], k["seq"]);
        assert_eq!(o["metadata"]["tenant_uid"], json!(app.tenant_id));
        assert_eq!(o["metadata"]["product"]["name"], json!("keyward"));
        let kept = &o["unmapped"]["keyward"];
        assert_eq!(kept["event"], *k, "the whole keyward event is kept");
        for f in ["event_id", "seq", "leaf_index", "hash", "prev_hash"] {
            assert_eq!(kept[f], k[f], "{f}");
        }
        assert_eq!(o["type_uid"], json!(o["class_uid"].as_u64().unwrap() * 100 + o["activity_id"].as_u64().unwrap()));
        let at = chrono::DateTime::parse_from_rfc3339(k["occurred_at"].as_str().unwrap()).unwrap();
        assert_eq!(o["time"], json!(at.timestamp_millis()));
        if let Some(ip) = k["client_ip"].as_str() {
            assert_eq!(o["src_endpoint"]["ip"], json!(ip));
        }
        let op = k["operation"].as_str().unwrap();
        classes.insert((op.to_string(), k["status_code"].as_i64().unwrap()), o["class_uid"].as_u64().unwrap());
        match o["class_uid"].as_u64().unwrap() {
            3002 => {
                assert_eq!(k["outcome"], json!("DENIED"), "only refusals are Authentication: {k}");
                assert_eq!(o["status_id"], json!(2));
                assert_eq!(o["status_detail"], k["reason"], "the refusal's reason is the status detail");
            }
            6003 => {
                assert_eq!(o["api"]["operation"], json!(op));
                assert_eq!(o["api"]["response"]["code"], k["status_code"]);
                assert_eq!(o["status_id"], json!(if k["outcome"] == json!("ALLOWED") { 1 } else { 2 }));
            }
            3001 => assert_eq!(k["outcome"], json!("ALLOWED"), "only committed changes are Account Change"),
            c => panic!("unexpected class {c}"),
        }
    }
    let class_of = |op: &str, status: i64| classes.get(&(op.to_string(), status)).copied();
    assert_eq!(class_of("enterprise.key.create", 200), Some(3001));
    assert_eq!(class_of("enterprise.key.rotate", 200), Some(3001));
    assert_eq!(class_of("enterprise.key.revoke", 200), Some(3001));
    assert_eq!(class_of("team.user.create", 200), Some(3001));
    assert_eq!(class_of("team.user.remove", 200), Some(3001));
    assert_eq!(class_of("scim.users.create", 201), Some(3001));
    assert_eq!(class_of("scim.users.delete", 204), Some(3001));
    assert_eq!(class_of("auth.whoami", 200), Some(6003));
    assert_eq!(class_of("auth.whoami", 401), Some(3002));
    assert_eq!(class_of("authz.check", 200), Some(6003));
    assert_eq!(class_of("authz.check", 401), Some(3002));
    assert_eq!(class_of("team.user.create", 400), Some(6003));
    assert_eq!(class_of("enterprise.audit.list", 200), Some(6003));
    assert_eq!(class_of("enterprise.key.expiring", 200), Some(3001));
    assert_eq!(class_of("enterprise.key.expired", 200), Some(3001));

    // The account a lifecycle event changed is named.
    let activity = |op: &str| -> Vec<(u64, Value)> {
        keyward
            .iter()
            .zip(&ocsf)
            .filter(|(k, _)| k["operation"] == json!(op) && k["outcome"] == json!("ALLOWED"))
            .map(|(_, o)| (o["activity_id"].as_u64().unwrap(), o["user"].clone()))
            .collect()
    };
    let revoked = activity("enterprise.key.revoke");
    assert_eq!(revoked[0].0, 5, "a revoked key is disabled");
    assert_eq!(revoked[0].1["type"], json!("API Key"));
    let updates: Vec<u64> = activity("team.user.update").iter().map(|(a, _)| *a).collect();
    assert_eq!(updates, vec![5, 2, 7], "disabled, enabled, role changed");
    assert_eq!(activity("enterprise.key.rotate")[0].0, 3, "a rotation changes the key's secret");
    // Notices: an expired key is out of service (Disable, Medium); one about
    // to expire is Other "Expiring", Low ahead and Medium on its last day.
    let notices: Vec<(&Value, &Value)> = keyward
        .iter()
        .zip(&ocsf)
        .filter(|(k, _)| k["operation"].as_str().unwrap().starts_with("enterprise.key.expir"))
        .collect();
    assert_eq!(notices.len(), 3);
    for (k, o) in notices {
        assert_eq!(o["user"]["uid"], k["metadata"]["key_id"], "the key is named: {o}");
        assert_eq!(o["user"]["type"], json!("API Key"));
        let seen = (o["activity_id"].clone(), o["activity_name"].clone(), o["severity_id"].clone());
        let expected = match (k["operation"].as_str().unwrap(), k["metadata"]["threshold"].as_u64()) {
            ("enterprise.key.expired", _) => (json!(5), json!("Disable"), json!(3)),
            (_, Some(1)) => (json!(99), json!("Expiring"), json!(3)),
            _ => (json!(99), json!("Expiring"), json!(2)),
        };
        assert_eq!(seen, expected, "{k}");
    }

    // A refusal of an unknown key names only its non-secret hint.
    let text = serde_json::to_string(&ocsf).unwrap();
    assert!(!text.contains("hello"), "a malformed secret never reaches the feed");

    // A bad format is refused with the envelope.
    let r = key_get(&app, &siem, &format!("{FEED}?format=cef"));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["code"], json!("invalid_argument"));
}
both!(ocsf_feed_covers_every_event_and_validates);

fn ocsf_compliance_export_validates_and_verifies_offline(b: Backend) {
    let app = TestApp::spawn(b);
    let siem = every_kind_of_event(&app);
    let r = key_post(&app, &siem, "/v2/enterprise.compliance.export.create", &json!({"format": "ocsf"}));
    let export = r.ok()["export"].clone();
    assert_eq!(export["format"], json!("ocsf"), "{export}");
    let uid = export["uid"].as_str().unwrap().to_string();
    let done = wait_done(&app, &siem, "/v2/enterprise.compliance.export.detail", &uid);
    assert_eq!(done["status"], json!("EXPORT_STATUS_COMPLETED"), "{done}");
    let url = key_get(&app, &siem, &format!("/v2/enterprise.compliance.export.downloadUrl?uid={uid}"));
    let text = String::from_utf8(fetch(url.ok()["download_url"].as_str().unwrap()).bytes).unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.len() > 20, "{}", events.len());
    validate(&events);
    assert!(events.iter().all(|e| e["unmapped"]["keyward"]["event"]["proof"]["checkpoint"].is_string()));

    // The file verifies offline, as keyward's own format does.
    let key = app.settings().checkpoint_signer.verifier_key().to_string();
    let report = keyward::audit::evidence::verify(text.as_bytes(), &key);
    assert!(report.valid, "{:?}", report.problems);
    // An OCSF line whose identity disagrees with the proven event is caught.
    let mut lines: Vec<Value> = events.clone();
    let seq = lines[3]["metadata"]["sequence"].as_i64().unwrap();
    lines[3]["metadata"]["sequence"] = json!(seq + 1);
    let altered: String = lines.iter().map(|e| format!("{e}\n")).collect();
    let report = keyward::audit::evidence::verify(altered.as_bytes(), &key);
    assert!(!report.valid);
    assert!(report.problems.iter().any(|p| p.contains("metadata.sequence")), "{:?}", report.problems);
    // So is one altered field of the proven event inside it (one whose leaf
    // the file shows: no withheld payload).
    let mut lines: Vec<Value> = events;
    let whoami = |e: &Value| e["unmapped"]["keyward"]["event"]["operation"] == json!("auth.whoami");
    let i = lines.iter().position(whoami).expect("a key use");
    lines[i]["unmapped"]["keyward"]["event"]["operation"] = json!("auth.whoamj");
    let altered: String = lines.iter().map(|e| format!("{e}\n")).collect();
    assert!(!keyward::audit::evidence::verify(altered.as_bytes(), &key).valid);
}
both!(ocsf_compliance_export_validates_and_verifies_offline);
