//! SCIM 2.0 at /scim/v2: the request sequences Okta and
//! Entra ID provisioning send, filters and paging, RFC 7644 error bodies with
//! scimType, the team rules (owner, legal hold, irreversible removal), key
//! refusals as SCIM 401s, and one audit event for every request.

use crate::both;
use crate::helpers::{event_of, Backend, Resp, TestApp};
use serde_json::{json, Value};

pub(crate) const SCIM_JSON: &str = "application/scim+json";
pub(crate) const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub(crate) const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub(crate) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const KEY_REFUSED: &str = "Invalid or missing enterprise API key";

/// A SCIM client holding a key, sending it as IDPs do (`Authorization: Bearer`).
pub(crate) struct Scim<'a> {
    app: &'a TestApp,
    pub(crate) auth: String,
}

impl<'a> Scim<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Scim<'a> {
        let (_, secret) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
        Scim { app, auth: format!("Bearer {secret}") }
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let url = format!("/scim/v2{path}");
        let mut headers = vec![("Authorization", self.auth.as_str()), ("Accept", SCIM_JSON)];
        let text = body.map(Value::to_string);
        if text.is_some() {
            headers.push(("Content-Type", "application/scim+json; charset=utf-8"));
        }
        let r = self.app.request(method, &url, &headers, text.as_deref());
        if r.status != 204 {
            assert_scim_json(&r);
        }
        r
    }

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None)
    }
    pub(crate) fn post(&self, body: &Value) -> Resp {
        self.call("POST", "/Users", Some(body))
    }
    pub(crate) fn put(&self, id: &str, body: &Value) -> Resp {
        self.call("PUT", &format!("/Users/{id}"), Some(body))
    }
    pub(crate) fn patch(&self, id: &str, ops: Value) -> Resp {
        self.call("PATCH", &format!("/Users/{id}"), Some(&json!({"schemas": [PATCH_SCHEMA], "Operations": ops})))
    }
    pub(crate) fn delete(&self, id: &str) -> Resp {
        self.call("DELETE", &format!("/Users/{id}"), None)
    }
    /// `GET /Users?filter=…` with the filter percent-encoded as Okta sends it.
    pub(crate) fn filter(&self, filter: &str) -> Resp {
        let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        self.get(&format!("/Users?filter={encoded}&startIndex=1&count=100"))
    }

    /// Creates a user with a userName, an email and an externalId; returns its id.
    #[track_caller]
    pub(crate) fn create(&self, user_name: &str, email: &str, external_id: &str) -> String {
        let r = self.post(&json!({
            "schemas": [USER_SCHEMA],
            "userName": user_name,
            "emails": [{"value": email, "type": "work", "primary": true}],
            "externalId": external_id,
            "name": {"givenName": "Given", "familyName": "Family"},
            "active": true,
        }));
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }
}

#[track_caller]
pub(crate) fn assert_scim_json(r: &Resp) {
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with(SCIM_JSON), "content type {ct:?} for {} {}", r.status, r.text);
}

/// Asserts an RFC 7644 error body; returns its detail.
#[track_caller]
pub(crate) fn assert_scim_error(r: &Resp, status: u16, scim_type: Option<&str>) -> String {
    assert_eq!(r.status, status, "{}", r.text);
    assert_scim_json(r);
    assert_eq!(r.body["schemas"], json!([ERROR_SCHEMA]), "{}", r.text);
    assert_eq!(r.body["status"], json!(status.to_string()), "status is a string: {}", r.text);
    assert_eq!(r.body.get("scimType").and_then(Value::as_str), scim_type, "{}", r.text);
    assert!(r.body.get("ok").is_none(), "not the envelope: {}", r.text);
    r.body["detail"].as_str().unwrap_or_else(|| panic!("detail: {}", r.text)).to_string()
}

#[track_caller]
pub(crate) fn assert_event(app: &TestApp, r: &Resp, operation: &str, outcome: &str, reason: Option<&str>) -> Value {
    let ev = event_of(app, r);
    assert_eq!(ev["operation"], json!(operation), "{ev}");
    assert_eq!(ev["outcome"], json!(outcome), "{ev}");
    assert_eq!(ev["status_code"], json!(r.status), "{ev}");
    assert_eq!(ev["reason"].as_str(), reason, "{ev}");
    ev
}

pub(crate) fn member_status(app: &TestApp, id: &str) -> String {
    app.query_strings(&format!("SELECT status AS v FROM members WHERE id = '{id}'")).pop().unwrap()
}

pub(crate) fn ids(list: &Resp) -> Vec<String> {
    list.body["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect()
}

fn whoami_as(app: &TestApp, token: &str) -> Resp {
    app.get("/v2/auth.whoami", &[("Authorization", &format!("Bearer {token}"))])
}

/// Puts `member_id` under an active legal hold.
fn hold(app: &TestApp, member_id: &str) {
    let uid = uuid::Uuid::new_v4().to_string();
    app.exec_sql(&format!(
        "INSERT INTO legal_holds (uid, tenant_id, reason, created_by, created_at) \
         VALUES ('{uid}', '{}', 'litigation', 'test', '2026-01-01 00:00:00')",
        app.tenant_id
    ));
    app.exec_sql(&format!(
        "INSERT INTO legal_hold_members (hold_uid, tenant_id, member_id) VALUES ('{uid}', '{}', '{member_id}')",
        app.tenant_id
    ));
}

// ------------------------------------------------------------------ Okta

/// Okta's SCIM 2.0 sequence (developer.okta.com "Okta and SCIM Version 2.0"): test
/// connection, look up by userName, create, read, PUT (app-wizard integrations),
/// deactivate and reactivate with a no-path PATCH.
fn okta_provisioning_sequence(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);

    // Test connection.
    let r = scim.get("/Users?startIndex=1&count=2");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([LIST_SCHEMA]));
    assert_eq!((r.body["totalResults"].clone(), r.body["startIndex"].clone()), (json!(1), json!(1)));
    assert_eq!(r.body["itemsPerPage"], json!(1));
    let owner = &r.body["Resources"][0];
    assert_eq!(owner["id"], json!(app.owner_id));
    assert_eq!(owner["userName"], json!("owner@acme.example"), "no userName of its own: served under its email");
    assert_eq!(owner["active"], json!(true));
    assert_event(&app, &r, "scim.users.list", "ALLOWED", None);

    // Does the user exist?
    let r = scim.filter(r#"userName eq "test.user@okta.local""#);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], json!(0));
    assert_eq!(r.body["Resources"], json!([]));

    // Create, as Okta sends it (password, groups, locale are not kept).
    let r = scim.post(&json!({
        "schemas": [USER_SCHEMA],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    }));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let location = format!("/scim/v2/Users/{id}");
    assert_eq!(r.header("location").as_deref(), Some(location.as_str()));
    assert_eq!(r.body["schemas"], json!([USER_SCHEMA]));
    assert_eq!(r.body["userName"], json!("test.user@okta.local"));
    assert_eq!(r.body["externalId"], json!("00ujl29u0le5T6Aj10h7"));
    assert_eq!(r.body["name"]["givenName"], json!("Test"));
    assert_eq!(r.body["name"]["familyName"], json!("User"));
    assert_eq!(r.body["emails"], json!([{"value": "test.user@okta.local", "type": "work", "primary": true}]));
    assert_eq!(r.body["active"], json!(true));
    assert_eq!(r.body["meta"]["resourceType"], json!("User"));
    assert_eq!(r.body["meta"]["location"], json!(location));
    assert!(r.body["meta"]["version"].as_str().unwrap().starts_with("W/\""), "{}", r.text);
    assert!(r.body["meta"]["created"].as_str().unwrap().ends_with('Z'), "{}", r.text);
    let ev = assert_event(&app, &r, "scim.users.create", "ALLOWED", None);
    assert_eq!(ev["actor"]["type"], json!("API_KEY"));
    assert_eq!(ev["metadata"]["team_user_id"], json!(id));
    assert!(!ev.to_string().contains("1mz050nq"), "the password is never stored: {ev}");
    let role = app.query_strings(&format!("SELECT role AS v FROM members WHERE id = '{id}'"));
    assert_eq!(role, vec!["MEMBER".to_string()]);

    // Found by userName now, and by id.
    let r = scim.filter(r#"userName eq "test.user@okta.local""#);
    assert_eq!((r.body["totalResults"].clone(), ids(&r)), (json!(1), vec![id.clone()]));
    let r = scim.get(&format!("/Users/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["userName"], json!("test.user@okta.local"));
    assert_event(&app, &r, "scim.users.get", "ALLOWED", None);

    // Update by PUT: Okta sends the whole object back, id and meta included.
    let mut user = r.body.clone();
    user["name"] = json!({"givenName": "Another", "familyName": "User"});
    let r = scim.put(&id, &user);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"]["givenName"], json!("Another"));
    assert_eq!(r.body["emails"][0]["value"], json!("test.user@okta.local"));
    assert_event(&app, &r, "scim.users.replace", "ALLOWED", None);

    // Deactivate (no path, value object), then reactivate.
    let r = scim.patch(&id, json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], json!(false));
    assert_eq!(member_status(&app, &id), "USER_STATUS_INACTIVE");
    assert_event(&app, &r, "scim.users.patch", "ALLOWED", None);
    let r = scim.get(&format!("/Users/{id}"));
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(false)), "{}", r.text);
    let r = scim.patch(&id, json!([{"op": "replace", "value": {"active": true}}]));
    assert_eq!(r.body["active"], json!(true), "{}", r.text);
    assert_eq!(member_status(&app, &id), "USER_STATUS_ACTIVE");

    // An app-wizard integration deactivates with PUT active:false.
    let mut user = r.body.clone();
    user["active"] = json!(false);
    let r = scim.put(&id, &user);
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(false)), "{}", r.text);
    assert_eq!(member_status(&app, &id), "USER_STATUS_INACTIVE");
}
both!(okta_provisioning_sequence);

// ------------------------------------------------------------------ Entra ID

/// Entra ID's sequence (learn.microsoft.com "Develop a SCIM endpoint" and its SCIM
/// validator): query a user that does not exist, read a random id, create with a
/// userName that is not an address, query by userName in another case and by
/// externalId, PATCH with capitalized ops in the path form and the no-path value
/// form, disable with the string "False", then delete.
fn entra_provisioning_sequence(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let suffix = uuid::Uuid::new_v4().to_string();
    let user_name = format!("Test_User_{suffix}");
    let external_id = uuid::Uuid::new_v4().to_string();

    // Entra encodes spaces as '+'.
    let r = scim.get(&format!("/Users?filter=userName+eq+%22{user_name}%22"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["totalResults"].clone(), r.body["Resources"].clone()), (json!(0), json!([])));

    let r = scim.get(&format!("/Users/{}", uuid::Uuid::new_v4()));
    assert_scim_error(&r, 404, None);
    assert_event(&app, &r, "scim.users.get", "DENIED", Some("not_found"));

    let r = scim.post(&json!({
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": format!("Test_User_{suffix}@testuser.com")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}
    }));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["userName"], json!(user_name));
    assert_eq!(r.body["emails"][0]["value"], json!(format!("test_user_{suffix}@testuser.com")));

    // userName compares case-insensitively; externalId exactly.
    let r = scim.filter(&format!(r#"userName eq "{}""#, user_name.to_uppercase()));
    assert_eq!(ids(&r), vec![id.clone()], "{}", r.text);
    assert_eq!(r.body["Resources"][0]["userName"], json!(user_name));
    let r = scim.filter(&format!(r#"externalId eq "{external_id}""#));
    assert_eq!(ids(&r), vec![id.clone()], "{}", r.text);

    // Path form, ops capitalized.
    let r = scim.patch(
        &id,
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updated@testuser.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": "externalId", "value": "ext-2"},
            {"op": "Replace", "path": "userName", "value": "renamed_user"}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["emails"][0]["value"], json!("updated@testuser.com"));
    assert_eq!(r.body["name"]["familyName"], json!("updatedFamilyName"));
    assert_eq!(r.body["name"]["givenName"], json!("givenName"));
    assert_eq!(r.body["externalId"], json!("ext-2"));
    assert_eq!(r.body["userName"], json!("renamed_user"));

    // No-path value form whose keys are attribute paths; displayName and the
    // enterprise extension are kept, unknown attributes are ignored.
    let r = scim.patch(
        &id,
        json!([{"op": "Replace", "value": {
            "name.givenName": "Zvdsdw",
            "displayName": "Pvlo",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
            "phoneNumbers[type eq \"work\"].value": "555"
        }}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"]["givenName"], json!("Zvdsdw"));
    assert_eq!(r.body["displayName"], json!("Pvlo"));
    assert_eq!(r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"], json!("42"));
    let ev = assert_event(&app, &r, "scim.users.patch", "ALLOWED", None);
    assert_eq!(ev["metadata"]["ignored_attributes"], json!(["phoneNumbers[type eq \"work\"].value"]));

    // Disable with a string boolean; the user is still served, with active:false.
    let r = scim.patch(&id, json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(false)), "{}", r.text);
    let r = scim.filter(r#"userName eq "renamed_user""#);
    assert_eq!(ids(&r), vec![id.clone()]);
    assert_eq!(r.body["Resources"][0]["active"], json!(false));

    // Hard delete.
    let r = scim.delete(&id);
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");
    let r = scim.get(&format!("/Users/{id}"));
    assert_scim_error(&r, 404, None);
    let r = scim.filter(r#"userName eq "renamed_user""#);
    assert_eq!(r.body["totalResults"], json!(0));
}
both!(entra_provisioning_sequence);

// ------------------------------------------------------------------ filters and paging

fn filters_and_pagination(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let mut created = vec![app.owner_id.clone()];
    for i in 0..5 {
        created.push(scim.create(
            &format!("User.{i}@Acme.example"),
            &format!("u{i}@acme.example"),
            &format!("Ext-{i}"),
        ));
    }

    // Pages follow creation order; startIndex is 1-based.
    let r = scim.get("/Users?startIndex=1&count=2");
    assert_eq!(r.body["totalResults"], json!(6));
    assert_eq!((r.body["startIndex"].clone(), r.body["itemsPerPage"].clone()), (json!(1), json!(2)));
    assert_eq!(ids(&r), created[0..2].to_vec());
    let r = scim.get("/Users?startIndex=3&count=2");
    assert_eq!(ids(&r), created[2..4].to_vec());
    assert_eq!(r.body["startIndex"], json!(3));
    let r = scim.get("/Users?startIndex=6&count=10");
    assert_eq!(ids(&r), created[5..].to_vec());
    let r = scim.get("/Users?startIndex=50");
    assert_eq!((r.body["totalResults"].clone(), r.body["Resources"].clone()), (json!(6), json!([])));
    // Below 1 means 1; no count means 100; a count above 1000 is capped.
    let r = scim.get("/Users?startIndex=0");
    assert_eq!((ids(&r), r.body["startIndex"].clone()), (created.clone(), json!(1)));
    let r = scim.get("/Users?count=5000");
    assert_eq!(ids(&r), created);
    // count=0: totalResults, with an empty Resources.
    let r = scim.get("/Users?count=0");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], json!(6));
    assert_eq!(r.body["Resources"], json!([]), "{}", r.text);

    // userName: case-insensitive.
    let r = scim.filter(r#"userName eq "user.3@acme.EXAMPLE""#);
    assert_eq!(ids(&r), vec![created[4].clone()]);
    let r = scim.filter(r#"USERNAME EQ "User.3@Acme.example""#);
    assert_eq!(ids(&r), vec![created[4].clone()], "attribute names and operators in any case");
    // The owner has no userName of its own and is found under its email.
    let r = scim.filter(r#"userName eq "Owner@acme.example""#);
    assert_eq!(ids(&r), vec![app.owner_id.clone()]);
    // externalId: exact.
    let r = scim.filter(r#"externalId eq "Ext-2""#);
    assert_eq!(ids(&r), vec![created[3].clone()]);
    let r = scim.filter(r#"externalId eq "ext-2""#);
    assert_eq!(r.body["totalResults"], json!(0));
    // Conjunctions and emails.
    let r = scim.filter(r#"userName eq "user.1@acme.example" and externalId eq "Ext-1""#);
    assert_eq!(ids(&r), vec![created[2].clone()]);
    let r = scim.filter(r#"userName eq "user.1@acme.example" and externalId eq "Ext-2""#);
    assert_eq!(r.body["totalResults"], json!(0));
    let r = scim.filter(r#"emails[type eq "work"].value eq "U4@acme.example""#);
    assert_eq!(ids(&r), vec![created[5].clone()]);
    // No match.
    let r = scim.filter(r#"userName eq "nobody@acme.example""#);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["totalResults"].clone(), r.body["Resources"].clone()), (json!(0), json!([])));
    // A filtered list pages too.
    let r = scim.get("/Users?filter=userName%20eq%20%22user.0%40acme.example%22&startIndex=2");
    assert_eq!((r.body["totalResults"].clone(), r.body["Resources"].clone()), (json!(1), json!([])));
}
both!(filters_and_pagination);

fn unsupported_filters_are_invalid_filter(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    for bad in [
        r#"userName zz "a""#,
        r#"password eq "x""#,
        r#"userName eq "a" or"#,
        "userName eq unquoted",
        "userName",
        r#"userName eq "open"#,
    ] {
        let r = scim.filter(bad);
        assert_scim_error(&r, 400, Some("invalidFilter"));
        assert_event(&app, &r, "scim.users.list", "DENIED", Some("invalid_argument"));
    }
    let r = scim.get("/Users?startIndex=first");
    assert_scim_error(&r, 400, Some("invalidValue"));
}
both!(unsupported_filters_are_invalid_filter);

// ------------------------------------------------------------------ refusals

fn duplicates_are_uniqueness_and_bad_documents_are_refused(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.create("ann", "ann@acme.example", "e-ann");
    let other = scim.create("bob", "bob@acme.example", "e-bob");

    let dup = |user_name: &str, email: &str| {
        scim.post(&json!({"schemas": [USER_SCHEMA], "userName": user_name, "emails": [{"value": email}]}))
    };
    // Same userName in another case, same email, the owner's served userName.
    for (u, e) in [("ANN", "new@acme.example"), ("carol", "Ann@acme.example"), ("owner@acme.example", "x@acme.example")]
    {
        let r = dup(u, e);
        assert_scim_error(&r, 409, Some("uniqueness"));
        assert_event(&app, &r, "scim.users.create", "DENIED", Some("already_exists"));
    }
    // Renaming onto a taken userName or email.
    let r = scim.patch(&other, json!([{"op": "replace", "path": "userName", "value": "Ann"}]));
    assert_scim_error(&r, 409, Some("uniqueness"));
    let r = scim.patch(
        &other,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann@acme.example"}]),
    );
    assert_scim_error(&r, 409, Some("uniqueness"));
    assert_event(&app, &r, "scim.users.patch", "DENIED", Some("already_exists"));
    let total = app.query_strings("SELECT CAST(COUNT(*) AS TEXT) AS v FROM members");
    assert_eq!(total, vec!["3".to_string()], "nothing was created");

    // No userName; no email and a userName that is not an address.
    let r = scim.post(&json!({"schemas": [USER_SCHEMA], "emails": [{"value": "dan@acme.example"}]}));
    assert!(assert_scim_error(&r, 400, Some("invalidValue")).contains("userName"), "{}", r.text);
    let r = scim.post(&json!({"schemas": [USER_SCHEMA], "userName": "dan"}));
    assert!(assert_scim_error(&r, 400, Some("invalidValue")).contains("emails"), "{}", r.text);
    // A userName that is an address is the email when none is sent.
    let r = scim.post(&json!({"schemas": [USER_SCHEMA], "userName": "Dan@Acme.example"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["emails"][0]["value"], json!("dan@acme.example"));
    // Bad values and syntax.
    let r = scim.patch(&id, json!([{"op": "replace", "path": "active", "value": "maybe"}]));
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = scim.patch(&id, json!([{"op": "remove"}]));
    assert_scim_error(&r, 400, Some("noTarget"));
    let r = scim.patch(&id, json!([{"op": "explode", "path": "active", "value": false}]));
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = scim
        .patch(&id, json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "not-an-address"}]));
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = app.request(
        "POST",
        "/scim/v2/Users",
        &[("Authorization", &scim.auth), ("Content-Type", SCIM_JSON)],
        Some("{\"userName\": "),
    );
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    assert_event(&app, &r, "scim.users.create", "DENIED", Some("invalid_argument"));
    // Unknown ids.
    let r = scim.patch("no-such-id", json!([{"op": "replace", "value": {"active": false}}]));
    assert_scim_error(&r, 404, None);
    let r = scim.put("no-such-id", &json!({"userName": "x@acme.example"}));
    assert_scim_error(&r, 404, None);
    let r = scim.delete("no-such-id");
    assert_scim_error(&r, 404, None);
    assert_event(&app, &r, "scim.users.delete", "DENIED", Some("not_found"));
}
both!(duplicates_are_uniqueness_and_bad_documents_are_refused);

// ------------------------------------------------------------------ team rules

fn deactivated_users_stay_listed_and_lose_console_access(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.create("eve@acme.example", "eve@acme.example", "e-eve");
    let token = app.token(&app.tenant_id, &id);
    assert_eq!(whoami_as(&app, &token).status, 200);

    let r = scim.patch(&id, json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(false)), "{}", r.text);
    let ev = assert_event(&app, &r, "scim.users.patch", "ALLOWED", None);
    assert_eq!(ev["metadata"]["status"], json!({"old": "USER_STATUS_ACTIVE", "new": "USER_STATUS_INACTIVE"}));

    let r = scim.get(&format!("/Users/{id}"));
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(false)), "{}", r.text);
    let r = scim.get("/Users");
    let listed = r.body["Resources"].as_array().unwrap().iter().find(|u| u["id"] == json!(id)).cloned();
    assert_eq!(listed.map(|u| u["active"].clone()), Some(json!(false)), "still listed: {}", r.text);
    assert_eq!(r.body["totalResults"], json!(2));

    // Offboarding takes effect at once for the console.
    let r = whoami_as(&app, &token);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"));
}
both!(deactivated_users_stay_listed_and_lose_console_access);

fn delete_removes_for_good_and_is_audited(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.create("finn@acme.example", "finn@acme.example", "e-finn");

    let r = scim.delete(&id);
    assert_eq!(r.status, 204, "{}", r.text);
    let ev = assert_event(&app, &r, "scim.users.delete", "ALLOWED", None);
    assert_eq!(ev["actor"]["type"], json!("API_KEY"));
    assert_eq!(ev["key_type"], json!("KEY_TYPE_TEAM_USER_MGMT"));
    assert_eq!(ev["metadata"]["status"], json!({"old": "USER_STATUS_ACTIVE", "new": "USER_STATUS_REMOVED"}));
    assert_eq!(member_status(&app, &id), "USER_STATUS_REMOVED");

    assert_scim_error(&scim.get(&format!("/Users/{id}")), 404, None);
    assert!(!ids(&scim.get("/Users")).contains(&id));
    assert_eq!(scim.filter(r#"externalId eq "e-finn""#).body["totalResults"], json!(0));
    // Removal is irreversible: the removed user cannot be changed back or deleted again.
    let r = scim.patch(&id, json!([{"op": "replace", "value": {"active": true}}]));
    assert_scim_error(&r, 404, None);
    assert_scim_error(&scim.delete(&id), 404, None);
    assert_eq!(member_status(&app, &id), "USER_STATUS_REMOVED");
}
both!(delete_removes_for_good_and_is_audited);

fn a_member_under_legal_hold_cannot_be_deleted(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.create("gail@acme.example", "gail@acme.example", "e-gail");
    hold(&app, &id);

    let r = scim.delete(&id);
    let detail = assert_scim_error(&r, 400, Some("mutability"));
    assert!(detail.contains("legal hold"), "{detail}");
    assert_event(&app, &r, "scim.users.delete", "DENIED", Some("failed_precondition"));
    assert_eq!(member_status(&app, &id), "USER_STATUS_ACTIVE");
    let r = scim.get(&format!("/Users/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);

    // Deactivation is allowed.
    let r = scim.patch(&id, json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(false)), "{}", r.text);
    assert_eq!(member_status(&app, &id), "USER_STATUS_INACTIVE");
    assert_scim_error(&scim.delete(&id), 400, Some("mutability"));
}
both!(a_member_under_legal_hold_cannot_be_deleted);

fn the_owner_cannot_be_deactivated_or_removed(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let owner = app.owner_id.clone();

    let r = scim.patch(&owner, json!([{"op": "replace", "value": {"active": false}}]));
    assert!(assert_scim_error(&r, 400, Some("mutability")).contains("owner"), "{}", r.text);
    assert_event(&app, &r, "scim.users.patch", "DENIED", Some("failed_precondition"));
    let r = scim.put(&owner, &json!({"userName": "owner@acme.example", "active": false}));
    assert_scim_error(&r, 400, Some("mutability"));
    let r = scim.delete(&owner);
    assert_scim_error(&r, 400, Some("mutability"));
    assert_eq!(member_status(&app, &owner), "USER_STATUS_ACTIVE");
    assert_eq!(whoami_as(&app, &app.owner_token).status, 200);

    // The owner's other attributes can still be provisioned.
    let r = scim.patch(&owner, json!([{"op": "replace", "path": "name.givenName", "value": "Olive"}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["name"]["givenName"].clone(), r.body["active"].clone()), (json!("Olive"), json!(true)));
}
both!(the_owner_cannot_be_deactivated_or_removed);

fn tenants_are_isolated(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let (_, other_owner, other_token) = app.new_tenant("Globex");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &format!("Bearer {other_token}"))],
        &json!({"key_type": "KEY_TYPE_TEAM_USER_MGMT", "label": "globex idp"}),
    );
    let other = Scim { app: &app, auth: format!("Bearer {}", r.ok()["secret"].as_str().unwrap()) };
    let theirs = other.create("ann", "ann@globex.example", "g-ann");
    // The same userName in another tenant is not a duplicate.
    let ours = scim.create("ann", "ann@acme.example", "a-ann");

    assert_scim_error(&scim.get(&format!("/Users/{theirs}")), 404, None);
    assert_scim_error(&scim.get(&format!("/Users/{other_owner}")), 404, None);
    assert_scim_error(&scim.delete(&theirs), 404, None);
    assert_eq!(ids(&scim.filter(r#"userName eq "ann""#)), vec![ours.clone()]);
    assert_eq!(ids(&other.filter(r#"userName eq "ann""#)), vec![theirs.clone()]);
    assert_eq!(scim.get("/Users").body["totalResults"], json!(2));
    assert_eq!(member_status(&app, &theirs), "USER_STATUS_ACTIVE");
}
both!(tenants_are_isolated);

// ------------------------------------------------------------------ authentication

/// Method, path, headers, and the reason the audit event must record.
type RefusalCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);

fn other_key_types_and_missing_keys_get_a_scim_401(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (key_id, usermgmt) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let body = json!({"schemas": [USER_SCHEMA], "userName": "mallory@acme.example"}).to_string();
    let siem_bearer = format!("Bearer {siem}");
    let console = format!("Bearer {}", app.owner_token);
    let forged = format!("Bearer kw_usermgmt_{}", "A".repeat(33));
    let owner_path = format!("/scim/v2/Users/{}", app.owner_id);

    let cases: [RefusalCase; 7] = [
        ("GET", "/scim/v2/Users", vec![("Authorization", &siem_bearer)], "type_mismatch"),
        ("POST", "/scim/v2/Users", vec![("X-API-Key", &siem)], "type_mismatch"),
        ("GET", "/scim/v2/ServiceProviderConfig", vec![("X-API-Key", &siem)], "type_mismatch"),
        ("GET", "/scim/v2/Users", vec![], "missing"),
        ("DELETE", &owner_path, vec![], "missing"),
        ("GET", "/scim/v2/Users", vec![("Authorization", &console)], "missing"),
        ("GET", "/scim/v2/Users", vec![("Authorization", &forged)], "bad_checksum"),
    ];
    for (method, path, mut headers, reason) in cases {
        headers.push(("Content-Type", SCIM_JSON));
        let r = app.request(method, path, &headers, (method == "POST").then_some(body.as_str()));
        assert_eq!(
            r.body,
            json!({"schemas": [ERROR_SCHEMA], "status": "401", "detail": KEY_REFUSED}),
            "{method} {path} {headers:?}"
        );
        assert_scim_error(&r, 401, None);
        let ev = event_of(&app, &r);
        assert_eq!((ev["outcome"].clone(), ev["reason"].clone()), (json!("DENIED"), json!(reason)), "{ev}");
        assert_eq!(ev["status_code"], json!(401));
    }
    assert_eq!(app.query_strings("SELECT id AS v FROM members WHERE email = 'mallory@acme.example'").len(), 0);
    assert_eq!(member_status(&app, &app.owner_id), "USER_STATUS_ACTIVE");

    // The key in any accepted header form works.
    let auth_api_key = format!("Api-Key {usermgmt}");
    for (name, value) in [("X-API-Key", usermgmt.as_str()), ("Api-Key", &usermgmt), ("Authorization", &auth_api_key)] {
        let r = app.get("/scim/v2/Users", &[(name, value)]);
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        let ev = event_of(&app, &r);
        assert_eq!(ev["key_id"], json!(key_id));
    }
}
both!(other_key_types_and_missing_keys_get_a_scim_401);

// ------------------------------------------------------------------ discovery

fn discovery_documents(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);

    let r = scim.get("/ServiceProviderConfig");
    assert_eq!(r.status, 200, "{}", r.text);
    let c = &r.body;
    assert_eq!(c["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]));
    assert_eq!(c["patch"]["supported"], json!(true));
    assert_eq!(c["filter"], json!({"supported": true, "maxResults": 1000}));
    for unsupported in ["bulk", "changePassword", "sort", "etag"] {
        assert_eq!(c[unsupported]["supported"], json!(false), "{unsupported}");
    }
    let schemes: Vec<&str> =
        c["authenticationSchemes"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(schemes, vec!["oauthbearertoken", "apikey"]);
    assert_event(&app, &r, "scim.service_provider_config", "ALLOWED", None);

    let r = scim.get("/ResourceTypes");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([LIST_SCHEMA]));
    let user = &r.body["Resources"][0];
    assert_eq!((user["id"].clone(), user["endpoint"].clone()), (json!("User"), json!("/Users")));
    assert_eq!(user["schema"], json!(USER_SCHEMA));
    assert_event(&app, &r, "scim.resource_types", "ALLOWED", None);

    let r = scim.get("/Schemas");
    assert_eq!(r.status, 200, "{}", r.text);
    let schema = &r.body["Resources"][0];
    assert_eq!(schema["id"], json!(USER_SCHEMA));
    let names: Vec<&str> =
        schema["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "userName",
            "name",
            "emails",
            "active",
            "displayName",
            "nickName",
            "title",
            "preferredLanguage",
            "locale",
            "timezone"
        ]
    );
    assert_eq!(schema["attributes"][0]["uniqueness"], json!("server"));
    assert_event(&app, &r, "scim.schemas", "ALLOWED", None);
}
both!(discovery_documents);

/// Every SCIM request, allowed or refused, reads or writes, has exactly one audit event.
fn every_scim_request_has_one_audit_event(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let mut responses = vec![
        scim.get("/ServiceProviderConfig"),
        scim.get("/ResourceTypes"),
        scim.get("/Schemas"),
        scim.get("/Users"),
        scim.filter(r#"userName eq "nobody""#),
        scim.filter("bad filter"),
        scim.get("/Users/nope"),
    ];
    let r = scim.post(&json!({"userName": "hal@acme.example"}));
    let id = r.body["id"].as_str().unwrap().to_string();
    responses.push(r);
    responses.push(scim.post(&json!({"userName": "hal@acme.example"})));
    responses.push(scim.put(&id, &json!({"userName": "hal@acme.example", "name": {"givenName": "Hal"}})));
    responses.push(scim.patch(&id, json!([{"op": "replace", "value": {"active": false}}])));
    responses.push(scim.patch(&id, json!([{"op": "nope"}])));
    responses.push(scim.delete(&id));
    responses.push(scim.delete(&id));
    responses.push(app.get("/scim/v2/Users", &[]));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 400, 404, 201, 409, 200, 200, 400, 204, 404, 401]);
    for r in &responses {
        let ev = event_of(&app, r);
        assert_eq!(ev["status_code"], json!(r.status), "{ev}");
        assert_eq!(ev["outcome"], json!(if r.status < 400 { "ALLOWED" } else { "DENIED" }), "{ev}");
        assert!(ev["operation"].as_str().unwrap().starts_with("scim."), "{ev}");
    }
}
both!(every_scim_request_has_one_audit_event);
