//! The gateway `/v2/authz.check`: nginx and Envoy forms, the
//! exhaustive key type × operation matrix end to end, and its refusals.

use crate::both;
use crate::helpers::{event_of, Backend, Resp, TestApp};
use keyward::domain::{authz, KeyType, Reach};
use serde_json::{json, Value};
use std::collections::HashMap;

const KEY_REFUSED: &str = "Invalid or missing enterprise API key";

/// How many events a request wrote.
fn events_of_request(app: &TestApp, r: &Resp) -> usize {
    let rid = r.body["request_id"].as_str().unwrap();
    let n =
        app.query_strings(&format!("SELECT CAST(COUNT(*) AS TEXT) AS v FROM audit_events WHERE request_id = '{rid}'"));
    n[0].parse().unwrap()
}

/// The nginx `auth_request` form.
fn nginx(app: &TestApp, secret: &str, method: &str, uri: &str) -> Resp {
    app.get("/v2/authz.check", &[("X-API-Key", secret), ("X-Original-Method", method), ("X-Original-URI", uri)])
}

/// Asserts an allowed check: the 200 answer, its headers and its one event.
#[track_caller]
fn assert_allowed(app: &TestApp, r: &Resp, key_id: &str, key_type: KeyType, operation: &str) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-keyward-tenant-id"), Some(app.tenant_id.clone()));
    assert_eq!(r.header("x-keyward-key-id"), Some(key_id.to_string()));
    assert_eq!(r.header("x-keyward-key-type"), Some(key_type.wire_name().to_string()));
    assert_eq!(r.body["operation"], json!(operation));
    assert_eq!(r.body["tenant_id"], json!(app.tenant_id));
    assert_eq!(r.body["key_id"], json!(key_id));
    assert_eq!(r.body["key_type"], json!(key_type.wire_name()));
    let ev = event_of(app, r);
    assert_eq!(ev["operation"], json!("authz.check"));
    assert_eq!(ev["outcome"], json!("ALLOWED"));
    assert_eq!(ev["status_code"], json!(200));
    assert_eq!(ev["key_id"], json!(key_id));
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));
    assert_eq!(ev["metadata"]["checked_operation"], json!(operation), "{ev}");
    assert_eq!(events_of_request(app, r), 1);
    ev
}

/// Asserts a refused check: the one 401 body, no identity headers, and the event's reason.
#[track_caller]
fn assert_refused(app: &TestApp, r: &Resp, reason: &str) -> Value {
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["ok"], json!(false));
    assert_eq!(r.body["error"], json!({"code": "unauthenticated", "message": KEY_REFUSED}));
    assert_eq!(r.header("x-keyward-tenant-id"), None);
    assert_eq!(r.header("x-keyward-key-id"), None);
    assert_eq!(r.header("x-keyward-key-type"), None);
    let ev = event_of(app, r);
    assert_eq!(ev["operation"], json!("authz.check"));
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["status_code"], json!(401));
    assert_eq!(ev["reason"], json!(reason), "{ev}");
    assert_eq!(events_of_request(app, r), 1);
    ev
}

fn nginx_form_allows_and_names_the_key(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let uri = "/v2/team.asset.list?limit=5&keyword=rep";
    let r = nginx(&app, &secret, "GET", uri);
    let ev = assert_allowed(&app, &r, &key_id, KeyType::TeamAssetMgmt, "team.asset.list");
    assert_eq!(ev["metadata"]["original_method"], json!("GET"));
    assert_eq!(ev["metadata"]["original_uri"], json!(uri));
    assert_eq!(ev["actor"], json!({"type": "API_KEY", "id": key_id}));

    // The original method decides the operation, not the check's own method.
    let r = nginx(&app, &secret, "POST", "/v2/team.asset.update_scope");
    assert_allowed(&app, &r, &key_id, KeyType::TeamAssetMgmt, "team.asset.update_scope");
    // The method is matched whatever its case.
    let r = nginx(&app, &secret, "get", "/v2/team.asset.list");
    assert_allowed(&app, &r, &key_id, KeyType::TeamAssetMgmt, "team.asset.list");
    // Every header form of the key works at the gateway too.
    let auth = format!("Bearer {secret}");
    let r = app.get(
        "/v2/authz.check",
        &[("Authorization", &auth), ("X-Original-Method", "GET"), ("X-Original-URI", "/v2/team.asset.list")],
    );
    assert_allowed(&app, &r, &key_id, KeyType::TeamAssetMgmt, "team.asset.list");
}
both!(nginx_form_allows_and_names_the_key);

fn envoy_form_uses_the_path_and_the_requests_own_method(b: Backend) {
    let app = TestApp::spawn(b);
    let (mgmt_id, mgmt) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let (users_id, users) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");

    let r = app.request("POST", "/v2/authz.check/v2/team.asset.update_scope", &[("X-API-Key", &mgmt)], None);
    let ev = assert_allowed(&app, &r, &mgmt_id, KeyType::TeamAssetMgmt, "team.asset.update_scope");
    assert_eq!(ev["metadata"]["original_method"], json!("POST"));
    assert_eq!(ev["metadata"]["original_uri"], json!("/v2/team.asset.update_scope"));

    let r = app.get("/v2/authz.check/scim/v2/Users/abc", &[("X-API-Key", &users)]);
    assert_allowed(&app, &r, &users_id, KeyType::TeamUserMgmt, "scim.users.get");
    for (method, op) in [("PUT", "scim.users.replace"), ("PATCH", "scim.users.patch"), ("DELETE", "scim.users.delete")]
    {
        let r = app.request(method, "/v2/authz.check/scim/v2/Users/abc", &[("X-API-Key", &users)], None);
        assert_allowed(&app, &r, &users_id, KeyType::TeamUserMgmt, op);
    }
    // The query string of the original request is kept for the record, not for the decision.
    let r = app.get("/v2/authz.check/v2/team.asset.list?limit=3", &[("X-API-Key", &audit)]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(event_of(&app, &r)["metadata"]["original_uri"], json!("/v2/team.asset.list?limit=3"));

    // The same path with a method the table does not have for it is unknown.
    let r = app.request("POST", "/v2/authz.check/v2/team.asset.list", &[("X-API-Key", &mgmt)], None);
    assert_refused(&app, &r, "unknown_operation");
    // The Asset Audit key may read but not re-scope.
    let r = app.request("POST", "/v2/authz.check/v2/team.asset.update_scope", &[("X-API-Key", &audit)], None);
    let ev = assert_refused(&app, &r, "type_mismatch");
    assert_eq!(ev["metadata"]["checked_operation"], json!("team.asset.update_scope"));
}
both!(envoy_form_uses_the_path_and_the_requests_own_method);

fn every_key_type_against_every_operation_end_to_end(b: Backend) {
    let app = TestApp::spawn(b);
    let keys: Vec<(KeyType, String, String)> = KeyType::ALL
        .iter()
        .map(|t| {
            let (id, secret) = app.create_key(t.wire_name());
            (*t, id, secret)
        })
        .collect();
    let ops: Vec<_> = authz::OPERATIONS.iter().filter(|o| o.name != "authz.check").collect();
    assert!(ops.len() >= 30, "the table lists every operation");

    let mut status: HashMap<(KeyType, &str), u16> = HashMap::new();
    let mut request_ids: HashMap<String, (KeyType, &str)> = HashMap::new();
    for (t, key_id, secret) in &keys {
        for op in &ops {
            let uri = op.path.replace("{id}", "x1");
            let r = nginx(&app, secret, op.method.as_str(), &uri);
            let expected = authz::key_may_call(*t, op);
            if expected {
                assert_eq!(r.status, 200, "{t} on {}: {}", op.name, r.text);
                assert_eq!(r.body["operation"], json!(op.name));
                assert_eq!(r.header("x-keyward-key-id").as_deref(), Some(key_id.as_str()));
                assert_eq!(r.header("x-keyward-key-type").as_deref(), Some(t.wire_name()));
            } else {
                assert_eq!(r.status, 401, "{t} on {}: {}", op.name, r.text);
                assert_eq!(r.code().as_deref(), Some("unauthenticated"));
                assert_eq!(r.header("x-keyward-key-id"), None);
            }
            status.insert((*t, op.name), r.status);
            request_ids.insert(r.body["request_id"].as_str().unwrap().to_string(), (*t, op.name));
        }
    }
    assert_eq!(status.len(), KeyType::ALL.len() * ops.len());

    // Every check wrote one event naming the operation it decided, with the refusal reason.
    let rows = app.query_strings(
        "SELECT request_id || ' ' || outcome || ' ' || COALESCE(reason, '-') AS v \
         FROM audit_events WHERE operation = 'authz.check'",
    );
    assert_eq!(rows.len(), status.len());
    for row in rows {
        let parts: Vec<&str> = row.split(' ').collect();
        let (t, name) = request_ids[parts[0]];
        let allowed = status[&(t, name)] == 200;
        let expected = if allowed { ("ALLOWED", "-") } else { ("DENIED", "type_mismatch") };
        assert_eq!((parts[1], parts[2]), expected, "{t} on {name}");
    }

    // The seed examples, independently of the table's rule.
    assert_eq!(status[&(KeyType::TeamAssetMgmt, "team.asset.list")], 200, "write implies read");
    assert_eq!(status[&(KeyType::TeamAssetMgmt, "team.asset.update_scope")], 200);
    assert_eq!(status[&(KeyType::TeamAssetAudit, "team.asset.list")], 200);
    assert_eq!(status[&(KeyType::TeamAssetAudit, "team.asset.update_scope")], 401);
    assert_eq!(status[&(KeyType::TeamUserMgmt, "scim.users.patch")], 200);
    assert_eq!(status[&(KeyType::Siem, "enterprise.compliance.event.list")], 200);
    assert_eq!(status[&(KeyType::Siem, "team.asset.list")], 401);
    assert_eq!(status[&(KeyType::Ediscovery, "enterprise.hold.create")], 200);
    assert_eq!(status[&(KeyType::Ediscovery, "enterprise.compliance.event.list")], 401);
    let mut console_or_ingest = 0;
    // The audit log's proofs are console operations that the SIEM key reaches too.
    let proofs = ["enterprise.audit.checkpoint", "enterprise.audit.proof", "enterprise.audit.consistency"];
    for name in proofs {
        for t in KeyType::ALL {
            assert_eq!(status[&(t, name)], if t == KeyType::Siem { 200 } else { 401 }, "{t} on {name}");
        }
    }
    for op in &ops {
        let console = [
            "enterprise.key.",
            "enterprise.key_policy.",
            "enterprise.audit.",
            "team.role_mapping.",
            "enterprise.siem_sink.",
        ]
        .iter()
        .any(|p| op.name.starts_with(p))
            && !proofs.contains(&op.name);
        let ingest = op.path.starts_with("/internal/v2/");
        assert_eq!(console, matches!(op.reach, Reach::Console(_)), "{}", op.name);
        assert_eq!(ingest, op.reach == Reach::Ingest, "{}", op.name);
        if console || ingest {
            console_or_ingest += 1;
            for t in KeyType::ALL {
                assert_eq!(status[&(t, op.name)], 401, "{t} reached {}", op.name);
            }
        }
    }
    assert_eq!(console_or_ingest, 19, "17 console and 2 ingest operations");
    // Every key may ask who it is.
    for t in KeyType::ALL {
        assert_eq!(status[&(t, "auth.whoami")], 200, "{t}");
    }
}
both!(every_key_type_against_every_operation_end_to_end);

fn unknown_operations_missing_headers_and_bad_keys_are_refused(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");

    // Unknown operation.
    let r = nginx(&app, &secret, "GET", "/v2/nope");
    let ev = assert_refused(&app, &r, "unknown_operation");
    assert_eq!(ev["key_id"], json!(key_id));
    assert_eq!(ev["metadata"]["original_uri"], json!("/v2/nope"));
    assert_eq!(ev["metadata"].get("checked_operation"), None, "{ev}");
    // The gateway never maps to itself, and a trailing slash is another path.
    assert_refused(&app, &nginx(&app, &secret, "GET", "/v2/authz.check"), "unknown_operation");
    assert_refused(&app, &nginx(&app, &secret, "GET", "/v2/team.asset.list/"), "unknown_operation");
    assert_refused(&app, &nginx(&app, &secret, "BREW", "/v2/team.asset.list"), "unknown_operation");

    // Missing X-Original-* headers.
    let r = app.get("/v2/authz.check", &[("X-API-Key", &secret)]);
    assert_refused(&app, &r, "unknown_operation");
    let r = app.get("/v2/authz.check", &[("X-API-Key", &secret), ("X-Original-Method", "GET")]);
    assert_refused(&app, &r, "unknown_operation");
    let r = app.get("/v2/authz.check", &[("X-API-Key", &secret), ("X-Original-URI", "/v2/team.asset.list")]);
    assert_refused(&app, &r, "unknown_operation");

    // A type that may not call the operation.
    let r = nginx(&app, &secret, "POST", "/v2/team.asset.update_scope");
    let ev = assert_refused(&app, &r, "type_mismatch");
    assert_eq!(ev["key_id"], json!(key_id));
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));
    assert_eq!(ev["metadata"]["checked_operation"], json!("team.asset.update_scope"));
    assert_eq!(ev["metadata"]["original_method"], json!("POST"));

    // Bad keys: the usual reasons, before any mapping.
    let uri = "/v2/team.asset.list";
    let r = app.get("/v2/authz.check", &[("X-Original-Method", "GET"), ("X-Original-URI", uri)]);
    let ev = assert_refused(&app, &r, "missing");
    assert_eq!(ev["tenant_id"], Value::Null);
    let ev = assert_refused(&app, &nginx(&app, "hello", "GET", uri), "malformed");
    assert_eq!(ev["tenant_id"], Value::Null);
    let unknown = keyward::crypto::new_key_secret(KeyType::TeamAssetAudit);
    let ev = assert_refused(&app, &nginx(&app, &unknown, "GET", uri), "unknown_key");
    assert_eq!(ev["tenant_id"], Value::Null);
    let (revoked_id, revoked) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": revoked_id, "reason": "test"})).ok();
    let ev = assert_refused(&app, &nginx(&app, &revoked, "GET", uri), "revoked");
    assert_eq!(ev["key_id"], json!(revoked_id));
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));
    let (expired_id, expired) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    app.exec_sql(&format!("UPDATE api_keys SET expires_at = '2020-01-01 00:00:00' WHERE id = '{expired_id}'"));
    assert_refused(&app, &nginx(&app, &expired, "GET", uri), "expired");
    // An Envoy check with a bad key is refused the same way.
    let r = app.get("/v2/authz.check/v2/team.asset.list", &[("X-API-Key", &revoked)]);
    assert_refused(&app, &r, "revoked");

    // The refusals left the good key working.
    let r = nginx(&app, &secret, "GET", uri);
    assert_allowed(&app, &r, &key_id, KeyType::TeamAssetAudit, "team.asset.list");
}
both!(unknown_operations_missing_headers_and_bad_keys_are_refused);
