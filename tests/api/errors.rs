//! The error envelope on every bad input: bodies, routes, methods, query
//! parameters; request ids on every answer; probes.

use crate::both;
use crate::helpers::{event_of, Backend, Resp, TestApp};
use serde_json::{json, Value};

/// Asserts the request id: header equals body (for JSON answers), shaped `req_` + 32 hex.
#[track_caller]
fn assert_request_id(r: &Resp) -> String {
    let header = r.header("x-request-id").unwrap_or_else(|| panic!("no X-Request-Id on {} {}", r.status, r.text));
    let hex = header.strip_prefix("req_").unwrap_or_else(|| panic!("request id {header}"));
    assert!(
        hex.len() == 32 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "request id {header}"
    );
    if r.body.is_object() {
        assert_eq!(r.body["request_id"], json!(header), "{}", r.text);
    }
    header
}

/// Asserts the error envelope with `status` and `code`; returns the message.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str) -> String {
    assert_request_id(r);
    assert_eq!(r.status, status, "{}", r.text);
    assert!(r.body.is_object(), "not JSON: {}", r.text);
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"), "{}", r.text);
    assert_eq!(r.body["ok"], json!(false), "{}", r.text);
    assert_eq!(r.body["error"]["code"], json!(code), "{}", r.text);
    let message = r.body["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {}", r.text));
    assert!(!message.is_empty());
    assert_eq!(r.body.as_object().unwrap().len(), 3, "only ok, request_id, error: {}", r.text);
    message.to_string()
}

#[track_caller]
fn assert_success(r: &Resp) -> &Value {
    assert_request_id(r);
    assert_eq!(r.body["ok"], json!(true), "{}", r.text);
    r.ok()
}

fn owner_raw_post(app: &TestApp, path: &str, content_type: Option<&str>, body: &str) -> Resp {
    let auth = format!("Bearer {}", app.owner_token);
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    app.request("POST", path, &headers, Some(body))
}

fn key_count(app: &TestApp) -> usize {
    app.query_strings("SELECT CAST(COUNT(*) AS TEXT) AS v FROM api_keys")[0].parse().unwrap()
}

fn bad_bodies_are_invalid_argument(b: Backend) {
    let app = TestApp::spawn(b);
    let create = "/v2/enterprise.key.create";
    let json_ct = Some("application/json");

    let r = owner_raw_post(&app, create, json_ct, "{\"key_type\": \"KEY_TYPE_SIEM\", ");
    let msg = assert_error(&r, 400, "invalid_argument");
    assert!(msg.contains("JSON"), "{msg}");
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key.create"));
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["status_code"], json!(400));
    assert_eq!(ev["reason"], json!("invalid_argument"));
    assert_eq!(ev["actor"], json!({"type": "MEMBER", "id": app.owner_id}));

    let r = app.owner_post(create, &json!({"key_type": "KEY_TYPE_SIEM", "label": "x", "bogus_field": 1}));
    let msg = assert_error(&r, 400, "invalid_argument");
    assert!(msg.contains("bogus_field"), "{msg}");

    let r = app.owner_post(create, &json!({"key_type": "KEY_TYPE_ROOT", "label": "x"}));
    let msg = assert_error(&r, 400, "invalid_argument");
    assert!(msg.contains("key_type"), "{msg}");

    let valid = json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}).to_string();
    let r = owner_raw_post(&app, create, Some("text/plain"), &valid);
    let msg = assert_error(&r, 400, "invalid_argument");
    assert!(msg.contains("Content-Type"), "{msg}");
    let r = owner_raw_post(&app, create, None, &valid);
    let msg = assert_error(&r, 400, "invalid_argument");
    assert!(msg.contains("Content-Type"), "{msg}");

    let r = owner_raw_post(&app, create, json_ct, "[{\"key_type\": \"KEY_TYPE_SIEM\", \"label\": \"x\"}]");
    assert_error(&r, 400, "invalid_argument");
    let r = owner_raw_post(&app, create, json_ct, "");
    assert_error(&r, 400, "invalid_argument");
    let r = owner_raw_post(&app, create, json_ct, "null");
    assert_error(&r, 400, "invalid_argument");

    // Over 1 MiB: 413 with the invalid_argument code, audited.
    let big = format!("{{\"key_type\":\"KEY_TYPE_SIEM\",\"label\":\"{}\"}}", "a".repeat(1024 * 1024));
    let r = owner_raw_post(&app, create, json_ct, &big);
    assert_error(&r, 413, "invalid_argument");
    let ev = event_of(&app, &r);
    assert_eq!(ev["status_code"], json!(413));
    assert_eq!(ev["outcome"], json!("DENIED"));

    assert_eq!(key_count(&app), 0, "no bad body created a key");
    // The same body, well formed, does.
    let r = owner_raw_post(&app, create, Some("application/json; charset=utf-8"), &valid);
    assert_success(&r);
    assert_eq!(key_count(&app), 1);
}
both!(bad_bodies_are_invalid_argument);

fn unknown_routes_and_wrong_methods_answer_the_envelope(b: Backend) {
    let app = TestApp::spawn(b);
    for path in ["/v2/nope", "/nope", "/v3/x", "/", "/v2/team.asset.nope"] {
        let r = app.get(path, &[]);
        assert_error(&r, 404, "not_found");
        assert!(!r.text.contains('<'), "HTML on {path}: {}", r.text);
        let r = app.request("POST", path, &[("Content-Type", "application/json")], Some("{}"));
        assert_error(&r, 404, "not_found");
    }
    // An unknown /v2 route is audited as such.
    let r = app.owner_get("/v2/nope");
    assert_error(&r, 404, "not_found");
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("unknown_route"));
    assert_eq!(ev["status_code"], json!(404));
    assert_eq!(ev["outcome"], json!("DENIED"));

    let r = app.request("POST", "/v2/auth.whoami", &[("Content-Type", "application/json")], Some("{}"));
    assert_error(&r, 405, "invalid_argument");
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("auth.whoami"));
    assert_eq!(ev["status_code"], json!(405));

    let r = app.owner_get("/v2/enterprise.key.create");
    assert_error(&r, 405, "invalid_argument");
    assert_eq!(r.header("allow").as_deref(), Some("POST"));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key.create"));
    assert_eq!(ev["status_code"], json!(405));

    let r = app.request("DELETE", "/v2/enterprise.key.list", &[], None);
    assert_error(&r, 405, "invalid_argument");
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
}
both!(unknown_routes_and_wrong_methods_answer_the_envelope);

fn bad_query_parameters_are_invalid_argument(b: Backend) {
    let app = TestApp::spawn(b);
    for (path, names) in [
        ("/v2/enterprise.key.list?limit=abc", "limit"),
        ("/v2/enterprise.key.list?bogus=1", "bogus"),
        ("/v2/enterprise.key.list?status=NOPE", "status"),
        ("/v2/enterprise.key.list?key_type=KEY_TYPE_ROOT", "key_type"),
        ("/v2/enterprise.key.list?limit=0", "limit"),
        ("/v2/enterprise.key.list?limit=1001", "limit"),
        ("/v2/enterprise.key.list?offset=-1", "offset"),
        ("/v2/enterprise.audit.list?cursor=zzz", "cursor"),
        ("/v2/enterprise.audit.list?outcome=MAYBE", "outcome"),
        // Operations without parameters refuse unknown ones like every other route.
        ("/v2/enterprise.audit.verify?bogus=1", "bogus"),
        ("/v2/auth.whoami?bogus=1", "bogus"),
    ] {
        let r = app.owner_get(path);
        let msg = assert_error(&r, 400, "invalid_argument");
        assert!(msg.contains(names), "{path}: {msg}");
        let ev = event_of(&app, &r);
        assert_eq!(ev["reason"], json!("invalid_argument"), "{path}");
        assert_eq!(ev["status_code"], json!(400), "{path}");
    }
    // The same routes with good parameters answer.
    let r = app.owner_get("/v2/enterprise.key.list?limit=5&status=ACTIVE");
    assert_eq!(assert_success(&r)["limit"], json!(5));
    let r = app.owner_get("/v2/enterprise.audit.list?limit=2");
    assert!(assert_success(&r)["events"].is_array());
}
both!(bad_query_parameters_are_invalid_argument);

fn every_answer_carries_its_request_id(b: Backend) {
    let app = TestApp::spawn(b);
    let mut seen = std::collections::HashSet::new();
    let mut check = |r: &Resp, status: u16| {
        assert_eq!(r.status, status, "{}", r.text);
        assert!(seen.insert(assert_request_id(r)), "request ids are unique");
    };
    // 200
    check(&app.owner_get("/v2/auth.whoami"), 200);
    check(&app.owner_post("/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"})), 200);
    check(&app.get("/healthz", &[]), 200);
    check(&app.get("/readyz", &[]), 200);
    check(&app.get("/metrics", &[]), 200);
    // 400
    check(&app.owner_get("/v2/enterprise.key.list?limit=abc"), 400);
    // 401, key and console
    check(&app.get("/v2/auth.whoami", &[("X-API-Key", "hello")]), 401);
    check(&app.get("/v2/enterprise.key.list", &[("Authorization", "Bearer not.a.jwt")]), 401);
    // 403
    let (_, auditor) = app.add_member(&app.tenant_id, "AUDITOR");
    let auth = format!("Bearer {auditor}");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &auth)],
        &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}),
    );
    assert_error(&r, 403, "permission_denied");
    assert_eq!(event_of(&app, &r)["reason"], json!("role_required"));
    check(&r, 403);
    // 404, 405, 413
    check(&app.get("/v2/nope", &[]), 404);
    check(&app.request("POST", "/v2/auth.whoami", &[], None), 405);
    let big = "x".repeat(1024 * 1024 + 1);
    check(&owner_raw_post(&app, "/v2/enterprise.key.create", Some("application/json"), &big), 413);
}
both!(every_answer_carries_its_request_id);

fn unauthenticated_callers_are_refused_before_body_validation(b: Backend) {
    let app = TestApp::spawn(b);
    let create = "/v2/enterprise.key.create";
    let console_refused = json!({"code": "unauthenticated", "message": "Invalid or missing console token"});
    for (headers, reason) in [
        (vec![("Content-Type", "application/json")], "missing"),
        (vec![("Content-Type", "application/json"), ("Authorization", "Bearer not.a.jwt")], "bad_token"),
        (vec![("Content-Type", "text/plain")], "missing"),
    ] {
        let r = app.request("POST", create, &headers, Some("{not json"));
        assert_error(&r, 401, "unauthenticated");
        assert_eq!(r.body["error"], console_refused);
        let ev = event_of(&app, &r);
        assert_eq!(ev["reason"], json!(reason));
        assert_eq!(ev["tenant_id"], Value::Null);
        assert_eq!(ev["payload"], Value::Null, "nothing of the body is kept");
    }
    let big = "x".repeat(1024 * 1024 + 1);
    let r = app.request("POST", create, &[("Content-Type", "application/json")], Some(&big));
    assert_error(&r, 401, "unauthenticated");
}
both!(unauthenticated_callers_are_refused_before_body_validation);

fn probes_answer_and_are_not_audited(b: Backend) {
    let app = TestApp::spawn(b);
    // One audited request so that the request counter has a sample.
    assert_success(&app.owner_get("/v2/auth.whoami"));
    let count =
        || -> usize { app.query_strings("SELECT CAST(COUNT(*) AS TEXT) AS v FROM audit_events")[0].parse().unwrap() };
    let before = count();
    assert!(before >= 1);

    let r = app.get("/healthz", &[]);
    assert_eq!(assert_success(&r)["status"], json!("up"));
    let r = app.get("/readyz", &[]);
    assert_eq!(assert_success(&r)["status"], json!("ready"));
    let r = app.get("/metrics", &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_request_id(&r);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/openmetrics-text"));
    assert!(r.text.contains("keyward_requests_total"), "{}", r.text);
    assert!(r.text.contains("operation=\"auth.whoami\""), "{}", r.text);
    assert!(r.text.contains("keyward_audit_commit_seconds"), "{}", r.text);
    assert!(r.text.contains("keyward_key_verification_seconds"), "{}", r.text);
    assert!(r.text.contains("keyward_audit_queue_depth"), "{}", r.text);

    assert_eq!(count(), before, "probes are not audited");
}
both!(probes_answer_and_are_not_audited);
