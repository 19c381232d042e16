//! The team_assets surface: the platform's share ingestion (ingest token),
//! the asset keys' list with its filters, and re-scoping.

use crate::both;
use crate::helpers::{assert_error, assert_refused, event_of, key_get, key_post, Backend, Resp, TestApp};
use serde_json::{json, Value};

const TOKEN: &str = "ingest-token-for-tests-0123456789abcdef";
const UPSERT: &str = "/internal/v2/team.asset.upsert";
const DELETE: &str = "/internal/v2/team.asset.delete";
const LIST: &str = "/v2/team.asset.list";
const SCOPE: &str = "/v2/team.asset.update_scope";

// ------------------------------------------------------------------ helpers

fn spawn(b: Backend) -> TestApp {
    TestApp::spawn_with(b, &[("KEYWARD_INGEST_TOKEN", TOKEN)])
}

fn ingest(app: &TestApp, path: &str, body: &Value) -> Resp {
    app.post(path, &[("Authorization", &format!("Bearer {TOKEN}"))], body)
}

fn share(tenant: &str, asset_type: &str, asset_id: &str, name: &str, owner: &str, at: &str, perm: &str) -> Value {
    json!({"tenant_id": tenant, "asset_type": asset_type, "asset_id": asset_id, "asset_name": name,
           "owner_id": owner, "shared_at": at, "permission": perm})
}

#[track_caller]
fn upsert(app: &TestApp, body: &Value) -> Value {
    ingest(app, UPSERT, body).ok()["asset"].clone()
}

/// A key created by the owner with a chosen label: (key id, secret).
fn labelled_key(app: &TestApp, key_type: &str, label: &str) -> (String, String) {
    let r = app.owner_post("/v2/enterprise.key.create", &json!({"key_type": key_type, "label": label}));
    let b = r.ok();
    (b["key"]["key_id"].as_str().unwrap().to_string(), b["secret"].as_str().unwrap().to_string())
}

fn asset_rows(app: &TestApp) -> Vec<String> {
    app.query_strings("SELECT uid AS v FROM assets")
}

fn db_permission(app: &TestApp, uid: &str) -> String {
    app.query_strings(&format!("SELECT permission AS v FROM assets WHERE uid = '{uid}'")).pop().expect("the asset")
}

fn names(body: &Value) -> Vec<String> {
    body["assets"].as_array().unwrap().iter().map(|a| a["asset_name"].as_str().unwrap().to_string()).collect()
}

// ------------------------------------------------------------------ ingestion auth

fn ingestion_requires_the_ingest_token(b: Backend) {
    let app = spawn(b);
    let body = share(
        &app.tenant_id,
        "ASSET_TYPE_FILE",
        "file-1",
        "Budget.xlsx",
        "u1",
        "2024-05-01T10:00:00Z",
        "SHARE_SCOPE_TEAM_ONLY",
    );
    let (_, mgmt) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let wrong = format!("Bearer {}x", TOKEN);
    let short = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let owner = format!("Bearer {}", app.owner_token);
    let basic = format!("Basic {TOKEN}");
    for (headers, reason) in [
        (vec![], "missing"),
        (vec![("Authorization", wrong.as_str())], "bad_ingest_token"),
        (vec![("Authorization", short.as_str())], "bad_ingest_token"),
        (vec![("Authorization", owner.as_str())], "bad_ingest_token"),
        (vec![("Authorization", basic.as_str())], "missing"),
        (vec![("X-API-Key", mgmt.as_str())], "missing"),
        (vec![("X-Ingest-Token", TOKEN)], "missing"),
    ] {
        for path in [UPSERT, DELETE] {
            let r = app.post(path, &headers, &body);
            let e = assert_refused(&app, &r, 401, "unauthenticated", reason);
            assert_eq!(e["actor"]["type"], "SERVICE", "{e}");
            assert_eq!(e["status_code"], 401);
            assert!(!r.text.contains(TOKEN));
        }
    }
    assert!(asset_rows(&app).is_empty());

    // The right token: registered, audited as the platform in the tenant's chain.
    let r = ingest(&app, UPSERT, &body);
    let a = r.ok()["asset"].clone();
    assert_eq!(a["asset_type"], "ASSET_TYPE_FILE");
    assert_eq!(a["asset_id"], "file-1");
    assert_eq!(a["asset_name"], "Budget.xlsx");
    assert_eq!(a["owner_id"], "u1");
    assert_eq!(a["permission"], "SHARE_SCOPE_TEAM_ONLY");
    assert_eq!(a["shared_at"], "2024-05-01T10:00:00Z");
    assert_eq!(a["asset_exists"], true);
    let uid = a["uid"].as_str().unwrap().to_string();
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "team.asset.upsert");
    assert_eq!(e["outcome"], "ALLOWED");
    assert_eq!(e["actor"]["type"], "SERVICE");
    assert_eq!(e["tenant_id"], json!(app.tenant_id));
    assert_eq!(e["metadata"]["share_uid"], json!(uid));
    assert_eq!(e["metadata"]["created"], true);
    assert!(!serde_json::to_string(&e).unwrap().contains(TOKEN));
    assert!(!app.dump_database().contains(TOKEN));

    // A wrong token on delete changes nothing.
    let r = app.post(
        DELETE,
        &[("Authorization", &wrong)],
        &json!({"tenant_id": app.tenant_id, "asset_type": "ASSET_TYPE_FILE", "asset_id": "file-1"}),
    );
    assert_refused(&app, &r, 401, "unauthenticated", "bad_ingest_token");
    let listed = key_get(&app, &mgmt, LIST).ok().clone();
    assert_eq!(listed["assets"][0]["asset_exists"], true);
}
both!(ingestion_requires_the_ingest_token);

fn ingestion_is_closed_without_a_configured_token(b: Backend) {
    let app = TestApp::spawn(b);
    let body = share(&app.tenant_id, "ASSET_TYPE_FILE", "f", "F", "u1", "2024-05-01T10:00:00Z", "SHARE_SCOPE_OWNER");
    for auth in [format!("Bearer {TOKEN}"), "Bearer ".to_string(), "Bearer".to_string()] {
        let r = app.post(UPSERT, &[("Authorization", &auth)], &body);
        assert_eq!(r.status, 401, "{auth}: {}", r.text);
        assert_eq!(r.code().as_deref(), Some("unauthenticated"));
        assert_eq!(event_of(&app, &r)["actor"]["type"], "SERVICE");
    }
    assert!(asset_rows(&app).is_empty());
}
both!(ingestion_is_closed_without_a_configured_token);

fn ingestion_for_an_unknown_tenant_is_not_found(b: Backend) {
    let app = spawn(b);
    let ghost = uuid::Uuid::new_v4().to_string();
    let r = ingest(
        &app,
        UPSERT,
        &share(&ghost, "ASSET_TYPE_SESSION", "s-1", "Chat", "u1", "2024-05-01T10:00:00Z", "SHARE_SCOPE_PUBLIC"),
    );
    let e = assert_error(&app, &r, 404, "not_found");
    assert_eq!(e["actor"]["type"], "SERVICE");
    assert_eq!(e["tenant_id"], Value::Null, "an unknown tenant gets no chain: {e}");
    let r = ingest(&app, DELETE, &json!({"tenant_id": ghost, "asset_type": "ASSET_TYPE_SESSION", "asset_id": "s-1"}));
    assert_error(&app, &r, 404, "not_found");
    assert!(asset_rows(&app).is_empty());
    assert!(app
        .query_strings(&format!("SELECT chain_id AS v FROM audit_chains WHERE chain_id = '{ghost}'"))
        .is_empty());

    // Unknown asset in a known tenant; bad bodies.
    let r = ingest(
        &app,
        DELETE,
        &json!({"tenant_id": app.tenant_id, "asset_type": "ASSET_TYPE_SESSION", "asset_id": "nope"}),
    );
    let e = assert_error(&app, &r, 404, "not_found");
    assert_eq!(e["tenant_id"], json!(app.tenant_id));
    let t = app.tenant_id.clone();
    for body in [
        share(&t, "ASSET_TYPE_VIDEO", "x", "X", "u1", "2024-05-01T10:00:00Z", "SHARE_SCOPE_PUBLIC"),
        share(&t, "ASSET_TYPE_FILE", "x", "X", "u1", "2024-05-01T10:00:00Z", "SHARE_SCOPE_WORLD"),
        share(&t, "ASSET_TYPE_FILE", "x", "X", "u1", "yesterday", "SHARE_SCOPE_PUBLIC"),
        share(&t, "ASSET_TYPE_FILE", "", "X", "u1", "2024-05-01T10:00:00Z", "SHARE_SCOPE_PUBLIC"),
        share(&t, "ASSET_TYPE_FILE", "x", "bad\nname", "u1", "2024-05-01T10:00:00Z", "SHARE_SCOPE_PUBLIC"),
        json!({"tenant_id": t, "asset_type": "ASSET_TYPE_FILE", "asset_id": "x"}),
    ] {
        let r = ingest(&app, UPSERT, &body);
        assert_error(&app, &r, 400, "invalid_argument");
    }
    assert!(asset_rows(&app).is_empty());
}
both!(ingestion_for_an_unknown_tenant_is_not_found);

// ------------------------------------------------------------------ idempotent upsert

fn upsert_is_idempotent_on_tenant_type_and_asset_id(b: Backend) {
    let app = spawn(b);
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let t = app.tenant_id.clone();
    let first = upsert(
        &app,
        &share(&t, "ASSET_TYPE_DOCUMENT", "doc-9", "Draft", "u1", "2024-01-01T00:00:00Z", "SHARE_SCOPE_OWNER"),
    );
    let uid = first["uid"].clone();

    let mut body =
        share(&t, "ASSET_TYPE_DOCUMENT", "doc-9", "Final", "u2", "2024-02-02T12:30:00Z", "SHARE_SCOPE_PUBLIC");
    body["session_id"] = json!("sess-4");
    let r = ingest(&app, UPSERT, &body);
    let second = r.ok()["asset"].clone();
    assert_eq!(second["uid"], uid, "same share, same uid");
    assert_eq!(second["asset_name"], "Final");
    assert_eq!(second["owner_id"], "u2");
    assert_eq!(second["permission"], "SHARE_SCOPE_PUBLIC");
    assert_eq!(second["shared_at"], "2024-02-02T12:30:00Z");
    assert_eq!(second["session_id"], "sess-4");
    assert_eq!(event_of(&app, &r)["metadata"]["created"], false);
    assert_eq!(asset_rows(&app).len(), 1);

    let listed = key_get(&app, &audit, LIST).ok().clone();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["assets"][0]["uid"], uid);
    assert_eq!(listed["assets"][0]["asset_name"], "Final");
    assert_eq!(listed["assets"][0]["permission"], "SHARE_SCOPE_PUBLIC");

    // Another type, or another tenant, is another share.
    let other_type = upsert(
        &app,
        &share(&t, "ASSET_TYPE_FILE", "doc-9", "Final", "u2", "2024-02-02T12:30:00Z", "SHARE_SCOPE_PUBLIC"),
    );
    assert_ne!(other_type["uid"], uid);
    let (globex, _, _) = app.new_tenant("Globex");
    let other_tenant = upsert(
        &app,
        &share(&globex, "ASSET_TYPE_DOCUMENT", "doc-9", "Theirs", "u9", "2024-02-02T12:30:00Z", "SHARE_SCOPE_OWNER"),
    );
    assert_ne!(other_tenant["uid"], uid);
    assert_eq!(asset_rows(&app).len(), 3);
    let listed = key_get(&app, &audit, LIST).ok().clone();
    assert_eq!(listed["total"], 2, "another tenant's share never shows: {listed}");
    assert!(!names(&listed).contains(&"Theirs".to_string()));
}
both!(upsert_is_idempotent_on_tenant_type_and_asset_id);

// ------------------------------------------------------------------ list filters

fn asset_list_filters_and_pages_for_both_asset_keys(b: Backend) {
    let app = spawn(b);
    let t = app.tenant_id.clone();
    let seed = [
        ("ASSET_TYPE_SESSION", "a1", "Quarterly report", "u1", "2024-01-10T10:00:00Z", "SHARE_SCOPE_TEAM_ONLY"),
        ("ASSET_TYPE_FILE", "a2", "Quarterly plan", "u2", "2024-02-10T10:00:00Z", "SHARE_SCOPE_PUBLIC"),
        ("ASSET_TYPE_DOCUMENT", "a3", "100% done", "u1", "2024-03-10T10:00:00Z", "SHARE_SCOPE_OWNER"),
        ("ASSET_TYPE_SLIDES", "a4", "100x plan", "u2", "2024-04-10T10:00:00Z", "SHARE_SCOPE_PUBLIC"),
        ("ASSET_TYPE_WEBSITE", "a5", "a_b site", "u3", "2024-05-10T10:00:00Z", "SHARE_SCOPE_TEAM_ONLY"),
        ("ASSET_TYPE_FILE", "a6", "axb site", "u3", "2024-06-10T10:00:00Z", "SHARE_SCOPE_OWNER"),
        ("ASSET_TYPE_FILE", "a7", "report Quarterly", "u1", "2024-07-10T10:00:00Z", "SHARE_SCOPE_TEAM_ONLY"),
    ];
    for (ty, id, name, owner, at, perm) in seed {
        upsert(&app, &share(&t, ty, id, name, owner, at, perm));
    }
    // Another tenant's look-alike never shows.
    let (globex, _, _) = app.new_tenant("Globex");
    upsert(
        &app,
        &share(&globex, "ASSET_TYPE_FILE", "a2", "Quarterly plan", "u2", "2024-02-10T10:00:00Z", "SHARE_SCOPE_PUBLIC"),
    );

    let ids = |body: &Value| -> Vec<String> {
        body["assets"].as_array().unwrap().iter().map(|a| a["asset_id"].as_str().unwrap().to_string()).collect()
    };
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let (_, mgmt) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    for key in [&audit, &mgmt] {
        let r = key_get(&app, key, LIST);
        let body = r.ok().clone();
        // Newest share first.
        assert_eq!(ids(&body), ["a7", "a6", "a5", "a4", "a3", "a2", "a1"]);
        assert_eq!(body["total"], 7);
        assert_eq!(body["limit"], 100);
        assert_eq!(body["offset"], 0);
        let e = event_of(&app, &r);
        assert_eq!(e["operation"], "team.asset.list");
        assert_eq!(e["outcome"], "ALLOWED");

        let cases: &[(&str, &[&str])] = &[
            ("asset_type=ASSET_TYPE_FILE", &["a7", "a6", "a2"]),
            ("asset_type=ASSET_TYPE_WEBSITE", &["a5"]),
            ("keyword=Quarterly", &["a2", "a1"]),
            ("keyword=Quarterly%20r", &["a1"]),
            ("keyword=report", &["a7"]),
            ("keyword=100%25", &["a3"]),
            ("keyword=100", &["a4", "a3"]),
            ("keyword=a_b", &["a5"]),
            ("keyword=a_", &["a5"]),
            ("keyword=%25", &[]),
            ("keyword=_", &[]),
            ("keyword=%25done", &[]),
            ("keyword=plan", &[]),
            ("owner_id=u1", &["a7", "a3", "a1"]),
            ("owner_id=u", &[]),
            ("permission=SHARE_SCOPE_PUBLIC", &["a4", "a2"]),
            ("permission=SHARE_SCOPE_OWNER", &["a6", "a3"]),
            ("start_time=2024-05-01T00:00:00Z", &["a7", "a6", "a5"]),
            ("start_time=2024-03-10T10:00:00Z", &["a7", "a6", "a5", "a4", "a3"]),
            ("end_time=2024-03-01T00:00:00Z", &["a2", "a1"]),
            ("start_time=2024-02-01T00:00:00Z&end_time=2024-05-01T00:00:00Z", &["a4", "a3", "a2"]),
            ("asset_type=ASSET_TYPE_FILE&owner_id=u3", &["a6"]),
            ("asset_type=ASSET_TYPE_FILE&permission=SHARE_SCOPE_TEAM_ONLY&owner_id=u1", &["a7"]),
            ("keyword=Quarterly&permission=SHARE_SCOPE_PUBLIC", &["a2"]),
        ];
        for (q, want) in cases {
            let r = key_get(&app, key, &format!("{LIST}?{q}"));
            let body = r.ok().clone();
            assert_eq!(ids(&body), *want, "{q}");
            assert_eq!(body["total"], json!(want.len()), "{q}");
        }

        // Offset pagination with the total on every page.
        let mut seen = Vec::new();
        for offset in [0, 3, 6] {
            let body = key_get(&app, key, &format!("{LIST}?limit=3&offset={offset}")).ok().clone();
            assert_eq!(body["total"], 7);
            assert_eq!(body["limit"], 3);
            assert_eq!(body["offset"], offset);
            seen.extend(ids(&body));
        }
        assert_eq!(seen, ["a7", "a6", "a5", "a4", "a3", "a2", "a1"]);
        let body = key_get(&app, key, &format!("{LIST}?asset_type=ASSET_TYPE_FILE&limit=2&offset=2")).ok().clone();
        assert_eq!(ids(&body), ["a2"]);
        assert_eq!(body["total"], 3);
        let body = key_get(&app, key, &format!("{LIST}?offset=50")).ok().clone();
        assert!(ids(&body).is_empty());
        assert_eq!(body["total"], 7);

        for bad in [
            "permission=SHARE_SCOPE_WORLD",
            "permission=PUBLIC",
            "asset_type=ASSET_TYPE_VIDEO",
            "start_time=2024-05-01",
            "end_time=yesterday",
            "start_time=2024-06-01T00:00:00Z&end_time=2024-05-01T00:00:00Z",
            "limit=0",
            "limit=1001",
            "offset=-1",
            "owner=u1",
        ] {
            let r = key_get(&app, key, &format!("{LIST}?{bad}"));
            assert_error(&app, &r, 400, "invalid_argument");
        }
    }
}
both!(asset_list_filters_and_pages_for_both_asset_keys);

// ------------------------------------------------------------------ update_scope

fn update_scope_with_the_management_key(b: Backend) {
    let app = spawn(b);
    let t = app.tenant_id.clone();
    let a = upsert(
        &app,
        &share(&t, "ASSET_TYPE_SLIDES", "deck-1", "Roadmap", "u1", "2024-03-01T09:00:00Z", "SHARE_SCOPE_PUBLIC"),
    );
    let uid = a["uid"].as_str().unwrap().to_string();
    let (mgmt_id, mgmt) = labelled_key(&app, "KEY_TYPE_TEAM_ASSET_MGMT", "DLP remediation bot");
    let (audit_id, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");

    // The audit key reads but may not re-scope.
    let r = key_post(&app, &audit, SCOPE, &json!({"share_uid": uid, "permission": "SHARE_SCOPE_OWNER", "note": "n"}));
    let e = assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
    assert_eq!(e["key_id"], json!(audit_id));
    assert_eq!(db_permission(&app, &uid), "SHARE_SCOPE_PUBLIC");

    let r = key_post(
        &app,
        &mgmt,
        SCOPE,
        &json!({"share_uid": uid, "permission": "SHARE_SCOPE_TEAM_ONLY", "note": "Public link to internal roadmap"}),
    );
    let after = r.ok()["asset"].clone();
    assert_eq!(after["uid"], json!(uid));
    assert_eq!(after["permission"], "SHARE_SCOPE_TEAM_ONLY");
    assert_eq!(after["asset_name"], "Roadmap");
    assert_eq!(db_permission(&app, &uid), "SHARE_SCOPE_TEAM_ONLY");
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "team.asset.update_scope");
    assert_eq!(e["outcome"], "ALLOWED");
    assert_eq!(e["actor"], json!({"type": "API_KEY", "id": mgmt_id}));
    assert_eq!(e["metadata"]["share_uid"], json!(uid));
    assert_eq!(e["metadata"]["note"], "Public link to internal roadmap");
    assert_eq!(e["metadata"]["key_label"], "DLP remediation bot");
    assert_eq!(e["metadata"]["old_scope"], "SHARE_SCOPE_PUBLIC");
    assert_eq!(e["metadata"]["new_scope"], "SHARE_SCOPE_TEAM_ONLY");
    let listed = key_get(&app, &audit, &format!("{LIST}?permission=SHARE_SCOPE_TEAM_ONLY")).ok().clone();
    assert_eq!(listed["assets"][0]["uid"], json!(uid));

    let r =
        key_post(&app, &mgmt, SCOPE, &json!({"share_uid": uid, "permission": "SHARE_SCOPE_OWNER", "note": "tighter"}));
    r.ok();
    let e = event_of(&app, &r);
    assert_eq!(e["metadata"]["old_scope"], "SHARE_SCOPE_TEAM_ONLY");
    assert_eq!(e["metadata"]["new_scope"], "SHARE_SCOPE_OWNER");

    // Bad requests change nothing.
    for body in [
        json!({"share_uid": uid, "permission": "SHARE_SCOPE_WORLD", "note": "n"}),
        json!({"share_uid": uid, "permission": "public", "note": "n"}),
        json!({"share_uid": uid, "permission": "SHARE_SCOPE_PUBLIC", "note": "   "}),
        json!({"share_uid": uid, "permission": "SHARE_SCOPE_PUBLIC"}),
        json!({"share_uid": uid, "permission": "SHARE_SCOPE_PUBLIC", "note": "x".repeat(1001)}),
        json!({"share_uid": uid, "permission": "SHARE_SCOPE_PUBLIC", "note": "n", "force": true}),
    ] {
        let r = key_post(&app, &mgmt, SCOPE, &body);
        assert_error(&app, &r, 400, "invalid_argument");
    }
    assert_eq!(db_permission(&app, &uid), "SHARE_SCOPE_OWNER");

    // Unknown and other tenants' shares are not found.
    let r = key_post(
        &app,
        &mgmt,
        SCOPE,
        &json!({"share_uid": uuid::Uuid::new_v4().to_string(), "permission": "SHARE_SCOPE_PUBLIC", "note": "n"}),
    );
    assert_error(&app, &r, 404, "not_found");
    let (globex, _, _) = app.new_tenant("Globex");
    let theirs = upsert(
        &app,
        &share(&globex, "ASSET_TYPE_FILE", "f", "Theirs", "u9", "2024-03-01T09:00:00Z", "SHARE_SCOPE_OWNER"),
    );
    let theirs_uid = theirs["uid"].as_str().unwrap().to_string();
    let r = key_post(
        &app,
        &mgmt,
        SCOPE,
        &json!({"share_uid": theirs_uid, "permission": "SHARE_SCOPE_PUBLIC", "note": "n"}),
    );
    assert_error(&app, &r, 404, "not_found");
    assert_eq!(db_permission(&app, &theirs_uid), "SHARE_SCOPE_OWNER");
}
both!(update_scope_with_the_management_key);

fn deleted_asset_stays_listed_and_cannot_be_rescoped(b: Backend) {
    let app = spawn(b);
    let t = app.tenant_id.clone();
    let (_, mgmt) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let a = upsert(
        &app,
        &share(&t, "ASSET_TYPE_WEBSITE", "site-3", "Landing", "u1", "2024-03-01T09:00:00Z", "SHARE_SCOPE_PUBLIC"),
    );
    let uid = a["uid"].as_str().unwrap().to_string();
    upsert(
        &app,
        &share(&t, "ASSET_TYPE_WEBSITE", "site-4", "Other", "u1", "2024-03-02T09:00:00Z", "SHARE_SCOPE_PUBLIC"),
    );

    let r = ingest(&app, DELETE, &json!({"tenant_id": t, "asset_type": "ASSET_TYPE_WEBSITE", "asset_id": "site-3"}));
    let gone = r.ok()["asset"].clone();
    assert_eq!(gone["uid"], json!(uid));
    assert_eq!(gone["asset_exists"], false);
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "team.asset.delete");
    assert_eq!(e["outcome"], "ALLOWED");
    assert_eq!(e["actor"]["type"], "SERVICE");
    assert_eq!(e["tenant_id"], json!(t));
    assert_eq!(e["metadata"]["share_uid"], json!(uid));

    // The row stays, flagged.
    let body = key_get(&app, &mgmt, LIST).ok().clone();
    assert_eq!(body["total"], 2);
    let row = body["assets"].as_array().unwrap().iter().find(|a| a["uid"] == json!(uid)).expect("still listed").clone();
    assert_eq!(row["asset_exists"], false);
    assert_eq!(row["permission"], "SHARE_SCOPE_PUBLIC");
    let other = body["assets"].as_array().unwrap().iter().find(|a| a["uid"] != json!(uid)).unwrap().clone();
    assert_eq!(other["asset_exists"], true);

    let r = key_post(&app, &mgmt, SCOPE, &json!({"share_uid": uid, "permission": "SHARE_SCOPE_OWNER", "note": "lock"}));
    assert_error(&app, &r, 400, "failed_precondition");
    assert_eq!(db_permission(&app, &uid), "SHARE_SCOPE_PUBLIC");

    // Deleting twice still answers the (deleted) share.
    let r = ingest(&app, DELETE, &json!({"tenant_id": t, "asset_type": "ASSET_TYPE_WEBSITE", "asset_id": "site-3"}));
    assert_eq!(r.ok()["asset"]["asset_exists"], false);
    assert_eq!(asset_rows(&app).len(), 2);
}
both!(deleted_asset_stays_listed_and_cannot_be_rescoped);

// ------------------------------------------------------------------ other callers

fn asset_surface_refuses_other_key_types(b: Backend) {
    let app = spawn(b);
    let t = app.tenant_id.clone();
    let a = upsert(
        &app,
        &share(&t, "ASSET_TYPE_FILE", "f-1", "Secret plan", "u1", "2024-03-01T09:00:00Z", "SHARE_SCOPE_PUBLIC"),
    );
    let uid = a["uid"].clone();
    let scope = json!({"share_uid": uid, "permission": "SHARE_SCOPE_OWNER", "note": "n"});
    for kt in ["KEY_TYPE_EDISCOVERY", "KEY_TYPE_SIEM", "KEY_TYPE_TEAM_USER_MGMT"] {
        let (key_id, secret) = app.create_key(kt);
        let r = key_get(&app, &secret, LIST);
        let e = assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
        assert_eq!(e["key_id"], json!(key_id));
        assert!(!r.text.contains("Secret plan"));
        let r = key_post(&app, &secret, SCOPE, &scope);
        assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
    }
    // No key, or the console: refused.
    let r = app.get(LIST, &[]);
    assert_refused(&app, &r, 401, "unauthenticated", "missing");
    let r = app.owner_post(SCOPE, &scope);
    assert_refused(&app, &r, 401, "unauthenticated", "missing");
    // The ingest token is no key.
    let r = app.post(SCOPE, &[("Authorization", &format!("Bearer {TOKEN}"))], &scope);
    assert_refused(&app, &r, 401, "unauthenticated", "missing");
    assert_eq!(db_permission(&app, uid.as_str().unwrap()), "SHARE_SCOPE_PUBLIC");
}
both!(asset_surface_refuses_other_key_types);

/// The two backends must answer the same query alike: a keyword search is a
/// case-insensitive prefix (SQLite's LIKE already is; PostgreSQL's is not).
fn asset_keyword_prefix_ignores_case_on_both_backends(b: Backend) {
    let app = spawn(b);
    let t = app.tenant_id.clone();
    upsert(
        &app,
        &share(&t, "ASSET_TYPE_FILE", "q1", "Quarterly Report", "u1", "2024-01-10T10:00:00Z", "SHARE_SCOPE_TEAM_ONLY"),
    );
    upsert(
        &app,
        &share(&t, "ASSET_TYPE_FILE", "q2", "quarterly plan", "u1", "2024-02-10T10:00:00Z", "SHARE_SCOPE_TEAM_ONLY"),
    );
    upsert(&app, &share(&t, "ASSET_TYPE_FILE", "q3", "Budget", "u1", "2024-03-10T10:00:00Z", "SHARE_SCOPE_TEAM_ONLY"));
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    for kw in ["quarterly", "Quarterly", "QUARTERLY", "qUaRt"] {
        let body = key_get(&app, &audit, &format!("{LIST}?keyword={kw}")).ok().clone();
        assert_eq!(names(&body), ["quarterly plan", "Quarterly Report"], "keyword={kw} on {:?}", app.backend);
        assert_eq!(body["total"], 2, "keyword={kw}");
    }
}
both!(asset_keyword_prefix_ignores_case_on_both_backends);
