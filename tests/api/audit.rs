//! The audit log: one event per request, mutations and their events
//! in one transaction, the per-tenant hash chain and its verification, and the
//! auditors' query API.

use crate::both;
use crate::helpers::{event_of, Backend, Resp, TestApp};
use keyward::domain::KeyType;
use serde_json::{json, Value};
use std::collections::HashSet;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

// ------------------------------------------------------------------ local helpers

/// The response's request id; the header and the body must agree.
#[track_caller]
fn request_id(r: &Resp) -> String {
    let id = r.body["request_id"].as_str().unwrap_or_else(|| panic!("no request_id in {}", r.text)).to_string();
    assert!(id.starts_with("req_"), "{id}");
    assert_eq!(r.header("x-request-id").as_deref(), Some(id.as_str()));
    id
}

fn all_event_count(app: &TestApp) -> usize {
    app.query_strings("SELECT request_id AS v FROM audit_events").len()
}

fn auth(token: &str) -> (&'static str, String) {
    TestApp::bearer(token)
}

fn get_as(app: &TestApp, token: &str, path: &str) -> Resp {
    let (k, v) = auth(token);
    app.get(path, &[(k, &v)])
}

fn post_as(app: &TestApp, token: &str, path: &str, body: &Value) -> Resp {
    let (k, v) = auth(token);
    app.post(path, &[(k, &v)], body)
}

fn whoami(app: &TestApp, secret: &str) -> Resp {
    app.get("/v2/auth.whoami", &[("X-API-Key", secret)])
}

/// An nginx-style gateway check of `uri` with `secret`.
fn gateway(app: &TestApp, secret: &str, uri: &str) -> Resp {
    app.get("/v2/authz.check", &[("X-API-Key", secret), ("X-Original-Method", "GET"), ("X-Original-URI", uri)])
}

/// The tenant's chain as verified by the API.
fn api_verification(app: &TestApp) -> Value {
    app.verification()
}

/// The tenant's chain as verified by the library (as the CLI does).
fn lib_verification(app: &TestApp) -> keyward::audit::verify::Verification {
    let mut chains = keyward::admin::verify(&mut app.db(), Some(&app.tenant_id)).unwrap();
    assert_eq!(chains.len(), 1);
    chains.pop().unwrap()
}

/// Every event of the caller's tenant, walking the cursor.
fn list_all(app: &TestApp, token: &str, filter: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v2/enterprise.audit.list?limit=1000{filter}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = get_as(app, token, &path);
        let body = r.ok().clone();
        out.extend(body["events"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn seq_of(e: &Value) -> i64 {
    e["seq"].as_i64().unwrap()
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect()
}

/// Encodes a value for a query string (times carry ':' and maybe '+').
fn enc(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A").replace('+', "%2B")
}

// ------------------------------------------------------------------ one event per request

fn every_request_has_exactly_one_event_with_its_outcome(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let (auditor, auditor_token) = app.add_member(&app.tenant_id, "AUDITOR");
    let unknown_key = keyward::crypto::new_key_secret(KeyType::Siem);
    let before = all_event_count(&app);

    struct Case {
        what: &'static str,
        resp: Resp,
        operation: &'static str,
        status: u16,
        code: Option<&'static str>,
        reason: Option<&'static str>,
        actor: (&'static str, Option<String>),
        tenant: Option<String>,
        key: Option<String>,
    }
    let tenant = Some(app.tenant_id.clone());
    let owner = Some(app.owner_id.clone());
    let cases = vec![
        Case {
            what: "console allowed",
            resp: app.owner_get("/v2/enterprise.key.list"),
            operation: "enterprise.key.list",
            status: 200,
            code: None,
            reason: None,
            actor: ("MEMBER", owner.clone()),
            tenant: tenant.clone(),
            key: None,
        },
        Case {
            what: "console 403",
            resp: post_as(
                &app,
                &auditor_token,
                "/v2/enterprise.key.create",
                &json!({"key_type": "KEY_TYPE_SIEM", "label": "nope"}),
            ),
            operation: "enterprise.key.create",
            status: 403,
            code: Some("permission_denied"),
            reason: Some("role_required"),
            actor: ("MEMBER", Some(auditor.clone())),
            tenant: tenant.clone(),
            key: None,
        },
        Case {
            what: "console 401",
            resp: get_as(&app, "not.a.token", "/v2/enterprise.key.list"),
            operation: "enterprise.key.list",
            status: 401,
            code: Some("unauthenticated"),
            reason: Some("bad_token"),
            actor: ("ANONYMOUS", None),
            tenant: None,
            key: None,
        },
        Case {
            what: "key allowed",
            resp: whoami(&app, &secret),
            operation: "auth.whoami",
            status: 200,
            code: None,
            reason: None,
            actor: ("API_KEY", Some(key_id.clone())),
            tenant: tenant.clone(),
            key: Some(key_id.clone()),
        },
        Case {
            what: "key refused (unknown)",
            resp: whoami(&app, &unknown_key),
            operation: "auth.whoami",
            status: 401,
            code: Some("unauthenticated"),
            reason: Some("unknown_key"),
            actor: ("ANONYMOUS", None),
            tenant: None,
            key: None,
        },
        Case {
            what: "key refused (missing)",
            resp: app.get("/v2/auth.whoami", &[]),
            operation: "auth.whoami",
            status: 401,
            code: Some("unauthenticated"),
            reason: Some("missing"),
            actor: ("ANONYMOUS", None),
            tenant: None,
            key: None,
        },
        Case {
            what: "gateway allowed",
            resp: gateway(&app, &secret, "/v2/enterprise.compliance.event.list?limit=10"),
            operation: "authz.check",
            status: 200,
            code: None,
            reason: None,
            actor: ("API_KEY", Some(key_id.clone())),
            tenant: tenant.clone(),
            key: Some(key_id.clone()),
        },
        Case {
            what: "gateway refused",
            resp: gateway(&app, &secret, "/v2/team.user.list"),
            operation: "authz.check",
            status: 401,
            code: Some("unauthenticated"),
            reason: Some("type_mismatch"),
            actor: ("API_KEY", Some(key_id.clone())),
            tenant: tenant.clone(),
            key: Some(key_id.clone()),
        },
        Case {
            what: "unknown route",
            resp: app.owner_get("/v2/no.such.operation"),
            operation: "unknown_route",
            status: 404,
            code: Some("not_found"),
            reason: Some("not_found"),
            actor: ("ANONYMOUS", None),
            tenant: None,
            key: None,
        },
        Case {
            what: "400 validation",
            resp: app.owner_post("/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_NOPE", "label": "x"})),
            operation: "enterprise.key.create",
            status: 400,
            code: Some("invalid_argument"),
            reason: Some("invalid_argument"),
            actor: ("MEMBER", owner.clone()),
            tenant: tenant.clone(),
            key: None,
        },
    ];

    let mut seen = HashSet::new();
    for c in &cases {
        let w = c.what;
        assert_eq!(c.resp.status, c.status, "{w}: {}", c.resp.text);
        assert_eq!(c.resp.code().as_deref(), c.code, "{w}: {}", c.resp.text);
        let e = event_of(&app, &c.resp);
        assert!(seen.insert(request_id(&c.resp)), "{w}: request ids are unique");
        assert_eq!(e["operation"], json!(c.operation), "{w}: {e}");
        assert_eq!(e["status_code"], json!(c.status), "{w}: {e}");
        let outcome = if c.status < 400 { "ALLOWED" } else { "DENIED" };
        assert_eq!(e["outcome"], json!(outcome), "{w}: {e}");
        assert_eq!(e["reason"], json!(c.reason), "{w}: {e}");
        assert_eq!(e["actor"]["type"], json!(c.actor.0), "{w}: {e}");
        assert_eq!(e["actor"]["id"], json!(c.actor.1), "{w}: {e}");
        assert_eq!(e["tenant_id"], json!(c.tenant), "{w}: {e}");
        assert_eq!(e["key_id"], json!(c.key), "{w}: {e}");
        assert_eq!(e["client_ip"], json!("127.0.0.1"), "{w}: {e}");
        assert_eq!(e["request_id"], json!(request_id(&c.resp)), "{w}");
    }
    // Nothing else was written: one event per request, no more.
    assert_eq!(all_event_count(&app), before + cases.len());

    // The gateway events say what was checked.
    let allowed = event_of(&app, &cases[6].resp);
    assert_eq!(allowed["metadata"]["checked_operation"], json!("enterprise.compliance.event.list"));
    assert_eq!(allowed["metadata"]["original_method"], json!("GET"));
    assert_eq!(allowed["metadata"]["original_uri"], json!("/v2/enterprise.compliance.event.list?limit=10"));
    let refused = event_of(&app, &cases[7].resp);
    assert_eq!(refused["metadata"]["checked_operation"], json!("team.user.list"));
}
both!(every_request_has_exactly_one_event_with_its_outcome);

fn health_probes_are_not_audited(b: Backend) {
    let app = TestApp::spawn(b);
    let before = all_event_count(&app);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = app.get(path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    assert_eq!(all_event_count(&app), before);
}
both!(health_probes_are_not_audited);

// ------------------------------------------------------------------ mutations and their events

fn key_create_event_names_the_new_key_and_keeps_the_body_without_the_secret(b: Backend) {
    let app = TestApp::spawn(b);
    let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "Splunk prod"});
    let r = app.owner_post("/v2/enterprise.key.create", &body);
    let key_id = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    let secret = r.body["secret"].as_str().unwrap().to_string();

    let e = event_of(&app, &r);
    assert_eq!(e["operation"], json!("enterprise.key.create"));
    assert_eq!(e["outcome"], json!("ALLOWED"));
    assert_eq!(e["actor"], json!({"type": "MEMBER", "id": app.owner_id}));
    assert_eq!(e["metadata"]["new_key_id"], json!(key_id));
    assert_eq!(e["metadata"]["key_type"], json!("KEY_TYPE_SIEM"));
    assert_eq!(e["metadata"]["hint"], r.body["key"]["hint"]);
    // Tier 2: the request body as sent, and nothing more (no secret, no hash).
    assert_eq!(e["payload"], body);
    assert!(!e.to_string().contains(&secret), "the event holds the secret: {e}");
    // The key row exists and was committed with the event.
    let rows = app.query_strings(&format!("SELECT id AS v FROM api_keys WHERE id = '{key_id}'"));
    assert_eq!(rows, vec![key_id]);
}
both!(key_create_event_names_the_new_key_and_keeps_the_body_without_the_secret);

fn refused_create_leaves_no_key_and_a_denied_event(b: Backend) {
    let app = TestApp::spawn(b);
    // A past expiry is refused inside the transaction that would insert the key.
    let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "late", "expires_at": "2020-01-01T00:00:00Z"});
    let r = app.owner_post("/v2/enterprise.key.create", &body);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("invalid_argument"));
    assert!(r.body.get("secret").is_none());

    let e = event_of(&app, &r);
    assert_eq!(e["operation"], json!("enterprise.key.create"));
    assert_eq!(e["outcome"], json!("DENIED"));
    assert_eq!(e["status_code"], json!(400));
    assert_eq!(e["reason"], json!("invalid_argument"));
    assert!(e["metadata"].get("new_key_id").is_none(), "{e}");
    assert_eq!(e["payload"], body);
    assert!(app.query_strings("SELECT id AS v FROM api_keys").is_empty());
    // The refusal is part of the chain like any event.
    assert!(lib_verification(&app).valid);
}
both!(refused_create_leaves_no_key_and_a_denied_event);

fn rotate_event_names_the_old_and_new_keys(b: Backend) {
    let app = TestApp::spawn(b);
    let (old, old_secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    let r = app.owner_post("/v2/enterprise.key.rotate", &json!({"key_id": old, "grace_seconds": 60}));
    let new = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    let new_secret = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);

    let e = event_of(&app, &r);
    assert_eq!(e["operation"], json!("enterprise.key.rotate"));
    assert_eq!(e["outcome"], json!("ALLOWED"));
    assert_eq!(e["metadata"]["old_key_id"], json!(old));
    assert_eq!(e["metadata"]["new_key_id"], json!(new));
    assert_eq!(e["metadata"]["grace_seconds"], json!(60));
    assert_eq!(e["payload"], json!({"key_id": old, "grace_seconds": 60}));
    let text = e.to_string();
    assert!(!text.contains(&old_secret) && !text.contains(&new_secret), "{text}");
    let rotated_to = app.query_strings(&format!("SELECT rotated_to AS v FROM api_keys WHERE id = '{old}'"));
    assert_eq!(rotated_to, vec![new]);
}
both!(rotate_event_names_the_old_and_new_keys);

fn revoke_event_records_the_reason(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, _) = app.create_key("KEY_TYPE_SIEM");
    let r = app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": key_id, "reason": "laptop stolen"}));
    assert_eq!(r.ok()["key"]["status"], json!("REVOKED"));
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], json!("enterprise.key.revoke"));
    assert_eq!(e["outcome"], json!("ALLOWED"));
    assert_eq!(e["metadata"]["reason"], json!("laptop stolen"));
    assert_eq!(e["metadata"]["revoked_key_id"], json!(key_id));

    // Revoking twice is refused, changes nothing and is audited as DENIED.
    let again = app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": key_id, "reason": "second time"}));
    assert_eq!(again.status, 400, "{}", again.text);
    assert_eq!(again.code().as_deref(), Some("failed_precondition"));
    let e2 = event_of(&app, &again);
    assert_eq!(e2["outcome"], json!("DENIED"));
    assert_eq!(e2["reason"], json!("failed_precondition"));
    assert!(e2["metadata"].get("reason").is_none(), "{e2}");
    let reason = app.query_strings(&format!("SELECT revoke_reason AS v FROM api_keys WHERE id = '{key_id}'"));
    assert_eq!(reason, vec!["laptop stolen".to_string()]);
}
both!(revoke_event_records_the_reason);

fn key_policy_update_event_records_old_and_new(b: Backend) {
    let app = TestApp::spawn(b);
    let r = app.owner_post(
        "/v2/enterprise.key_policy.update",
        &json!({"max_lifetime_days": {"KEY_TYPE_SIEM": 90}, "siem_tier2_enabled": true}),
    );
    r.ok();
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], json!("enterprise.key_policy.update"));
    assert_eq!(e["metadata"]["siem_tier2_enabled"], json!({"old": false, "new": true}));
    let lifetimes = &e["metadata"]["max_lifetime_days"];
    assert_eq!(lifetimes["new"]["KEY_TYPE_SIEM"], json!(90), "{e}");
    assert!(lifetimes["old"].get("KEY_TYPE_SIEM").is_none(), "{e}");

    let r2 = app.owner_post("/v2/enterprise.key_policy.update", &json!({"max_lifetime_days": {"KEY_TYPE_SIEM": 30}}));
    r2.ok();
    let e2 = event_of(&app, &r2);
    assert_eq!(e2["metadata"]["max_lifetime_days"]["old"]["KEY_TYPE_SIEM"], json!(90));
    assert_eq!(e2["metadata"]["max_lifetime_days"]["new"]["KEY_TYPE_SIEM"], json!(30));
    assert_eq!(e2["metadata"]["siem_tier2_enabled"], json!({"old": true, "new": true}));
}
both!(key_policy_update_event_records_old_and_new);

// ------------------------------------------------------------------ the hash chain

fn hash_chain_is_gapless_linked_and_verifies(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    whoami(&app, &secret).ok();
    gateway(&app, &secret, "/v2/team.user.list");
    app.owner_get("/v2/enterprise.key.list").ok();

    let v = lib_verification(&app);
    assert!(v.valid, "{v:?}");
    let api = api_verification(&app);
    assert_eq!(api["valid"], json!(true), "{api}");
    assert_eq!(api["problems"], json!([]));
    // The run started after the library's walk: it covers at least as much (and the calls that waited for it).
    assert!(api["events_checked"].as_i64().unwrap() >= v.events_checked, "{api}");
    assert!(api["head_seq"].as_i64().unwrap() >= v.head_seq, "{api}");

    let events = app.audit_events();
    assert!(events.len() as i64 > v.events_checked);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(seq_of(e), i as i64 + 1, "no gap: {e}");
        assert_eq!(e["tenant_id"], json!(app.tenant_id));
        let prev = if i == 0 { GENESIS.to_string() } else { events[i - 1]["hash"].as_str().unwrap().to_string() };
        assert_eq!(e["prev_hash"], json!(prev), "seq {}", i + 1);
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
    }
    let head = &events[events.len() - 2];
    assert_eq!(api["head_seq"], head["seq"]);
    assert_eq!(api["head_hash"], head["hash"]);

    // Another tenant has its own chain, from seq 1.
    let (tb, _, token_b) = app.new_tenant("Beta");
    get_as(&app, &token_b, "/v2/enterprise.key.list").ok();
    let mut chains = keyward::admin::verify(&mut app.db(), Some(&tb)).unwrap();
    let vb = chains.pop().unwrap();
    assert!(vb.valid, "{vb:?}");
    assert_eq!(vb.head_seq, 2, "tenant.create and key.list");
    // And every chain, the system one included, verifies.
    let all = keyward::admin::verify(&mut app.db(), None).unwrap();
    assert!(all.iter().all(|c| c.valid), "{all:?}");
    assert!(all.iter().any(|c| c.chain_id == "_system"));
}
both!(hash_chain_is_gapless_linked_and_verifies);

/// Seeds the tenant's chain: 1 tenant.create, 2 key.create, 3 refused gateway
/// check (401), 4–6 whoami. Returns the head seq (6).
fn seed_chain(app: &TestApp) -> i64 {
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    assert_eq!(gateway(app, &secret, "/v2/team.user.list").status, 401);
    for _ in 0..3 {
        whoami(app, &secret).ok();
    }
    let v = lib_verification(app);
    assert!(v.valid, "{v:?}");
    assert_eq!(v.head_seq, 6);
    let ops = app.query_strings(&format!(
        "SELECT operation AS v FROM audit_events WHERE chain_id = '{}' ORDER BY seq",
        app.tenant_id
    ));
    assert_eq!(
        ops,
        ["tenant.create", "enterprise.key.create", "authz.check", "auth.whoami", "auth.whoami", "auth.whoami"]
    );
    6
}

fn set_seq(app: &TestApp, from: i64, to: i64) {
    app.exec_sql(&format!("UPDATE audit_events SET seq = {to} WHERE chain_id = '{}' AND seq = {from}", app.tenant_id));
}

/// Checks the library's and then the background verifier's verdict, as the
/// API reports it. Returns the problems' seqs.
#[track_caller]
fn assert_broken(app: &TestApp) -> Vec<i64> {
    let v = lib_verification(app);
    assert!(!v.valid, "tampering went unnoticed: {v:?}");
    assert!(!v.problems.is_empty());

    let api = api_verification(app);
    // The library again, on the log the run read (the calls that waited for it appended to it).
    let lib_seqs: Vec<i64> = lib_verification(app).problems.iter().map(|p| p.seq).collect();
    assert_eq!(api["valid"], json!(false), "{api}");
    let api_seqs: Vec<i64> = api["problems"].as_array().unwrap().iter().map(|p| p["seq"].as_i64().unwrap()).collect();
    assert_eq!(api_seqs, lib_seqs, "the API and the CLI agree: {api}");
    for p in api["problems"].as_array().unwrap() {
        assert!(!p["problem"].as_str().unwrap().is_empty());
    }
    lib_seqs
}

fn edited_status_code_breaks_the_chain_at_that_event(b: Backend) {
    let app = TestApp::spawn(b);
    seed_chain(&app);
    // Hide the refusal: make the 401 look like a 200.
    app.exec_sql(&format!(
        "UPDATE audit_events SET status_code = 200 WHERE chain_id = '{}' AND seq = 3",
        app.tenant_id
    ));
    assert_eq!(assert_broken(&app), vec![3]);
    let v = lib_verification(&app);
    assert!(v.problems[0].problem.contains("edited"), "{v:?}");
}
both!(edited_status_code_breaks_the_chain_at_that_event);

fn edited_operation_breaks_the_chain_at_that_event(b: Backend) {
    let app = TestApp::spawn(b);
    seed_chain(&app);
    app.exec_sql(&format!(
        "UPDATE audit_events SET operation = 'enterprise.key.list' WHERE chain_id = '{}' AND seq = 2",
        app.tenant_id
    ));
    assert_eq!(assert_broken(&app), vec![2]);
}
both!(edited_operation_breaks_the_chain_at_that_event);

fn deleted_middle_event_breaks_the_chain(b: Backend) {
    let app = TestApp::spawn(b);
    seed_chain(&app);
    app.exec_sql(&format!("DELETE FROM audit_events WHERE chain_id = '{}' AND seq = 4", app.tenant_id));
    // The gap shows at the event after the deleted one.
    let seqs = assert_broken(&app);
    assert!(seqs.iter().all(|s| *s == 5), "{seqs:?}");
    let v = lib_verification(&app);
    assert!(v.problems.iter().any(|p| p.problem.contains("missing")), "{v:?}");
}
both!(deleted_middle_event_breaks_the_chain);

fn deleted_last_event_is_caught_by_the_chain_head(b: Backend) {
    let app = TestApp::spawn(b);
    let head = seed_chain(&app);
    app.exec_sql(&format!("DELETE FROM audit_events WHERE chain_id = '{}' AND seq = {head}", app.tenant_id));
    // The remaining events link perfectly; only the stored head knows.
    let v = lib_verification(&app);
    assert_eq!(v.head_seq, head);
    assert_eq!(v.events_checked, head - 1);
    // The background verifier runs on a live log: the next event shows the gap too.
    app.owner_get("/v2/enterprise.key.list").ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while keyward::db::store::load_chain_head(&mut app.db(), &app.tenant_id).unwrap().unwrap().0 <= head {
        assert!(std::time::Instant::now() < deadline, "the next event never landed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(assert_broken(&app), vec![head + 1, head + 1]);
}
both!(deleted_last_event_is_caught_by_the_chain_head);

fn reordered_events_break_the_chain(b: Backend) {
    let app = TestApp::spawn(b);
    seed_chain(&app);
    // Swap events 2 and 4 (through -1, for the unique (chain_id, seq)).
    set_seq(&app, 2, -1);
    set_seq(&app, 4, 2);
    set_seq(&app, -1, 4);
    let seqs = assert_broken(&app);
    assert!(seqs.contains(&2) && seqs.contains(&4), "{seqs:?}");
    assert!(seqs.iter().all(|s| (2..=5).contains(s)), "{seqs:?}");
}
both!(reordered_events_break_the_chain);

// ------------------------------------------------------------------ enterprise.audit.list

fn audit_list_filters_match_the_full_log(b: Backend) {
    let app = TestApp::spawn(b);
    let (auditor, auditor_token) = app.add_member(&app.tenant_id, "AUDITOR");
    let (k1, s1) = app.create_key("KEY_TYPE_SIEM");
    let (k2, s2) = app.create_key("KEY_TYPE_SIEM");
    whoami(&app, &s1).ok();
    whoami(&app, &s1).ok();
    whoami(&app, &s2).ok();
    assert_eq!(gateway(&app, &s1, "/v2/team.user.list").status, 401);
    let denied =
        post_as(&app, &auditor_token, "/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}));
    assert_eq!(denied.status, 403);

    // The whole log as the auditor sees it; later list calls add events after it.
    let all = list_all(&app, &auditor_token, "");
    let max_seq = seq_of(all.last().unwrap());
    assert_eq!(all.len() as i64, max_seq);
    let t = |i: usize| all[i]["occurred_at"].as_str().unwrap().to_string();
    let (t_from, t_to) = (t(3), t(6));
    assert!(t_from < t_to);

    type Pred<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let cases: Vec<(String, Pred)> = vec![
        ("&operation=auth.whoami".into(), Box::new(|e: &Value| e["operation"] == "auth.whoami")),
        (format!("&key_id={k1}"), Box::new(|e: &Value| e["key_id"] == json!(k1))),
        (format!("&key_id={k2}"), Box::new(|e: &Value| e["key_id"] == json!(k2))),
        (format!("&actor_id={}", app.owner_id), Box::new(|e: &Value| e["actor"]["id"] == json!(app.owner_id))),
        (format!("&actor_id={auditor}"), Box::new(|e: &Value| e["actor"]["id"] == json!(auditor))),
        ("&outcome=DENIED".into(), Box::new(|e: &Value| e["outcome"] == "DENIED")),
        ("&outcome=ALLOWED".into(), Box::new(|e: &Value| e["outcome"] == "ALLOWED")),
        (
            format!("&since={}", enc(&t_from)),
            Box::new(|e: &Value| e["occurred_at"].as_str().unwrap() >= t_from.as_str()),
        ),
        (format!("&until={}", enc(&t_to)), Box::new(|e: &Value| e["occurred_at"].as_str().unwrap() < t_to.as_str())),
        (
            format!("&since={}&until={}", enc(&t_from), enc(&t_to)),
            Box::new(|e: &Value| {
                let at = e["occurred_at"].as_str().unwrap();
                at >= t_from.as_str() && at < t_to.as_str()
            }),
        ),
        (
            format!("&operation=auth.whoami&key_id={k1}"),
            Box::new(|e: &Value| e["operation"] == "auth.whoami" && e["key_id"] == json!(k1)),
        ),
    ];
    for (filter, pred) in &cases {
        let got = list_all(&app, &auditor_token, filter);
        for e in &got {
            assert!(pred(e), "{filter}: {e} does not match");
        }
        let seqs: Vec<i64> = got.iter().map(seq_of).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{filter}: seq order {seqs:?}");
        let got_then: Vec<Value> = got.into_iter().filter(|e| seq_of(e) <= max_seq).collect();
        let expected: Vec<Value> = all.iter().filter(|e| pred(e)).cloned().collect();
        assert!(!expected.is_empty() && expected.len() < all.len(), "{filter}: a filter that filters");
        assert_eq!(ids(&got_then), ids(&expected), "{filter}");
    }
    // Spot checks of the counts, independent of the client-side filter.
    assert_eq!(list_all(&app, &auditor_token, "&operation=auth.whoami").len(), 3);
    assert_eq!(list_all(&app, &auditor_token, &format!("&key_id={k1}")).len(), 3);
    let denied_then: Vec<Value> =
        list_all(&app, &auditor_token, "&outcome=DENIED").into_iter().filter(|e| seq_of(e) <= max_seq).collect();
    assert_eq!(denied_then.len(), 2);

    // since after until is refused.
    let r =
        get_as(&app, &auditor_token, &format!("/v2/enterprise.audit.list?since={}&until={}", enc(&t_to), enc(&t_from)));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("invalid_argument"));
    // A time that is not RFC 3339 is refused, naming the parameter.
    let r = get_as(&app, &auditor_token, "/v2/enterprise.audit.list?since=yesterday");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("since"), "{}", r.text);
    let r = get_as(&app, &auditor_token, "/v2/enterprise.audit.list?outcome=MAYBE");
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("invalid_argument"));
}
both!(audit_list_filters_match_the_full_log);

fn audit_list_cursor_walks_every_event_once_in_order(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    for _ in 0..5 {
        whoami(&app, &secret).ok();
    }
    // A filtered walk is exact: 5 whoami events in pages of 2, 2, 1.
    let mut pages = Vec::new();
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v2/enterprise.audit.list?operation=auth.whoami&limit=2".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = app.owner_get(&path).ok().clone();
        let events = body["events"].as_array().unwrap().clone();
        pages.push(events.len());
        walked.extend(events);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages.len() < 10, "the walk ends");
    }
    assert_eq!(pages, vec![2, 2, 1]);
    let whoami_ids = ids(&walked);
    assert_eq!(whoami_ids.iter().collect::<HashSet<_>>().len(), 5, "no duplicates");
    let seqs: Vec<i64> = walked.iter().map(seq_of).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // An unfiltered walk (which adds its own events as it goes) sees seq 1, 2, 3, … with no gap or repeat.
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = "/v2/enterprise.audit.list?limit=3".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = app.owner_get(&path).ok().clone();
        let events = body["events"].as_array().unwrap().clone();
        assert!(events.len() <= 3);
        all.extend(events);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let seqs: Vec<i64> = all.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(seqs.len() >= 7 + 4, "tenant.create, key.create, 5 whoami, 4 pages: {}", seqs.len());
    assert_eq!(ids(&all).iter().collect::<HashSet<_>>().len(), all.len());
    for id in &whoami_ids {
        assert!(ids(&all).contains(id));
    }
}
both!(audit_list_cursor_walks_every_event_once_in_order);

fn audit_list_refuses_a_bad_cursor_and_a_bad_limit(b: Backend) {
    let app = TestApp::spawn(b);
    for q in ["cursor=zz", "cursor=not-a-cursor", "cursor=763a2d31", "limit=0", "limit=1001", "colour=red"] {
        let r = app.owner_get(&format!("/v2/enterprise.audit.list?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(r.code().as_deref(), Some("invalid_argument"), "{q}");
        let e = event_of(&app, &r);
        assert_eq!(e["operation"], json!("enterprise.audit.list"));
        assert_eq!(e["outcome"], json!("DENIED"));
        assert_eq!(e["reason"], json!("invalid_argument"));
    }
}
both!(audit_list_refuses_a_bad_cursor_and_a_bad_limit);

fn auditors_may_read_the_log_and_plain_members_may_not(b: Backend) {
    let app = TestApp::spawn(b);
    let (auditor, auditor_token) = app.add_member(&app.tenant_id, "AUDITOR");
    let (member, member_token) = app.add_member(&app.tenant_id, "MEMBER");

    let r = get_as(&app, &auditor_token, "/v2/enterprise.audit.list");
    let events = r.ok()["events"].as_array().unwrap().clone();
    assert!(events.iter().any(|e| e["operation"] == "tenant.create"));
    assert_eq!(event_of(&app, &r)["actor"], json!({"type": "MEMBER", "id": auditor}));
    assert_eq!(app.verification_as(&auditor_token)["valid"], json!(true));

    for path in ["/v2/enterprise.audit.list", "/v2/enterprise.audit.verify"] {
        let r = get_as(&app, &member_token, path);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert_eq!(r.code().as_deref(), Some("permission_denied"));
        assert!(r.body.get("events").is_none());
        let e = event_of(&app, &r);
        assert_eq!(e["reason"], json!("role_required"));
        assert_eq!(e["actor"]["id"], json!(member));
    }
    // A key never reads the audit log.
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    let r = app.get("/v2/enterprise.audit.list", &[("X-API-Key", &secret)]);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"));
}
both!(auditors_may_read_the_log_and_plain_members_may_not);

fn tenants_never_see_each_others_events(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_a, secret_a) = app.create_key("KEY_TYPE_SIEM");
    whoami(&app, &secret_a).ok();
    let (tb, owner_b, token_b) = app.new_tenant("Beta");
    let rb = post_as(&app, &token_b, "/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_SIEM", "label": "b"}));
    let secret_b = rb.ok()["secret"].as_str().unwrap().to_string();
    whoami(&app, &secret_b).ok();

    let events_a = list_all(&app, &app.owner_token, "");
    let events_b = list_all(&app, &token_b, "");
    let set_a: HashSet<String> = ids(&events_a).into_iter().collect();
    let set_b: HashSet<String> = ids(&events_b).into_iter().collect();
    assert!(set_a.is_disjoint(&set_b));
    assert!(events_a.iter().all(|e| e["tenant_id"] == json!(app.tenant_id)));
    assert!(events_b.iter().all(|e| e["tenant_id"] == json!(tb)));
    assert!(events_b.iter().any(|e| e["operation"] == "auth.whoami"));
    assert_eq!(seq_of(&events_b[0]), 1);
    // Every stored event of B's chain is in B's list, none in A's.
    let stored_b: HashSet<String> = app
        .query_strings(&format!(
            "SELECT {} AS v FROM audit_events WHERE chain_id = '{tb}'",
            app.event_id_sql("event_id")
        ))
        .into_iter()
        .collect();
    // (plus the event of B's own list call, committed after it answered)
    assert!(set_b.is_subset(&stored_b));
    assert_eq!(stored_b.len(), set_b.len() + 1);
    assert!(stored_b.is_disjoint(&set_a));

    // Filtering by the other tenant's ids finds nothing.
    let r = get_as(&app, &token_b, &format!("/v2/enterprise.audit.list?key_id={key_a}"));
    assert_eq!(r.ok()["events"], json!([]));
    let r = get_as(&app, &token_b, &format!("/v2/enterprise.audit.list?actor_id={}", app.owner_id));
    assert_eq!(r.ok()["events"], json!([]));
    let r = app.owner_get(&format!("/v2/enterprise.audit.list?actor_id={owner_b}"));
    assert_eq!(r.ok()["events"], json!([]));
    // A's verify covers A's chain only.
    let before = events_a.len() as i64 + 2;
    let v = api_verification(&app);
    // A's chain only: as long as A's (the waiting calls add to it), and its head.
    assert!(v["events_checked"].as_i64().unwrap() >= before, "{v}");
    assert_eq!(v["verified_through"], v["head_at_start"], "{v}");
    assert!(v["events_checked"].as_i64() <= v["head_seq"].as_i64(), "{v}");
}
both!(tenants_never_see_each_others_events);

// ------------------------------------------------------------------ the system chain

fn events_without_a_tenant_go_to_the_system_chain(b: Backend) {
    let app = TestApp::spawn(b);
    let unknown = keyward::crypto::new_key_secret(KeyType::TeamAssetAudit);
    let mut forged = unknown.clone();
    forged.pop();
    forged.push(if unknown.ends_with('A') { 'B' } else { 'A' });
    let probes = [
        (whoami(&app, &unknown), "auth.whoami", Some("unknown_key")),
        (whoami(&app, &forged), "auth.whoami", Some("bad_checksum")),
        (whoami(&app, "hello"), "auth.whoami", Some("malformed")),
        (gateway(&app, &unknown, "/v2/team.asset.list"), "authz.check", Some("unknown_key")),
        (app.get("/v2/nothing.here", &[]), "unknown_route", Some("not_found")),
    ];
    let system = keyward::admin::list_events(&mut app.db(), None, 1000).unwrap();
    let tenant_events = app.audit_events();
    for (r, op, reason) in &probes {
        let rid = request_id(r);
        assert!(r.status == 401 || r.status == 404, "{}", r.text);
        let e = event_of(&app, r);
        assert_eq!(e["tenant_id"], Value::Null, "{e}");
        assert_eq!(e["operation"], json!(op));
        assert_eq!(e["reason"], json!(reason));
        assert_eq!(e["outcome"], json!("DENIED"));
        assert_eq!(e["actor"], json!({"type": "ANONYMOUS", "id": null}));
        let found: Vec<&Value> = system.iter().filter(|s| s["request_id"] == json!(rid)).collect();
        assert_eq!(found.len(), 1, "{rid} is on the system chain");
        assert_eq!(found[0]["event_id"], e["event_id"]);
        assert!(!tenant_events.iter().any(|t| t["request_id"] == json!(rid)), "no tenant sees {rid}");
    }
    // The system chain is a chain like the others.
    let seqs: Vec<i64> = system.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=system.len() as i64).collect::<Vec<_>>());
    let all = keyward::admin::verify(&mut app.db(), None).unwrap();
    let sys = all.iter().find(|c| c.chain_id == "_system").unwrap();
    assert!(sys.valid, "{sys:?}");
    assert_eq!(sys.events_checked, system.len() as i64);
}
both!(events_without_a_tenant_go_to_the_system_chain);

/// Migration `000006` rebuilds SQLite's `audit_events` as one b-tree keyed by
/// (chain_id, seq). Events written before it are all there after it, byte for
/// byte, and the chain still verifies; its down migration gives them back too.
#[test]
fn the_audit_table_rebuild_keeps_every_event_and_the_chain_sqlite() {
    use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    // (Ids and hashes are bytes today and were text then: the chain's verdict covers them.)
    const ALL: &str = "SELECT chain_id || '|' || seq || '|' || request_id || '|' || operation AS v \
                       FROM audit_events ORDER BY chain_id, seq";
    let table_sql = |app: &TestApp| app.query_strings("SELECT sql AS v FROM sqlite_master WHERE name = 'audit_events'");

    let mut app = TestApp::spawn(Backend::Sqlite);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    for _ in 0..5 {
        app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).ok();
    }
    app.stop();
    let events = app.query_strings(ALL);
    assert!(events.len() >= 7, "{events:?}");
    assert!(table_sql(&app)[0].contains("WITHOUT ROWID"));

    let keyward::db::DbConn::Sqlite(mut conn) = app.db() else { unreachable!() };
    // Later migrations first, down to the rebuild's own.
    let mut reverted = 0;
    while !conn.revert_last_migration(MIGRATIONS).unwrap().to_string().ends_with("000006") {
        reverted += 1;
    }
    assert!(!table_sql(&app)[0].contains("WITHOUT ROWID"));
    assert_eq!(app.query_strings(ALL), events, "the down migration keeps every event");

    assert_eq!(conn.run_pending_migrations(MIGRATIONS).unwrap().len(), reverted + 1);
    assert!(table_sql(&app)[0].contains("WITHOUT ROWID"));
    assert_eq!(app.query_strings(ALL), events, "the rebuild keeps every event");
    let checks = keyward::admin::verify(&mut app.db(), Some(&app.tenant_id)).unwrap();
    assert!(checks[0].valid, "{:?}", checks[0].problems);

    // The service appends to the rebuilt table where the chain left off.
    app.start();
    app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).ok();
    let checks = keyward::admin::verify(&mut app.db(), Some(&app.tenant_id)).unwrap();
    assert!(checks[0].valid, "{:?}", checks[0].problems);
    assert_eq!(app.query_strings(ALL).len(), events.len() + 1);
}

// ------------------------------------------------------------------ time windows as seq ranges

/// Every event matching `filter` up to `max_seq`, walking pages of `limit`
/// (each call is itself an event: a walk that did not stop would chase them).
fn walk(app: &TestApp, token: &str, filter: &str, limit: usize, max_seq: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v2/enterprise.audit.list?limit={limit}{filter}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = get_as(app, token, &path).ok().clone();
        let page = body["events"].as_array().unwrap();
        assert!(page.len() <= limit);
        out.extend(page.iter().filter(|e| seq_of(e) <= max_seq).cloned());
        if page.iter().any(|e| seq_of(e) > max_seq) {
            return out;
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Reverts the migrations down to and including `000011_audit_queries`,
/// runs `between` on the database as it was, and migrates it back.
fn around_the_queries_migration(app: &TestApp, between: impl FnOnce()) {
    use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    let mut conn = app.db();
    let sqlite = matches!(conn, keyward::db::DbConn::Sqlite(_));
    let migrations = || if sqlite { SQLITE } else { POSTGRES };
    let mut reverted = 0;
    loop {
        let version = conn.revert_last_migration(migrations()).unwrap().to_string();
        reverted += 1;
        if version.ends_with("000011") {
            break;
        }
    }
    between();
    assert_eq!(conn.run_pending_migrations(migrations()).unwrap().len(), reverted);
}

/// A time window is found by binary search on the chain's order; events
/// stamped out of order before the chain kept time order (a clock stepped
/// back) are still found, by a scan of that older part only. Every window,
/// walked a page at a time, is exactly the events stamped within it.
fn time_windows_are_exact_across_events_stamped_out_of_order(b: Backend) {
    let mut app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    for _ in 0..6 {
        whoami(&app, &secret).ok();
    }
    app.stop();
    // As if a clock had stepped back before this version: seq 5 is stamped in 2001.
    around_the_queries_migration(&app, || {
        app.exec_sql(&format!(
            "UPDATE audit_events SET occurred_at = '2001-02-03 04:05:06' WHERE chain_id = '{}' AND seq = 5",
            app.tenant_id
        ))
    });
    let ordered_from = app.query_strings(&format!(
        "SELECT CAST(ordered_from AS TEXT) AS v FROM audit_chains WHERE chain_id = '{}'",
        app.tenant_id
    ));
    assert_eq!(ordered_from, vec!["5".to_string()], "the migration finds where time order starts");
    let heads_at = app.query_strings(&format!(
        "SELECT CAST(c.last_at = e.occurred_at AS TEXT) AS v FROM audit_chains c JOIN audit_events e \
         ON e.chain_id = c.chain_id AND e.seq = c.last_seq WHERE c.chain_id = '{}'",
        app.tenant_id
    ));
    assert!(matches!(heads_at[0].as_str(), "1" | "true"), "the head's time is kept: {heads_at:?}");
    app.start();
    for _ in 0..6 {
        whoami(&app, &secret).ok();
    }
    let all = list_all(&app, &app.owner_token, "");
    let times: Vec<String> = all.iter().map(|e| e["occurred_at"].as_str().unwrap().to_string()).collect();
    assert!(times[4].starts_with("2001-02-03"), "{times:?}");
    // From seq 5 on, the chain is in time order.
    assert!(times[4..].windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let windows: Vec<(Option<String>, Option<String>)> = vec![
        (None, Some("2002-01-01T00:00:00Z".into())),
        (Some("2001-01-01T00:00:00Z".into()), Some("2002-01-01T00:00:00Z".into())),
        (Some(times[2].clone()), None),
        (Some(times[7].clone()), Some(times[10].clone())),
        (Some(times[3].clone()), Some(times[8].clone())),
        (None, Some(times[9].clone())),
        (Some(times[times.len() - 1].clone()), None),
        (Some("2030-01-01T00:00:00Z".into()), None),
        (Some("2000-01-01T00:00:00Z".into()), Some("2000-06-01T00:00:00Z".into())),
    ];
    for (since, until) in windows {
        let mut filter = String::new();
        if let Some(s) = &since {
            filter.push_str(&format!("&since={}", enc(s)));
        }
        if let Some(u) = &until {
            filter.push_str(&format!("&until={}", enc(u)));
        }
        let within = |e: &Value| {
            let at = e["occurred_at"].as_str().unwrap();
            since.as_deref().is_none_or(|s| at >= s) && until.as_deref().is_none_or(|u| at < u)
        };
        let expected: Vec<Value> = all.iter().filter(|e| within(e)).cloned().collect();
        for limit in [1, 2, 1000] {
            let got = walk(&app, &app.owner_token, &filter, limit, seq_of(all.last().unwrap()));
            assert_eq!(ids(&got), ids(&expected), "{filter} in pages of {limit}");
        }
    }
}
both!(time_windows_are_exact_across_events_stamped_out_of_order);

/// The writer never stamps an event earlier than the one before it in its
/// chain (here the head is stamped an hour ahead, as another instance with a
/// fast clock would): the chain stays in time order.
fn an_event_is_never_stamped_before_the_one_ahead_of_it(b: Backend) {
    let mut app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    whoami(&app, &secret).ok();
    app.stop();
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(1)).naive_utc();
    app.exec_sql(&format!(
        "UPDATE audit_chains SET last_at = '{}' WHERE chain_id = '{}'",
        ahead.format("%Y-%m-%d %H:%M:%S%.6f"),
        app.tenant_id
    ));
    app.start();
    whoami(&app, &secret).ok();
    whoami(&app, &secret).ok();
    let all = list_all(&app, &app.owner_token, "");
    let expected = format!("{}Z", ahead.format("%Y-%m-%dT%H:%M:%S%.6f"));
    let stamped: Vec<&str> = all.iter().rev().take(2).map(|e| e["occurred_at"].as_str().unwrap()).collect();
    assert!(stamped.iter().all(|t| *t >= expected.as_str()), "{stamped:?} before {expected}");
    let checks = keyward::admin::verify(&mut app.db(), Some(&app.tenant_id)).unwrap();
    assert!(checks[0].valid, "{:?}", checks[0].problems);
}
both!(an_event_is_never_stamped_before_the_one_ahead_of_it);

/// Event ids and chain hashes are stored as bytes (migration
/// `000014_audit_binary`); taken back to text and forward again, every id
/// and hash reads as it was shown, and the chain still verifies.
fn ids_and_hashes_survive_the_move_to_bytes_and_back(b: Backend) {
    let mut app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    for _ in 0..3 {
        whoami(&app, &secret).ok();
    }
    let shown = |e: &Value| format!("{}|{}|{}|{}", e["seq"], e["event_id"], e["prev_hash"], e["hash"]);
    let before: Vec<String> = list_all(&app, &app.owner_token, "").iter().map(shown).collect();
    app.stop();
    let stored_as_text = format!(
        "SELECT CAST(seq AS TEXT) || '|\"' || event_id || '\"|\"' || prev_hash || '\"|\"' || hash || '\"' AS v \
         FROM audit_events WHERE chain_id = '{}' ORDER BY seq",
        app.tenant_id
    );
    around_the_queries_migration(&app, || {
        let as_text = app.query_strings(&stored_as_text);
        assert_eq!(as_text[..before.len()], before[..], "the down migration gives back the text");
    });
    app.start();
    let after: Vec<String> = list_all(&app, &app.owner_token, "").iter().map(shown).collect();
    assert_eq!(after[..before.len()], before[..]);
    let checks = keyward::admin::verify(&mut app.db(), Some(&app.tenant_id)).unwrap();
    assert!(checks[0].valid, "{:?}", checks[0].problems);
    let lengths = app.query_strings(&format!(
        "SELECT CAST(length(event_id) AS TEXT) || ' ' || CAST(length(hash) AS TEXT) AS v FROM audit_events \
         WHERE chain_id = '{}' AND seq = 1",
        app.tenant_id
    ));
    assert_eq!(lengths, vec!["16 32".to_string()], "stored as bytes");
}
both!(ids_and_hashes_survive_the_move_to_bytes_and_back);

/// An event's tenant is its chain's, so migration `000021_audit_tenant_derived`
/// drops the stored copy: taken back, the copy is each event's chain (none
/// on the system chain); should one event's copy differ, the migration
/// refuses and drops nothing. Forward again, the chains verify.
fn the_tenant_copy_goes_only_when_every_event_is_its_chains(b: Backend) {
    use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    let mut app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    whoami(&app, &secret).ok();
    app.get("/v2/auth.whoami", &[("X-API-Key", "kw_siem_unknown")]);
    app.stop();
    let mut conn = app.db();
    let sqlite = matches!(conn, keyward::db::DbConn::Sqlite(_));
    let migrations = || if sqlite { SQLITE } else { POSTGRES };
    let reverted = conn.revert_last_migration(migrations()).unwrap().to_string();
    assert!(reverted.ends_with("000021"), "{reverted}");
    let copies: HashSet<String> = app
        .query_strings("SELECT DISTINCT chain_id || ' ' || COALESCE(tenant_id, 'NULL') AS v FROM audit_events")
        .into_iter()
        .collect();
    let expected = HashSet::from(["_system NULL".to_string(), format!("{0} {0}", app.tenant_id)]);
    assert_eq!(copies, expected, "the copy is each event's chain");

    let (tenant, sql) =
        (app.tenant_id.clone(), "SELECT tenant_id AS v FROM audit_events WHERE seq = 1 AND chain_id = ");
    app.exec_sql(&format!("UPDATE audit_events SET tenant_id = 'another' WHERE chain_id = '{tenant}' AND seq = 1"));
    assert!(conn.run_pending_migrations(migrations()).is_err(), "a copy that differs stops the migration");
    assert_eq!(app.query_strings(&format!("{sql}'{tenant}'")), vec!["another".to_string()], "nothing dropped");

    app.exec_sql(&format!("UPDATE audit_events SET tenant_id = '{tenant}' WHERE chain_id = '{tenant}' AND seq = 1"));
    assert_eq!(conn.run_pending_migrations(migrations()).unwrap().len(), 1);
    app.start();
    for chain in [Some(app.tenant_id.as_str()), None] {
        let checks = keyward::admin::verify(&mut app.db(), chain).unwrap();
        assert!(
            checks.iter().all(|c| c.valid),
            "{chain:?}: {:?}",
            checks.iter().map(|c| &c.problems).collect::<Vec<_>>()
        );
    }
    let shown = list_all(&app, &app.owner_token, "");
    assert!(shown.iter().all(|e| e["tenant_id"] == app.tenant_id.as_str()), "shown with its tenant");
}
both!(the_tenant_copy_goes_only_when_every_event_is_its_chains);
