//! Console callers: who may call the console operations, and who is refused why.

use crate::both;
use crate::helpers::{event_of, Backend, Resp, TestApp};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const CONSOLE_REFUSED: &str = "Invalid or missing console token";
const KEY_LIST: &str = "/v2/enterprise.key.list";
const KEY_CREATE: &str = "/v2/enterprise.key.create";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Console claims as the console would mint them, for `tenant`/`member`, valid for an hour.
fn claims(app: &TestApp, tenant: &str, member: &str) -> Value {
    json!({
        "sub": member, "tid": tenant,
        "iss": app.settings().console_jwt_issuer, "aud": app.settings().console_jwt_audience,
        "iat": now(), "exp": now() + 3600,
    })
}

fn hs256(secret: &str, claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn app_secret(app: &TestApp) -> String {
    app.settings().console_jwt_secret.as_ref().unwrap().expose().to_string()
}

fn eddsa(pkcs8_der: &[u8], claims: &Value) -> String {
    encode(&Header::new(Algorithm::EdDSA), claims, &EncodingKey::from_ed_der(pkcs8_der)).unwrap()
}

fn get_with(app: &TestApp, path: &str, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    app.get(path, &[("Authorization", &auth)])
}

fn post_with(app: &TestApp, path: &str, token: &str, body: &Value) -> Resp {
    let auth = format!("Bearer {token}");
    app.post(path, &[("Authorization", &auth)], body)
}

/// A console refusal: 401, the one console message, and an audit event with `reason`.
#[track_caller]
fn assert_refused(app: &TestApp, r: &Resp, operation: &str, reason: &str) {
    assert_eq!(r.status, 401, "expected 401, got {}: {}", r.status, r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"), "{}", r.text);
    assert_eq!(r.body["ok"], json!(false));
    assert_eq!(r.body["error"]["message"], json!(CONSOLE_REFUSED));
    let ev = event_of(app, r);
    assert_eq!(ev["operation"], json!(operation));
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["reason"], json!(reason), "event: {ev}");
    assert_eq!(ev["status_code"], json!(401));
    assert_eq!(ev["actor"]["type"], json!("ANONYMOUS"), "a refused caller is nobody: {ev}");
}

/// A key on a console route: 401 with the key body; the event names the key (if identified).
#[track_caller]
fn assert_key_refused(app: &TestApp, r: &Resp, operation: &str, reason: &str, key_id: Option<&str>) {
    assert_eq!(r.status, 401, "expected 401, got {}: {}", r.status, r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"), "{}", r.text);
    assert_eq!(r.body["error"]["message"], json!("Invalid or missing enterprise API key"));
    let ev = event_of(app, r);
    assert_eq!(ev["operation"], json!(operation));
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["reason"], json!(reason), "event: {ev}");
    assert_eq!(ev["key_id"], json!(key_id));
    assert_ne!(ev["actor"]["type"], json!("MEMBER"));
}

/// A member who lacks the role: 403 permission_denied, reason role_required, actor recorded.
#[track_caller]
fn assert_role_required(app: &TestApp, r: &Resp, operation: &str, member: &str) {
    assert_eq!(r.status, 403, "expected 403 for {operation}, got {}: {}", r.status, r.text);
    assert_eq!(r.code().as_deref(), Some("permission_denied"), "{}", r.text);
    let ev = event_of(app, r);
    assert_eq!(ev["operation"], json!(operation));
    assert_eq!(ev["outcome"], json!("DENIED"));
    assert_eq!(ev["reason"], json!("role_required"), "event: {ev}");
    assert_eq!(ev["status_code"], json!(403));
    assert_eq!(ev["actor"], json!({"type": "MEMBER", "id": member}));
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));
}

fn key_total(app: &TestApp) -> u64 {
    app.owner_get(KEY_LIST).ok()["total"].as_u64().unwrap()
}

// ------------------------------------------------------------------ valid tokens

fn hs256_owner_token_lists_keys(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, _) = app.create_key("KEY_TYPE_SIEM");
    let r = get_with(&app, KEY_LIST, &app.owner_token);
    let body = r.ok();
    assert_eq!(body["ok"], json!(true));
    assert_eq!(body["total"], json!(1));
    assert_eq!(body["keys"][0]["key_id"], json!(key_id));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.key.list"));
    assert_eq!(ev["outcome"], json!("ALLOWED"));
    assert_eq!(ev["actor"], json!({"type": "MEMBER", "id": app.owner_id}));
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));

    // A token minted here from the same claims the console sends works the same way.
    let token = hs256(&app_secret(&app), &claims(&app, &app.tenant_id, &app.owner_id));
    let r = get_with(&app, "/v2/auth.whoami", &token);
    assert_eq!(r.ok()["caller"]["type"], json!("MEMBER"));
    assert_eq!(r.body["caller"]["member_id"], json!(app.owner_id));
    assert_eq!(r.body["caller"]["role"], json!("OWNER"));
}
both!(hs256_owner_token_lists_keys);

fn ed25519_token_works_when_the_public_key_is_configured(b: Backend) {
    let (pkcs8, spki_pem) = keyward::crypto::generate_ed25519();
    let app = TestApp::spawn_with(b, &[("KEYWARD_CONSOLE_JWT_PUBLIC_KEY", &spki_pem)]);
    let token = eddsa(&pkcs8, &claims(&app, &app.tenant_id, &app.owner_id));

    let r = get_with(&app, KEY_LIST, &token);
    assert_eq!(r.ok()["total"], json!(0));
    let r = post_with(&app, KEY_CREATE, &token, &json!({"key_type": "KEY_TYPE_SIEM", "label": "ed"}));
    let key_id = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["key"]["created_by"], json!(app.owner_id));
    assert_eq!(event_of(&app, &r)["actor"], json!({"type": "MEMBER", "id": app.owner_id}));
    assert_eq!(key_total(&app), 1);

    // HS256 still works beside it.
    assert_eq!(app.owner_get(&format!("/v2/enterprise.key.detail?key_id={key_id}")).status, 200);

    // An EdDSA token from another key pair is refused, and changes nothing.
    let (other_pkcs8, _) = keyward::crypto::generate_ed25519();
    let forged = eddsa(&other_pkcs8, &claims(&app, &app.tenant_id, &app.owner_id));
    let r = get_with(&app, KEY_LIST, &forged);
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
    let r = post_with(&app, KEY_CREATE, &forged, &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}));
    assert_refused(&app, &r, "enterprise.key.create", "bad_token");
    assert_eq!(key_total(&app), 1);
}
both!(ed25519_token_works_when_the_public_key_is_configured);

fn ed25519_token_is_refused_when_no_public_key_is_configured(b: Backend) {
    let app = TestApp::spawn(b);
    let (pkcs8, _) = keyward::crypto::generate_ed25519();
    let token = eddsa(&pkcs8, &claims(&app, &app.tenant_id, &app.owner_id));
    let r = get_with(&app, KEY_LIST, &token);
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
}
both!(ed25519_token_is_refused_when_no_public_key_is_configured);

// ------------------------------------------------------------------ refusals

fn missing_authorization_is_unauthenticated(b: Backend) {
    let app = TestApp::spawn(b);
    let r = app.get(KEY_LIST, &[]);
    assert_refused(&app, &r, "enterprise.key.list", "missing");
    let r = app.post(KEY_CREATE, &[], &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}));
    assert_refused(&app, &r, "enterprise.key.create", "missing");
    let ev = event_of(&app, &r);
    assert_eq!(ev["tenant_id"], Value::Null, "no tenant can be told: {ev}");
    assert_eq!(key_total(&app), 0);
}
both!(missing_authorization_is_unauthenticated);

fn token_signed_with_another_secret_is_bad_token(b: Backend) {
    let app = TestApp::spawn(b);
    let token = hs256("not-the-console-secret", &claims(&app, &app.tenant_id, &app.owner_id));
    let r = get_with(&app, KEY_LIST, &token);
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
    let r = post_with(&app, KEY_CREATE, &token, &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}));
    assert_refused(&app, &r, "enterprise.key.create", "bad_token");
    assert_eq!(key_total(&app), 0);
}
both!(token_signed_with_another_secret_is_bad_token);

fn wrong_issuer_is_bad_token(b: Backend) {
    let app = TestApp::spawn(b);
    let mut c = claims(&app, &app.tenant_id, &app.owner_id);
    c["iss"] = json!("someone-else");
    let r = get_with(&app, KEY_LIST, &hs256(&app_secret(&app), &c));
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
}
both!(wrong_issuer_is_bad_token);

fn wrong_audience_is_bad_token(b: Backend) {
    let app = TestApp::spawn(b);
    let mut c = claims(&app, &app.tenant_id, &app.owner_id);
    c["aud"] = json!("another-service");
    let r = get_with(&app, KEY_LIST, &hs256(&app_secret(&app), &c));
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
}
both!(wrong_audience_is_bad_token);

fn expired_token_is_bad_token(b: Backend) {
    let app = TestApp::spawn(b);
    let secret = app_secret(&app);
    let mut c = claims(&app, &app.tenant_id, &app.owner_id);
    c["iat"] = json!(now() - 3600);
    c["exp"] = json!(now() - 120);
    let r = get_with(&app, KEY_LIST, &hs256(&secret, &c));
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");

    // Within the 30 s leeway for clock skew, the token still works.
    c["exp"] = json!(now() - 5);
    assert_eq!(get_with(&app, KEY_LIST, &hs256(&secret, &c)).status, 200);

    // A token without exp is refused.
    let no_exp = json!({"sub": app.owner_id, "tid": app.tenant_id, "iss": c["iss"], "aud": c["aud"], "iat": now()});
    let r = get_with(&app, KEY_LIST, &hs256(&secret, &no_exp));
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
}
both!(expired_token_is_bad_token);

fn token_not_yet_valid_is_bad_token(b: Backend) {
    let app = TestApp::spawn(b);
    // RFC 7519 §4.1.5: a JWT MUST NOT be accepted before its `nbf` (beyond the skew leeway).
    let mut c = claims(&app, &app.tenant_id, &app.owner_id);
    c["nbf"] = json!(now() + 3600);
    let r = get_with(&app, KEY_LIST, &hs256(&app_secret(&app), &c));
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
}
both!(token_not_yet_valid_is_bad_token);

fn garbage_token_is_bad_token(b: Backend) {
    let app = TestApp::spawn(b);
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let r = get_with(&app, KEY_LIST, garbage);
        assert_refused(&app, &r, "enterprise.key.list", "bad_token");
    }
    // alg "none" with valid claims is no token at all.
    let c = claims(&app, &app.tenant_id, &app.owner_id);
    let unsigned = format!("{}.{}.", b64url(&json!({"alg": "none", "typ": "JWT"})), b64url(&c));
    let r = get_with(&app, KEY_LIST, &unsigned);
    assert_refused(&app, &r, "enterprise.key.list", "bad_token");
}
both!(garbage_token_is_bad_token);

/// Unpadded base64url of a JSON value (to build an unsigned `alg: none` token by hand).
fn b64url(v: &Value) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = v.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn token_of_an_unknown_member_is_refused(b: Backend) {
    let app = TestApp::spawn(b);
    let ghost = uuid::Uuid::new_v4().to_string();
    let r = get_with(&app, KEY_LIST, &app.token(&app.tenant_id, &ghost));
    assert_refused(&app, &r, "enterprise.key.list", "unknown_member");
    // A well-signed token for a tenant that does not exist, either.
    let r = get_with(&app, KEY_LIST, &app.token(&uuid::Uuid::new_v4().to_string(), &app.owner_id));
    assert_refused(&app, &r, "enterprise.key.list", "unknown_member");
}
both!(token_of_an_unknown_member_is_refused);

fn inactive_and_removed_members_are_refused_at_once(b: Backend) {
    let app = TestApp::spawn(b);
    let (m, token) = app.add_member(&app.tenant_id, "AUDITOR");
    assert_eq!(get_with(&app, KEY_LIST, &token).status, 200);

    app.exec_sql(&format!("UPDATE members SET status = 'USER_STATUS_INACTIVE' WHERE id = '{m}'"));
    let r = get_with(&app, KEY_LIST, &token);
    assert_refused(&app, &r, "enterprise.key.list", "member_inactive");

    app.exec_sql(&format!("UPDATE members SET status = 'USER_STATUS_REMOVED' WHERE id = '{m}'"));
    let r = get_with(&app, KEY_LIST, &token);
    assert_refused(&app, &r, "enterprise.key.list", "member_inactive");

    // An inactive owner cannot mint keys.
    app.exec_sql(&format!("UPDATE members SET status = 'USER_STATUS_INACTIVE' WHERE id = '{}'", app.owner_id));
    let r = post_with(&app, KEY_CREATE, &app.owner_token, &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}));
    assert_refused(&app, &r, "enterprise.key.create", "member_inactive");
    app.exec_sql(&format!("UPDATE members SET status = 'USER_STATUS_ACTIVE' WHERE id = '{}'", app.owner_id));
    assert_eq!(key_total(&app), 0);
}
both!(inactive_and_removed_members_are_refused_at_once);

fn member_of_another_tenant_cannot_claim_this_tenant(b: Backend) {
    let app = TestApp::spawn(b);
    let (tenant_b, owner_b, token_b) = app.new_tenant("Globex");
    // B's own token works for B.
    assert_eq!(get_with(&app, KEY_LIST, &token_b).ok()["total"], json!(0));
    // B's owner with tid = A is nobody in A.
    let forged = app.token(&app.tenant_id, &owner_b);
    let r = get_with(&app, KEY_LIST, &forged);
    assert_refused(&app, &r, "enterprise.key.list", "unknown_member");
    let r = post_with(&app, KEY_CREATE, &forged, &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}));
    assert_refused(&app, &r, "enterprise.key.create", "unknown_member");
    assert_eq!(key_total(&app), 0);
    // And A's owner with tid = B is nobody in B.
    let r = get_with(&app, KEY_LIST, &app.token(&tenant_b, &app.owner_id));
    assert_refused(&app, &r, "enterprise.key.list", "unknown_member");
}
both!(member_of_another_tenant_cannot_claim_this_tenant);

fn suspended_tenant_is_refused(b: Backend) {
    let app = TestApp::spawn(b);
    assert_eq!(app.owner_get(KEY_LIST).status, 200);
    app.exec_sql(&format!("UPDATE tenants SET status = 'SUSPENDED' WHERE id = '{}'", app.tenant_id));
    let r = app.owner_get(KEY_LIST);
    assert_refused(&app, &r, "enterprise.key.list", "tenant_inactive");
    let r = app.owner_post(KEY_CREATE, &json!({"key_type": "KEY_TYPE_SIEM", "label": "x"}));
    assert_refused(&app, &r, "enterprise.key.create", "tenant_inactive");
    app.exec_sql(&format!("UPDATE tenants SET status = 'ACTIVE' WHERE id = '{}'", app.tenant_id));
    assert_eq!(key_total(&app), 0);
}
both!(suspended_tenant_is_refused);

// ------------------------------------------------------------------ roles

fn auditor_reads_but_cannot_change(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let (auditor, token) = app.add_member(&app.tenant_id, "AUDITOR");

    let r = get_with(&app, KEY_LIST, &token);
    assert_eq!(r.ok()["total"], json!(1));
    assert_eq!(event_of(&app, &r)["actor"], json!({"type": "MEMBER", "id": auditor}));
    let r = get_with(&app, &format!("/v2/enterprise.key.detail?key_id={key_id}"), &token);
    assert_eq!(r.ok()["key"]["key_id"], json!(key_id));
    let r = get_with(&app, "/v2/enterprise.key_policy.detail", &token);
    assert!(r.ok()["policy"].is_object(), "{}", r.text);
    let r = get_with(&app, "/v2/enterprise.audit.list", &token);
    assert!(!r.ok()["events"].as_array().unwrap().is_empty(), "{}", r.text);
    assert_eq!(app.verification_as(&token)["valid"], json!(true));

    let writes = [
        ("enterprise.key.create", json!({"key_type": "KEY_TYPE_SIEM", "label": "auditor's"})),
        ("enterprise.key.revoke", json!({"key_id": key_id, "reason": "auditor"})),
        ("enterprise.key.rotate", json!({"key_id": key_id})),
        ("enterprise.key.update", json!({"key_id": key_id, "label": "renamed"})),
        ("enterprise.key_policy.update", json!({"siem_tier2_enabled": true})),
    ];
    for (op, body) in writes {
        let r = post_with(&app, &format!("/v2/{op}"), &token, &body);
        assert_role_required(&app, &r, op, &auditor);
    }

    // Nothing changed: still one key, active, unrenamed, and the key still works.
    let list = app.owner_get(KEY_LIST);
    assert_eq!(list.ok()["total"], json!(1));
    assert_eq!(list.body["keys"][0]["status"], json!("ACTIVE"));
    assert_eq!(list.body["keys"][0]["label"], json!("test key"));
    assert_eq!(list.body["keys"][0]["rotated_to"], Value::Null);
    assert_eq!(app.owner_get("/v2/enterprise.key_policy.detail").ok()["policy"]["siem_tier2_enabled"], json!(false));
    assert_eq!(app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).status, 200);
}
both!(auditor_reads_but_cannot_change);

fn admin_and_member_roles_have_no_key_access(b: Backend) {
    let app = TestApp::spawn(b);
    for role in ["ADMIN", "MEMBER"] {
        let (m, token) = app.add_member(&app.tenant_id, role);
        let r = get_with(&app, KEY_LIST, &token);
        assert_role_required(&app, &r, "enterprise.key.list", &m);
        let r = post_with(&app, KEY_CREATE, &token, &json!({"key_type": "KEY_TYPE_SIEM", "label": role}));
        assert_role_required(&app, &r, "enterprise.key.create", &m);
    }
    assert_eq!(key_total(&app), 0);
}
both!(admin_and_member_roles_have_no_key_access);

// ------------------------------------------------------------------ keys are not console callers

fn enterprise_key_cannot_call_console_operations(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "minted by a key"});
    let bearer = format!("Bearer {secret}");
    let api_key = format!("Api-Key {secret}");

    // A valid key on a console route is verified like any use and refused by the table.
    for header in [("X-API-Key", secret.as_str()), ("Authorization", &bearer), ("Authorization", &api_key)] {
        let r = app.post(KEY_CREATE, &[header], &body);
        assert_key_refused(&app, &r, "enterprise.key.create", "type_mismatch", Some(&key_id));
    }
    let r = app.get(KEY_LIST, &[("X-API-Key", &secret)]);
    assert_key_refused(&app, &r, "enterprise.key.list", "type_mismatch", Some(&key_id));
    assert!(!r.text.contains(&secret));
    let r = app.post(KEY_CREATE, &[("X-API-Key", "kw_siem_forged")], &body);
    assert_key_refused(&app, &r, "enterprise.key.create", "malformed", None);

    // Still only the owner's key, and the key itself still works where it belongs.
    assert_eq!(key_total(&app), 1);
    assert_eq!(app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]).status, 200);
}
both!(enterprise_key_cannot_call_console_operations);

/// A token must not be issued in the future (beyond the clock leeway) nor
/// live longer than `KEYWARD_CONSOLE_JWT_MAX_TTL` (default 1 h): a stolen
/// token minted with a ten-year `exp` is useless.
fn console_tokens_are_bounded_in_time(b: Backend) {
    let app = TestApp::spawn(b);
    let secret = app_secret(&app);
    let with = |iat: i64, exp: i64| {
        let mut c = claims(&app, &app.tenant_id, &app.owner_id);
        c["iat"] = json!(iat);
        c["exp"] = json!(exp);
        hs256(&secret, &c)
    };
    for (iat, exp, reason) in [
        (now() + 600, now() + 1200, "token_issued_in_future"),
        (now() + 3600, now() + 3700, "token_issued_in_future"),
        (now(), now() + 3601 + 60, "token_lifetime_too_long"),
        (now() - 60, now() + 10 * 365 * 86400, "token_lifetime_too_long"),
    ] {
        let r = get_with(&app, KEY_LIST, &with(iat, exp));
        assert_refused(&app, &r, "enterprise.key.list", reason);
    }
    // Within the leeway and at the maximum: accepted.
    assert_eq!(get_with(&app, KEY_LIST, &with(now() + 20, now() + 20 + 3600)).status, 200);
    assert_eq!(get_with(&app, KEY_LIST, &with(now() - 10, now() + 3590)).status, 200);

    // A longer maximum is configuration, not the token's say.
    let app = TestApp::spawn_with(b, &[("KEYWARD_CONSOLE_JWT_MAX_TTL", "8h")]);
    let secret = app_secret(&app);
    let mut c = claims(&app, &app.tenant_id, &app.owner_id);
    c["exp"] = json!(now() + 8 * 3600);
    assert_eq!(get_with(&app, KEY_LIST, &hs256(&secret, &c)).status, 200);
    c["exp"] = json!(now() + 9 * 3600);
    assert_refused(
        &app,
        &get_with(&app, KEY_LIST, &hs256(&secret, &c)),
        "enterprise.key.list",
        "token_lifetime_too_long",
    );
}
both!(console_tokens_are_bounded_in_time);
