//! Legal holds (e-Discovery key): a held member can be made inactive, never
//! removed, by any path, until every hold on them is released.

use crate::both;
use crate::helpers::{assert_error, assert_refused, event_of, key_get, key_post, Backend, TestApp};
use serde_json::{json, Value};

const CREATE: &str = "/v2/enterprise.hold.create";
const LIST: &str = "/v2/enterprise.hold.list";
const RELEASE: &str = "/v2/enterprise.hold.release";
const USER_UPDATE: &str = "/v2/team.user.update";
const USER_REMOVE: &str = "/v2/team.user.remove";

const HOLD_ACTIVE: &str = "HOLD_STATUS_ACTIVE";
const HOLD_RELEASED: &str = "HOLD_STATUS_RELEASED";

// ------------------------------------------------------------------ helpers

#[track_caller]
fn create_hold(app: &TestApp, secret: &str, user_ids: &[&str], reason: &str) -> Value {
    let r = key_post(app, secret, CREATE, &json!({"user_ids": user_ids, "reason": reason}));
    r.ok()["hold"].clone()
}

fn member_status(app: &TestApp, id: &str) -> String {
    app.query_strings(&format!("SELECT status AS v FROM members WHERE id = '{id}'")).pop().expect("the member")
}

fn hold_uids(body: &Value) -> Vec<String> {
    body["holds"].as_array().unwrap().iter().map(|h| h["uid"].as_str().unwrap().to_string()).collect()
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

// ------------------------------------------------------------------ create and list

fn hold_create_and_list(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, key) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (m1, _) = app.add_member(&app.tenant_id, "MEMBER");
    let (m2, _) = app.add_member(&app.tenant_id, "ADMIN");

    let r = key_post(&app, &key, CREATE, &json!({"user_ids": [m2, m1, m2], "reason": "  Litigation 2024-17  "}));
    let h1 = r.ok()["hold"].clone();
    let uid1 = h1["uid"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&uid1).is_ok(), "{h1}");
    assert_eq!(h1["status"], HOLD_ACTIVE);
    assert_eq!(h1["user_ids"], json!(sorted(&[&m1, &m2])), "duplicates collapse: {h1}");
    assert_eq!(h1["reason"], "Litigation 2024-17");
    assert_eq!(h1["created_by"], json!(key_id));
    assert_eq!(h1["released_at"], Value::Null);
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "enterprise.hold.create");
    assert_eq!(e["outcome"], "ALLOWED");
    assert_eq!(e["actor"], json!({"type": "API_KEY", "id": key_id}));
    assert_eq!(e["metadata"]["hold_uid"], json!(uid1));
    assert_eq!(e["metadata"]["user_ids"], json!(sorted(&[&m1, &m2])));

    let h2 = create_hold(&app, &key, &[&m1], "Regulator inquiry");
    let uid2 = h2["uid"].as_str().unwrap().to_string();
    let r = key_post(&app, &key, RELEASE, &json!({"uid": uid2, "reason": "inquiry closed"}));
    let released = r.ok()["hold"].clone();
    assert_eq!(released["status"], HOLD_RELEASED);
    assert_eq!(released["released_by"], json!(key_id));
    assert_eq!(released["release_reason"], "inquiry closed");
    assert!(released["released_at"].is_string(), "{released}");
    let e = event_of(&app, &r);
    assert_eq!(e["operation"], "enterprise.hold.release");
    assert_eq!(e["metadata"]["hold_uid"], json!(uid2));

    let body = key_get(&app, &key, LIST).ok().clone();
    assert_eq!(body["total"], 2);
    let mut all = hold_uids(&body);
    all.sort();
    let mut want = vec![uid1.clone(), uid2.clone()];
    want.sort();
    assert_eq!(all, want);

    let body = key_get(&app, &key, &format!("{LIST}?status={HOLD_ACTIVE}")).ok().clone();
    assert_eq!(hold_uids(&body), vec![uid1.clone()]);
    assert_eq!(body["total"], 1);
    assert_eq!(body["holds"][0]["user_ids"], json!(sorted(&[&m1, &m2])));
    assert_eq!(body["holds"][0]["status"], HOLD_ACTIVE);

    let body = key_get(&app, &key, &format!("{LIST}?status={HOLD_RELEASED}")).ok().clone();
    assert_eq!(hold_uids(&body), vec![uid2.clone()]);
    assert_eq!(body["total"], 1);
    assert_eq!(body["holds"][0]["status"], HOLD_RELEASED);

    let body = key_get(&app, &key, &format!("{LIST}?limit=1&offset=1")).ok().clone();
    assert_eq!(body["total"], 2);
    assert_eq!(body["holds"].as_array().unwrap().len(), 1);

    for bad in ["status=ACTIVE", "status=HOLD_STATUS_BOGUS", "limit=0", "offset=-1", "user_id=x"] {
        let r = key_get(&app, &key, &format!("{LIST}?{bad}"));
        assert_error(&app, &r, 400, "invalid_argument");
    }
    // Bad bodies create nothing.
    for body in [
        json!({"user_ids": [], "reason": "x"}),
        json!({"user_ids": [m1], "reason": "   "}),
        json!({"user_ids": [m1]}),
        json!({"user_ids": [m1], "reason": "x", "scope": "all"}),
    ] {
        let r = key_post(&app, &key, CREATE, &body);
        assert_error(&app, &r, 400, "invalid_argument");
    }
    assert_eq!(app.query_strings("SELECT uid AS v FROM legal_holds").len(), 2);
}
both!(hold_create_and_list);

// ------------------------------------------------------------------ removal blocked

fn held_member_cannot_be_removed_only_deactivated(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, hold_key) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (_, user_key) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let (m, _) = app.add_member(&app.tenant_id, "MEMBER");
    let (free, _) = app.add_member(&app.tenant_id, "MEMBER");
    let h1 = create_hold(&app, &hold_key, &[&m], "Case A");
    let h2 = create_hold(&app, &hold_key, &[&m], "Case B");

    let try_remove = |app: &TestApp| {
        let r = key_post(app, &user_key, USER_UPDATE, &json!({"team_user_id": m, "status": "USER_STATUS_REMOVED"}));
        assert_error(app, &r, 400, "failed_precondition");
        let r = key_post(app, &user_key, USER_REMOVE, &json!({"team_user_id": m}));
        assert_error(app, &r, 400, "failed_precondition");
    };
    try_remove(&app);
    assert_eq!(member_status(&app, &m), "USER_STATUS_ACTIVE");

    // Made inactive: allowed, and still not removable.
    let r = key_post(&app, &user_key, USER_UPDATE, &json!({"team_user_id": m, "status": "USER_STATUS_INACTIVE"}));
    assert_eq!(r.ok()["team_user"]["status"], "USER_STATUS_INACTIVE");
    try_remove(&app);
    assert_eq!(member_status(&app, &m), "USER_STATUS_INACTIVE");

    // A member outside the hold is removable.
    key_post(&app, &user_key, USER_REMOVE, &json!({"team_user_id": free})).ok();
    assert_eq!(member_status(&app, &free), "USER_STATUS_REMOVED");

    // One hold released, the other still holds.
    key_post(&app, &hold_key, RELEASE, &json!({"uid": h1["uid"]})).ok();
    try_remove(&app);
    assert_eq!(member_status(&app, &m), "USER_STATUS_INACTIVE");

    // Every hold released: removal works.
    key_post(&app, &hold_key, RELEASE, &json!({"uid": h2["uid"]})).ok();
    let r = key_post(&app, &user_key, USER_REMOVE, &json!({"team_user_id": m}));
    assert_eq!(r.ok()["team_user"]["status"], "USER_STATUS_REMOVED");
    assert_eq!(member_status(&app, &m), "USER_STATUS_REMOVED");
}
both!(held_member_cannot_be_removed_only_deactivated);

fn release_after_update_path_allows_removal(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, hold_key) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (_, user_key) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let (m, _) = app.add_member(&app.tenant_id, "AUDITOR");
    let h = create_hold(&app, &hold_key, &[&m], "Case C");
    let r = key_post(&app, &user_key, USER_UPDATE, &json!({"team_user_id": m, "status": "USER_STATUS_REMOVED"}));
    assert_error(&app, &r, 400, "failed_precondition");
    key_post(&app, &hold_key, RELEASE, &json!({"uid": h["uid"]})).ok();
    let r = key_post(&app, &user_key, USER_UPDATE, &json!({"team_user_id": m, "status": "USER_STATUS_REMOVED"}));
    assert_eq!(r.ok()["team_user"]["status"], "USER_STATUS_REMOVED");
    assert_eq!(member_status(&app, &m), "USER_STATUS_REMOVED");
}
both!(release_after_update_path_allows_removal);

// ------------------------------------------------------------------ release and not found

fn hold_release_twice_and_unknown_ids(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, key) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (m, _) = app.add_member(&app.tenant_id, "MEMBER");
    let h = create_hold(&app, &key, &[&m], "Case D");
    let uid = h["uid"].as_str().unwrap().to_string();

    let r = key_post(&app, &key, RELEASE, &json!({"uid": uid}));
    assert_eq!(r.ok()["hold"]["status"], HOLD_RELEASED);
    let released_at = r.body["hold"]["released_at"].clone();
    let r = key_post(&app, &key, RELEASE, &json!({"uid": uid, "reason": "again"}));
    assert_error(&app, &r, 400, "failed_precondition");
    let body = key_get(&app, &key, &format!("{LIST}?status={HOLD_RELEASED}")).ok().clone();
    assert_eq!(body["holds"][0]["released_at"], released_at);
    assert_eq!(body["holds"][0]["release_reason"], Value::Null);

    // An unknown member, or another tenant's, in user_ids: 404 and no hold at all.
    let (other, other_owner, other_token) = app.new_tenant("Globex");
    let (theirs, _) = app.add_member(&other, "MEMBER");
    let unknown = uuid::Uuid::new_v4().to_string();
    for ids in [vec![m.clone(), unknown.clone()], vec![theirs.clone()], vec![other_owner.clone(), m.clone()]] {
        let r = key_post(&app, &key, CREATE, &json!({"user_ids": ids, "reason": "Case E"}));
        assert_error(&app, &r, 404, "not_found");
    }
    assert_eq!(app.query_strings("SELECT uid AS v FROM legal_holds").len(), 1);
    assert_eq!(app.query_strings("SELECT member_id AS v FROM legal_hold_members").len(), 1);

    // Another tenant's hold is unknown here.
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &format!("Bearer {other_token}"))],
        &json!({"key_type": "KEY_TYPE_EDISCOVERY", "label": "globex legal"}),
    );
    let other_key = r.ok()["secret"].as_str().unwrap().to_string();
    let theirs_hold = create_hold(&app, &other_key, &[&theirs], "Globex case");
    let r = key_post(&app, &key, RELEASE, &json!({"uid": theirs_hold["uid"]}));
    assert_error(&app, &r, 404, "not_found");
    let r = key_post(&app, &key, RELEASE, &json!({"uid": uuid::Uuid::new_v4().to_string()}));
    assert_error(&app, &r, 404, "not_found");
    let mine = key_get(&app, &key, LIST).ok().clone();
    assert_eq!(hold_uids(&mine), vec![uid.clone()]);
    let theirs_list = key_get(&app, &other_key, &format!("{LIST}?status={HOLD_ACTIVE}")).ok().clone();
    assert_eq!(theirs_list["holds"][0]["uid"], theirs_hold["uid"]);
    assert_eq!(theirs_list["holds"][0]["status"], HOLD_ACTIVE);
}
both!(hold_release_twice_and_unknown_ids);

// ------------------------------------------------------------------ other callers

fn holds_refuse_other_key_types(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, key) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (m, _) = app.add_member(&app.tenant_id, "MEMBER");
    let h = create_hold(&app, &key, &[&m], "Case F");
    for kt in ["KEY_TYPE_SIEM", "KEY_TYPE_TEAM_USER_MGMT", "KEY_TYPE_TEAM_ASSET_AUDIT", "KEY_TYPE_TEAM_ASSET_MGMT"] {
        let (key_id, secret) = app.create_key(kt);
        let r = key_post(&app, &secret, CREATE, &json!({"user_ids": [m], "reason": "sneaky"}));
        let e = assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
        assert_eq!(e["key_id"], json!(key_id));
        let r = key_get(&app, &secret, LIST);
        assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
        let r = key_post(&app, &secret, RELEASE, &json!({"uid": h["uid"]}));
        assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
    }
    let r = app.owner_post(RELEASE, &json!({"uid": h["uid"]}));
    assert_refused(&app, &r, 401, "unauthenticated", "missing");
    assert_eq!(app.query_strings("SELECT uid AS v FROM legal_holds").len(), 1);
    let body = key_get(&app, &key, &format!("{LIST}?status={HOLD_ACTIVE}")).ok().clone();
    assert_eq!(hold_uids(&body), vec![h["uid"].as_str().unwrap().to_string()]);
}
both!(holds_refuse_other_key_types);
