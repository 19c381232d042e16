//! Rate limits per tenant and operation, and per client address for refusals
//! no tenant can be told for: 429 `rate_limited` with Retry-After, audited.

use crate::both;
use crate::helpers::{event_of, send_from, Backend, Resp, TestApp};
use serde_json::{json, Value};

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

/// Refusals of callers who proved no credential are charged to their address:
/// within budget each has its event; past it the address is answered 429 up
/// front (no lookup, no row) and its refusals are counted into one summary
/// event per address and window. Every kind of credential is charged alike.
fn refusals_over_an_address_budget_are_summarized_not_written(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        &[LIMITS[0], LIMITS[1], ("KEYWARD_REFUSALS_PER_MINUTE", "3"), ("KEYWARD_REFUSAL_SUMMARY_SECONDS", "1")],
    );
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    let unknown = keyward::crypto::new_key_secret(keyward::domain::KeyType::Siem);
    let events_before = app.query_strings("SELECT request_id AS v FROM audit_events").len();
    // A budget of 3: an unknown key, a bad console
    // token and an unknown route each cost one, and each has its event.
    let bad_token = format!("Bearer {}x", app.owner_token);
    for r in [
        app.get("/v2/auth.whoami", &[("X-API-Key", &unknown)]),
        app.get("/v2/enterprise.key.list", &[("Authorization", &bad_token)]),
        app.get("/v2/no.such.operation", &[]),
    ] {
        assert!(matches!(r.status, 401 | 404), "{}", r.text);
        event_of(&app, &r);
    }
    // Over budget: 429 with Retry-After, for any credential, and no event of its own.
    let garbage = app.get("/v2/auth.whoami", &[("X-API-Key", "garbage")]);
    let ingest = app.post("/internal/v2/team.asset.delete", &[("Authorization", "Bearer nope")], &json!({}));
    let link = app.get("/v2/enterprise.export.download?uid=x&expires=1&sig=00", &[]);
    // Up front, before any lookup: even a valid key from this address waits.
    let valid = app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]);
    for r in [&garbage, &ingest, &link, &valid] {
        assert_eq!(r.status, 429, "{}", r.text);
        assert_eq!(r.code().as_deref(), Some("rate_limited"));
        let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        let rid = r.header("x-request-id").unwrap();
        assert!(app.event_by_request_id(&rid).is_none(), "a refusal over budget has no row of its own");
    }
    // Another address is not affected.
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let headers = [("X-API-Key".to_string(), secret.clone().into_bytes())];
    let r = send_from(&app, Some(other), "GET", "/v2/auth.whoami", &headers, None);
    assert_eq!(r.status, 200, "{}", r.text);

    // Summary events for the address, one per window (answers over budget are held
    // 0.5 s each, so these may span two): how many, why, first and last.
    let summaries = eventually_some(|| {
        let rids =
            app.query_strings("SELECT request_id AS v FROM audit_events WHERE operation = 'audit.refusals_summarized'");
        let events: Vec<Value> = rids.iter().filter_map(|rid| app.event_by_request_id(rid)).collect();
        let total: u64 = events.iter().map(|e| e["metadata"]["count"].as_u64().unwrap()).sum();
        (total == 4).then_some(events)
    });
    let mut reasons = std::collections::BTreeMap::<String, u64>::new();
    for summary in &summaries {
        assert_eq!(summary["tenant_id"], json!(null), "the system chain: {summary}");
        assert_eq!(summary["client_ip"], json!("127.0.0.1"));
        assert_eq!(summary["outcome"], json!("DENIED"));
        assert_eq!(summary["reason"], json!("over_refusal_budget"));
        let m = &summary["metadata"];
        assert!(m["first_at"].as_str().unwrap() <= m["last_at"].as_str().unwrap(), "{summary}");
        for (reason, n) in m["reasons"].as_object().unwrap() {
            *reasons.entry(reason.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    assert_eq!(reasons, std::collections::BTreeMap::from([("malformed".into(), 1), ("over_refusal_budget".into(), 3)]));
    // Three refusals, the valid call from 127.0.0.2 and the summaries: nothing else was written.
    let written = app.query_strings("SELECT request_id AS v FROM audit_events").len() - events_before;
    assert_eq!(written, 4 + summaries.len(), "rows written");
    let metrics = app.get("/metrics", &[]).text;
    assert!(metrics.contains("keyward_refusals_summarized_total 4"), "{metrics}");
}
both!(refusals_over_an_address_budget_are_summarized_not_written);

fn eventually_some<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "nothing within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

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
