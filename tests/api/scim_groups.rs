//! SCIM Groups at /scim/v2/Groups and the console roles an owner maps them
//! to: Okta's and Entra ID's group-push sequences replayed step by step, each
//! step checked through a real console request (whoami) as the member; the
//! owner never granted or taken; direct roles coming back; tenant isolation;
//! the audit events naming group, member, old and new role; hostile inputs.

use crate::both;
use crate::helpers::{assert_error, assert_refused, event_of, Backend, Resp, TestApp};
use serde_json::{json, Value};

const SCIM_JSON: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// A SCIM client of one tenant, sending its User Management key as IDPs do.
struct Scim<'a> {
    app: &'a TestApp,
    auth: String,
}

impl<'a> Scim<'a> {
    fn new(app: &'a TestApp) -> Scim<'a> {
        let (_, secret) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
        Scim { app, auth: format!("Bearer {secret}") }
    }

    /// A client of another tenant, with a key its owner created.
    fn of_tenant(app: &'a TestApp, owner_token: &str) -> Scim<'a> {
        let r = app.post(
            "/v2/enterprise.key.create",
            &[("Authorization", &format!("Bearer {owner_token}"))],
            &json!({"key_type": "KEY_TYPE_TEAM_USER_MGMT", "label": "idp"}),
        );
        Scim { app, auth: format!("Bearer {}", r.ok()["secret"].as_str().unwrap()) }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let text = body.map(Value::to_string);
        self.raw(method, path, text.as_deref())
    }

    fn raw(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let mut headers = vec![("Authorization", self.auth.as_str()), ("Accept", SCIM_JSON)];
        if body.is_some() {
            headers.push(("Content-Type", "application/scim+json; charset=utf-8"));
        }
        let r = self.app.request(method, &format!("/scim/v2{path}"), &headers, body);
        assert!(r.status < 500, "{method} {path}: {} {}", r.status, r.text);
        if r.status != 204 {
            let ct = r.header("content-type").unwrap_or_default();
            assert!(ct.starts_with(SCIM_JSON), "content type {ct:?} for {} {}", r.status, r.text);
        }
        r
    }

    fn patch(&self, id: &str, ops: Value) -> Resp {
        self.call("PATCH", &format!("/Groups/{id}"), Some(&json!({"schemas": [PATCH_SCHEMA], "Operations": ops})))
    }

    fn filter(&self, filter: &str, extra: &str) -> Resp {
        let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        self.call("GET", &format!("/Groups?filter={encoded}{extra}"), None)
    }

    #[track_caller]
    fn user(&self, user_name: &str) -> String {
        let r = self.call(
            "POST",
            "/Users",
            Some(&json!({"schemas": [USER_SCHEMA], "userName": user_name,
                         "emails": [{"value": user_name, "primary": true}], "active": true})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    #[track_caller]
    fn group(&self, display_name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let r = self.call(
            "POST",
            "/Groups",
            Some(&json!({"schemas": [GROUP_SCHEMA], "displayName": display_name, "members": members})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }
}

/// The member's role as the console sees it on its next request.
#[track_caller]
fn console_role(app: &TestApp, member: &str) -> String {
    let token = app.token(&app.tenant_id, member);
    let r = app.get("/v2/auth.whoami", &[("Authorization", &format!("Bearer {token}"))]);
    r.ok()["caller"]["role"].as_str().unwrap().to_string()
}

#[track_caller]
fn map(app: &TestApp, body: Value) -> Resp {
    let r = app.owner_post("/v2/team.role_mapping.update", &body);
    r.ok();
    r
}

#[track_caller]
fn assert_scim_error(r: &Resp, status: u16, scim_type: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([ERROR_SCHEMA]), "{}", r.text);
    assert_eq!(r.body["status"], json!(status.to_string()), "{}", r.text);
    assert_eq!(r.body["scimType"], json!(scim_type), "{}", r.text);
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        group["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// The role changes an answer's event records.
#[track_caller]
fn role_changes(app: &TestApp, r: &Resp) -> Vec<Value> {
    event_of(app, r)["metadata"]["role_changes"].as_array().cloned().unwrap_or_default()
}

fn change(member: &str, group: &str, name: &str, old: &str, new: &str) -> Value {
    json!({"member_id": member, "group_id": group, "group": name, "old_role": old, "new_role": new})
}

// ------------------------------------------------------------------ Okta

/// Okta's group push: POST /Groups with members, PATCH add and remove
/// (`members[value eq "…"]`), PUT on rename, a no-path replace, DELETE.
fn okta_group_push(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let ann = scim.user("ann@acme.example");
    let bob = scim.user("bob@acme.example");
    // A mapping by name, made before the group exists.
    map(&app, json!({"display_name": "Engineering", "role": "ADMIN"}));
    assert_eq!(console_role(&app, &ann), "MEMBER");

    let r = scim.call(
        "POST",
        "/Groups",
        Some(&json!({"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "externalId": "00g1",
                     "members": [{"value": ann, "display": "ann@acme.example"}]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("/scim/v2/Groups/{g}")));
    assert_eq!(r.body["schemas"], json!([GROUP_SCHEMA]));
    assert_eq!(r.body["members"][0]["value"], json!(ann));
    assert_eq!(r.body["members"][0]["display"], json!("ann@acme.example"));
    assert_eq!(r.body["members"][0]["$ref"], json!(format!("/scim/v2/Users/{ann}")));
    assert_eq!(r.body["meta"]["resourceType"], json!("Group"));
    assert_eq!(role_changes(&app, &r), vec![change(&ann, &g, "Engineering", "MEMBER", "ADMIN")]);
    assert_eq!((console_role(&app, &ann), console_role(&app, &bob)), ("ADMIN".into(), "MEMBER".into()));

    // Add a member.
    let r = scim.patch(&g, json!([{"op": "add", "path": "members", "value": [{"value": bob, "display": "bob"}]}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), {
        let mut v = vec![ann.clone(), bob.clone()];
        v.sort();
        v
    });
    assert_eq!(role_changes(&app, &r), vec![change(&bob, &g, "Engineering", "MEMBER", "ADMIN")]);
    assert_eq!(console_role(&app, &bob), "ADMIN");

    // Remove a member.
    let r = scim.patch(&g, json!([{"op": "remove", "path": format!("members[value eq \"{ann}\"]")}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), vec![bob.clone()]);
    assert_eq!(role_changes(&app, &r), vec![change(&ann, &g, "Engineering", "ADMIN", "MEMBER")]);
    assert_eq!((console_role(&app, &ann), console_role(&app, &bob)), ("MEMBER".into(), "ADMIN".into()));

    // Rename with PUT: the name mapping no longer applies.
    let r = scim.call(
        "PUT",
        &format!("/Groups/{g}"),
        Some(&json!({"schemas": [GROUP_SCHEMA], "id": g, "displayName": "Eng Renamed", "externalId": "00g1",
                     "members": [{"value": bob}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["displayName"], json!("Eng Renamed"));
    assert_eq!(role_changes(&app, &r), vec![change(&bob, &g, "Eng Renamed", "ADMIN", "MEMBER")]);
    assert_eq!(console_role(&app, &bob), "MEMBER");

    // A mapping of the group's id follows it whatever its name, and wins over a name mapping.
    let r = map(&app, json!({"group_id": g, "role": "AUDITOR"}));
    assert_eq!(r.body["role_changes"], json!([change(&bob, &g, "Eng Renamed", "MEMBER", "AUDITOR")]));
    assert_eq!(r.body["role_mapping"]["mapped_by"], json!("group_id"));
    let r = scim.patch(&g, json!([{"op": "replace", "value": {"id": g, "displayName": "Engineering"}}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["displayName"], json!("Engineering"));
    assert_eq!(console_role(&app, &bob), "AUDITOR");

    // Delete: the members lose the group's role; the id mapping goes, the name mapping stays.
    let r = scim.call("DELETE", &format!("/Groups/{g}"), None);
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role_changes(&app, &r), vec![change(&bob, &g, "Engineering", "AUDITOR", "MEMBER")]);
    assert_eq!(console_role(&app, &bob), "MEMBER");
    assert_eq!(scim.call("GET", &format!("/Groups/{g}"), None).status, 404);
    let list = app.owner_get("/v2/team.role_mapping.list");
    let mappings = list.ok()["role_mappings"].as_array().unwrap().clone();
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert_eq!(mappings[0]["display_name"], json!("Engineering"));
    assert_eq!(mappings[0]["role"], json!("ADMIN"));
    assert_eq!(mappings[0]["group_id"], json!(null), "no group has the name now");
}
both!(okta_group_push);

// ------------------------------------------------------------------ Entra ID

/// Entra ID's group push: look the group up by displayName with members
/// excluded, POST, PATCH Add/Remove members, PATCH Replace displayName and
/// externalId, DELETE.
fn entra_group_push(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let ann = scim.user("ann@acme.example");
    map(&app, json!({"display_name": "Finance", "role": "AUDITOR"}));

    let r = scim.filter(r#"displayName eq "Finance""#, "&excludedAttributes=members");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["totalResults"].clone(), r.body["Resources"].clone()), (json!(0), json!([])));

    let r = scim.call(
        "POST",
        "/Groups",
        Some(&json!({"schemas": [GROUP_SCHEMA], "displayName": "Finance", "externalId": "e-fin", "members": []})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.body["id"].as_str().unwrap().to_string();

    let r = scim.filter(r#"displayName eq "FINANCE""#, "&excludedAttributes=members");
    assert_eq!(r.body["totalResults"], json!(1), "{}", r.text);
    let found = &r.body["Resources"][0];
    assert_eq!((found["id"].clone(), found["displayName"].clone()), (json!(g), json!("Finance")));
    assert!(found.get("members").is_none(), "excludedAttributes=members: {found}");

    let r = scim.patch(&g, json!([{"op": "Add", "path": "members", "value": [{"value": ann}]}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(role_changes(&app, &r), vec![change(&ann, &g, "Finance", "MEMBER", "AUDITOR")]);
    assert_eq!(console_role(&app, &ann), "AUDITOR");
    // An auditor reaches what auditors reach, at once.
    let token = app.token(&app.tenant_id, &ann);
    app.get("/v2/enterprise.key.list", &[("Authorization", &format!("Bearer {token}"))]).ok();

    let r = scim.patch(&g, json!([{"op": "Remove", "path": "members", "value": [{"value": ann}]}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.body), Vec::<String>::new());
    assert_eq!(console_role(&app, &ann), "MEMBER");
    let r = app.get("/v2/enterprise.key.list", &[("Authorization", &format!("Bearer {token}"))]);
    assert_refused(&app, &r, 403, "permission_denied", "role_required");

    scim.patch(&g, json!([{"op": "Add", "path": "members", "value": [{"value": ann}]}]));
    assert_eq!(console_role(&app, &ann), "AUDITOR");
    let r = scim.patch(&g, json!([{"op": "Replace", "path": "displayName", "value": "Finance EU"}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(role_changes(&app, &r), vec![change(&ann, &g, "Finance EU", "AUDITOR", "MEMBER")]);
    assert_eq!(console_role(&app, &ann), "MEMBER");
    let r = scim.patch(&g, json!([{"op": "Replace", "path": "externalId", "value": "e-fin-2"}]));
    assert_eq!(r.body["externalId"], json!("e-fin-2"), "{}", r.text);
    let r = scim.filter(r#"externalId eq "e-fin-2""#, "&attributes=displayName");
    assert_eq!(r.body["Resources"][0], json!({"schemas": [GROUP_SCHEMA], "id": g, "displayName": "Finance EU"}));
    assert_eq!(scim.filter(r#"externalId eq "E-FIN-2""#, "").body["totalResults"], json!(0), "case-exact");

    // Renamed back into the mapping, then deleted.
    scim.patch(&g, json!([{"op": "Replace", "path": "displayName", "value": "finance"}]));
    assert_eq!(console_role(&app, &ann), "AUDITOR");
    let r = scim.call("DELETE", &format!("/Groups/{g}"), None);
    assert_eq!(r.status, 204);
    assert_eq!(event_of(&app, &r)["operation"], json!("scim.groups.delete"));
    assert_eq!(console_role(&app, &ann), "MEMBER");
    assert_eq!(scim.call("GET", &format!("/Groups/{g}"), None).status, 404);
}
both!(entra_group_push);

// ------------------------------------------------------------------ roles

/// The highest mapped role wins; OWNER is never granted and never taken; a
/// directly assigned role gives way to the groups' while any applies, then comes back.
fn roles_follow_the_highest_mapping_and_never_the_owner(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let (auditor, _) = app.add_member(&app.tenant_id, "AUDITOR");
    let owner = app.owner_id.clone();
    let staff = scim.group("Staff", &[&auditor, &owner]);
    let admins = scim.group("Admins", &[]);

    let r = app.owner_post("/v2/team.role_mapping.update", &json!({"group_id": staff, "role": "OWNER"}));
    assert_error(&app, &r, 400, "invalid_argument");
    for bad in [
        json!({"role": "ADMIN"}),
        json!({"group_id": staff, "display_name": "Staff", "role": "ADMIN"}),
        json!({"group_id": staff, "role": "ROOT"}),
        json!({"group_id": staff, "role": 3}),
        json!({"display_name": "", "role": "ADMIN"}),
        json!({"group_id": staff, "role": "ADMIN", "tenant_id": "x"}),
    ] {
        let r = app.owner_post("/v2/team.role_mapping.update", &bad);
        assert_error(&app, &r, 400, "invalid_argument");
    }
    let r = app.owner_post("/v2/team.role_mapping.update", &json!({"group_id": "nope", "role": "ADMIN"}));
    assert_error(&app, &r, 404, "not_found");

    // The IdP decides once a mapping applies, even below the direct role.
    let r = map(&app, json!({"group_id": staff, "role": "MEMBER"}));
    assert_eq!(r.body["role_changes"], json!([change(&auditor, &staff, "Staff", "AUDITOR", "MEMBER")]));
    assert_eq!(console_role(&app, &auditor), "MEMBER");
    assert_eq!(console_role(&app, &owner), "OWNER");
    let (_, users_key) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let r = app.post(
        "/v2/team.user.update",
        &[("X-API-Key", &users_key)],
        &json!({"team_user_id": auditor, "role": "ADMIN"}),
    );
    assert_error(&app, &r, 400, "failed_precondition");

    // The highest of several mapped groups.
    map(&app, json!({"display_name": "admins", "role": "ADMIN"}));
    scim.patch(&admins, json!([{"op": "add", "path": "members", "value": [{"value": auditor}, {"value": owner}]}]));
    assert_eq!(console_role(&app, &auditor), "ADMIN");
    assert_eq!(console_role(&app, &owner), "OWNER");
    scim.patch(&admins, json!([{"op": "remove", "path": "members"}]));
    assert_eq!(console_role(&app, &auditor), "MEMBER");

    // No mapping left: the directly assigned role comes back.
    let r = map(&app, json!({"group_id": staff, "role": null}));
    assert_eq!(r.body["role_changes"], json!([change(&auditor, &staff, "Staff", "MEMBER", "AUDITOR")]));
    assert_eq!(r.body["role_mapping"]["role"], json!(null));
    assert_eq!(console_role(&app, &auditor), "AUDITOR");
    let r = app.post(
        "/v2/team.user.update",
        &[("X-API-Key", &users_key)],
        &json!({"team_user_id": auditor, "role": "ADMIN"}),
    );
    r.ok();
    assert_eq!(console_role(&app, &auditor), "ADMIN");

    // Who reaches the mappings: owners change them; admins and auditors read them; members neither.
    let (member, member_token) = app.add_member(&app.tenant_id, "MEMBER");
    let (_, auditor_token) = app.add_member(&app.tenant_id, "AUDITOR");
    let admin_token = app.token(&app.tenant_id, &auditor);
    for token in [&admin_token, &auditor_token] {
        app.get("/v2/team.role_mapping.list", &[("Authorization", &format!("Bearer {token}"))]).ok();
        let r = app.post(
            "/v2/team.role_mapping.update",
            &[("Authorization", &format!("Bearer {token}"))],
            &json!({"group_id": staff, "role": "ADMIN"}),
        );
        assert_refused(&app, &r, 403, "permission_denied", "role_required");
    }
    let r = app.get("/v2/team.role_mapping.list", &[("Authorization", &format!("Bearer {member_token}"))]);
    assert_refused(&app, &r, 403, "permission_denied", "role_required");
    let r = app.get("/v2/team.role_mapping.list", &[("X-API-Key", &users_key)]);
    assert_eq!(r.status, 401, "no key reaches a console operation: {}", r.text);
    assert_eq!(console_role(&app, &member), "MEMBER");
}
both!(roles_follow_the_highest_mapping_and_never_the_owner);

/// One event per request, in the transaction of the change: it names the
/// group, each member whose role changed, the old and the new role.
fn role_change_events_name_group_member_and_roles(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let ann = scim.user("ann@acme.example");
    let bob = scim.user("bob@acme.example");
    let g = scim.group("Ops", &[&ann, &bob]);
    let r = map(&app, json!({"display_name": "OPS", "role": "ADMIN"}));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("team.role_mapping.update"));
    assert_eq!(ev["outcome"], json!("ALLOWED"));
    assert_eq!(ev["actor"], json!({"type": "MEMBER", "id": app.owner_id}));
    let mut expected = vec![change(&ann, &g, "Ops", "MEMBER", "ADMIN"), change(&bob, &g, "Ops", "MEMBER", "ADMIN")];
    expected.sort_by_key(|c| c["member_id"].as_str().unwrap().to_string());
    assert_eq!(ev["metadata"]["role_changes"], json!(expected));
    assert_eq!(ev["metadata"]["role"], json!({"old": null, "new": "ADMIN"}));
    assert_eq!(ev["metadata"]["group_id"], json!(g));

    let r = scim.patch(&g, json!([{"op": "remove", "path": format!("members[value eq \"{bob}\"]")}]));
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("scim.groups.patch"));
    assert_eq!(ev["outcome"], json!("ALLOWED"));
    assert_eq!(ev["metadata"]["members_removed"], json!([bob]));
    assert_eq!(ev["metadata"]["role_changes"], json!([change(&bob, &g, "Ops", "ADMIN", "MEMBER")]));

    // A refused change writes nothing but its DENIED event.
    let r = scim.patch(&g, json!([{"op": "add", "path": "members", "value": [{"value": "not-a-user"}]}]));
    assert_scim_error(&r, 400, "invalidValue");
    let ev = event_of(&app, &r);
    assert_eq!((ev["outcome"].clone(), ev["operation"].clone()), (json!("DENIED"), json!("scim.groups.patch")));
    assert!(ev["metadata"].get("role_changes").is_none(), "{ev}");
}
both!(role_change_events_name_group_member_and_roles);

/// A removed User leaves every group, and their kept role goes with them.
fn deleting_a_user_drops_them_from_groups(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let ann = scim.user("ann@acme.example");
    let bob = scim.user("bob@acme.example");
    let g = scim.group("Leads", &[&ann, &bob]);
    map(&app, json!({"group_id": g, "role": "ADMIN"}));
    let r = scim.call("DELETE", &format!("/Users/{ann}"), None);
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(event_of(&app, &r)["metadata"]["groups_left"], json!([g]));
    let group = scim.call("GET", &format!("/Groups/{g}"), None);
    assert_eq!(member_ids(&group.body), vec![bob.clone()]);
    let kept =
        app.query_strings(&format!("SELECT member_id AS v FROM member_assigned_roles WHERE member_id = '{ann}'"));
    assert_eq!(kept, Vec::<String>::new());
    let memberships =
        app.query_strings(&format!("SELECT group_id AS v FROM scim_group_members WHERE member_id = '{ann}'"));
    assert_eq!(memberships, Vec::<String>::new());
    // A removed User cannot be named again.
    let r = scim.patch(&g, json!([{"op": "add", "path": "members", "value": [{"value": ann}]}]));
    assert_scim_error(&r, 400, "invalidValue");
    assert_eq!(console_role(&app, &bob), "ADMIN");
}
both!(deleting_a_user_drops_them_from_groups);

// ------------------------------------------------------------------ filters

/// Groups take the whole filter grammar Users take: indexed `eq` clauses
/// narrow the read, anything else is matched on the Group as served, paged.
fn groups_filters_beyond_eq(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let ann = scim.user("ann@acme.example");
    let bob = scim.user("bob@acme.example");
    let eng = scim.group("Eng Admins", &[&ann]);
    let ops = scim.group("Eng Ops", &[&ann, &bob]);
    let fin = scim.group("Finance", &[&bob]);
    let ids = |r: &Resp| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text);
        let ids: Vec<String> =
            r.body["Resources"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap().to_string()).collect();
        ids
    };
    let total = |r: &Resp| r.body["totalResults"].as_u64().unwrap();

    assert_eq!(ids(&scim.filter(r#"displayName sw "eng""#, "")), vec![eng.clone(), ops.clone()]);
    assert_eq!(ids(&scim.filter(&format!("members[value eq \"{bob}\"]"), "")), vec![ops.clone(), fin.clone()]);
    let by_member = format!("displayName co \"ops\" and members.value eq \"{ann}\"");
    assert_eq!(ids(&scim.filter(&by_member, "&excludedAttributes=members")), vec![ops.clone()]);
    let r = scim.filter(&by_member, "&excludedAttributes=members");
    assert!(r.body["Resources"][0].get("members").is_none(), "{}", r.text);
    assert_eq!(
        ids(&scim.filter(r#"not (displayName sw "Eng") or displayName eq "ENG OPS""#, "")),
        vec![ops.clone(), fin]
    );
    // An indexed clause with a scanned one: both hold.
    assert_eq!(
        ids(&scim.filter(&format!("displayName eq \"Eng Admins\" and members[value eq \"{bob}\"]"), "")),
        Vec::<String>::new()
    );
    // Paging counts every match and returns the asked window.
    let r = scim.filter(r#"displayName pr"#, "&startIndex=2&count=1");
    assert_eq!((total(&r), ids(&r)), (3, vec![ops]));
    assert_eq!(ids(&scim.filter(r#"externalId pr"#, "")), Vec::<String>::new());
}
both!(groups_filters_beyond_eq);

// ------------------------------------------------------------------ isolation

/// A group of tenant A cannot name a user of tenant B; B sees none of A's groups, by list, filter or id.
fn groups_are_tenant_scoped(b: Backend) {
    let app = TestApp::spawn(b);
    let a = Scim::new(&app);
    let (_, _, b_token) = app.new_tenant("Beta");
    let b_scim = Scim::of_tenant(&app, &b_token);
    let b_user = b_scim.user("bea@beta.example");
    let a_user = a.user("ann@acme.example");

    let r = a.call(
        "POST",
        "/Groups",
        Some(&json!({"displayName": "Mixed", "members": [{"value": a_user}, {"value": b_user}]})),
    );
    assert_scim_error(&r, 400, "invalidValue");
    assert_eq!(a.call("GET", "/Groups", None).body["totalResults"], json!(0), "nothing was written");
    let g = a.group("Acme", &[&a_user]);
    let r = a.patch(&g, json!([{"op": "add", "path": "members", "value": [{"value": b_user}]}]));
    assert_scim_error(&r, 400, "invalidValue");

    assert_eq!(b_scim.call("GET", "/Groups", None).body["totalResults"], json!(0));
    assert_eq!(b_scim.filter(r#"displayName eq "Acme""#, "").body["totalResults"], json!(0));
    assert_eq!(b_scim.filter(&format!("id eq \"{g}\""), "").body["totalResults"], json!(0));
    for (method, body) in [
        ("GET", None),
        ("PUT", Some(json!({"displayName": "pwned"}))),
        ("PATCH", Some(json!({"Operations": [{"op": "remove", "path": "members"}]}))),
        ("DELETE", None),
    ] {
        let r = b_scim.call(method, &format!("/Groups/{g}"), body.as_ref());
        assert_eq!(r.status, 404, "{method}: {}", r.text);
    }
    // B's mapping of A's group id is not found; of A's group name, it changes nothing in A.
    let b_auth = format!("Bearer {b_token}");
    let r = app.post(
        "/v2/team.role_mapping.update",
        &[("Authorization", &b_auth)],
        &json!({"group_id": g, "role": "ADMIN"}),
    );
    assert_error(&app, &r, 404, "not_found");
    let r = app.post(
        "/v2/team.role_mapping.update",
        &[("Authorization", &b_auth)],
        &json!({"display_name": "Acme", "role": "ADMIN"}),
    );
    assert_eq!(r.ok()["role_changes"], json!([]));
    assert_eq!(console_role(&app, &a_user), "MEMBER");
    assert_eq!(a.call("GET", &format!("/Groups/{g}"), None).body["displayName"], json!("Acme"));
}
both!(groups_are_tenant_scoped);

// ------------------------------------------------------------------ hostile input

/// Huge member lists, bad ids, wrong types, bad filters and paths: SCIM 400s,
/// never a 5xx, and nothing half-written.
fn hostile_group_requests_are_scim_400s(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let ann = scim.user("ann@acme.example");
    let g = scim.group("Target", &[&ann]);
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"value": format!("u{i}")})).collect();
    let many_ann: Vec<Value> = (0..1001).map(|_| json!({"value": ann})).collect();

    for (body, scim_type) in [
        (json!({"displayName": "Huge", "members": too_many}), "invalidValue"),
        (json!({"displayName": "Huge", "members": many_ann}), "invalidValue"),
        (json!({"displayName": "Bad", "members": [{"value": "nobody"}]}), "invalidValue"),
        (json!({"displayName": "Bad", "members": [{"value": 42}]}), "invalidValue"),
        (json!({"displayName": "Bad", "members": [{"value": "a b"}]}), "invalidValue"),
        (json!({"displayName": "Bad", "members": [{"value": "x".repeat(65)}]}), "invalidValue"),
        (json!({"displayName": "Bad", "members": "ann"}), "invalidValue"),
        (json!({"displayName": "Bad", "members": [[ann]]}), "invalidValue"),
        (json!({"displayName": "Bad", "members": [{"value": "' OR 1=1 --"}]}), "invalidValue"),
        (json!({"displayName": 5}), "invalidValue"),
        (json!({"displayName": ""}), "invalidValue"),
        (json!({"displayName": "x".repeat(257)}), "invalidValue"),
        (json!({"displayName": "bell\u{7}"}), "invalidValue"),
        (json!({"members": []}), "invalidValue"),
        (json!({"displayName": "Bad", "externalId": {"a": 1}}), "invalidValue"),
        (json!({"displayName": "target"}), "uniqueness"),
    ] {
        let r = scim.call("POST", "/Groups", Some(&body));
        let expected = if scim_type == "uniqueness" { 409 } else { 400 };
        assert_scim_error(&r, expected, scim_type);
    }
    for ops in [
        json!([{"op": "add", "path": "members", "value": (0..1001).map(|i| json!({"value": format!("u{i}")})).collect::<Vec<_>>()}]),
        json!([{"op": "add", "path": "members", "value": [{"value": ann}, {"value": "ghost"}]}]),
        json!([{"op": "add", "path": "members", "value": [{"value": null}]}]),
        json!([{"op": "replace", "path": "members", "value": 7}]),
        json!([{"op": "copy", "path": "members"}]),
        json!([{"op": 1}]),
        json!(["add"]),
        json!([{"op": "replace", "path": "displayName", "value": ["x"]}]),
        json!([{"op": "remove", "path": "displayName"}]),
        json!([{"op": "remove"}]),
        json!([{"op": "replace", "value": "Renamed"}]),
        json!([{"op": "replace", "value": {"unknown": 1}}]),
    ] {
        let r = scim.patch(&g, ops.clone());
        assert_eq!(r.status, 400, "{ops}: {}", r.text);
        assert_eq!(r.body["schemas"], json!([ERROR_SCHEMA]), "{}", r.text);
    }
    for path in ["members[value eq ghost]", "members[type eq \"User\"]", "members[", "name.givenName", "members.value["]
    {
        let r = scim.patch(&g, json!([{"op": "remove", "path": path}]));
        assert_scim_error(&r, 400, "invalidPath");
    }
    let r = scim.patch(&g, json!([{"op": "replace", "path": "id", "value": "other"}]));
    assert_scim_error(&r, 400, "mutability");
    let r = scim.call("PATCH", &format!("/Groups/{g}"), Some(&json!({"Operations": (0..101).map(|_| json!({"op": "add", "path": "members", "value": []})).collect::<Vec<_>>()})));
    assert_scim_error(&r, 400, "invalidValue");
    for bad in ["{", "[]", "null", "\"x\""] {
        let r = scim.raw("POST", "/Groups", Some(bad));
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let deep = format!("{}displayName eq \"x\"{}", "(".repeat(40), ")".repeat(40));
    for filter in ["displayName eq", r#"nickName eq "x""#, r#"displayName eq x"#, "\u{0}", &deep] {
        let r = scim.filter(filter, "");
        assert_scim_error(&r, 400, "invalidFilter");
    }
    for q in ["startIndex=x", "count=1e9", "count=99999999999999999999"] {
        let r = scim.call("GET", &format!("/Groups?{q}"), None);
        assert_scim_error(&r, 400, "invalidValue");
    }
    for id in ["nope", "%27%20OR%201%3D1", &"x".repeat(300)] {
        // 404, or 400 where the path itself is refused before routing: never a 5xx.
        for method in ["GET", "DELETE"] {
            let status = scim.call(method, &format!("/Groups/{id}"), None).status;
            assert!(status == 404 || status == 400, "{method} {id}: {status}");
        }
    }

    // Nothing half-written: the one group is as it was, alone.
    let list = scim.call("GET", "/Groups", None);
    assert_eq!(list.body["totalResults"], json!(1), "{}", list.text);
    let group = &list.body["Resources"][0];
    assert_eq!((group["displayName"].clone(), member_ids(group)), (json!("Target"), vec![ann.clone()]));
    // A key of another surface is refused as a SCIM 401.
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let r = app.get("/scim/v2/Groups", &[("Authorization", &format!("Bearer {siem}"))]);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([ERROR_SCHEMA]));
}
both!(hostile_group_requests_are_scim_400s);
