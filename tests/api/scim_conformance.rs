//! SCIM 2.0 conformance, RFC 7644 section by section, for what keyward's
//! ServiceProviderConfig declares (patch, filter; not bulk, sort, etag,
//! changePassword, /.search), and deprovision-then-return: a person an
//! identity provider deletes can be provisioned again as a new member while
//! the removed one stays intact for e-Discovery and legal holds.

use crate::both;
use crate::exports::wait_done;
use crate::helpers::{key_get, key_post, Backend, TestApp};
use crate::scim::{assert_event, assert_scim_error, ids, Scim, LIST_SCHEMA, SCIM_JSON, USER_SCHEMA};
use diesel::RunQueryDsl;
use serde_json::{json, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn full_user(user_name: &str, email: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "externalId": external_id,
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "displayName": "Ann Lee",
        "nickName": "Annie",
        "title": "Counsel",
        "preferredLanguage": "en-GB",
        "locale": "en-GB",
        "timezone": "Europe/London",
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true,
        ENTERPRISE: {
            "employeeNumber": "E-17",
            "costCenter": "CC-9",
            "organization": "Acme",
            "division": "Legal Ops",
            "department": "Legal",
            "manager": {"value": "mgr-1", "$ref": "../Users/mgr-1", "displayName": "Bob Boss"},
        },
    })
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ------------------------------------------------------------------ §3.1 media type

/// RFC 7644 §3.1: answers are application/scim+json; requests in
/// application/scim+json and application/json are both read.
fn rfc7644_3_1_media_type(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.create("media@acme.example", "media@acme.example", "m-1");
    let r = app.request(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &[("Authorization", &scim_auth(&app)), ("Content-Type", "application/json")],
        Some(&json!({"Operations": [{"op": "replace", "path": "title", "value": "T"}]}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").unwrap_or_default().starts_with(SCIM_JSON));
    assert_eq!(r.body["title"], json!("T"));
}
both!(rfc7644_3_1_media_type);

fn scim_auth(app: &TestApp) -> String {
    format!("Bearer {}", app.create_key("KEY_TYPE_TEAM_USER_MGMT").1)
}

// ------------------------------------------------------------------ §3.3 create

/// RFC 7644 §3.3 (and RFC 7643 §4.1, §4.3): 201 with Location = meta.location;
/// the profile attributes and the enterprise extension are kept and shown
/// back, `schemas` lists the extension, `name` is left out when empty.
fn rfc7644_3_3_create(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let r = scim.post(&full_user("ann", "ann@acme.example", "ext-ann"));
    assert_eq!(r.status, 201, "{}", r.text);
    let u = r.body.clone();
    assert_eq!(r.header("location"), u["meta"]["location"].as_str().map(str::to_string));
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENTERPRISE]));
    for (k, v) in
        [("displayName", "Ann Lee"), ("nickName", "Annie"), ("title", "Counsel"), ("timezone", "Europe/London")]
    {
        assert_eq!(u[k], json!(v), "{k}: {u}");
    }
    assert_eq!(u["preferredLanguage"], json!("en-GB"));
    assert_eq!(u["locale"], json!("en-GB"));
    assert_eq!(u[ENTERPRISE], full_user("", "", "")[ENTERPRISE], "{u}");
    let ev = assert_event(&app, &r, "scim.users.create", "ALLOWED", None);
    assert!(ev["metadata"].get("ignored_attributes").is_none(), "nothing ignored: {ev}");

    // Read back as stored, not only echoed.
    let got = scim.get(&format!("/Users/{}", u["id"].as_str().unwrap()));
    assert_eq!(got.body[ENTERPRISE]["manager"]["$ref"], json!("../Users/mgr-1"));
    assert_eq!(got.body["displayName"], json!("Ann Lee"));

    // returned: never: a password is taken (ignored) and never shown, whatever `attributes` asks.
    let r = app.request(
        "POST",
        "/scim/v2/Users?attributes=password,userName",
        &[("Authorization", &scim.auth), ("Content-Type", SCIM_JSON)],
        Some(&json!({"userName": "pw@acme.example", "password": "Hunter2-Secret"}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body.get("password").is_none() && !r.text.contains("Hunter2"), "{}", r.text);
    let ev = assert_event(&app, &r, "scim.users.create", "ALLOWED", None);
    assert_eq!(ev["metadata"]["ignored_attributes"], json!(["password"]));

    // Without name or extension: no `name: {}`, only the core schema.
    let r = scim.post(&json!({"userName": "bare@acme.example"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body.get("name").is_none(), "{}", r.text);
    assert!(r.body.get(ENTERPRISE).is_none());
    assert_eq!(r.body["schemas"], json!([USER_SCHEMA]));

    // Over-long and control characters: 400 invalidValue, nothing written.
    let before = app.query_strings("SELECT COUNT(*) AS v FROM members");
    let mut long = full_user("long", "long@acme.example", "x");
    long["displayName"] = json!("x".repeat(257));
    assert_scim_error(&scim.post(&long), 400, Some("invalidValue"));
    let mut ctl = full_user("ctl", "ctl@acme.example", "x");
    ctl[ENTERPRISE]["department"] = json!("a\nb");
    assert_scim_error(&scim.post(&ctl), 400, Some("invalidValue"));
    assert_eq!(app.query_strings("SELECT COUNT(*) AS v FROM members"), before);
    // The refused value is not copied into the events' metadata (Tier 2 payloads keep the body, as for every route).
    assert!(!app.audit_events().iter().any(|e| e["metadata"].to_string().contains(&"x".repeat(257))));

    // Uniqueness among live members: 409 uniqueness.
    assert_scim_error(&scim.post(&full_user("ANN", "other@acme.example", "e")), 409, Some("uniqueness"));

    // attributes on the answer to a POST.
    let r = app.request(
        "POST",
        "/scim/v2/Users?attributes=userName",
        &[("Authorization", &scim.auth), ("Content-Type", SCIM_JSON)],
        Some(&json!({"userName": "proj@acme.example", "displayName": "P"}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "schemas", "userName"], "{}", r.text);
}
both!(rfc7644_3_3_create);

// ------------------------------------------------------------------ §3.4.1 get

/// RFC 7644 §3.4.1, §3.4.2.5: GET by id; `attributes` and
/// `excludedAttributes` narrow it; `id` and `schemas` always come back.
fn rfc7644_3_4_1_get_with_attributes(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.post(&full_user("ann", "ann@acme.example", "e1")).body["id"].as_str().unwrap().to_string();
    let r = scim.get(&format!("/Users/{id}?attributes=name.familyName,{ENTERPRISE}:department,emails.value"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE], "id": id,
            "name": {"familyName": "Lee"},
            "emails": [{"value": "ann@acme.example"}],
            ENTERPRISE: {"department": "Legal"},
        })
    );
    let r = scim.get(&format!("/Users/{id}?excludedAttributes=id,schemas,meta,emails,{ENTERPRISE},name.givenName"));
    assert_eq!(r.body["id"], json!(id), "id is returned: always");
    assert!(r.body.get("schemas").is_some());
    assert!(r.body.get("meta").is_none() && r.body.get("emails").is_none() && r.body.get(ENTERPRISE).is_none());
    assert_eq!(r.body["name"], json!({"familyName": "Lee", "formatted": "Ann Lee"}));
    assert_eq!(r.body["displayName"], json!("Ann Lee"));
    // Case-insensitive names, attributes wins over excludedAttributes.
    let r = scim.get(&format!("/Users/{id}?ATTRIBUTES=USERNAME&excludedAttributes=userName"));
    assert_eq!(r.body["userName"], json!("ann"), "{}", r.text);
    assert!(r.body.get("displayName").is_none());

    let r = scim.get("/Users/no-such-id");
    assert_scim_error(&r, 404, None);
}
both!(rfc7644_3_4_1_get_with_attributes);

// ------------------------------------------------------------------ §3.4.2 query

/// RFC 7644 §3.4.2.2: every operator, and/or/not, grouping, value filters,
/// case-insensitive attribute names, on the attributes served; unsupported
/// filters are 400 invalidFilter.
fn rfc7644_3_4_2_2_filters(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let mk = |u: &str, dept: &str, title: &str| {
        let mut doc = full_user(u, &format!("{u}@acme.example"), &format!("X-{u}"));
        doc[ENTERPRISE]["department"] = json!(dept);
        doc["title"] = json!(title);
        doc["displayName"] = json!(format!("{u} display"));
        let r = scim.post(&doc);
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    };
    let ann = mk("ann", "Legal", "Counsel");
    let bob = mk("bob", "Sales", "Rep");
    let cyd = mk("cyd", "Legal", "Paralegal");
    let r = scim.patch(&cyd, json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(r.status, 200, "{}", r.text);
    let owner = app.owner_id.clone();
    let q = |f: &str| {
        let r = scim.filter(f);
        assert_eq!(r.status, 200, "{f}: {}", r.text);
        ids(&r)
    };
    assert_eq!(q(r#"userName eq "ann" or userName eq "bob""#), [ann.clone(), bob.clone()]);
    assert_eq!(q(r#"userName sw "a""#), vec![ann.clone()]);
    assert_eq!(q(r#"userName co "y""#), vec![cyd.clone()]);
    assert_eq!(q(r#"userName ew "OB""#), vec![bob.clone()]);
    assert_eq!(q(r#"userName ne "ann" and externalId pr"#), [bob.clone(), cyd.clone()]);
    assert_eq!(q("externalId pr"), [ann.clone(), bob.clone(), cyd.clone()], "the owner has none");
    assert_eq!(q("not (externalId pr)"), vec![owner.clone()]);
    assert_eq!(q(r#"DisplayName Co "DISPLAY" and (title eq "Counsel" or title eq "Rep")"#), [ann.clone(), bob.clone()]);
    assert_eq!(q(&format!(r#"{ENTERPRISE}:department eq "legal" and active eq true"#)), vec![ann.clone()]);
    assert_eq!(q("active eq false"), vec![cyd.clone()]);
    assert_eq!(q(r#"name.familyName eq "lee" and emails[type eq "work" and value sw "b"]"#), vec![bob.clone()]);
    assert_eq!(q(r#"emails[type eq "work"].value eq "CYD@acme.example""#), vec![cyd.clone()]);
    assert_eq!(q(&format!(r#"id eq "{bob}""#)), vec![bob.clone()]);
    assert_eq!(q(&format!(r#"id eq "{}""#, bob.to_uppercase())), Vec::<String>::new(), "id is case-exact");
    assert_eq!(q(r#"meta.lastModified gt "2000-01-01T00:00:00Z" and userName eq "ann""#), vec![ann.clone()]);
    assert_eq!(q(r#"meta.created lt "2000-01-01T00:00:00Z""#), Vec::<String>::new());
    assert_eq!(q(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ANN""#), vec![ann.clone()]);

    for bad in [r#"password eq "x""#, r#"userName zz "a""#, r#"(userName eq "a""#, "userName eq", r#"urn:x:y eq "a""#] {
        let r = scim.filter(bad);
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }
}
both!(rfc7644_3_4_2_2_filters);

/// RFC 7644 §3.4.2.4, §3.4.2.5: paging (`count=0` answers the total with an
/// empty `Resources`), and attributes on a list.
fn rfc7644_3_4_2_4_paging_and_attributes_on_lists(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    for i in 0..3 {
        scim.create(&format!("p{i}@acme.example"), &format!("p{i}@acme.example"), &format!("e{i}"));
    }
    let r = scim.get("/Users?count=0");
    assert_eq!(
        (
            r.body["schemas"].clone(),
            r.body["totalResults"].clone(),
            r.body["itemsPerPage"].clone(),
            r.body["Resources"].clone()
        ),
        (json!([LIST_SCHEMA]), json!(4), json!(0), json!([]))
    );
    let r = scim.get(&format!("/Users?filter={}&count=0", encode("userName sw \"p\"")));
    assert_eq!((r.body["totalResults"].clone(), r.body["Resources"].clone()), (json!(3), json!([])));
    let r = scim.get(&format!("/Users?filter={}&startIndex=2&count=1", encode("userName sw \"p\"")));
    assert_eq!((r.body["totalResults"].clone(), r.body["itemsPerPage"].clone()), (json!(3), json!(1)));
    assert_eq!(r.body["Resources"][0]["userName"], json!("p1@acme.example"));
    let r = scim.get("/Users?attributes=userName&count=2");
    for u in r.body["Resources"].as_array().unwrap() {
        let keys: Vec<&String> = u.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "schemas", "userName"], "{u}");
    }
    let r = scim.get("/Users?excludedAttributes=emails,meta");
    assert!(r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u.get("emails").is_none() && u.get("meta").is_none()));
}
both!(rfc7644_3_4_2_4_paging_and_attributes_on_lists);

// ------------------------------------------------------------------ §3.5.1 PUT

/// RFC 7644 §3.5.1: PUT replaces the profile attributes (what it leaves out is
/// cleared); attributes apply to its answer.
fn rfc7644_3_5_1_put_replaces(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.post(&full_user("ann", "ann@acme.example", "e1")).body["id"].as_str().unwrap().to_string();
    let r = app.request(
        "PUT",
        &format!("/scim/v2/Users/{id}?excludedAttributes=meta"),
        &[("Authorization", &scim.auth), ("Content-Type", SCIM_JSON)],
        Some(
            &json!({"userName": "ann", "emails": [{"value": "ann@acme.example"}], "title": "Partner",
                    ENTERPRISE: {"division": "D2"}})
            .to_string(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], json!("Partner"));
    assert!(r.body.get("displayName").is_none() && r.body.get("meta").is_none(), "{}", r.text);
    assert_eq!(r.body[ENTERPRISE], json!({"division": "D2"}));
    let got = scim.get(&format!("/Users/{id}"));
    assert_eq!(got.body[ENTERPRISE], json!({"division": "D2"}));
}
both!(rfc7644_3_5_1_put_replaces);

// ------------------------------------------------------------------ §3.5.2 PATCH

/// RFC 7644 §3.5.2: add, replace and remove with paths, value-filtered paths,
/// the enterprise extension (Entra sends the manager as a bare id), and
/// noTarget for a value filter that selects nothing.
fn rfc7644_3_5_2_patch(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.post(&full_user("ann", "ann@acme.example", "e1")).body["id"].as_str().unwrap().to_string();
    let r = scim.patch(
        &id,
        json!([
            {"op": "add", "path": "nickName", "value": "A"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ann.lee@acme.example"},
            {"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": "mgr-2"},
            {"op": "remove", "path": "displayName"},
            {"op": "remove", "path": format!("{ENTERPRISE}:costCenter")},
            {"op": "replace", "value": {ENTERPRISE: {"department": "Compliance"}}},
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let u = &r.body;
    assert_eq!(u["nickName"], json!("A"));
    assert_eq!(u["emails"][0]["value"], json!("ann.lee@acme.example"));
    assert!(u.get("displayName").is_none(), "{u}");
    assert_eq!(u[ENTERPRISE]["manager"]["value"], json!("mgr-2"));
    assert_eq!(u[ENTERPRISE]["department"], json!("Compliance"));
    assert!(u[ENTERPRISE].get("costCenter").is_none());
    assert_eq!(u[ENTERPRISE]["employeeNumber"], json!("E-17"), "attributes not named are unchanged");

    // Removing the whole extension takes its URN off `schemas`.
    let r = scim.patch(&id, json!([{"op": "remove", "path": ENTERPRISE}]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schemas"], json!([USER_SCHEMA]));

    // A value filter that selects no address: noTarget; a broken one: invalidPath.
    let r =
        scim.patch(&id, json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h@x.example"}]));
    assert_scim_error(&r, 400, Some("noTarget"));
    let r =
        scim.patch(&id, json!([{"op": "replace", "path": "emails[type zz \"work\"].value", "value": "h@x.example"}]));
    assert_scim_error(&r, 400, Some("invalidPath"));
    let r = scim.patch(&id, json!([{"op": "replace", "path": "title", "value": "t".repeat(300)}]));
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = scim.patch(&id, json!([{"op": "replace", "path": "id", "value": "x"}]));
    assert_scim_error(&r, 400, Some("mutability"));

    // attributes on a PATCH answer.
    let r = app.request(
        "PATCH",
        &format!("/scim/v2/Users/{id}?attributes=title"),
        &[("Authorization", &scim.auth), ("Content-Type", SCIM_JSON)],
        Some(&json!({"Operations": [{"op": "replace", "path": "title", "value": "Chief"}]}).to_string()),
    );
    assert_eq!(r.body, json!({"schemas": [USER_SCHEMA], "id": id, "title": "Chief"}), "{}", r.text);
}
both!(rfc7644_3_5_2_patch);

// ------------------------------------------------------------------ §3.6 delete, §3.7 bulk

/// RFC 7644 §3.6: DELETE answers 204; the resource is then 404 and no
/// filter finds it. §3.7: bulk is not declared, /Bulk is a SCIM 404.
fn rfc7644_3_6_delete_and_3_7_bulk_not_declared(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.create("del@acme.example", "del@acme.example", "d1");
    assert_eq!(scim.delete(&id).status, 204);
    assert_scim_error(&scim.get(&format!("/Users/{id}")), 404, None);
    assert_scim_error(&scim.delete(&id), 404, None);
    assert_eq!(scim.filter(r#"userName eq "del@acme.example""#).body["totalResults"], json!(0));
    assert_eq!(scim.filter(r#"externalId eq "d1""#).body["totalResults"], json!(0));

    let config = scim.get("/ServiceProviderConfig").body;
    assert_eq!(config["bulk"]["supported"], json!(false));
    let r = scim.call("POST", "/Bulk", Some(&json!({"Operations": []})));
    assert_scim_error(&r, 404, None);
}
both!(rfc7644_3_6_delete_and_3_7_bulk_not_declared);

// ------------------------------------------------------------------ §3.12 errors

/// RFC 7644 §3.12: every refusal under /scim/v2 is a SCIM error: unknown
/// paths (404), wrong methods (405 with Allow), /.search (not declared),
/// 401 with WWW-Authenticate, 413.
fn rfc7644_3_12_errors_on_every_path(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let r = scim.get("/Nope");
    assert_scim_error(&r, 404, None);
    assert_event(&app, &r, "unknown_route", "DENIED", Some("not_found"));
    assert_scim_error(&scim.get("/Users/a/b"), 404, None);
    assert_scim_error(&scim.call("POST", "/.search", Some(&json!({}))), 404, None);

    let r = scim.call("DELETE", "/Users", None);
    assert_scim_error(&r, 405, None);
    assert_eq!(r.header("allow").as_deref(), Some("GET, POST"));
    let r = scim.call("POST", "/Users/.search", Some(&json!({})));
    assert_scim_error(&r, 405, None);
    assert_eq!(r.header("allow").as_deref(), Some("GET, PUT, PATCH, DELETE"));
    assert_scim_error(&scim.call("PUT", "/Schemas", Some(&json!({}))), 405, None);

    // 401: the challenge of the primary scheme (oauthbearertoken).
    for auth in [None, Some("Bearer kw_nope")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        let r = app.request("GET", "/scim/v2/Users", &headers, None);
        assert_scim_error(&r, 401, None);
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer realm=\"keyward\""));
    }
    let config = scim.get("/ServiceProviderConfig").body;
    assert_eq!(config["authenticationSchemes"][0]["type"], json!("oauthbearertoken"));

    // 413: a body over the limit.
    let big = json!({"userName": "big@acme.example", "title": "x".repeat(2 * 1024 * 1024)}).to_string();
    let r = app.request(
        "POST",
        "/scim/v2/Users",
        &[("Authorization", &scim.auth), ("Content-Type", SCIM_JSON)],
        Some(&big),
    );
    assert_scim_error(&r, 413, None);

    // Outside /scim the envelope stays.
    let r = app.request("GET", "/v2/nope", &[], None);
    assert_eq!(r.status, 404);
    assert_eq!(r.body["ok"], json!(false));
}
both!(rfc7644_3_12_errors_on_every_path);

// ------------------------------------------------------------------ §4 discovery

/// RFC 7644 §4 (RFC 7643 §5-§7): every meta.location published is served;
/// the User ResourceType names the enterprise extension; unknown ids are SCIM 404s.
fn rfc7644_4_discovery_by_id(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let schemas = scim.get("/Schemas").body;
    let types = scim.get("/ResourceTypes").body;
    let config = scim.get("/ServiceProviderConfig").body;
    let mut locations = vec![config["meta"]["location"].as_str().unwrap().to_string()];
    for list in [&schemas, &types] {
        assert_eq!(list["Resources"].as_array().unwrap().len(), list["totalResults"].as_u64().unwrap() as usize);
        for doc in list["Resources"].as_array().unwrap() {
            let loc = doc["meta"]["location"].as_str().unwrap().to_string();
            let r = app.request("GET", &loc, &[("Authorization", &scim.auth)], None);
            assert_eq!(r.status, 200, "{loc}: {}", r.text);
            assert_eq!(&r.body, doc, "{loc}");
            locations.push(loc);
        }
    }
    assert!(locations.contains(&format!("/scim/v2/Schemas/{USER_SCHEMA}")), "{locations:?}");
    assert!(locations.contains(&format!("/scim/v2/Schemas/{ENTERPRISE}")));
    let user_type = scim.get("/ResourceTypes/User");
    assert_eq!(user_type.body["schemaExtensions"], json!([{"schema": ENTERPRISE, "required": false}]));
    assert_event(&app, &user_type, "scim.resource_types.get", "ALLOWED", None);
    let ext = scim.get(&format!("/Schemas/{ENTERPRISE}"));
    let names: Vec<&str> =
        ext.body["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["employeeNumber", "costCenter", "organization", "division", "department", "manager"]);
    assert_event(&app, &ext, "scim.schemas.get", "ALLOWED", None);

    assert_scim_error(&scim.get("/ResourceTypes/Nope"), 404, None);
    assert_scim_error(&scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Nope"), 404, None);
}
both!(rfc7644_4_discovery_by_id);

// ------------------------------------------------------------------ deprovision and return

fn member_row(app: &TestApp, id: &str) -> Vec<String> {
    app.query_strings(&format!(
        "SELECT id || '|' || email || '|' || status || '|' || COALESCE(user_name, '') || '|' || \
         COALESCE(external_id, '') || '|' || profile AS v FROM members WHERE id = '{id}'"
    ))
}

/// Entra ID deprovisions with DELETE and provisions the same person again
/// with POST: a new member, new id; the removed one is untouched and its
/// audit events, a legal hold and an e-Discovery export still name it.
fn entra_delete_then_post_provisions_a_new_member(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let doc = full_user("ann@acme.example", "ann@acme.example", "aad-ann");
    let old = scim.post(&doc).body["id"].as_str().unwrap().to_string();
    assert_eq!(scim.delete(&old).status, 204);
    let removed_row = member_row(&app, &old);
    assert!(removed_row[0].contains("USER_STATUS_REMOVED"), "{removed_row:?}");

    // Entra looks the user up, finds nothing, creates it.
    let r = scim.filter(r#"userName eq "ann@acme.example""#);
    assert_eq!(r.body["totalResults"], json!(0));
    let r = scim.post(&doc);
    assert_eq!(r.status, 201, "{}", r.text);
    let new = r.body["id"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(ids(&scim.filter(r#"userName eq "ann@acme.example""#)), vec![new.clone()]);
    assert_eq!(ids(&scim.filter(r#"externalId eq "aad-ann""#)), vec![new.clone()]);
    assert_scim_error(&scim.get(&format!("/Users/{old}")), 404, None);
    assert_eq!(member_row(&app, &old), removed_row, "the removed member's row is not changed");
    // Still one live member per address.
    assert_scim_error(&scim.post(&doc), 409, Some("uniqueness"));

    // The old member's audit events still name it.
    let events = app.audit_events();
    let named = |op: &str, id: &str| {
        events.iter().any(|e| e["operation"] == json!(op) && e["metadata"]["team_user_id"] == json!(id))
    };
    assert!(named("scim.users.create", &old) && named("scim.users.delete", &old), "{events:?}");
    assert!(named("scim.users.create", &new));

    // The console lists both, told apart by id and status.
    let (_, users_key) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let list = key_get(&app, &users_key, "/v2/team.user.list?email=ann@acme.example");
    let rows: Vec<(Value, Value)> = list.ok()["team_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["team_user_id"].clone(), u["status"].clone()))
        .collect();
    assert_eq!(rows, [(json!(old), json!("USER_STATUS_REMOVED")), (json!(new), json!("USER_STATUS_ACTIVE"))]);

    // Legal hold and e-Discovery export naming the removed member.
    let (_, ed) = app.create_key("KEY_TYPE_EDISCOVERY");
    let hold = key_post(&app, &ed, "/v2/enterprise.hold.create", &json!({"user_ids": [old], "reason": "litigation"}));
    assert_eq!(hold.ok()["hold"]["user_ids"], json!([old]));
    let r = key_post(
        &app,
        &ed,
        "/v2/enterprise.export.create",
        &json!({"user_id": old, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false, "reason": "departed"}),
    );
    let uid = r.ok()["export"]["uid"].as_str().unwrap().to_string();
    let done = wait_done(&app, &ed, "/v2/enterprise.export.detail", &uid);
    assert_eq!((done["status"].clone(), done["user_id"].clone()), (json!("EXPORT_STATUS_COMPLETED"), json!(old)));
    // By email, the live member is meant.
    let r = key_post(
        &app,
        &ed,
        "/v2/enterprise.export.create",
        &json!({"email": "ann@acme.example", "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false, "reason": "r"}),
    );
    assert_eq!(r.ok()["export"]["user_id"], json!(new));
    assert_eq!(member_row(&app, &old), removed_row);
}
both!(entra_delete_then_post_provisions_a_new_member);

/// Okta deactivates (PATCH active=false) and reactivates the same member; it
/// does not DELETE. A deactivated member keeps its address (POST is 409, the
/// lookup finds it); only after a DELETE does a POST make a new member.
fn okta_deactivate_then_reactivate_keeps_the_member(b: Backend) {
    let app = TestApp::spawn(b);
    let scim = Scim::new(&app);
    let id = scim.create("okta.user@acme.example", "okta.user@acme.example", "00u1");
    let r = scim.patch(&id, json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(false)));
    let found = scim.filter(r#"userName eq "okta.user@acme.example""#);
    assert_eq!(ids(&found), vec![id.clone()]);
    assert_eq!(found.body["Resources"][0]["active"], json!(false));
    let r = scim.post(&json!({"userName": "okta.user@acme.example", "externalId": "00u1"}));
    assert_scim_error(&r, 409, Some("uniqueness"));
    let r = scim.patch(&id, json!([{"op": "replace", "value": {"active": true}}]));
    assert_eq!((r.status, r.body["active"].clone(), r.body["id"].clone()), (200, json!(true), json!(id)));

    // Deactivated, then deleted by an admin, then assigned again: a new member.
    scim.patch(&id, json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(scim.delete(&id).status, 204);
    let r = scim.post(&json!({"userName": "okta.user@acme.example", "externalId": "00u1"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.body["id"], json!(id));
}
both!(okta_deactivate_then_reactivate_keeps_the_member);

/// The console invite path follows the same rule: a removed member's email can be invited again.
fn console_invite_of_a_removed_members_email(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, key) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let create = |email: &str| key_post(&app, &key, "/v2/team.user.create", &json!({"email": email, "role": "MEMBER"}));
    let first = create("carol@acme.example").ok()["team_user"]["team_user_id"].as_str().unwrap().to_string();
    assert_eq!(create("Carol@acme.example").status, 409, "a live member keeps the address");
    key_post(&app, &key, "/v2/team.user.remove", &json!({"team_user_id": first})).ok();
    let second = create("carol@acme.example").ok()["team_user"]["team_user_id"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let detail = key_get(&app, &key, &format!("/v2/team.user.detail?team_user_id={first}"));
    assert_eq!(detail.ok()["team_user"]["status"], json!("USER_STATUS_REMOVED"));
    // The database holds the rule too: a second live row with the address is
    // refused, another removed one is not.
    let insert = |id: &str, status: &str| {
        let sql = format!(
            "INSERT INTO members (id, tenant_id, email, role, status, created_at, updated_at) VALUES \
             ('{id}', '{}', 'carol@acme.example', 'MEMBER', '{status}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            app.tenant_id
        );
        diesel::sql_query(sql).execute(&mut app.db())
    };
    assert!(
        insert("dup-live", "USER_STATUS_INACTIVE").is_err(),
        "the partial unique index refuses a second live member"
    );
    assert!(insert("dup-removed", "USER_STATUS_REMOVED").is_ok());
}
both!(console_invite_of_a_removed_members_email);
