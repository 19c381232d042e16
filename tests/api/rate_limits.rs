//! Rate limits per tenant and operation, and per client address for refusals
//! no tenant can be told for: 429 `rate_limited` with Retry-After, audited.

use crate::both;
use crate::helpers::{Backend, Resp, TestApp};
use serde_json::json;

const LIMITS: [(&str, &str); 2] =
    [("KEYWARD_RATE_LIMIT_READ_PER_MINUTE", "3"), ("KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE", "2")];

#[track_caller]
fn assert_limited(app: &TestApp, r: &Resp) {
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("rate_limited"));
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let event = app.event_by_request_id(r.body["request_id"].as_str().unwrap()).expect("audited");
    assert_eq!(event["outcome"], json!("DENIED"));
    assert_eq!(event["reason"], json!("rate_limited"));
    assert_eq!(event["status_code"], json!(429));
}

fn a_key_is_limited_per_tenant_and_operation(b: Backend) {
    let app = TestApp::spawn_with(b, &LIMITS);
    let (_, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let whoami = || app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]);
    for _ in 0..3 {
        assert_eq!(whoami().status, 200);
    }
    let limited = whoami();
    assert_limited(&app, &limited);
    let event = app.event_by_request_id(limited.body["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(event["tenant_id"], json!(app.tenant_id), "the tenant's chain records it");

    // Another operation of the same tenant has its own budget.
    let list = app.get("/v2/team.asset.list", &[("X-API-Key", &secret)]);
    assert_eq!(list.status, 200, "{}", list.text);

    // Another tenant is not affected.
    let (tenant_b, _, token_b) = app.new_tenant("Beta");
    let auth_b = format!("Bearer {token_b}");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &auth_b)],
        &json!({"key_type": "KEY_TYPE_SIEM", "label": "b"}),
    );
    let secret_b = r.ok()["secret"].as_str().unwrap().to_string();
    let r = app.get("/v2/auth.whoami", &[("X-API-Key", &secret_b)]);
    assert_eq!(r.ok()["caller"]["tenant_id"], json!(tenant_b));
}
both!(a_key_is_limited_per_tenant_and_operation);

fn console_writes_have_their_own_limit(b: Backend) {
    let app = TestApp::spawn_with(b, &LIMITS);
    // create_key is one write each; the write limit is 2 per minute.
    app.create_key("KEY_TYPE_SIEM");
    app.create_key("KEY_TYPE_SIEM");
    let r = app.owner_post("/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_SIEM", "label": "third"}));
    assert_limited(&app, &r);
    let listed = app.owner_get("/v2/enterprise.key.list");
    assert_eq!(listed.ok()["total"], json!(2), "the limited create changed nothing");
}
both!(console_writes_have_their_own_limit);

fn unknown_keys_from_one_address_are_throttled(b: Backend) {
    let app = TestApp::spawn_with(b, &LIMITS);
    let unknown = keyward::crypto::new_key_secret(keyward::domain::KeyType::Siem);
    // The budget for refusals without a tenant is the larger tenant limit (3 here).
    for _ in 0..3 {
        let r = app.get("/v2/auth.whoami", &[("X-API-Key", &unknown)]);
        assert_eq!(r.status, 401);
    }
    let r = app.get("/v2/auth.whoami", &[("X-API-Key", "garbage")]);
    assert_limited(&app, &r);
    let event = app.event_by_request_id(r.body["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(event["tenant_id"], json!(null), "no tenant: the system chain");

    // A valid key from the same address is still served: only refusals are counted.
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    assert_eq!(app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).status, 200);
}
both!(unknown_keys_from_one_address_are_throttled);

fn the_gateway_limits_the_operation_it_maps_to(b: Backend) {
    let app = TestApp::spawn_with(b, &LIMITS);
    let (_, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let check = |uri: &str| {
        app.get("/v2/authz.check", &[("X-API-Key", &secret), ("X-Original-Method", "GET"), ("X-Original-URI", uri)])
    };
    for _ in 0..3 {
        assert_eq!(check("/v2/team.asset.list").status, 200);
    }
    assert_limited(&app, &check("/v2/team.asset.list"));
    let scope = app.get(
        "/v2/authz.check",
        &[("X-API-Key", &secret), ("X-Original-Method", "POST"), ("X-Original-URI", "/v2/team.asset.update_scope")],
    );
    assert_eq!(scope.status, 200, "another operation: another budget");
}
both!(the_gateway_limits_the_operation_it_maps_to);

/// Limits are per instance (README "Rate limits"): two instances behind one
/// balancer each grant the tenant the full budget, and each refuses past it.
#[test]
fn limits_are_per_instance_postgres() {
    let app = TestApp::spawn_with(Backend::Postgres, &LIMITS);
    let other = app.sibling();
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    for instance in [&app, &other] {
        for _ in 0..3 {
            assert_eq!(instance.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).status, 200);
        }
    }
    for instance in [&app, &other] {
        let r = instance.get("/v2/auth.whoami", &[("X-API-Key", &secret)]);
        assert_limited(&app, &r);
    }
}
