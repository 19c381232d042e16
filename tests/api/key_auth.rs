//! Enterprise key callers: header forms and precedence, whoami
//! for every key type, one identical 401 body for every refusal reason with the
//! precise reason in the audit log, and the order of the checks.

use crate::both;
use crate::helpers::{event_of, send, Backend, Resp, TestApp};
use keyward::domain::{authz, KeyType, Role};
use serde_json::{json, Value};

const KEY_REFUSED: &str = "Invalid or missing enterprise API key";

/// A whoami call with the given key headers.
fn whoami(app: &TestApp, headers: &[(&str, &str)]) -> Resp {
    app.get("/v2/auth.whoami", headers)
}

/// Asserts the one key-refusal answer and that its event records `reason`; returns the event.
#[track_caller]
fn assert_refused(app: &TestApp, r: &Resp, reason: &str) -> Value {
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["ok"], json!(false));
    assert_eq!(r.body["error"], json!({"code": "unauthenticated", "message": KEY_REFUSED}));
    let ev = event_of(app, r);
    assert_eq!(ev["reason"], json!(reason), "event {ev}");
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["status_code"], json!(401));
    ev
}

/// A key of `key_type` created in another tenant by that tenant's owner.
#[track_caller]
fn create_key_as(app: &TestApp, owner_token: &str, key_type: &str) -> (String, String) {
    let auth = format!("Bearer {owner_token}");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &auth)],
        &json!({"key_type": key_type, "label": "other tenant key"}),
    );
    let body = r.ok();
    (body["key"]["key_id"].as_str().unwrap().to_string(), body["secret"].as_str().unwrap().to_string())
}

#[track_caller]
fn revoke(app: &TestApp, key_id: &str) {
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": key_id, "reason": "test"})).ok();
}

#[track_caller]
fn restrict_ip(app: &TestApp, key_id: &str) {
    let r = app.owner_post("/v2/enterprise.key.update", &json!({"key_id": key_id, "ip_allowlist": ["10.0.0.0/8"]}));
    assert_eq!(r.ok()["key"]["ip_allowlist"], json!(["10.0.0.0/8"]));
}

fn expire(app: &TestApp, key_id: &str) {
    app.exec_sql(&format!("UPDATE api_keys SET expires_at = '2020-01-01 00:00:00' WHERE id = '{key_id}'"));
}

fn suspend(app: &TestApp, tenant_id: &str) {
    app.exec_sql(&format!("UPDATE tenants SET status = 'SUSPENDED' WHERE id = '{tenant_id}'"));
}

/// The secret with one character of its random part changed.
fn flip_one_char(secret: &str) -> String {
    let at = secret.rfind('_').unwrap() + 1;
    let mut bytes = secret.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

fn every_header_form_is_accepted_on_whoami(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let auth_api_key = format!("Api-Key {secret}");
    let auth_bearer = format!("Bearer {secret}");
    let forms: [(&str, &str); 4] = [
        ("X-API-Key", &secret),
        ("Api-Key", &secret),
        ("Authorization", &auth_api_key),
        ("Authorization", &auth_bearer),
    ];
    for (name, value) in forms {
        let r = whoami(&app, &[(name, value)]);
        assert_eq!(r.status, 200, "{name}: {value}: {}", r.text);
        assert_eq!(r.body["caller"]["type"], json!("API_KEY"), "{name}");
        assert_eq!(r.body["caller"]["key_id"], json!(key_id), "{name}");
        let ev = event_of(&app, &r);
        assert_eq!(ev["operation"], json!("auth.whoami"));
        assert_eq!(ev["outcome"], json!("ALLOWED"));
        assert_eq!(ev["key_id"], json!(key_id));
        assert_eq!(ev["actor"]["type"], json!("API_KEY"));
    }
    // A Bearer value without the kw_ prefix is not taken as a key (it is a console token
    // attempt), so a key's random part alone does not authenticate.
    let r = whoami(&app, &[("Authorization", &format!("Bearer {}", &secret[3..]))]);
    assert_eq!(r.status, 401, "{}", r.text);
}
both!(every_header_form_is_accepted_on_whoami);

/// One credential per request: credentials that disagree are refused as
/// ambiguous (the one 401 body), never "first wins" or "skip the broken one";
/// the same key said twice is one credential.
fn credentials_that_disagree_are_refused_as_ambiguous(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let (_, other) = app.create_key("KEY_TYPE_SIEM");
    let garbage = "hello";
    let console = format!("Bearer {}", app.owner_token);
    let bearer = format!("Bearer {secret}");
    for headers in [
        vec![("X-API-Key", secret.as_str()), ("Api-Key", garbage)],
        vec![("X-API-Key", garbage), ("Api-Key", secret.as_str())],
        vec![("X-API-Key", garbage), ("Authorization", &format!("Api-Key {secret}"))],
        vec![("Api-Key", secret.as_str()), ("Authorization", &format!("Api-Key {garbage}"))],
        vec![("X-API-Key", secret.as_str()), ("Authorization", &format!("Bearer {other}"))],
        vec![("X-API-Key", secret.as_str()), ("Authorization", console.as_str())],
    ] {
        let r = whoami(&app, &headers);
        let e = assert_refused(&app, &r, "ambiguous_credentials");
        assert_eq!(e["key_id"], json!(null), "no key was looked at: {e}");
    }
    // The same key twice is one credential.
    let r = whoami(&app, &[("X-API-Key", &secret), ("Authorization", &bearer)]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["caller"]["key_id"], json!(key_id));

    // Repeated headers and bytes an HTTP library would not send.
    let raw = |headers: Vec<(&str, Vec<u8>)>| {
        let headers: Vec<(String, Vec<u8>)> = headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        send(&app, "GET", "/v2/auth.whoami", &headers, None)
    };
    let r = raw(vec![("X-API-Key", secret.clone().into_bytes()), ("X-API-Key", other.clone().into_bytes())]);
    assert_refused(&app, &r, "ambiguous_credentials");
    let r = raw(vec![("X-API-Key", secret.clone().into_bytes()), ("X-API-Key", secret.clone().into_bytes())]);
    assert_eq!(r.status, 200, "the same key twice: {}", r.text);
    let r = raw(vec![("X-API-Key", "kw_ÿþ".as_bytes().to_vec()), ("Authorization", bearer.clone().into_bytes())]);
    assert_refused(&app, &r, "ambiguous_credentials");
    let r =
        raw(vec![("X-API-Key", vec![b'k', b'w', b'_', 0xff, 0xfe]), ("Authorization", bearer.clone().into_bytes())]);
    assert_refused(&app, &r, "ambiguous_credentials");
    let r = raw(vec![("X-API-Key", vec![b'k', b'w', b'_', 0xff, 0xfe])]);
    assert_refused(&app, &r, "malformed");
}
both!(credentials_that_disagree_are_refused_as_ambiguous);

fn whoami_answers_every_key_type_with_exactly_its_operations(b: Backend) {
    let app = TestApp::spawn(b);
    for t in KeyType::ALL {
        let (key_id, secret) = app.create_key(t.wire_name());
        let r = whoami(&app, &[("X-API-Key", &secret)]);
        let body = r.ok();
        let caller = &body["caller"];
        assert_eq!(caller["type"], json!("API_KEY"));
        assert_eq!(caller["key_type"], json!(t.wire_name()));
        assert_eq!(caller["tenant_id"], json!(app.tenant_id));
        assert_eq!(caller["key_id"], json!(key_id));
        assert_eq!(caller["label"], json!("test key"));
        let hint = caller["hint"].as_str().unwrap();
        assert!(hint.starts_with(&format!("kw_{}_", t.tag())) && hint.ends_with(&secret[secret.len() - 4..]), "{hint}");
        let ops: Vec<String> =
            body["operations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(ops, authz::operations_for_key(t), "{t}");
        // Independently of the table: every key may ask who it is; none reaches the console
        // (but the SIEM key reaches the audit log's proofs).
        let proofs = ["enterprise.audit.checkpoint", "enterprise.audit.proof", "enterprise.audit.consistency"];
        assert!(ops.iter().any(|o| o == "auth.whoami"), "{t}: {ops:?}");
        assert!(
            !ops.iter().any(|o| o.starts_with("enterprise.key")
                || (o.starts_with("enterprise.audit") && !proofs.contains(&o.as_str()))),
            "{t}: {ops:?}"
        );
        let reached_proofs = proofs.iter().filter(|p| ops.iter().any(|o| o == *p)).count();
        assert_eq!(reached_proofs, if t == KeyType::Siem { 3 } else { 0 }, "{t}: {ops:?}");
        assert!(!ops.iter().any(|o| o == "team.asset.upsert" || o == "team.asset.delete"), "{t}: {ops:?}");
        match t {
            KeyType::TeamAssetAudit => {
                assert!(ops.iter().any(|o| o == "team.asset.list"), "{ops:?}");
                assert!(!ops.iter().any(|o| o == "team.asset.update_scope"), "{ops:?}");
            }
            KeyType::TeamAssetMgmt => {
                assert!(ops.iter().any(|o| o == "team.asset.list"), "{ops:?}");
                assert!(ops.iter().any(|o| o == "team.asset.update_scope"), "{ops:?}");
            }
            KeyType::Siem => {
                assert!(ops.iter().any(|o| o == "enterprise.compliance.event.list"), "{ops:?}");
                assert!(!ops.iter().any(|o| o.starts_with("team.")), "{ops:?}");
            }
            KeyType::TeamUserMgmt => {
                assert!(ops.iter().any(|o| o == "scim.users.patch"), "{ops:?}");
                assert!(!ops.iter().any(|o| o.starts_with("team.asset")), "{ops:?}");
            }
            KeyType::Ediscovery => {
                assert!(ops.iter().any(|o| o == "enterprise.hold.create"), "{ops:?}");
                assert!(!ops.iter().any(|o| o.starts_with("enterprise.compliance")), "{ops:?}");
            }
        }
    }

    let r = app.owner_get("/v2/auth.whoami");
    let body = r.ok();
    assert_eq!(body["caller"]["type"], json!("MEMBER"));
    assert_eq!(body["caller"]["role"], json!("OWNER"));
    assert_eq!(body["caller"]["member_id"], json!(app.owner_id));
    assert_eq!(body["caller"]["tenant_id"], json!(app.tenant_id));
    let ops: Vec<String> =
        body["operations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(ops, authz::operations_for_member(Role::Owner));
    assert!(ops.iter().any(|o| o == "enterprise.key.create"), "{ops:?}");
    // The owner's team operations are the group → role mappings alone (the rest take a key).
    assert!(!ops.iter().any(|o| o.starts_with("team.") && !o.starts_with("team.role_mapping.")), "{ops:?}");
    assert!(ops.iter().any(|o| o == "team.role_mapping.update"), "{ops:?}");
    let ev = event_of(&app, &r);
    assert_eq!(ev["actor"], json!({"type": "MEMBER", "id": app.owner_id}));
}
both!(whoami_answers_every_key_type_with_exactly_its_operations);

fn every_refusal_reason_gets_one_identical_body_and_a_precise_event(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, valid) = app.create_key("KEY_TYPE_SIEM");

    let (other_tenant, _, other_token) = app.new_tenant("Beta");
    let (inactive_id, inactive) = create_key_as(&app, &other_token, "KEY_TYPE_SIEM");
    suspend(&app, &other_tenant);
    let (revoked_id, revoked) = app.create_key("KEY_TYPE_SIEM");
    revoke(&app, &revoked_id);
    let (expired_id, expired) = app.create_key("KEY_TYPE_SIEM");
    expire(&app, &expired_id);
    let (ip_id, ip_limited) = app.create_key("KEY_TYPE_SIEM");
    restrict_ip(&app, &ip_id);

    let bad_checksum = flip_one_char(&valid);
    assert_ne!(bad_checksum, valid);
    let unknown = keyward::crypto::new_key_secret(KeyType::Siem);

    // (reason, presented key, tenant and key of the event when identified)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Option<&str>, Option<(&str, &str)>)> = vec![
        ("missing", None, None),
        ("malformed", Some("hello"), None),
        ("bad_checksum", Some(&bad_checksum), None),
        ("unknown_key", Some(&unknown), None),
        ("tenant_inactive", Some(&inactive), Some((&other_tenant, &inactive_id))),
        ("revoked", Some(&revoked), Some((&app.tenant_id, &revoked_id))),
        ("expired", Some(&expired), Some((&app.tenant_id, &expired_id))),
        ("ip_not_allowed", Some(&ip_limited), Some((&app.tenant_id, &ip_id))),
    ];
    let mut bodies = Vec::new();
    for (reason, key, identified) in &cases {
        let r = match key {
            Some(k) => whoami(&app, &[("X-API-Key", k)]),
            None => whoami(&app, &[]),
        };
        let ev = assert_refused(&app, &r, reason);
        assert_eq!(ev["operation"], json!("auth.whoami"), "{reason}");
        match identified {
            None => {
                assert_eq!(ev["tenant_id"], Value::Null, "{reason}: {ev}");
                assert_eq!(ev["key_id"], Value::Null, "{reason}: {ev}");
            }
            Some((tenant, key_id)) => {
                assert_eq!(ev["tenant_id"], json!(tenant), "{reason}: {ev}");
                assert_eq!(ev["key_id"], json!(key_id), "{reason}: {ev}");
                assert_eq!(ev["actor"], json!({"type": "API_KEY", "id": key_id}), "{reason}");
            }
        }
        let rid = r.body["request_id"].as_str().unwrap();
        assert_eq!(r.header("x-request-id").as_deref(), Some(rid));
        // The secret appears neither in the answer nor in the event.
        if let Some(k) = key {
            if k.len() > 8 {
                assert!(!r.text.contains(k) && !ev.to_string().contains(k), "{reason}");
            }
        }
        bodies.push((reason, r.text.replace(rid, "")));
    }
    let (first_reason, first) = &bodies[0];
    for (reason, body) in &bodies[1..] {
        assert_eq!(body, first, "{reason} differs from {first_reason}");
    }
}
both!(every_refusal_reason_gets_one_identical_body_and_a_precise_event);

fn checks_run_in_the_spec_order(b: Backend) {
    let app = TestApp::spawn(b);

    // Revoked and expired: revocation is checked first.
    let (id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    revoke(&app, &id);
    expire(&app, &id);
    let ev = assert_refused(&app, &whoami(&app, &[("X-API-Key", &secret)]), "revoked");
    assert_eq!(ev["key_id"], json!(id));

    // Revoked and used from outside its allowlist: revocation before the IP.
    let (id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    restrict_ip(&app, &id);
    revoke(&app, &id);
    assert_refused(&app, &whoami(&app, &[("X-API-Key", &secret)]), "revoked");

    // Expired and outside its allowlist: expiry before the IP.
    let (id, secret) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    restrict_ip(&app, &id);
    expire(&app, &id);
    assert_refused(&app, &whoami(&app, &[("X-API-Key", &secret)]), "expired");

    // Suspended tenant and revoked key: the tenant comes first.
    let (tenant, _, token) = app.new_tenant("Gamma");
    let (id, secret) = create_key_as(&app, &token, "KEY_TYPE_TEAM_ASSET_AUDIT");
    let auth = format!("Bearer {token}");
    app.post("/v2/enterprise.key.revoke", &[("Authorization", &auth)], &json!({"key_id": id, "reason": "test"})).ok();
    suspend(&app, &tenant);
    let ev = assert_refused(&app, &whoami(&app, &[("X-API-Key", &secret)]), "tenant_inactive");
    assert_eq!(ev["tenant_id"], json!(tenant));
}
both!(checks_run_in_the_spec_order);

fn a_key_never_reaches_a_console_operation(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let r = app.get("/v2/enterprise.key.list", &[("X-API-Key", &secret)]);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key.list"));
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["reason"], json!("type_mismatch"), "{ev}");
    assert_eq!(ev["key_id"], json!(key_id), "{ev}");

    // Nor can a key mint keys, whatever header carries it.
    let auth = format!("Bearer {secret}");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &auth)],
        &json!({"key_type": "KEY_TYPE_SIEM", "label": "minted by a key"}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"));
    let ev = event_of(&app, &r);
    assert_eq!(ev["reason"], json!("type_mismatch"), "{ev}");
    let total = app.owner_get("/v2/enterprise.key.list").ok()["total"].clone();
    assert_eq!(total, json!(1), "only the owner's key exists");
}
both!(a_key_never_reaches_a_console_operation);

/// An allowlist damaged in the database (by hand, by a bug) closes the key;
/// it never reads as empty, which would let every address in.
fn a_damaged_allowlist_fails_closed(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_KEY_CACHE_SYNC_MS", "0")]);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    assert_eq!(app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).status, 200);
    app.exec_sql(&format!("UPDATE api_keys SET ip_allowlist = '[\"not an address\"]' WHERE id = '{key_id}'"));
    let r = app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]);
    assert!(r.status >= 400, "a damaged allowlist let the key in: {}", r.status);
    assert_ne!(r.status, 200);
}
both!(a_damaged_allowlist_fails_closed);
