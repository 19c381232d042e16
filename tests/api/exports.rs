//! Export jobs: e-Discovery archives and SIEM bulk exports, the background
//! runner that builds them, and their signed download links.

use crate::both;
use crate::helpers::{event_of, key_get, key_post, Backend, Resp, TestApp};
use keyward::crypto::LinkSigner;
use keyward::exports::runner::Jobs;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Read;

const KEY_REFUSED: &str = "Invalid or missing enterprise API key";
const LINK_REFUSED: &str = "invalid or expired download link";
const CREATE: &str = "/v2/enterprise.export.create";
const DETAIL: &str = "/v2/enterprise.export.detail";
const LIST: &str = "/v2/enterprise.export.list";
const URL: &str = "/v2/enterprise.export.downloadUrl";
const DOWNLOAD: &str = "/v2/enterprise.export.download";
const C_CREATE: &str = "/v2/enterprise.compliance.export.create";
const C_DETAIL: &str = "/v2/enterprise.compliance.export.detail";
const C_URL: &str = "/v2/enterprise.compliance.export.downloadUrl";
const C_DOWNLOAD: &str = "/v2/enterprise.compliance.export.download";

const PENDING: &str = "EXPORT_STATUS_PENDING";
const PROCESSING: &str = "EXPORT_STATUS_PROCESSING";
const COMPLETED: &str = "EXPORT_STATUS_COMPLETED";
const FAILED: &str = "EXPORT_STATUS_FAILED";

// ------------------------------------------------------------------ helpers

/// An error answer with `status` and `code`, whose audit event is DENIED with `reason`.
#[track_caller]
fn assert_error(app: &TestApp, r: &Resp, status: u16, code: &str, reason: &str) -> Value {
    assert_eq!(r.status, status, "expected {status} {code}, got {}: {}", r.status, r.text);
    assert_eq!(r.code().as_deref(), Some(code), "{}", r.text);
    assert_eq!(r.body["ok"], json!(false));
    let ev = event_of(app, r);
    assert_eq!(ev["outcome"], json!("DENIED"), "event: {ev}");
    assert_eq!(ev["reason"], json!(reason), "event: {ev}");
    ev
}

fn export_of(r: &Resp) -> Value {
    r.ok()["export"].clone()
}

fn uid_of(export: &Value) -> String {
    export["uid"].as_str().expect("an export uid").to_string()
}

/// Polls the detail until the background job ends (bounded; waiting for the runner is the point).
/// Every status seen must be one a job may be in.
#[track_caller]
pub(crate) fn wait_done(app: &TestApp, secret: &str, detail: &str, uid: &str) -> Value {
    for _ in 0..600 {
        let export = export_of(&key_get(app, secret, &format!("{detail}?uid={uid}")));
        let status = export["status"].as_str().unwrap().to_string();
        if status == FAILED {
            return export;
        }
        assert!([PENDING, PROCESSING, COMPLETED].contains(&status.as_str()), "illegal status {status}");
        if status == COMPLETED {
            return export;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("export {uid} did not finish");
}

pub(crate) struct Download {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub bytes: Vec<u8>,
}

impl Download {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A raw GET of a full URL (downloads are not JSON).
pub(crate) fn fetch(url: &str) -> Download {
    let resp = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let headers =
        resp.headers_names().into_iter().filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string()))).collect();
    let mut bytes = Vec::new();
    resp.into_reader().read_to_end(&mut bytes).unwrap();
    Download { status, headers, bytes }
}

/// Asks for a link and fetches the file; checks the link's shape and the download's headers and event.
#[track_caller]
fn download(app: &TestApp, secret: &str, url_path: &str, route: &str, uid: &str, content_type: &str) -> Download {
    let r = key_get(app, secret, &format!("{url_path}?uid={uid}"));
    let body = r.ok();
    let url = body["download_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}{route}?uid={uid}&expires=", app.base)), "{url}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let left = (expires_at.timestamp() - chrono::Utc::now().timestamp()).abs();
    assert!((590..=610).contains(&left), "links last ten minutes, this one {left}s");
    let ev = event_of(app, &r);
    assert_eq!(ev["outcome"], json!("ALLOWED"));
    assert_eq!(ev["metadata"]["uid"], json!(uid));

    let d = fetch(&url);
    assert_eq!(d.status, 200, "{}", String::from_utf8_lossy(&d.bytes));
    assert_eq!(d.header("content-type"), Some(content_type));
    let disposition = d.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment;") && disposition.contains(uid), "{disposition}");
    let rid = d.header("x-request-id").expect("downloads carry X-Request-Id").to_string();
    let ev = app.event_by_request_id(&rid).expect("the download is audited");
    assert_eq!(ev["tenant_id"], json!(app.tenant_id), "the download's event is in the export's tenant chain");
    assert_eq!(ev["outcome"], json!("ALLOWED"));
    assert_eq!(ev["metadata"]["uid"], json!(uid));
    assert_eq!(ev["operation"], json!(route.trim_start_matches("/v2/")));
    d
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

pub(crate) fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a ZIP archive");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        out.insert(f.name().to_string(), s);
    }
    out
}

/// The status changes of one export, in chain order. (A runner that lost a race
/// through the audit writer records a DENIED attempt; only made changes count.)
fn process_events(app: &TestApp, uid: &str) -> Vec<Value> {
    app.audit_events()
        .into_iter()
        .filter(|e| {
            e["operation"].as_str().is_some_and(|o| o.ends_with("export.process"))
                && e["metadata"]["uid"] == json!(uid)
                && e["outcome"] == json!("ALLOWED")
        })
        .collect()
}

fn statuses(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["metadata"]["status"].as_str().unwrap().to_string()).collect()
}

fn insert_asset(app: &TestApp, owner: &str, asset_id: &str) {
    app.exec_sql(&format!(
        "INSERT INTO assets (uid, tenant_id, asset_type, asset_id, asset_name, owner_id, session_id, shared_at, \
         permission, asset_exists, created_at, updated_at) VALUES ('{}', '{}', 'ASSET_TYPE_SESSION', '{asset_id}', \
         'Quarterly plan', '{owner}', NULL, '2026-01-02 03:04:05', 'SHARE_SCOPE_TEAM_ONLY', TRUE, \
         '2026-01-02 03:04:05', '2026-01-02 03:04:05')",
        uuid::Uuid::new_v4(),
        app.tenant_id
    ));
}

/// A job row written straight to the database (as another instance, or a crashed one, left it).
fn insert_job(app: &TestApp, kind: &str, status: &str, member: &str, started_at: &str, attempts: i32) -> String {
    let uid = uuid::Uuid::new_v4().to_string();
    let started = if started_at.is_empty() { "NULL".to_string() } else { format!("'{started_at}'") };
    app.exec_sql(&format!(
        "INSERT INTO exports (uid, tenant_id, kind, status, requested_by, member_id, scope, include_files, \
         include_payload, reason, created_at, updated_at, started_at, attempts) VALUES ('{uid}', '{}', '{kind}', \
         '{status}', 'test', '{member}', 'ENTERPRISE_EXPORT_SCOPE_METADATA', FALSE, FALSE, 'test', \
         '2026-01-01 00:00:00', '2026-01-01 00:00:00', {started}, {attempts})",
        app.tenant_id
    ));
    uid
}

fn ed_export(app: &TestApp, secret: &str, body: &Value) -> String {
    let r = key_post(app, secret, CREATE, body);
    uid_of(&export_of(&r))
}

// ------------------------------------------------------------------ e-Discovery

fn ediscovery_export_runs_in_the_background_and_downloads_as_a_zip(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    insert_asset(&app, &app.owner_id, "session-owned");
    let (other, _) = app.add_member(&app.tenant_id, "MEMBER");
    insert_asset(&app, &other, "session-not-owned");

    let r = key_post(
        &app,
        &secret,
        CREATE,
        &json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_FULL", "include_files": true,
                "reason": "Litigation 2026-17"}),
    );
    let created = export_of(&r);
    assert_eq!(created["status"], json!(PENDING));
    assert_eq!(created["user_id"], json!(app.owner_id));
    assert_eq!(created["scope"], json!("ENTERPRISE_EXPORT_SCOPE_FULL"));
    assert_eq!(created["include_files"], json!(true));
    let uid = uid_of(&created);
    let ev = event_of(&app, &r);
    assert_eq!(ev["operation"], json!("enterprise.export.create"));
    assert_eq!(ev["outcome"], json!("ALLOWED"));
    assert_eq!(ev["metadata"]["uid"], json!(uid));
    assert_eq!(ev["metadata"]["reason"], json!("Litigation 2026-17"));

    let done = wait_done(&app, &secret, DETAIL, &uid);
    assert_eq!(done["status"], json!(COMPLETED), "{done}");
    assert_eq!(done["attempts"], json!(1));
    assert!(done["completed_at"].is_string() && done["started_at"].is_string());

    let d = download(&app, &secret, URL, DOWNLOAD, &uid, "application/zip");
    assert_eq!(done["file_size"], json!(d.bytes.len()));
    assert_eq!(done["file_sha256"], json!(keyward::crypto::sha256_hex(&d.bytes)));

    let files = unzip(&d.bytes);
    let names: Vec<_> = files.keys().cloned().collect();
    assert_eq!(names, ["assets.ndjson", "events.ndjson", "manifest.json", "member.ndjson"]);
    let member = ndjson(&files["member.ndjson"]);
    assert_eq!(member.len(), 1);
    assert_eq!(member[0]["team_user_id"], json!(app.owner_id));
    assert_eq!(member[0]["email"], json!("owner@acme.example"));
    let assets = ndjson(&files["assets.ndjson"]);
    assert_eq!(assets.len(), 1, "only the member's own assets: {assets:?}");
    assert_eq!(assets[0]["asset_id"], json!("session-owned"));
    assert_eq!(assets[0]["owner_id"], json!(app.owner_id));
    let events = ndjson(&files["events.ndjson"]);
    assert!(events.iter().all(|e| e["actor"]["id"] == json!(app.owner_id)), "only the member's events");
    let key_create = events.iter().find(|e| e["operation"] == json!("enterprise.key.create")).expect("key.create");
    assert_eq!(key_create["payload"]["label"], json!("test key"), "FULL scope keeps the (redacted) payload");
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "events in chain order: {seqs:?}");
    let manifest: Value = serde_json::from_str(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["uid"], json!(uid));
    assert_eq!(manifest["tenant_id"], json!(app.tenant_id));
    assert_eq!(manifest["member_id"], json!(app.owner_id));
    assert_eq!(manifest["include_files"], json!(true));
    assert_eq!(manifest["counts"], json!({"member": 1, "assets": 1, "events": events.len()}));
    assert!(manifest["files_note"].as_str().unwrap().contains("no file bodies"));

    // Every status change is in the tenant's chain, by the worker, and the chain still verifies.
    let process = process_events(&app, &uid);
    assert_eq!(statuses(&process), [PROCESSING, COMPLETED]);
    for e in &process {
        assert_eq!(e["actor"], json!({"type": "SERVICE", "id": "export-worker"}));
        assert_eq!(e["operation"], json!("enterprise.export.process"));
        assert_eq!(e["tenant_id"], json!(app.tenant_id));
    }
    let v = app.verification();
    assert_eq!(v["valid"], json!(true), "{v}");

    // The file lives under the export folder, by tenant.
    let file_name = done["file_name"].as_str().unwrap();
    assert!(app.settings().export_dir.join(&app.tenant_id).join(file_name).is_file());
}

fn metadata_scope_windows_and_removed_members(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (member, token) = app.add_member(&app.tenant_id, "AUDITOR");
    // The member causes an event, then leaves the company.
    let auth = format!("Bearer {token}");
    app.get("/v2/enterprise.key.list", &[("Authorization", &auth)]).ok();
    app.exec_sql(&format!("UPDATE members SET status = 'USER_STATUS_REMOVED' WHERE id = '{member}'"));
    let email = app.query_strings(&format!("SELECT email AS v FROM members WHERE id = '{member}'")).remove(0);

    let uid = ed_export(
        &app,
        &secret,
        &json!({"email": email.to_uppercase(), "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                "start_time": "2020-01-01T00:00:00Z", "reason": "departed employee"}),
    );
    let done = wait_done(&app, &secret, DETAIL, &uid);
    assert_eq!(done["status"], json!(COMPLETED), "{done}");
    assert_eq!(done["user_id"], json!(member));
    let files = unzip(&download(&app, &secret, URL, DOWNLOAD, &uid, "application/zip").bytes);
    let m = ndjson(&files["member.ndjson"]);
    assert_eq!(m[0]["team_user_id"], json!(member));
    assert_eq!(m[0]["status"], json!("USER_STATUS_REMOVED"));
    assert!(files["assets.ndjson"].is_empty());
    let events = ndjson(&files["events.ndjson"]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["operation"], json!("enterprise.key.list"));
    assert_eq!(events[0]["actor"], json!({"type": "MEMBER", "id": member}));
    assert!(events[0].get("payload").is_none(), "METADATA scope leaves payloads out");

    // A window before the member's activity holds none of it.
    let uid = ed_export(
        &app,
        &secret,
        &json!({"user_id": member, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                "start_time": "2020-01-01T00:00:00Z", "end_time": "2021-01-01T00:00:00Z", "reason": "window"}),
    );
    assert_eq!(wait_done(&app, &secret, DETAIL, &uid)["status"], json!(COMPLETED));
    let files = unzip(&download(&app, &secret, URL, DOWNLOAD, &uid, "application/zip").bytes);
    assert!(files["events.ndjson"].is_empty());
    assert_eq!(serde_json::from_str::<Value>(&files["manifest.json"]).unwrap()["counts"]["events"], json!(0));
}

fn create_validates_its_body(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    // Set up before any job runs: on SQLite the harness's own writes race the service's.
    let (other_tenant, other_owner, _) = app.new_tenant("Globex");
    assert_ne!(other_tenant, app.tenant_id);
    let base = json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                      "reason": "case"});
    let with = |patch: Value| {
        let mut v = base.clone();
        for (k, x) in patch.as_object().unwrap() {
            if x.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = x.clone();
            }
        }
        v
    };
    let bad = [
        with(json!({"email": "owner@acme.example"})),
        with(json!({"user_id": null})),
        with(json!({"scope": "ENTERPRISE_EXPORT_SCOPE_EVERYTHING"})),
        with(json!({"include_files": null})),
        with(json!({"reason": "  "})),
        with(json!({"reason": "x".repeat(501)})),
        with(json!({"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"})),
        with(json!({"user_id": null, "email": "not-an-address"})),
        with(json!({"surprise": 1})),
    ];
    for body in bad {
        let r = key_post(&app, &secret, CREATE, &body);
        assert_error(&app, &r, 400, "invalid_argument", "invalid_argument");
    }
    assert_eq!(key_post(&app, &secret, CREATE, &with(json!({"reason": "x".repeat(500)}))).status, 200);

    // Unknown members, and members of another tenant, are not found.
    for body in [
        with(json!({"user_id": uuid::Uuid::new_v4().to_string()})),
        with(json!({"user_id": other_owner})),
        with(json!({"user_id": null, "email": "owner@globex.example"})),
    ] {
        let r = key_post(&app, &secret, CREATE, &body);
        assert_error(&app, &r, 404, "not_found", "not_found");
    }
    let r = key_get(&app, &secret, LIST);
    assert_eq!(r.ok()["total"], json!(1), "refused creates leave no job");
}

fn download_url_waits_for_completion(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    // A run in progress on some instance (its lease is far from over), and a failed job.
    let running = insert_job(&app, "EDISCOVERY", PROCESSING, &app.owner_id, "2999-01-01 00:00:00", 1);
    let failed = insert_job(&app, "EDISCOVERY", FAILED, &app.owner_id, "2026-01-01 00:00:00", 3);
    for uid in [&running, &failed] {
        let r = key_get(&app, &secret, &format!("{URL}?uid={uid}"));
        assert_error(&app, &r, 400, "failed_precondition", "failed_precondition");
    }
    assert_eq!(export_of(&key_get(&app, &secret, &format!("{DETAIL}?uid={running}")))["status"], json!(PROCESSING));

    // A job whose member is gone cannot be built: the runner fails it, once, with a reason.
    let orphan = insert_job(&app, "EDISCOVERY", PENDING, "no-such-member", "", 0);
    let done = wait_done(&app, &secret, DETAIL, &orphan);
    assert_eq!(done["status"], json!(FAILED));
    assert!(done["error"].as_str().unwrap().contains("member"), "{done}");
    assert_eq!(statuses(&process_events(&app, &orphan)), [PROCESSING, FAILED]);
    let r = key_get(&app, &secret, &format!("{URL}?uid={orphan}"));
    assert_error(&app, &r, 400, "failed_precondition", "failed_precondition");
    let r = key_get(&app, &secret, &format!("{URL}?uid={}", uuid::Uuid::new_v4()));
    assert_error(&app, &r, 404, "not_found", "not_found");
}

fn bad_download_links_are_refused(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    let body = json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                      "reason": "links"});
    let uid = ed_export(&app, &secret, &body);
    let uid2 = ed_export(&app, &secret, &body);
    wait_done(&app, &secret, DETAIL, &uid);
    wait_done(&app, &secret, DETAIL, &uid2);
    let url = key_get(&app, &secret, &format!("{URL}?uid={uid}")).ok()["download_url"].as_str().unwrap().to_string();
    let query = url.split_once('?').unwrap().1.to_string();
    let param = |name: &str| query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap().to_string();
    let (expires, sig) = (param("expires"), param("sig"));
    assert_eq!(sig.len(), 64);

    let refused = |path_and_query: &str, reason: &str| {
        let r = app.get(path_and_query, &[]);
        assert_eq!(r.status, 401, "{path_and_query}: {}", r.text);
        assert_eq!(r.body["error"]["message"], json!(LINK_REFUSED));
        assert!(r.header("x-request-id").is_some());
        assert_error(&app, &r, 401, "unauthenticated", reason)
    };
    let forged = keyward::crypto::hex(&[7u8; 32]);
    refused(&format!("{DOWNLOAD}?uid={uid}&expires={expires}&sig={forged}"), "bad_signature");
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    refused(&format!("{DOWNLOAD}?uid={uid}&expires={expires}&sig={flipped}"), "bad_signature");
    refused(&format!("{DOWNLOAD}?uid={uid2}&expires={expires}&sig={sig}"), "bad_signature");
    refused(
        &format!("{DOWNLOAD}?uid={uid}&expires={}&sig={sig}", expires.parse::<i64>().unwrap() + 3600),
        "bad_signature",
    );
    refused(&format!("{C_DOWNLOAD}?uid={uid}&expires={expires}&sig={sig}"), "bad_signature");
    refused(&format!("{DOWNLOAD}?uid={uid}&expires={expires}"), "bad_signature");
    refused(&format!("{DOWNLOAD}?uid={}&expires={expires}&sig={sig}", uuid::Uuid::new_v4()), "bad_signature");

    // A link keyward signed that has run out: refused, and recorded in the tenant's chain.
    let signer = LinkSigner::new(app.settings().key_pepper.expose().as_bytes());
    let past = chrono::Utc::now().timestamp() - 1;
    let old = signer.sign("EDISCOVERY", &app.tenant_id, &uid, past);
    let ev = refused(&format!("{DOWNLOAD}?uid={uid}&expires={past}&sig={old}"), "link_expired");
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));
    assert_eq!(ev["metadata"]["uid"], json!(uid));
    // The same signer with a future expiry is accepted: the test built links the way keyward does.
    let future = chrono::Utc::now().timestamp() + 60;
    let good = signer.sign("EDISCOVERY", &app.tenant_id, &uid, future);
    let d = fetch(&format!("{}{DOWNLOAD}?uid={uid}&expires={future}&sig={good}", app.base));
    assert_eq!(d.status, 200);
    // The genuine link still works, and keys are not what opens it.
    assert_eq!(fetch(&url).status, 200);
    // A suspended tenant's links stop with its keys.
    app.exec_sql(&format!("UPDATE tenants SET status = 'SUSPENDED' WHERE id = '{}'", app.tenant_id));
    let path = url.strip_prefix(&app.base).unwrap().to_string();
    let ev = refused(&path, "tenant_inactive");
    assert_eq!(ev["tenant_id"], json!(app.tenant_id));
}

fn other_tenants_and_other_kinds_are_not_found(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, other_owner, other_token) = app.new_tenant("Globex");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &format!("Bearer {other_token}"))],
        &json!({"key_type": "KEY_TYPE_EDISCOVERY", "label": "globex"}),
    );
    let other_secret = r.ok()["secret"].as_str().unwrap().to_string();
    let theirs = ed_export(
        &app,
        &other_secret,
        &json!({"user_id": other_owner, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                "reason": "theirs"}),
    );
    let done = wait_done(&app, &other_secret, DETAIL, &theirs);
    assert_eq!(done["status"], json!(COMPLETED));
    assert!(process_events(&app, &theirs).is_empty(), "their runner events are in their chain, not ours");

    for path in [DETAIL, URL] {
        let r = key_get(&app, &secret, &format!("{path}?uid={theirs}"));
        assert_error(&app, &r, 404, "not_found", "not_found");
    }
    let r = key_get(&app, &secret, LIST);
    assert_eq!(r.ok()["total"], json!(0));
    // An e-Discovery job is not a SIEM export, even in the same tenant.
    let ours = ed_export(
        &app,
        &secret,
        &json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                "reason": "ours"}),
    );
    for path in [C_DETAIL, C_URL] {
        let r = key_get(&app, &siem, &format!("{path}?uid={ours}"));
        assert_error(&app, &r, 404, "not_found", "not_found");
    }
}

fn list_pages_the_tenants_exports(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let body = json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                      "reason": "list"});
    let mut uids: HashSet<String> = (0..3).map(|_| ed_export(&app, &secret, &body)).collect();
    key_post(&app, &siem, C_CREATE, &json!({})).ok();

    let first = key_get(&app, &secret, &format!("{LIST}?limit=2")).ok().clone();
    assert_eq!(first["total"], json!(3));
    assert_eq!(first["limit"], json!(2));
    assert_eq!(first["exports"].as_array().unwrap().len(), 2);
    let second = key_get(&app, &secret, &format!("{LIST}?limit=2&offset=2")).ok().clone();
    assert_eq!(second["offset"], json!(2));
    assert_eq!(second["exports"].as_array().unwrap().len(), 1);
    for e in first["exports"].as_array().unwrap().iter().chain(second["exports"].as_array().unwrap()) {
        assert!(uids.remove(e["uid"].as_str().unwrap()), "each export once: {e}");
        assert!(e.get("user_id").is_some(), "only e-Discovery exports: {e}");
    }
    assert!(uids.is_empty());
    for q in ["limit=0", "limit=1001", "offset=-1", "cursor=x"] {
        let r = key_get(&app, &secret, &format!("{LIST}?{q}"));
        assert_error(&app, &r, 400, "invalid_argument", "invalid_argument");
    }
}

fn wrong_callers_are_refused(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, ed) = app.create_key("KEY_TYPE_EDISCOVERY");
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let (_, users) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let ed_body = json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_METADATA", "include_files": false,
                         "reason": "r"});
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        (siem.as_str(), CREATE, Some(ed_body.clone())),
        (audit.as_str(), CREATE, Some(ed_body.clone())),
        (siem.as_str(), LIST, None),
        (users.as_str(), DETAIL, None),
        (ed.as_str(), C_CREATE, Some(json!({}))),
        (audit.as_str(), C_DETAIL, None),
        (ed.as_str(), C_URL, None),
    ];
    for (secret, path, body) in cases {
        let r = match &body {
            Some(b) => key_post(&app, secret, path, b),
            None => key_get(&app, secret, &format!("{path}?uid=x")),
        };
        assert_eq!(r.body["error"]["message"], json!(KEY_REFUSED), "{path}");
        let ev = assert_error(&app, &r, 401, "unauthenticated", "type_mismatch");
        assert_eq!(ev["tenant_id"], json!(app.tenant_id));
    }
    // A console token is no key.
    let r = app.owner_post(CREATE, &ed_body);
    assert_error(&app, &r, 401, "unauthenticated", "missing");
    let r = app.get(LIST, &[]);
    assert_error(&app, &r, 401, "unauthenticated", "missing");
    assert_eq!(key_get(&app, &ed, LIST).ok()["total"], json!(0), "refused creates made no job");
}

// ------------------------------------------------------------------ SIEM bulk exports

fn compliance_export_is_the_tenants_events_in_order(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    // Another tenant's events never appear.
    let (other_tenant, _, other_token) = app.new_tenant("Globex");
    app.get("/v2/enterprise.key.list", &[("Authorization", &format!("Bearer {other_token}"))]).ok();

    let r = key_post(&app, &siem, C_CREATE, &json!({"include_payload": true}));
    assert_error(&app, &r, 400, "failed_precondition", "failed_precondition");

    let r = key_post(&app, &siem, C_CREATE, &json!({"since": "2020-01-01T00:00:00Z"}));
    let created = export_of(&r);
    assert_eq!(created["status"], json!(PENDING));
    assert_eq!(created["include_payload"], json!(false));
    assert!(created["until"].is_string(), "until defaults to the request's time: {created}");
    let create_seq = event_of(&app, &r)["seq"].as_i64().unwrap();
    let uid = uid_of(&created);
    let done = wait_done(&app, &siem, C_DETAIL, &uid);
    assert_eq!(done["status"], json!(COMPLETED), "{done}");
    let d = download(&app, &siem, C_URL, C_DOWNLOAD, &uid, "application/x-ndjson");
    assert_eq!(done["file_sha256"], json!(keyward::crypto::sha256_hex(&d.bytes)));
    let events = ndjson(std::str::from_utf8(&d.bytes).unwrap());
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..create_seq).collect();
    assert_eq!(seqs, expected, "every event before the request, in seq order");
    assert!(events.iter().all(|e| e["tenant_id"] == json!(app.tenant_id)));
    assert!(events.iter().all(|e| e.get("payload").is_none()), "Tier 1 only");
    assert!(!events.iter().any(|e| e["tenant_id"] == json!(other_tenant)));
    assert_eq!(statuses(&process_events(&app, &uid)), [PROCESSING, COMPLETED]);
    assert_eq!(process_events(&app, &uid)[0]["operation"], json!("enterprise.compliance.export.process"));

    // With the data-processing agreement, Tier 2 payloads come along (redacted as stored).
    app.owner_post("/v2/enterprise.key_policy.update", &json!({"siem_tier2_enabled": true})).ok();
    let r = key_post(&app, &siem, C_CREATE, &json!({"include_payload": true}));
    let uid = uid_of(&export_of(&r));
    assert_eq!(wait_done(&app, &siem, C_DETAIL, &uid)["status"], json!(COMPLETED));
    let d = download(&app, &siem, C_URL, C_DOWNLOAD, &uid, "application/x-ndjson");
    let text = String::from_utf8(d.bytes).unwrap();
    let events = ndjson(&text);
    assert!(events.iter().all(|e| e.get("payload").is_some()), "Tier 2 included");
    let key_create = events.iter().find(|e| e["operation"] == json!("enterprise.key.create")).unwrap();
    assert_eq!(key_create["payload"]["key_type"], json!("KEY_TYPE_SIEM"));
    assert!(!text.contains(&siem), "no secret in an export");

    // An empty window is an empty file; a reversed one is refused.
    let r = key_post(&app, &siem, C_CREATE, &json!({"since": "2000-01-01T00:00:00Z", "until": "2001-01-01T00:00:00Z"}));
    let uid = uid_of(&export_of(&r));
    assert_eq!(wait_done(&app, &siem, C_DETAIL, &uid)["file_size"], json!(0));
    let r = key_post(&app, &siem, C_CREATE, &json!({"since": "2001-01-01T00:00:00Z", "until": "2000-01-01T00:00:00Z"}));
    assert_error(&app, &r, 400, "invalid_argument", "invalid_argument");
}

// ------------------------------------------------------------------ the runner

fn a_stale_run_is_taken_back_and_completes(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    // An instance died mid-run long ago (attempt 1), and another gave up its third attempt.
    let stale = insert_job(&app, "EDISCOVERY", PROCESSING, &app.owner_id, "2020-01-01 00:00:00", 1);
    let spent = insert_job(&app, "EDISCOVERY", PROCESSING, &app.owner_id, "2020-01-01 00:00:00", 3);

    let mut conn = app.db();
    let export_dir = app.settings().export_dir.clone();
    let signer = app.settings().checkpoint_signer.clone();
    let recovered = Jobs::on_connection(&mut conn, &export_dir, &signer).recover_stale().unwrap();
    assert!(recovered <= 2, "{recovered}");
    // Whoever took them back (this call or the instance's runner at start-up), the lease is over.
    let again = Jobs::on_connection(&mut conn, &export_dir, &signer).recover_stale().unwrap();
    assert_eq!(again, 0, "a run is taken back once");

    let done = wait_done(&app, &secret, DETAIL, &stale);
    assert_eq!(done["status"], json!(COMPLETED), "{done}");
    assert_eq!(done["attempts"], json!(2), "the second attempt finished it");
    let events = process_events(&app, &stale);
    assert_eq!(statuses(&events), [PENDING, PROCESSING, COMPLETED]);
    assert_eq!(events[0]["metadata"]["reason"], json!("lease_expired"));
    let files = unzip(&download(&app, &secret, URL, DOWNLOAD, &stale, "application/zip").bytes);
    assert_eq!(ndjson(&files["member.ndjson"])[0]["team_user_id"], json!(app.owner_id));

    let gave_up = export_of(&key_get(&app, &secret, &format!("{DETAIL}?uid={spent}")));
    assert_eq!(gave_up["status"], json!(FAILED));
    assert!(gave_up["error"].as_str().unwrap().contains("3 attempts"), "{gave_up}");
    assert_eq!(statuses(&process_events(&app, &spent)), [FAILED]);
}

fn jobs_left_pending_are_run_exactly_once(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    // Jobs recorded while no runner ran (or by another instance).
    let uids: Vec<String> = (0..3).map(|_| insert_job(&app, "EDISCOVERY", PENDING, &app.owner_id, "", 0)).collect();
    // This test acts as a second instance, racing the app's own runner for them.
    let mut conn = app.db();
    let export_dir = app.settings().export_dir.clone();
    let signer = app.settings().checkpoint_signer.clone();
    let ran = Jobs::on_connection(&mut conn, &export_dir, &signer).run_pending().unwrap();
    assert!(ran <= 3);
    for uid in &uids {
        let done = wait_done(&app, &secret, DETAIL, uid);
        assert_eq!(done["status"], json!(COMPLETED), "{done}");
        assert_eq!(done["attempts"], json!(1), "claimed once");
        let process: Vec<String> = statuses(&process_events(&app, uid)).into_iter().collect();
        assert_eq!(process, [PROCESSING, COMPLETED], "one run per job");
    }
    assert_eq!(Jobs::on_connection(&mut conn, &export_dir, &signer).run_pending().unwrap(), 0, "nothing left");
    let v = app.verification();
    assert_eq!(v["valid"], json!(true), "{v}");
}

both!(
    ediscovery_export_runs_in_the_background_and_downloads_as_a_zip,
    metadata_scope_windows_and_removed_members,
    create_validates_its_body,
    download_url_waits_for_completion,
    bad_download_links_are_refused,
    other_tenants_and_other_kinds_are_not_found,
    list_pages_the_tenants_exports,
    wrong_callers_are_refused,
    compliance_export_is_the_tenants_events_in_order,
    a_stale_run_is_taken_back_and_completes,
    jobs_left_pending_are_run_exactly_once,
);

/// Jobs outlive the process: a job left PENDING while no keyward ran, and one
/// left PROCESSING by a process that died mid-run, both complete after a restart.
fn jobs_survive_a_restart(b: Backend) {
    let mut app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_EDISCOVERY");
    app.stop();
    let pending = insert_job(&app, "EDISCOVERY", "EXPORT_STATUS_PENDING", &app.owner_id, "", 0);
    let abandoned = insert_job(&app, "EDISCOVERY", "EXPORT_STATUS_PROCESSING", &app.owner_id, "2026-01-01 00:00:00", 1);
    app.start();
    for uid in [&pending, &abandoned] {
        let done = wait_done(&app, &secret, DETAIL, uid);
        assert_eq!(done["status"], json!("EXPORT_STATUS_COMPLETED"), "{uid}: {done}");
    }
    let statuses = statuses(&process_events(&app, &abandoned));
    assert!(statuses.contains(&"EXPORT_STATUS_COMPLETED".to_string()), "{statuses:?}");
}
both!(jobs_survive_a_restart);

/// No secret reaches an export: key secrets (issued, rotated, used), the
/// pepper, the console secret and token, and the ingest token are absent from
/// the e-Discovery archive (scope FULL) and the Tier 2 SIEM export.
fn secrets_never_reach_an_export(b: Backend) {
    const INGEST: &str = "ingest-token-for-the-export-secret-test-0123";
    let app = TestApp::spawn_with(b, &[("KEYWARD_INGEST_TOKEN", INGEST)]);
    let (siem_id, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, ediscovery) = app.create_key("KEY_TYPE_EDISCOVERY");
    let rotated = app.owner_post("/v2/enterprise.key.rotate", &json!({"key_id": siem_id, "grace_seconds": 3600}));
    let siem_next = rotated.ok()["secret"].as_str().unwrap().to_string();
    for secret in [&siem, &siem_next, &ediscovery] {
        assert_eq!(key_get(&app, secret, "/v2/auth.whoami").status, 200);
    }
    let upsert = app.post(
        "/internal/v2/team.asset.upsert",
        &[("Authorization", &format!("Bearer {INGEST}"))],
        &json!({"tenant_id": app.tenant_id, "asset_type": "ASSET_TYPE_FILE", "asset_id": "f1", "asset_name": "plan",
                "owner_id": app.owner_id, "shared_at": "2026-01-01T00:00:00Z", "permission": "SHARE_SCOPE_TEAM_ONLY"}),
    );
    assert_eq!(upsert.status, 200, "{}", upsert.text);
    app.owner_post("/v2/enterprise.key_policy.update", &json!({"siem_tier2_enabled": true})).ok();

    let mut texts = Vec::new();
    let r = key_post(
        &app,
        &ediscovery,
        CREATE,
        &json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_FULL", "include_files": true, "reason": "audit"}),
    );
    let uid = uid_of(&export_of(&r));
    wait_done(&app, &ediscovery, DETAIL, &uid);
    let archive = unzip(&download(&app, &ediscovery, URL, DOWNLOAD, &uid, "application/zip").bytes);
    assert!(archive["events.ndjson"].contains("enterprise.key.create"), "the owner's key issuance is in the archive");
    texts.extend(archive.into_values());

    let r = key_post(&app, &siem_next, C_CREATE, &json!({"include_payload": true}));
    let uid = uid_of(&export_of(&r));
    wait_done(&app, &siem_next, C_DETAIL, &uid);
    let d = download(&app, &siem_next, C_URL, C_DOWNLOAD, &uid, "application/x-ndjson");
    let feed = String::from_utf8(d.bytes).unwrap();
    assert!(feed.contains("\"payload\""), "Tier 2 is in this export");
    texts.push(feed);

    let settings = app.settings();
    let secrets = [
        siem.as_str(),
        siem_next.as_str(),
        ediscovery.as_str(),
        settings.key_pepper.expose(),
        settings.console_jwt_secret.as_ref().unwrap().expose(),
        app.owner_token.as_str(),
        INGEST,
    ];
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "an export holds a secret ({}…)", &secret[..12]);
        }
    }
}
both!(secrets_never_reach_an_export);
