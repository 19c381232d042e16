//! The team_users surface (User Management key): provisioning, status changes,
//! irreversible removal, the owner's protection, offboarding at once.

use crate::both;
use crate::helpers::{assert_error, assert_refused, event_of, key_get, key_post, Backend, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;

const KEY_REFUSED: &str = "Invalid or missing enterprise API key";
const LIST: &str = "/v2/team.user.list";
const DETAIL: &str = "/v2/team.user.detail";
const CREATE: &str = "/v2/team.user.create";
const UPDATE: &str = "/v2/team.user.update";
const REMOVE: &str = "/v2/team.user.remove";

const ACTIVE: &str = "USER_STATUS_ACTIVE";
const INACTIVE: &str = "USER_STATUS_INACTIVE";
const REMOVED: &str = "USER_STATUS_REMOVED";

// ------------------------------------------------------------------ helpers

fn user_key(app: &TestApp) -> String {
    app.create_key("KEY_TYPE_TEAM_USER_MGMT").1
}

#[track_caller]
fn create_user(app: &TestApp, secret: &str, email: &str, role: &str) -> String {
    let r = key_post(app, secret, CREATE, &json!({"email": email, "role": role}));
    r.ok()["team_user"]["team_user_id"].as_str().unwrap().to_string()
}

fn db_member(app: &TestApp, id: &str) -> (String, String) {
    let status = app.query_strings(&format!("SELECT status AS v FROM members WHERE id = '{id}'"));
    let role = app.query_strings(&format!("SELECT role AS v FROM members WHERE id = '{id}'"));
    assert_eq!(status.len(), 1, "member {id} not found");
    (status[0].clone(), role[0].clone())
}

fn ids_of(body: &Value) -> Vec<String> {
    body["team_users"].as_array().unwrap().iter().map(|u| u["team_user_id"].as_str().unwrap().to_string()).collect()
}

// ------------------------------------------------------------------ create

fn team_user_create_refuses_owner_and_duplicates(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, key) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");

    let r = key_post(
        &app,
        &key,
        CREATE,
        &json!({"email": "  Alice@Example.COM ", "role": "ADMIN", "first_name": "Alice", "last_name": "Liddell",
                "user_name": "alice"}),
    );
    let u = r.ok()["team_user"].clone();
    let id = u["team_user_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{u}");
    assert_eq!(u["email"], "alice@example.com");
    assert_eq!(u["role"], "ADMIN");
    assert_eq!(u["status"], ACTIVE);
    assert_eq!(u["first_name"], "Alice");
    assert_eq!(u["last_name"], "Liddell");
    assert_eq!(u["user_name"], "alice");
    assert_eq!(db_member(&app, &id), (ACTIVE.to_string(), "ADMIN".to_string()));
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "team.user.create");
    assert_eq!(e["outcome"], "ALLOWED");
    assert_eq!(e["tenant_id"], json!(app.tenant_id));
    assert_eq!(e["actor"], json!({"type": "API_KEY", "id": key_id}));
    assert_eq!(e["metadata"]["team_user_id"], json!(id));
    assert_eq!(e["metadata"]["status"], ACTIVE);
    assert_eq!(e["metadata"]["role"], "ADMIN");

    // The OWNER role is never granted through the API.
    let r = key_post(&app, &key, CREATE, &json!({"email": "bob@example.com", "role": "OWNER"}));
    assert_error(&app, &r, 400, "invalid_argument");
    assert!(app.query_strings("SELECT id AS v FROM members WHERE email = 'bob@example.com'").is_empty());

    // Duplicates, whatever the case; the owner's email too.
    for dup in ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@example.Com", "OWNER@acme.example"] {
        let r = key_post(&app, &key, CREATE, &json!({"email": dup, "role": "MEMBER"}));
        assert_error(&app, &r, 409, "already_exists");
    }
    assert_eq!(app.query_strings("SELECT id AS v FROM members WHERE email = 'alice@example.com'"), vec![id]);
    assert_eq!(
        app.query_strings(&format!("SELECT id AS v FROM members WHERE tenant_id = '{}'", app.tenant_id)).len(),
        2
    );

    // Unknown roles, bad emails, unknown fields are invalid.
    for body in [
        json!({"email": "carol@example.com", "role": "SUPERUSER"}),
        json!({"email": "carol@example.com", "role": "admin"}),
        json!({"email": "not-an-email", "role": "MEMBER"}),
        json!({"email": "carol@example.com"}),
        json!({"email": "carol@example.com", "role": "MEMBER", "status": ACTIVE}),
    ] {
        let r = key_post(&app, &key, CREATE, &body);
        assert_error(&app, &r, 400, "invalid_argument");
    }
    assert!(app.query_strings("SELECT id AS v FROM members WHERE email = 'carol@example.com'").is_empty());

    // The same email is free in another tenant.
    let (_, _, other_owner) = app.new_tenant("Globex");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &format!("Bearer {other_owner}"))],
        &json!({"key_type": "KEY_TYPE_TEAM_USER_MGMT", "label": "globex idp"}),
    );
    let other_key = r.ok()["secret"].as_str().unwrap().to_string();
    let r = key_post(&app, &other_key, CREATE, &json!({"email": "alice@example.com", "role": "MEMBER"}));
    assert_eq!(r.ok()["team_user"]["email"], "alice@example.com");
}
both!(team_user_create_refuses_owner_and_duplicates);

// ------------------------------------------------------------------ list

fn team_user_list_filters_and_pages(b: Backend) {
    let app = TestApp::spawn(b);
    let key = user_key(&app);
    let m1 = create_user(&app, &key, "m1@example.com", "MEMBER");
    let m2 = create_user(&app, &key, "m2@example.com", "MEMBER");
    let m3 = create_user(&app, &key, "m3@example.com", "MEMBER");
    let a1 = create_user(&app, &key, "a1@example.com", "AUDITOR");
    let a2 = create_user(&app, &key, "a2@example.com", "AUDITOR");
    key_post(&app, &key, UPDATE, &json!({"team_user_id": m2, "status": INACTIVE})).ok();
    key_post(&app, &key, REMOVE, &json!({"team_user_id": a2})).ok();
    // Another tenant's members never show.
    let (other, _, _) = app.new_tenant("Globex");
    app.add_member(&other, "MEMBER");

    let r = key_get(&app, &key, LIST);
    let body = r.ok();
    assert_eq!(body["total"], 6);
    assert_eq!(body["limit"], 100);
    assert_eq!(body["offset"], 0);
    // Creation order, the owner first; removed members stay listed.
    let all = ids_of(body);
    assert_eq!(all, vec![app.owner_id.clone(), m1.clone(), m2.clone(), m3.clone(), a1.clone(), a2.clone()]);
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "team.user.list");
    assert_eq!(e["outcome"], "ALLOWED");

    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("role=AUDITOR", vec![&a1, &a2]),
        ("role=OWNER", vec![&app.owner_id]),
        ("status=USER_STATUS_INACTIVE", vec![&m2]),
        ("status=USER_STATUS_REMOVED", vec![&a2]),
        ("status=USER_STATUS_ACTIVE", vec![&app.owner_id, &m1, &m3, &a1]),
        ("status=USER_STATUS_ACTIVE&role=MEMBER", vec![&m1, &m3]),
        ("status=USER_STATUS_REMOVED&role=MEMBER", vec![]),
        ("role=ADMIN", vec![]),
    ];
    for (q, want) in cases {
        let body = key_get(&app, &key, &format!("{LIST}?{q}")).ok().clone();
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(ids_of(&body), want, "{q}");
        assert_eq!(body["total"], json!(want.len()), "{q}");
    }

    // Offset pagination: every member exactly once, the total on every page.
    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        let body = key_get(&app, &key, &format!("{LIST}?limit=2&offset={offset}")).ok().clone();
        assert_eq!(body["total"], 6);
        assert_eq!(body["limit"], 2);
        assert_eq!(body["offset"], offset);
        assert_eq!(body["team_users"].as_array().unwrap().len(), 2);
        paged.extend(ids_of(&body));
    }
    assert_eq!(paged, all);
    let body = key_get(&app, &key, &format!("{LIST}?limit=4&offset=4")).ok().clone();
    assert_eq!(ids_of(&body), all[4..].to_vec());
    let body = key_get(&app, &key, &format!("{LIST}?offset=10")).ok().clone();
    assert!(ids_of(&body).is_empty());
    assert_eq!(body["total"], 6);
    let body = key_get(&app, &key, &format!("{LIST}?role=MEMBER&limit=1&offset=1")).ok().clone();
    assert_eq!(ids_of(&body), vec![m2.clone()]);
    assert_eq!(body["total"], 3);

    for bad in ["limit=0", "limit=1001", "offset=-1", "limit=x", "status=ACTIVE", "role=owner", "colour=red"] {
        let r = key_get(&app, &key, &format!("{LIST}?{bad}"));
        assert_error(&app, &r, 400, "invalid_argument");
    }
}
both!(team_user_list_filters_and_pages);

// ------------------------------------------------------------------ detail and isolation

fn team_user_detail_and_other_tenants_are_not_found(b: Backend) {
    let app = TestApp::spawn(b);
    let key = user_key(&app);
    let id = create_user(&app, &key, "dora@example.com", "AUDITOR");

    let r = key_get(&app, &key, &format!("{DETAIL}?team_user_id={id}"));
    let u = &r.ok()["team_user"];
    assert_eq!(u["team_user_id"], json!(id));
    assert_eq!(u["email"], "dora@example.com");
    assert_eq!(u["role"], "AUDITOR");
    assert_eq!(u["status"], ACTIVE);
    assert!(u["created_at"].as_str().unwrap().ends_with('Z'), "{u}");
    let r = key_get(&app, &key, &format!("{DETAIL}?team_user_id={}", app.owner_id));
    assert_eq!(r.ok()["team_user"]["role"], "OWNER");

    let r = key_get(&app, &key, DETAIL);
    assert_error(&app, &r, 400, "invalid_argument");
    let unknown = uuid::Uuid::new_v4().to_string();
    let r = key_get(&app, &key, &format!("{DETAIL}?team_user_id={unknown}"));
    assert_error(&app, &r, 404, "not_found");

    // Another tenant's member is unknown here, for every operation.
    let (other, other_owner, _) = app.new_tenant("Globex");
    let (theirs, _) = app.add_member(&other, "MEMBER");
    for target in [&theirs, &other_owner] {
        let r = key_get(&app, &key, &format!("{DETAIL}?team_user_id={target}"));
        assert_error(&app, &r, 404, "not_found");
        let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": target, "status": INACTIVE}));
        assert_error(&app, &r, 404, "not_found");
        let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": target, "role": "ADMIN"}));
        assert_error(&app, &r, 404, "not_found");
        let r = key_post(&app, &key, REMOVE, &json!({"team_user_id": target}));
        assert_error(&app, &r, 404, "not_found");
    }
    assert_eq!(db_member(&app, &theirs), (ACTIVE.to_string(), "MEMBER".to_string()));
    assert_eq!(db_member(&app, &other_owner), (ACTIVE.to_string(), "OWNER".to_string()));
}
both!(team_user_detail_and_other_tenants_are_not_found);

// ------------------------------------------------------------------ status changes

fn team_user_status_changes_and_irreversible_removal(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, key) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let id = create_user(&app, &key, "erin@example.com", "MEMBER");

    // ACTIVE -> INACTIVE -> ACTIVE, each audited with old and new status.
    for (from, to) in [(ACTIVE, INACTIVE), (INACTIVE, ACTIVE), (ACTIVE, INACTIVE)] {
        let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": id, "status": to}));
        assert_eq!(r.ok()["team_user"]["status"], to);
        assert_eq!(db_member(&app, &id).0, to);
        let e = event_of(&app, &r);
        assert_eq!(e["operation"], "team.user.update");
        assert_eq!(e["outcome"], "ALLOWED");
        assert_eq!(e["actor"], json!({"type": "API_KEY", "id": key_id}));
        assert_eq!(e["metadata"]["team_user_id"], json!(id));
        assert_eq!(e["metadata"]["status"], json!({"old": from, "new": to}), "{e}");
    }
    let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": id, "role": "ADMIN"}));
    assert_eq!(r.ok()["team_user"]["role"], "ADMIN");
    let e = event_of(&app, &r);
    assert_eq!(e["metadata"]["role"], json!({"old": "MEMBER", "new": "ADMIN"}), "{e}");
    assert_eq!(e["metadata"]["status"], json!({"old": INACTIVE, "new": INACTIVE}), "{e}");

    // Nothing to change, or an unknown status, is invalid.
    let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": id}));
    assert_error(&app, &r, 400, "invalid_argument");
    let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": id, "status": "USER_STATUS_DELETED"}));
    assert_error(&app, &r, 400, "invalid_argument");
    let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": id, "role": "OWNER"}));
    assert_error(&app, &r, 400, "invalid_argument");
    assert_eq!(db_member(&app, &id), (INACTIVE.to_string(), "ADMIN".to_string()));

    // team.user.remove: REMOVED, audited.
    let r = key_post(&app, &key, REMOVE, &json!({"team_user_id": id}));
    assert_eq!(r.ok()["team_user"]["status"], REMOVED);
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "team.user.remove");
    assert_eq!(e["outcome"], "ALLOWED");
    assert_eq!(e["metadata"]["status"], json!({"old": INACTIVE, "new": REMOVED}), "{e}");

    // Irreversible, by every path.
    for body in [
        json!({"team_user_id": id, "status": ACTIVE}),
        json!({"team_user_id": id, "status": INACTIVE}),
        json!({"team_user_id": id, "status": REMOVED}),
        json!({"team_user_id": id, "role": "MEMBER"}),
    ] {
        let r = key_post(&app, &key, UPDATE, &body);
        assert_error(&app, &r, 400, "failed_precondition");
    }
    let r = key_post(&app, &key, REMOVE, &json!({"team_user_id": id}));
    assert_error(&app, &r, 400, "failed_precondition");
    assert_eq!(db_member(&app, &id), (REMOVED.to_string(), "ADMIN".to_string()));
    let r = key_get(&app, &key, &format!("{DETAIL}?team_user_id={id}"));
    assert_eq!(r.ok()["team_user"]["status"], REMOVED);

    // team.user.update with status REMOVED removes too.
    let other = create_user(&app, &key, "frank@example.com", "AUDITOR");
    let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": other, "status": REMOVED}));
    assert_eq!(r.ok()["team_user"]["status"], REMOVED);
    let e = event_of(&app, &r);
    assert_eq!(e["metadata"]["status"], json!({"old": ACTIVE, "new": REMOVED}), "{e}");
    let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": other, "status": ACTIVE}));
    assert_error(&app, &r, 400, "failed_precondition");
    assert_eq!(db_member(&app, &other).0, REMOVED);
}
both!(team_user_status_changes_and_irreversible_removal);

// ------------------------------------------------------------------ the owner

fn team_user_owner_cannot_be_removed_demoted_or_deactivated(b: Backend) {
    let app = TestApp::spawn(b);
    let key = user_key(&app);
    let owner = app.owner_id.clone();
    for (path, body) in [
        (REMOVE, json!({"team_user_id": owner})),
        (UPDATE, json!({"team_user_id": owner, "status": REMOVED})),
        (UPDATE, json!({"team_user_id": owner, "status": INACTIVE})),
        (UPDATE, json!({"team_user_id": owner, "role": "ADMIN"})),
        (UPDATE, json!({"team_user_id": owner, "role": "MEMBER"})),
        (UPDATE, json!({"team_user_id": owner, "role": "AUDITOR", "status": ACTIVE})),
    ] {
        let r = key_post(&app, &key, path, &body);
        assert_error(&app, &r, 400, "failed_precondition");
    }
    assert_eq!(db_member(&app, &owner), (ACTIVE.to_string(), "OWNER".to_string()));
    // The owner still runs the console.
    app.owner_get("/v2/enterprise.key.list").ok();

    // Nor can anyone be promoted to owner.
    let id = create_user(&app, &key, "gina@example.com", "ADMIN");
    let r = key_post(&app, &key, UPDATE, &json!({"team_user_id": id, "role": "OWNER"}));
    assert_error(&app, &r, 400, "invalid_argument");
    assert_eq!(db_member(&app, &id), (ACTIVE.to_string(), "ADMIN".to_string()));
}
both!(team_user_owner_cannot_be_removed_demoted_or_deactivated);

// ------------------------------------------------------------------ offboarding at once

fn removed_member_loses_console_access_at_once(b: Backend) {
    let app = TestApp::spawn(b);
    let key = user_key(&app);
    let (auditor, token) = app.add_member(&app.tenant_id, "AUDITOR");
    let auth = format!("Bearer {token}");
    let console = |app: &TestApp| app.get("/v2/enterprise.key.list", &[("Authorization", &auth)]);

    console(&app).ok();

    // Deactivation locks the console out, reactivation lets them back in.
    key_post(&app, &key, UPDATE, &json!({"team_user_id": auditor, "status": INACTIVE})).ok();
    let r = console(&app);
    assert_refused(&app, &r, 401, "unauthenticated", "member_inactive");
    key_post(&app, &key, UPDATE, &json!({"team_user_id": auditor, "status": ACTIVE})).ok();
    console(&app).ok();

    // Removal: the very next request with the same, unexpired token is refused.
    key_post(&app, &key, REMOVE, &json!({"team_user_id": auditor})).ok();
    let r = console(&app);
    let e = assert_refused(&app, &r, 401, "unauthenticated", "member_inactive");
    assert_eq!(e["operation"], "enterprise.key.list");
    let r = app.get("/v2/auth.whoami", &[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"));
}
both!(removed_member_loses_console_access_at_once);

// ------------------------------------------------------------------ other callers

fn team_users_refuse_other_key_types(b: Backend) {
    let app = TestApp::spawn(b);
    let key = user_key(&app);
    let target = create_user(&app, &key, "hank@example.com", "MEMBER");
    let before = app.query_strings("SELECT id AS v FROM members").len();

    let detail = format!("{DETAIL}?team_user_id={target}");
    let calls: Vec<(&str, &str, Value)> = vec![
        ("GET", LIST, Value::Null),
        ("GET", detail.as_str(), Value::Null),
        ("POST", CREATE, json!({"email": "ivan@example.com", "role": "MEMBER"})),
        ("POST", UPDATE, json!({"team_user_id": target, "status": INACTIVE})),
        ("POST", REMOVE, json!({"team_user_id": target})),
    ];
    for kt in ["KEY_TYPE_EDISCOVERY", "KEY_TYPE_SIEM", "KEY_TYPE_TEAM_ASSET_AUDIT", "KEY_TYPE_TEAM_ASSET_MGMT"] {
        let (key_id, secret) = app.create_key(kt);
        for (method, path, body) in &calls {
            let r = if *method == "GET" { key_get(&app, &secret, path) } else { key_post(&app, &secret, path, body) };
            let e = assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
            assert_eq!(r.body["error"]["message"], KEY_REFUSED);
            assert_eq!(e["key_id"], json!(key_id), "{kt} {path}");
            assert_eq!(e["key_type"], json!(kt));
        }
    }
    // No key, and the owner's console token (a key surface takes no console caller).
    let owner = format!("Bearer {}", app.owner_token);
    for headers in [vec![], vec![("Authorization", owner.as_str())]] {
        let r = app.post(CREATE, &headers, &json!({"email": "ivan@example.com", "role": "MEMBER"}));
        assert_refused(&app, &r, 401, "unauthenticated", "missing");
        let r = app.get(LIST, &headers);
        assert_refused(&app, &r, 401, "unauthenticated", "missing");
    }
    assert_eq!(app.query_strings("SELECT id AS v FROM members").len(), before);
    assert_eq!(db_member(&app, &target).0, ACTIVE);
    let ids: HashSet<String> = app.query_strings("SELECT email AS v FROM members").into_iter().collect();
    assert!(!ids.contains("ivan@example.com"));
}
both!(team_users_refuse_other_key_types);
