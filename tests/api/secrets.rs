//! A key's secret is shown once, by create or rotate, and never again: not in
//! the database, the logs, the audit log or any error. The pepper and
//! console tokens are kept out of the same places.

use crate::both;
use crate::helpers::{Backend, Resp, TestApp};
use serde_json::{json, Value};

/// The strings that must not leak for a secret: the whole secret and its
/// random part (so that a truncated or re-prefixed copy is caught too).
fn needles(secret: &str) -> Vec<String> {
    let random = &secret[secret.len() - 33..secret.len() - 6];
    vec![secret.to_string(), random.to_string()]
}

#[track_caller]
fn assert_absent(haystack: &str, secret: &str, place: &str) {
    for n in needles(secret) {
        assert!(!haystack.contains(&n), "{place} contains (part of) a secret {n:?}");
    }
}

fn whoami(app: &TestApp, secret: &str) -> Resp {
    app.get("/v2/auth.whoami", &[("X-API-Key", secret)])
}

/// What keyward logged: `app.logs()` also holds the test client's (ureq's)
/// debug lines, which print the request headers it sends, keys included.
fn keyward_logs(app: &TestApp) -> String {
    let logs = app.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| {
            let target = serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["target"].as_str().map(str::to_owned))
                .unwrap_or_default();
            !target.starts_with("ureq")
        })
        .collect();
    lines.join("\n")
}

/// Every event the tenant's auditors and the operators can read, as text.
fn all_events_text(app: &TestApp) -> String {
    let mut text: Vec<String> = app.audit_events().iter().map(Value::to_string).collect();
    for e in keyward::admin::list_events(&mut app.db(), None, 10_000).unwrap() {
        text.push(e.to_string());
    }
    text.join("\n")
}

fn secrets_are_shown_once_and_never_again(b: Backend) {
    let app = TestApp::spawn(b);
    let mut responses: Vec<(String, Resp)> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();

    // Issued by create: the secret is in this response and nowhere else.
    let created = app.owner_post("/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_SIEM", "label": "siem"}));
    let s1 = created.ok()["secret"].as_str().unwrap().to_string();
    let k1 = created.body["key"]["key_id"].as_str().unwrap().to_string();
    assert!(!created.body["key"].to_string().contains(&s1), "the key object carries no secret");
    secrets.push(s1.clone());

    // Used: allowed, and through the gateway.
    responses.push(("whoami".into(), whoami(&app, &s1)));
    assert_eq!(responses.last().unwrap().1.status, 200);
    let gw = app.get(
        "/v2/authz.check",
        &[("X-API-Key", &s1), ("X-Original-Method", "GET"), ("X-Original-URI", "/v2/enterprise.compliance.event.list")],
    );
    assert_eq!(gw.status, 200, "{}", gw.text);
    responses.push(("gateway".into(), gw));
    // Other accepted headers.
    let auth = format!("Bearer {s1}");
    responses.push(("bearer whoami".into(), app.get("/v2/auth.whoami", &[("Authorization", &auth)])));
    assert_eq!(responses.last().unwrap().1.status, 200);

    // Issued by rotate.
    let rotated = app.owner_post("/v2/enterprise.key.rotate", &json!({"key_id": k1, "grace_seconds": 3600}));
    let s2 = rotated.ok()["secret"].as_str().unwrap().to_string();
    assert_ne!(s1, s2);
    assert_absent(&rotated.text, &s1, "the rotate response");
    secrets.push(s2.clone());
    responses.push(("whoami new".into(), whoami(&app, &s2)));
    assert_eq!(responses.last().unwrap().1.status, 200);

    // Refused after revoke.
    let (k3, s3) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    secrets.push(s3.clone());
    assert_eq!(whoami(&app, &s3).status, 200);
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": k3, "reason": "offboarded"})).ok();
    let refused = whoami(&app, &s3);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.code().as_deref(), Some("unauthenticated"));
    responses.push(("whoami revoked".into(), refused));
    // Refused for the wrong type at the gateway, and mistyped.
    let wrong = app.get(
        "/v2/authz.check",
        &[("X-API-Key", &s2), ("X-Original-Method", "GET"), ("X-Original-URI", "/v2/team.user.list")],
    );
    assert_eq!(wrong.status, 401);
    responses.push(("gateway refused".into(), wrong));
    let mut mistyped = s2.clone();
    mistyped.insert(12, 'x');
    responses.push(("mistyped".into(), whoami(&app, &mistyped)));

    // Nowhere: no other response, error or not…
    for (what, r) in &responses {
        for s in &secrets {
            assert_absent(&r.text, s, &format!("the {what} response"));
        }
    }
    // …not in any audit event (tenant or system chain)…
    let events = all_events_text(&app);
    assert!(events.contains(&k1) && events.contains(&k3), "the events are there");
    // …not in the database…
    let dump = app.dump_database();
    assert!(dump.contains(&k1), "the dump holds the keys");
    // …not in the logs.
    let logs = keyward_logs(&app);
    let rid = responses[0].1.body["request_id"].as_str().unwrap();
    assert!(logs.contains(rid), "keyward logged the requests");
    for s in &secrets {
        assert_absent(&events, s, "the audit log");
        assert_absent(&dump, s, "the database");
        assert_absent(&logs, s, "the logs");
    }
}
both!(secrets_are_shown_once_and_never_again);

/// A secret pasted into a free-text field (a label, a revoke reason) is
/// redacted in the Tier 2 payload and must not be stored or shown either.
fn a_secret_pasted_into_a_text_field_is_never_stored(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let mut secrets = vec![secret.clone()];
    let mut texts = Vec::new();

    let pasted = [
        ("/v2/enterprise.key.create", json!({"key_type": "KEY_TYPE_SIEM", "label": secret})),
        ("/v2/enterprise.key.update", json!({"key_id": key_id, "label": format!("prod {secret}")})),
        ("/v2/enterprise.key.revoke", json!({"key_id": key_id, "reason": secret})),
    ];
    for (path, body) in &pasted {
        let r = app.owner_post(path, body);
        let e = app.event_by_request_id(r.body["request_id"].as_str().unwrap()).expect("the request is audited");
        let field = if body.get("reason").is_some() { "reason" } else { "label" };
        // Tier 2 redacts it (the secret, not the words around it), whatever the outcome…
        let kept = body[field].as_str().unwrap().replace(&secret, "[REDACTED]");
        assert_eq!(e["payload"][field], json!(kept), "{path}: {e}");
        if let Some(extra) = r.body["secret"].as_str() {
            secrets.push(extra.to_string());
        }
        // …and the answer does not show it back (the create's own new secret aside).
        let mut shown = r.body.clone();
        shown.as_object_mut().unwrap().remove("secret");
        texts.push((format!("the {path} response"), shown.to_string()));
    }
    texts.push(("the audit log".into(), all_events_text(&app)));
    texts.push(("the key list".into(), app.owner_get("/v2/enterprise.key.list").text));
    texts.push(("the database".into(), app.dump_database()));
    texts.push(("the logs".into(), keyward_logs(&app)));
    for (place, text) in &texts {
        for s in &secrets {
            assert_absent(text, s, place);
        }
    }
}
both!(a_secret_pasted_into_a_text_field_is_never_stored);

/// A secret sent in the wrong field is refused without being echoed in the error.
fn errors_never_echo_a_secret(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    let cases = [
        ("key_type in a body", app.owner_post("/v2/enterprise.key.create", &json!({"key_type": secret, "label": "x"}))),
        ("key_type in a query", app.owner_get(&format!("/v2/enterprise.key.list?key_type={secret}"))),
        ("status in a query", app.owner_get(&format!("/v2/enterprise.key.list?status={secret}"))),
        ("outcome in a query", app.owner_get(&format!("/v2/enterprise.audit.list?outcome={secret}"))),
        (
            "a policy key",
            app.owner_post("/v2/enterprise.key_policy.update", &json!({"max_lifetime_days": {secret.clone(): 5}})),
        ),
        (
            "an unknown field",
            app.owner_post(
                "/v2/enterprise.key.create",
                &json!({"key_type": "KEY_TYPE_SIEM", "label": "x", secret.clone(): 1}),
            ),
        ),
        ("a key_id", app.owner_get(&format!("/v2/enterprise.key.detail?key_id={secret}"))),
    ];
    for (what, r) in &cases {
        assert!(r.status == 400 || r.status == 404, "{what}: {}", r.text);
        assert!(r.code().is_some(), "{what}: {}", r.text);
        assert_absent(&r.text, &secret, &format!("the error for {what}"));
    }
    let events = all_events_text(&app);
    assert_absent(&events, &secret, "the audit log");
    assert_absent(&keyward_logs(&app), &secret, "the logs");
}
both!(errors_never_echo_a_secret);

fn pepper_and_console_tokens_stay_out_of_logs_and_database(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    let used = whoami(&app, &secret);
    assert_eq!(used.status, 200);
    let (_, auditor_token) = app.add_member(&app.tenant_id, "AUDITOR");
    let auth = format!("Bearer {auditor_token}");
    assert_eq!(app.get("/v2/enterprise.audit.list", &[("Authorization", &auth)]).status, 200);
    // A refused token is not written down either.
    let forged = format!("{}x", app.owner_token);
    let r = app.get("/v2/enterprise.key.list", &[("Authorization", &format!("Bearer {forged}"))]);
    assert_eq!(r.status, 401);
    assert!(!r.text.contains(&app.owner_token));

    let pepper = app.settings().key_pepper.expose().to_string();
    let jwt_secret = app.settings().console_jwt_secret.as_ref().unwrap().expose().to_string();
    let dump = app.dump_database();
    let logs = keyward_logs(&app);
    assert!(logs.contains(used.body["request_id"].as_str().unwrap()), "keyward logged the requests");
    let events = all_events_text(&app);
    for (what, value) in [
        ("pepper", pepper.as_str()),
        ("console JWT secret", jwt_secret.as_str()),
        ("owner token", app.owner_token.as_str()),
        ("auditor token", auditor_token.as_str()),
        ("key secret", secret.as_str()),
    ] {
        assert!(!dump.contains(value), "the database contains the {what}");
        assert!(!logs.contains(value), "the logs contain the {what}");
        assert!(!events.contains(value), "the audit log contains the {what}");
    }
    // A token's signature alone is enough to replay parts of it: keep it out too.
    let signature = app.owner_token.rsplit('.').next().unwrap();
    assert!(!dump.contains(signature) && !logs.contains(signature));
}
both!(pepper_and_console_tokens_stay_out_of_logs_and_database);
