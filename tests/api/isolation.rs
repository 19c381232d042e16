//! Tenant isolation (another tenant's ids are `not_found`). Every
//! operation of the authorizer table is driven with tenant B's console token
//! or B's keys against tenant A's ids: nothing of A is read or changed, and
//! B's audit log never shows an event of A.

use crate::both;
use crate::helpers::{Backend, Resp, TestApp};
use keyward::domain::authz::{Operation, OPERATIONS};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

const INGEST_TOKEN: &str = "isolation-ingest-token-0123456789abcdef";
const UPSERT: &str = "/internal/v2/team.asset.upsert";
const KEY_TYPES: [&str; 5] = [
    "KEY_TYPE_EDISCOVERY",
    "KEY_TYPE_SIEM",
    "KEY_TYPE_TEAM_USER_MGMT",
    "KEY_TYPE_TEAM_ASSET_AUDIT",
    "KEY_TYPE_TEAM_ASSET_MGMT",
];
const SCIM_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SCIM_PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const A_GROUP_NAME: &str = "Acme Admins";
const A_SINK_NAME: &str = "Acme SOC";
const COMPLETED: &str = "EXPORT_STATUS_COMPLETED";

// ------------------------------------------------------------------ set-up

/// A tenant's owner token and one key of every type (type → (key id, secret)).
struct Tenant {
    id: String,
    owner: String,
    token: String,
    keys: BTreeMap<&'static str, (String, String)>,
}

impl Tenant {
    fn new(app: &TestApp, id: String, owner: String, token: String) -> Tenant {
        let mut keys = BTreeMap::new();
        for t in KEY_TYPES {
            let r = app.post(
                "/v2/enterprise.key.create",
                &[("Authorization", &format!("Bearer {token}"))],
                &json!({"key_type": t, "label": format!("{t} of {id}")}),
            );
            let b = r.ok();
            keys.insert(
                t,
                (b["key"]["key_id"].as_str().unwrap().to_string(), b["secret"].as_str().unwrap().to_string()),
            );
        }
        Tenant { id, owner, token, keys }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn secret(&self, key_type: &str) -> &str {
        &self.keys[key_type].1
    }

    fn key_ids(&self) -> Vec<&str> {
        self.keys.values().map(|(id, _)| id.as_str()).collect()
    }

    fn get(&self, app: &TestApp, key_type: &str, path: &str) -> Resp {
        app.get(path, &[("X-API-Key", self.secret(key_type))])
    }

    fn post(&self, app: &TestApp, key_type: &str, path: &str, body: &Value) -> Resp {
        app.post(path, &[("X-API-Key", self.secret(key_type))], body)
    }
}

/// What tenant A holds, that B must neither see nor touch.
struct Victim {
    t: Tenant,
    member: String,
    member_email: String,
    held: String,
    held_email: String,
    hold: String,
    export: String,
    compliance_export: String,
    /// (share uid, asset id)
    assets: Vec<(String, String)>,
    asset_owner: &'static str,
    /// A SCIM Group holding `member`, mapped to ADMIN by its display name.
    group: String,
    /// A SIEM sink (a webhook) of A's.
    sink: String,
}

impl Victim {
    fn member_ids(&self) -> [&str; 3] {
        [&self.member, &self.held, &self.t.owner]
    }
}

/// Tenant B, with something of its own in every list, and signed links to its own exports.
struct Intruder {
    t: Tenant,
    export_link: String,
    compliance_link: String,
    hold: String,
    asset: String,
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn email_of(app: &TestApp, member: &str) -> String {
    app.query_strings(&format!("SELECT email AS v FROM members WHERE id = '{member}'")).remove(0)
}

fn tenant_of(app: &TestApp, table: &str, id_column: &str, id: &str) -> String {
    let rows = app.query_strings(&format!("SELECT tenant_id AS v FROM {table} WHERE {id_column} = '{id}'"));
    assert_eq!(rows.len(), 1, "{table} {id}");
    rows[0].clone()
}

fn ingest(app: &TestApp, body: &Value) -> Value {
    app.post(UPSERT, &[("Authorization", &format!("Bearer {INGEST_TOKEN}"))], body).ok()["asset"].clone()
}

fn share(tenant: &str, asset_id: &str, name: &str, owner: &str) -> Value {
    json!({"tenant_id": tenant, "asset_type": "ASSET_TYPE_DOCUMENT", "asset_id": asset_id, "asset_name": name,
           "owner_id": owner, "shared_at": "2024-05-01T10:00:00Z", "permission": "SHARE_SCOPE_TEAM_ONLY"})
}

/// Polls an export's detail until its background job completes (bounded).
#[track_caller]
fn wait_completed(app: &TestApp, t: &Tenant, key_type: &str, detail: &str, uid: &str) {
    for _ in 0..1000 {
        let r = t.get(app, key_type, &format!("{detail}?uid={uid}"));
        let status = r.ok()["export"]["status"].as_str().unwrap().to_string();
        if status == COMPLETED {
            return;
        }
        assert_ne!(status, "EXPORT_STATUS_FAILED", "{}", r.text);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("export {uid} did not complete");
}

fn export_uid(r: &Resp) -> String {
    r.ok()["export"]["uid"].as_str().unwrap().to_string()
}

fn victim(app: &TestApp) -> Victim {
    let t = Tenant::new(app, app.tenant_id.clone(), app.owner_id.clone(), app.owner_token.clone());
    let (member, _) = app.add_member(&t.id, "MEMBER");
    let (held, _) = app.add_member(&t.id, "MEMBER");
    let (member_email, held_email) = (email_of(app, &member), email_of(app, &held));
    let r = t.post(
        app,
        "KEY_TYPE_EDISCOVERY",
        "/v2/enterprise.hold.create",
        &json!({"user_ids": [held], "reason": "litigation"}),
    );
    let hold = r.ok()["hold"]["uid"].as_str().unwrap().to_string();
    let r = t.post(
        app,
        "KEY_TYPE_EDISCOVERY",
        "/v2/enterprise.export.create",
        &json!({"user_id": member, "scope": "ENTERPRISE_EXPORT_SCOPE_FULL", "include_files": false,
                "reason": "investigation"}),
    );
    let export = export_uid(&r);
    let r = t.post(app, "KEY_TYPE_SIEM", "/v2/enterprise.compliance.export.create", &json!({}));
    let compliance_export = export_uid(&r);
    let asset_owner = "owner-of-acme-assets";
    let assets = ["acme-doc-1", "acme-doc-2"]
        .iter()
        .map(|id| {
            let a = ingest(app, &share(&t.id, id, &format!("Acme secret {id}"), asset_owner));
            (a["uid"].as_str().unwrap().to_string(), id.to_string())
        })
        .collect();
    app.owner_post(
        "/v2/enterprise.key_policy.update",
        &json!({"max_lifetime_days": {"KEY_TYPE_EDISCOVERY": 17}, "siem_tier2_enabled": true}),
    )
    .ok();
    let r = app.request(
        "POST",
        "/scim/v2/Groups",
        &[("X-API-Key", t.secret("KEY_TYPE_TEAM_USER_MGMT")), ("Content-Type", "application/scim+json")],
        Some(
            &json!({"schemas": [SCIM_GROUP], "displayName": A_GROUP_NAME, "members": [{"value": member}]}).to_string(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let group = r.body["id"].as_str().unwrap().to_string();
    app.owner_post("/v2/team.role_mapping.update", &json!({"display_name": A_GROUP_NAME, "role": "ADMIN"})).ok();
    wait_completed(app, &t, "KEY_TYPE_EDISCOVERY", "/v2/enterprise.export.detail", &export);
    wait_completed(app, &t, "KEY_TYPE_SIEM", "/v2/enterprise.compliance.export.detail", &compliance_export);
    let r = app.owner_post(
        "/v2/enterprise.siem_sink.create",
        &json!({"name": A_SINK_NAME, "kind": "WEBHOOK", "url": "https://siem.acme.example/hook"}),
    );
    let sink = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
    Victim {
        t,
        member,
        member_email,
        held,
        held_email,
        hold,
        export,
        compliance_export,
        assets,
        asset_owner,
        group,
        sink,
    }
}

fn intruder(app: &TestApp) -> Intruder {
    let (id, owner, token) = app.new_tenant("Beta");
    let t = Tenant::new(app, id, owner, token);
    let r = t.post(
        app,
        "KEY_TYPE_EDISCOVERY",
        "/v2/enterprise.export.create",
        &json!({"user_id": t.owner, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                "reason": "own review"}),
    );
    let export = export_uid(&r);
    let compliance = export_uid(&t.post(app, "KEY_TYPE_SIEM", "/v2/enterprise.compliance.export.create", &json!({})));
    let r = t.post(
        app,
        "KEY_TYPE_EDISCOVERY",
        "/v2/enterprise.hold.create",
        &json!({"user_ids": [t.owner], "reason": "own matter"}),
    );
    let hold = r.ok()["hold"]["uid"].as_str().unwrap().to_string();
    let asset =
        ingest(app, &share(&t.id, "beta-doc", "Beta doc", "owner-of-beta-assets"))["uid"].as_str().unwrap().to_string();
    wait_completed(app, &t, "KEY_TYPE_EDISCOVERY", "/v2/enterprise.export.detail", &export);
    wait_completed(app, &t, "KEY_TYPE_SIEM", "/v2/enterprise.compliance.export.detail", &compliance);
    let link = |key_type: &str, path: &str, uid: &str| -> String {
        let r = t.get(app, key_type, &format!("{path}?uid={uid}"));
        let url = r.ok()["download_url"].as_str().unwrap().to_string();
        url.strip_prefix(&app.base).expect("a link to this server").to_string()
    };
    let export_link = link("KEY_TYPE_EDISCOVERY", "/v2/enterprise.export.downloadUrl", &export);
    let compliance_link = link("KEY_TYPE_SIEM", "/v2/enterprise.compliance.export.downloadUrl", &compliance);
    Intruder { t, export_link, compliance_link, hold, asset }
}

// ------------------------------------------------------------------ snapshots

fn columns(app: &TestApp, table: &str) -> Vec<String> {
    let sql = match app.backend {
        Backend::Sqlite => format!("SELECT name AS v FROM pragma_table_info('{table}')"),
        Backend::Postgres => format!(
            "SELECT CAST(column_name AS TEXT) AS v FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    };
    let cols = app.query_strings(&sql);
    assert!(!cols.is_empty(), "no columns for {table}");
    cols
}

/// Every column of every row of `table` matching `filter`, as text, sorted.
fn rows(app: &TestApp, table: &str, filter: &str) -> Vec<String> {
    // Binary columns (the tree hashes) as hex on SQLite, whose CAST would give raw bytes.
    let text = |c: &str| match app.backend {
        Backend::Sqlite => {
            format!("CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") ELSE CAST(\"{c}\" AS TEXT) END")
        }
        Backend::Postgres => format!("CAST(\"{c}\" AS TEXT)"),
    };
    let expr = columns(app, table)
        .iter()
        .map(|c| format!("COALESCE({}, '<null>')", text(c)))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let mut rows = app.query_strings(&format!("SELECT {expr} AS v FROM \"{table}\" WHERE {filter}"));
    rows.sort();
    rows
}

/// All of a tenant's rows, its audit chain included.
fn snapshot(app: &TestApp, tenant: &str) -> BTreeMap<&'static str, Vec<String>> {
    [
        ("tenants", "id"),
        ("members", "tenant_id"),
        ("api_keys", "tenant_id"),
        ("assets", "tenant_id"),
        ("legal_holds", "tenant_id"),
        ("legal_hold_members", "tenant_id"),
        ("exports", "tenant_id"),
        ("scim_groups", "tenant_id"),
        ("scim_group_members", "tenant_id"),
        ("role_mappings", "tenant_id"),
        ("member_assigned_roles", "tenant_id"),
        ("key_notices", "tenant_id"),
        ("siem_sinks", "tenant_id"),
        ("audit_chains", "chain_id"),
        ("audit_events", "chain_id"),
    ]
    .into_iter()
    .map(|(table, column)| (table, rows(app, table, &format!("{column} = '{tenant}'"))))
    .collect()
}

/// A tenant's whole audit log through the API, as its owner sees it.
fn audit_log(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = app.get(&format!("/v2/enterprise.audit.list?limit=1000{cursor}"), &[("Authorization", &t.bearer())]);
        let body = r.ok();
        out.extend(body["events"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

fn event_ids(events: &[Value]) -> HashSet<String> {
    events.iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect()
}

// ------------------------------------------------------------------ the probe

/// Sends B's requests and checks that no answer names anything of A that B did
/// not send itself (B's own audit events record what B sent, A's ids included).
struct Probe<'a> {
    app: &'a TestApp,
    a_markers: Vec<String>,
    b_tenant: String,
    sent: std::cell::RefCell<String>,
}

impl Probe<'_> {
    /// One request to `op`'s route: `id` fills the path parameter, `query` follows `?`.
    #[track_caller]
    fn send(
        &self,
        op: &Operation,
        id: Option<&str>,
        query: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let mut path = match id {
            Some(id) => op.path.replace("{id}", id),
            None => op.path.to_string(),
        };
        assert!(!path.contains('{'), "{}: give the path parameter", op.name);
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        let text = body.map(Value::to_string);
        let mut h = headers.to_vec();
        if text.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        let r = self.app.request(op.method.as_str(), &path, &h, text.as_deref());
        let mut sent = self.sent.borrow_mut();
        sent.push_str(&format!("\n{path} {headers:?} {}", text.unwrap_or_default()));
        for m in &self.a_markers {
            if !sent.contains(m.as_str()) {
                assert!(!r.text.contains(m.as_str()), "{}: the answer names A's {m}: {}", op.name, r.text);
            }
        }
        r
    }

    /// Refused with `status` (404 `not_found` or 401 `unauthenticated`, in the
    /// envelope or as a SCIM error), its event DENIED in `chain` (B's, or the system chain).
    #[track_caller]
    fn refused(&self, op: &Operation, r: &Resp, status: u16, chain: Option<&str>) {
        assert_eq!(r.status, status, "{}: {}", op.name, r.text);
        if r.body["schemas"].is_array() {
            assert_eq!(r.body["status"], json!(status.to_string()), "{}: {}", op.name, r.text);
        } else {
            let code = if status == 404 { "not_found" } else { "unauthenticated" };
            assert_eq!(r.code().as_deref(), Some(code), "{}: {}", op.name, r.text);
            assert_eq!(r.body["ok"], json!(false));
        }
        let rid = r.header("x-request-id").expect("X-Request-Id");
        let ev = self.app.event_by_request_id(&rid).unwrap_or_else(|| panic!("{}: no event for {rid}", op.name));
        assert_eq!(ev["outcome"], json!("DENIED"), "{}: {ev}", op.name);
        assert_eq!(ev["tenant_id"], json!(chain), "{}: the event is not in A's chain: {ev}", op.name);
    }

    #[track_caller]
    fn not_found(&self, op: &Operation, r: &Resp) {
        self.refused(op, r, 404, Some(&self.b_tenant));
    }
}

fn ids_of(list: &Value, field: &str) -> HashSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|v| v[field].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn assert_disjoint(seen: &HashSet<String>, theirs: &[&str], what: &str) {
    for id in theirs {
        assert!(!seen.contains(*id), "{what} shows A's {id}");
    }
}

// ------------------------------------------------------------------ the test

fn every_operation_keeps_tenants_apart(b: Backend) {
    // The sink worker never runs a pass here: A's sink row stays as B's probes find it.
    let app =
        TestApp::spawn_with(b, &[("KEYWARD_INGEST_TOKEN", INGEST_TOKEN), ("KEYWARD_SINK_INTERVAL_MS", "3600000")]);
    let a = victim(&app);
    let bt = intruder(&app);
    let b_ = &bt.t;
    let a_events_before = event_ids(&audit_log(&app, &a.t));

    let mut a_markers: Vec<String> = vec![a.t.id.clone(), a.t.owner.clone(), "owner@acme.example".into()];
    a_markers.extend(a.t.key_ids().iter().map(|s| s.to_string()));
    a_markers.extend(
        [&a.member, &a.held, &a.member_email, &a.held_email, &a.hold, &a.export, &a.compliance_export]
            .map(String::clone),
    );
    a_markers.extend(a.assets.iter().flat_map(|(uid, id)| [uid.clone(), id.clone()]));
    a_markers.push(a.asset_owner.to_string());
    a_markers.push(a.group.clone());
    a_markers.push(a.sink.clone());
    a_markers.extend(a_events_before.iter().cloned());
    let p = Probe { app: &app, a_markers, b_tenant: b_.id.clone(), sent: Default::default() };

    let before = snapshot(&app, &a.t.id);
    for (table, min) in [
        ("api_keys", 5),
        ("members", 3),
        ("assets", 2),
        ("legal_holds", 1),
        ("exports", 2),
        ("scim_groups", 1),
        ("scim_group_members", 1),
        ("role_mappings", 1),
        ("member_assigned_roles", 1),
        ("siem_sinks", 1),
        ("audit_events", 10),
    ] {
        assert!(before[table].len() >= min, "A's {table} for the test: {:?}", before[table]);
    }

    let bearer = b_.bearer();
    let console: &[(&str, &str)] = &[("Authorization", &bearer)];
    let key = |t: &str| [("X-API-Key", b_.secret(t))];
    let scim_auth = format!("Bearer {}", b_.secret("KEY_TYPE_TEAM_USER_MGMT"));
    let scim: &[(&str, &str)] = &[("Authorization", &scim_auth)];
    let ediscovery = key("KEY_TYPE_EDISCOVERY");
    let siem = key("KEY_TYPE_SIEM");
    let users = key("KEY_TYPE_TEAM_USER_MGMT");
    let asset_audit = key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let asset_mgmt = key("KEY_TYPE_TEAM_ASSET_MGMT");
    let a_keys = a.t.key_ids();
    let a_members = a.member_ids();
    let a_assets: Vec<&str> = a.assets.iter().map(|(uid, _)| uid.as_str()).collect();

    let mut covered = HashSet::new();
    for op in OPERATIONS {
        match op.name {
            // ---------------------------------------------------------- console
            "enterprise.key.create" => {
                let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "intruder", "tenant_id": a.t.id});
                let r = p.send(op, None, "", console, Some(&body));
                assert_eq!((r.status, r.code().as_deref()), (400, Some("invalid_argument")), "{}", r.text);
                let r = p.send(op, None, "", console, Some(&json!({"key_type": "KEY_TYPE_SIEM", "label": "intruder"})));
                let id = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
                assert_eq!(tenant_of(&app, "api_keys", "id", &id), b_.id, "B's key is B's");
            }
            "enterprise.key.list" => {
                for q in ["limit=1000", "key_type=KEY_TYPE_SIEM", "status=ACTIVE&limit=1000"] {
                    let r = p.send(op, None, q, console, None);
                    let seen = ids_of(&r.ok()["keys"], "key_id");
                    assert_disjoint(&seen, &a_keys, op.name);
                    assert!(seen.contains(&b_.keys["KEY_TYPE_SIEM"].0), "B's own keys are listed: {}", r.text);
                }
            }
            "enterprise.key.detail" => {
                for id in &a_keys {
                    p.not_found(op, &p.send(op, None, &format!("key_id={id}"), console, None));
                }
            }
            "enterprise.key.update" => {
                for id in &a_keys {
                    let body = json!({"key_id": id, "label": "pwned", "ip_allowlist": ["203.0.113.0/24"]});
                    p.not_found(op, &p.send(op, None, "", console, Some(&body)));
                }
            }
            "enterprise.key.rotate" => {
                for id in &a_keys {
                    p.not_found(op, &p.send(op, None, "", console, Some(&json!({"key_id": id, "grace_seconds": 60}))));
                }
            }
            "enterprise.key.revoke" => {
                for id in &a_keys {
                    p.not_found(op, &p.send(op, None, "", console, Some(&json!({"key_id": id, "reason": "intruder"}))));
                }
            }
            "enterprise.key_policy.detail" => {
                let r = p.send(op, None, "", console, None);
                let policy = &r.ok()["policy"];
                assert_eq!(policy["siem_tier2_enabled"], json!(false), "B sees its own policy, not A's: {policy}");
                assert_ne!(policy["max_lifetime_days"]["KEY_TYPE_EDISCOVERY"], json!(17), "{policy}");
            }
            "enterprise.key_policy.update" => {
                let body = json!({"max_lifetime_days": {"KEY_TYPE_EDISCOVERY": 200}, "siem_tier2_enabled": false});
                let r = p.send(op, None, "", console, Some(&body));
                assert_eq!(r.ok()["policy"]["max_lifetime_days"]["KEY_TYPE_EDISCOVERY"], json!(200));
            }
            "enterprise.audit.list" => {
                let q_actor = format!("actor_id={}&limit=1000", a.t.owner);
                let q_key = format!("key_id={}&limit=1000", a_keys[0]);
                for q in ["limit=1000", q_actor.as_str(), q_key.as_str()] {
                    let r = p.send(op, None, q, console, None);
                    let events = r.ok()["events"].as_array().unwrap().clone();
                    assert!(events.iter().all(|e| e["tenant_id"] == json!(b_.id)), "{}", r.text);
                    if q != "limit=1000" {
                        assert_eq!(events, Vec::<Value>::new(), "A's actor or key filters find nothing in B");
                    } else {
                        assert!(!events.is_empty());
                    }
                }
            }
            "enterprise.audit.verify" => {
                let head: i64 = app.query_strings(&format!(
                    "SELECT CAST(last_seq AS TEXT) AS v FROM audit_chains WHERE chain_id = '{}'",
                    b_.id
                ))[0]
                    .parse()
                    .unwrap();
                let r = p.send(op, None, "", console, None);
                let v = &r.ok()["verification"];
                assert_ne!(v["valid"], json!(false), "{v}");
                assert_eq!(v["head_seq"], json!(head), "B verifies B's chain: {v}");
                assert!(v["events_checked"].as_i64().unwrap() <= head, "{v}");
            }
            // ---------------------------------------------------------- audit proofs (console or SIEM key)
            "enterprise.audit.checkpoint" => {
                for headers in [console, &siem[..]] {
                    let r = p.send(op, None, "", headers, None);
                    // None may be signed yet (default interval); one signed is of B's chain.
                    if r.status == 404 {
                        p.not_found(op, &r);
                    } else {
                        let note = r.ok()["checkpoint"].as_str().unwrap().to_string();
                        assert!(note.contains(&format!("/audit/{}\n", b_.id)), "B's chain: {note}");
                    }
                }
            }
            "enterprise.audit.proof" => {
                for id in a_events_before.iter().take(5) {
                    for headers in [console, &siem[..]] {
                        for q in [format!("event_id={id}"), format!("event_id={id}&tree_size=1")] {
                            p.not_found(op, &p.send(op, None, &q, headers, None));
                        }
                    }
                }
            }
            "enterprise.audit.consistency" => {
                for headers in [console, &siem[..]] {
                    let r = p.send(op, None, "from=1&to=1", headers, None);
                    assert_eq!(r.ok()["consistency"], json!([]), "{}", r.text);
                }
            }
            // ---------------------------------------------------------- identity and gateway
            "auth.whoami" => {
                let r = p.send(op, None, "", console, None);
                assert_eq!(r.ok()["caller"]["tenant_id"], json!(b_.id));
                assert_eq!(r.body["caller"]["member_id"], json!(b_.owner));
                for t in KEY_TYPES {
                    let r = p.send(op, None, "", &key(t), None);
                    assert_eq!(r.ok()["caller"]["tenant_id"], json!(b_.id));
                }
            }
            "authz.check" => {
                // The gateway names the key's tenant, whatever ids the original request carries.
                let uri = format!("/scim/v2/Users/{}", a.member);
                let mut h = users.to_vec();
                h.extend([
                    ("X-Original-Method", "DELETE"),
                    ("X-Original-URI", uri.as_str()),
                    ("X-Keyward-Tenant-Id", a.t.id.as_str()),
                ]);
                let r = p.send(op, None, "", &h, None);
                assert_eq!(r.ok()["tenant_id"], json!(b_.id));
                assert_eq!(r.header("x-keyward-tenant-id"), Some(b_.id.clone()));
                assert_eq!(r.header("x-keyward-key-id"), Some(b_.keys["KEY_TYPE_TEAM_USER_MGMT"].0.clone()));
                // A console operation on A's key is out of any key's reach.
                let uri = format!("/v2/enterprise.key.detail?key_id={}", a_keys[0]);
                let mut h = siem.to_vec();
                h.extend([("X-Original-Method", "GET"), ("X-Original-URI", uri.as_str())]);
                p.refused(op, &p.send(op, None, "", &h, None), 401, Some(&b_.id));
            }
            // ---------------------------------------------------------- team_users
            "team.user.list" => {
                let by_email = format!("email={}", enc(&a.member_email));
                for q in ["limit=1000", "status=USER_STATUS_ACTIVE&limit=1000", by_email.as_str()] {
                    let r = p.send(op, None, q, &users, None);
                    let seen = ids_of(&r.ok()["team_users"], "team_user_id");
                    assert_disjoint(&seen, &a_members, op.name);
                    if q.starts_with("email=") {
                        assert_eq!(r.body["total"], json!(0), "{}", r.text);
                    } else {
                        assert!(seen.contains(&b_.owner), "{}", r.text);
                    }
                }
            }
            "team.user.detail" => {
                for id in a_members {
                    p.not_found(op, &p.send(op, None, &format!("team_user_id={id}"), &users, None));
                }
            }
            "team.user.create" => {
                // A's address is free in B: a conflict would tell B that A has this member.
                let body = json!({"email": a.member_email, "role": "MEMBER"});
                let r = p.send(op, None, "", &users, Some(&body));
                let id = r.ok()["team_user"]["team_user_id"].as_str().unwrap().to_string();
                assert_ne!(id, a.member);
                assert_eq!(tenant_of(&app, "members", "id", &id), b_.id);
            }
            "team.user.update" => {
                for id in a_members {
                    for change in [json!({"status": "USER_STATUS_INACTIVE"}), json!({"role": "ADMIN"})] {
                        let mut body = change;
                        body["team_user_id"] = json!(id);
                        p.not_found(op, &p.send(op, None, "", &users, Some(&body)));
                    }
                }
            }
            "team.user.remove" => {
                for id in a_members {
                    p.not_found(op, &p.send(op, None, "", &users, Some(&json!({"team_user_id": id}))));
                }
            }
            "scim.service_provider_config" | "scim.resource_types" | "scim.schemas" => {
                let r = p.send(op, None, "", scim, None);
                assert_eq!(r.status, 200, "{}", r.text);
            }
            // The same fixed documents for every tenant.
            "scim.resource_types.get" | "scim.schemas.get" => {
                let id = if op.name == "scim.schemas.get" { SCIM_USER } else { "User" };
                let r = p.send(op, Some(id), "", scim, None);
                assert_eq!(r.status, 200, "{}", r.text);
            }
            "scim.users.list" => {
                let filter = format!("filter={}", enc(&format!("userName eq \"{}\"", a.held_email)));
                // A filter with no indexed eq scans the members: the tenant's only.
                let scan = format!("filter={}", enc("userName pr or not (userName pr)"));
                for q in ["startIndex=1&count=1000", filter.as_str(), scan.as_str()] {
                    let r = p.send(op, None, q, scim, None);
                    assert_eq!(r.status, 200, "{}", r.text);
                    let seen = match r.body["Resources"].as_array() {
                        Some(_) => ids_of(&r.body["Resources"], "id"),
                        None => HashSet::new(),
                    };
                    assert_disjoint(&seen, &a_members, op.name);
                    if q == filter {
                        assert_eq!(r.body["totalResults"], json!(0), "{}", r.text);
                    } else {
                        assert!(seen.contains(&b_.owner), "{}", r.text);
                    }
                }
            }
            "scim.users.get" => {
                for id in a_members {
                    p.not_found(op, &p.send(op, Some(id), "", scim, None));
                }
            }
            "scim.users.create" => {
                let body = json!({"schemas": [SCIM_USER], "userName": a.held_email,
                                  "emails": [{"value": a.held_email, "primary": true}], "active": true});
                let r = p.send(op, None, "", scim, Some(&body));
                assert_eq!(r.status, 201, "A's userName is free in B: {}", r.text);
                let id = r.body["id"].as_str().unwrap().to_string();
                assert_eq!(tenant_of(&app, "members", "id", &id), b_.id);
            }
            "scim.users.replace" => {
                for id in a_members {
                    let body = json!({"schemas": [SCIM_USER], "userName": "pwned@beta.example",
                                      "emails": [{"value": "pwned@beta.example", "primary": true}], "active": false});
                    p.not_found(op, &p.send(op, Some(id), "", scim, Some(&body)));
                }
            }
            "scim.users.patch" => {
                for id in a_members {
                    let body = json!({"schemas": [SCIM_PATCH],
                                      "Operations": [{"op": "replace", "value": {"active": false}}]});
                    p.not_found(op, &p.send(op, Some(id), "", scim, Some(&body)));
                }
            }
            "scim.users.delete" => {
                for id in a_members {
                    p.not_found(op, &p.send(op, Some(id), "", scim, None));
                }
            }
            "scim.groups.list" => {
                let filter = format!("filter={}", enc(&format!("displayName eq \"{A_GROUP_NAME}\"")));
                let by_id = format!("filter={}", enc(&format!("id eq \"{}\"", a.group)));
                for q in ["startIndex=1&count=1000", filter.as_str(), by_id.as_str()] {
                    let r = p.send(op, None, q, scim, None);
                    assert_eq!(r.status, 200, "{}", r.text);
                    assert_eq!(r.body["totalResults"], json!(0), "B has no groups: {}", r.text);
                }
            }
            "scim.groups.get" | "scim.groups.delete" => {
                p.not_found(op, &p.send(op, Some(&a.group), "", scim, None));
            }
            "scim.groups.replace" => {
                let body = json!({"schemas": [SCIM_GROUP], "displayName": "pwned", "members": []});
                p.not_found(op, &p.send(op, Some(&a.group), "", scim, Some(&body)));
            }
            "scim.groups.patch" => {
                for ops in [
                    json!([{"op": "remove", "path": "members"}]),
                    json!([{"op": "add", "path": "members", "value": [{"value": b_.owner}]}]),
                    json!([{"op": "replace", "path": "displayName", "value": "pwned"}]),
                ] {
                    let body = json!({"schemas": [SCIM_PATCH], "Operations": ops});
                    p.not_found(op, &p.send(op, Some(&a.group), "", scim, Some(&body)));
                }
            }
            "scim.groups.create" => {
                // A group of B cannot name a user of A.
                for id in a_members {
                    let body = json!({"schemas": [SCIM_GROUP], "displayName": "B team", "members": [{"value": id}]});
                    let r = p.send(op, None, "", scim, Some(&body));
                    assert_eq!((r.status, r.body["scimType"].as_str()), (400, Some("invalidValue")), "{}", r.text);
                }
                // A's group name is free in B.
                let body = json!({"schemas": [SCIM_GROUP], "displayName": A_GROUP_NAME});
                let r = p.send(op, None, "", scim, Some(&body));
                assert_eq!(r.status, 201, "{}", r.text);
                let id = r.body["id"].as_str().unwrap().to_string();
                assert_eq!(tenant_of(&app, "scim_groups", "id", &id), b_.id);
            }
            "enterprise.siem_sink.list" => {
                let r = p.send(op, None, "", console, None);
                let seen = ids_of(&r.ok()["sinks"], "sink_id");
                assert_disjoint(&seen, &[a.sink.as_str()], op.name);
            }
            "enterprise.siem_sink.create" => {
                let body = json!({"name": "x", "kind": "WEBHOOK", "url": "https://b.example/", "tenant_id": a.t.id});
                let r = p.send(op, None, "", console, Some(&body));
                assert_eq!((r.status, r.code().as_deref()), (400, Some("invalid_argument")), "{}", r.text);
                // A's sink name is free in B.
                let body = json!({"name": A_SINK_NAME, "kind": "WEBHOOK", "url": "https://b.example/"});
                let r = p.send(op, None, "", console, Some(&body));
                let id = r.ok()["sink"]["sink_id"].as_str().unwrap().to_string();
                assert_eq!(tenant_of(&app, "siem_sinks", "id", &id), b_.id);
            }
            "enterprise.siem_sink.update" => {
                for body in [
                    json!({"sink_id": a.sink, "name": "taken"}),
                    json!({"sink_id": a.sink, "rotate_secret": true}),
                    json!({"sink_id": a.sink, "url": "https://b.example/steal"}),
                ] {
                    p.not_found(op, &p.send(op, None, "", console, Some(&body)));
                }
            }
            "enterprise.siem_sink.delete" => {
                p.not_found(op, &p.send(op, None, "", console, Some(&json!({"sink_id": a.sink}))));
            }
            "enterprise.siem_sink.replay" => {
                let body = json!({"sink_id": a.sink, "from_seq": 1});
                p.not_found(op, &p.send(op, None, "", console, Some(&body)));
            }
            "team.role_mapping.list" => {
                let r = p.send(op, None, "", console, None);
                assert_eq!(r.ok()["role_mappings"], json!([]), "B sees none of A's mappings: {}", r.text);
            }
            "team.role_mapping.update" => {
                for role in [json!("ADMIN"), json!(null)] {
                    p.not_found(op, &p.send(op, None, "", console, Some(&json!({"group_id": a.group, "role": role}))));
                }
                // A mapping of A's group name in B changes nothing of A.
                let body = json!({"display_name": A_GROUP_NAME, "role": "AUDITOR"});
                assert_eq!(p.send(op, None, "", console, Some(&body)).ok()["role_changes"], json!([]));
            }
            // ---------------------------------------------------------- team_assets
            "team.asset.list" => {
                let by_owner = format!("owner_id={}", a.asset_owner);
                for headers in [&asset_audit, &asset_mgmt] {
                    for q in ["limit=1000", "keyword=Acme", by_owner.as_str()] {
                        let r = p.send(op, None, q, headers, None);
                        let seen = ids_of(&r.ok()["assets"], "uid");
                        assert_disjoint(&seen, &a_assets, op.name);
                        if q == "limit=1000" {
                            assert!(seen.contains(&bt.asset), "{}", r.text);
                        } else {
                            assert_eq!(r.body["total"], json!(0), "{}", r.text);
                        }
                    }
                }
            }
            "team.asset.update_scope" => {
                for uid in &a_assets {
                    let body = json!({"share_uid": uid, "permission": "SHARE_SCOPE_PUBLIC", "note": "intruder"});
                    p.not_found(op, &p.send(op, None, "", &asset_mgmt, Some(&body)));
                }
            }
            // ---------------------------------------------------------- ediscovery
            "enterprise.export.create" => {
                // A's owner's address (B itself now has members with A's other addresses).
                for who in
                    [json!({"user_id": a.member}), json!({"user_id": a.held}), json!({"email": "owner@acme.example"})]
                {
                    let mut body = json!({"scope": "ENTERPRISE_EXPORT_SCOPE_FULL", "include_files": true,
                                          "reason": "intruder"});
                    body.as_object_mut().unwrap().extend(who.as_object().unwrap().clone());
                    p.not_found(op, &p.send(op, None, "", &ediscovery, Some(&body)));
                }
            }
            "enterprise.export.detail" | "enterprise.export.downloadUrl" => {
                for uid in [&a.export, &a.compliance_export] {
                    p.not_found(op, &p.send(op, None, &format!("uid={uid}"), &ediscovery, None));
                }
            }
            "enterprise.export.list" => {
                let r = p.send(op, None, "limit=1000", &ediscovery, None);
                let seen = ids_of(&r.ok()["exports"], "uid");
                assert_disjoint(&seen, &[a.export.as_str(), a.compliance_export.as_str()], op.name);
                assert_eq!(seen.len(), 1, "B's own export only: {}", r.text);
            }
            "enterprise.hold.create" => {
                for ids in [json!([a.member]), json!([a.held]), json!([b_.owner, a.member])] {
                    let body = json!({"user_ids": ids, "reason": "intruder"});
                    p.not_found(op, &p.send(op, None, "", &ediscovery, Some(&body)));
                }
            }
            "enterprise.hold.list" => {
                for q in ["limit=1000", "status=HOLD_STATUS_ACTIVE"] {
                    let r = p.send(op, None, q, &ediscovery, None);
                    let seen = ids_of(&r.ok()["holds"], "uid");
                    assert_disjoint(&seen, &[a.hold.as_str()], op.name);
                    assert!(seen.contains(&bt.hold), "{}", r.text);
                }
            }
            "enterprise.hold.release" => {
                p.not_found(
                    op,
                    &p.send(op, None, "", &ediscovery, Some(&json!({"uid": a.hold, "reason": "intruder"}))),
                );
            }
            // ---------------------------------------------------------- siem
            "enterprise.compliance.event.list" => {
                let r = p.send(op, None, "limit=1000", &siem, None);
                let events = r.ok()["events"].as_array().unwrap();
                assert!(!events.is_empty());
                assert!(events.iter().all(|e| e["tenant_id"] == json!(b_.id)), "{}", r.text);
            }
            "enterprise.compliance.export.create" => {
                let r = p.send(op, None, "", &siem, Some(&json!({})));
                assert_eq!(tenant_of(&app, "exports", "uid", &export_uid(&r)), b_.id);
            }
            "enterprise.compliance.export.detail" | "enterprise.compliance.export.downloadUrl" => {
                for uid in [&a.compliance_export, &a.export] {
                    p.not_found(op, &p.send(op, None, &format!("uid={uid}"), &siem, None));
                }
            }
            // ---------------------------------------------------------- signed links
            "enterprise.export.download" | "enterprise.compliance.export.download" => {
                let (link, theirs) = if op.name == "enterprise.export.download" {
                    (&bt.export_link, &a.export)
                } else {
                    (&bt.compliance_link, &a.compliance_export)
                };
                let query = link.split_once('?').unwrap().1;
                let own = p.send(op, None, query, &[], None);
                assert_eq!(own.status, 200, "B's own link works: {}", own.text);
                if op.name == "enterprise.compliance.export.download" {
                    // B's bulk export holds B's events only.
                    let lines: Vec<Value> = own.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
                    assert!(!lines.is_empty());
                    assert!(lines.iter().all(|e| e["tenant_id"] == json!(b_.id)), "{}", own.text);
                }
                // B's signature on A's uid, with or without B's key.
                let own_uid = query.split('&').find_map(|kv| kv.strip_prefix("uid=")).unwrap();
                let swapped = query.replace(&format!("uid={own_uid}"), &format!("uid={theirs}"));
                p.refused(op, &p.send(op, None, &swapped, &[], None), 401, None);
                p.refused(op, &p.send(op, None, &swapped, &ediscovery, None), 401, None);
                p.refused(op, &p.send(op, None, &format!("uid={theirs}"), &siem, None), 401, None);
            }
            // ---------------------------------------------------------- ingestion
            "team.asset.upsert" | "team.asset.delete" => {
                // The ingest token is platform-wide; B's keys and console token are not it.
                let body = if op.name == "team.asset.upsert" {
                    share(&a.t.id, &a.assets[0].1, "pwned", "intruder")
                } else {
                    json!({"tenant_id": a.t.id, "asset_type": "ASSET_TYPE_DOCUMENT", "asset_id": a.assets[0].1})
                };
                let as_bearer = format!("Bearer {}", b_.secret("KEY_TYPE_TEAM_ASSET_MGMT"));
                let as_api_key = format!("Api-Key {}", b_.secret("KEY_TYPE_TEAM_ASSET_MGMT"));
                for headers in [
                    vec![("Authorization", bearer.as_str())],
                    vec![("Authorization", as_bearer.as_str())],
                    vec![("Authorization", as_api_key.as_str())],
                    asset_mgmt.to_vec(),
                ] {
                    let r = p.send(op, None, "", &headers, Some(&body));
                    p.refused(op, &r, 401, None);
                }
            }
            // ---------------------------------------------------------- leak reports
            "secret_scanning.report" => {
                // Only a partner's signature reaches it: B's console token and keys are
                // none, even with a report naming A's key (which stays valid: A's later
                // cases use it).
                let body = json!([{"token": a.t.secret("KEY_TYPE_SIEM"), "type": "keyward"}]);
                for headers in [vec![("Authorization", bearer.as_str())], asset_mgmt.to_vec()] {
                    let r = p.send(op, None, "", &headers, Some(&body));
                    p.refused(op, &r, 401, None);
                }
            }
            other => panic!("{other}: no tenant-isolation case; add one to this match"),
        }
        covered.insert(op.name);
    }
    assert_eq!(covered.len(), OPERATIONS.len());

    // Nothing of A changed, its audit chain included (B's requests chain in B or the system chain).
    let after = snapshot(&app, &a.t.id);
    for (table, rows) in &before {
        assert_eq!(&after[table], rows, "A's {table} changed");
    }

    // B's audit log never shows an event of A; A's log shows none of B's requests.
    let b_log = audit_log(&app, b_);
    let a_log = audit_log(&app, &a.t);
    assert!(b_log.iter().all(|e| e["tenant_id"] == json!(b_.id)), "B's log shows another tenant's event");
    let (b_ids, a_ids) = (event_ids(&b_log), event_ids(&a_log));
    assert!(b_ids.is_disjoint(&a_ids), "B's log shares events with A's");
    assert!(a_log.iter().all(|e| e["tenant_id"] == json!(a.t.id)));
    assert!(b_log.len() > 100, "B's probes are in B's log ({} events)", b_log.len());
    assert!(app.verification()["valid"] == json!(true));
}

both!(every_operation_keeps_tenants_apart);

/// Key notices follow each tenant's own policy and land in the key's own
/// tenant's chain: A's thresholds never apply to B's keys, nor the reverse.
fn key_notices_stay_in_their_tenant(b: Backend) {
    let app = TestApp::spawn(b);
    let (b_id, _, b_token) = app.new_tenant("Globex");
    let policy = |token: &str, days: Value| {
        let auth = format!("Bearer {token}");
        let r = app.post(
            "/v2/enterprise.key_policy.update",
            &[("Authorization", &auth)],
            &json!({"key_expiry_notice_days": days}),
        );
        r.ok()["policy"]["key_expiry_notice_days"].clone()
    };
    let key = |token: &str| {
        let at = (chrono::Utc::now() + chrono::Duration::days(5)).to_rfc3339();
        let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "soon", "expires_at": at});
        let r = app.post("/v2/enterprise.key.create", &[("Authorization", &format!("Bearer {token}"))], &body);
        r.ok()["key"]["key_id"].as_str().unwrap().to_string()
    };
    // A turns notices off; B keeps the default.
    assert_eq!(policy(&app.owner_token, json!([])), json!([]));
    let (a_key, b_key) = (key(&app.owner_token), key(&b_token));
    keyward::admin::notices(&mut app.db()).unwrap();
    let notices = |tenant: &str| {
        app.query_strings(&format!(
            "SELECT key_notices.key_id || ' ' || kind || ' ' || chain_id AS v FROM key_notices \
             JOIN audit_events ON audit_events.key_id = key_notices.key_id AND audit_events.operation LIKE 'enterprise.key.expir%' \
             WHERE key_notices.tenant_id = '{tenant}' ORDER BY v"
        ))
    };
    assert!(notices(&app.tenant_id).is_empty(), "A's notices are off");
    assert_eq!(notices(&b_id), vec![format!("{b_key} expiring:14 {b_id}")], "B's, in B's chain");
    let listed = |token: &str| -> Vec<Value> {
        let r = app.get("/v2/enterprise.audit.list?limit=1000", &[("Authorization", &format!("Bearer {token}"))]);
        r.ok()["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["operation"] == json!("enterprise.key.expiring"))
            .cloned()
            .collect()
    };
    assert!(listed(&app.owner_token).is_empty(), "A's log shows no notice of B's key");
    assert_eq!(listed(&b_token).len(), 1);

    // A's thresholds are A's alone.
    assert_eq!(policy(&app.owner_token, json!([7])), json!([7]));
    let r = app.get("/v2/enterprise.key_policy.detail", &[("Authorization", &format!("Bearer {b_token}"))]);
    assert_eq!(r.ok()["policy"]["key_expiry_notice_days"], json!([14, 1]));
    keyward::admin::notices(&mut app.db()).unwrap();
    assert_eq!(notices(&app.tenant_id), vec![format!("{a_key} expiring:7 {}", app.tenant_id)]);
    assert_eq!(notices(&b_id).len(), 1, "B's key is not told again for A's threshold");
    let a_events = listed(&app.owner_token);
    assert_eq!(a_events.len(), 1);
    assert_eq!(a_events[0]["metadata"]["key_id"], json!(a_key));
    assert_eq!(listed(&b_token).len(), 1);
}

both!(key_notices_stay_in_their_tenant);
