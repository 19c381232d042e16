//! Hostile HTTP input: random bodies, credential headers, query strings and
//! paths sent to a running keyward. Whatever arrives, the answer is never a
//! 5xx, and every refusal is the error envelope (`ok: false`, the
//! `X-Request-Id` as `request_id`, a §7 code with its status) or, under
//! `/scim/`, the SCIM error schema.
//!
//! Requests go over a raw TCP socket so that bytes an HTTP library would
//! refuse to send (non-ASCII header values, `%` junk, `..` segments) reach
//! the server exactly as generated. Each test runs a fixed, small number of
//! cases against one app.

use crate::both;
use crate::helpers::{send, Backend, Resp, TestApp};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};
use serde_json::{json, Map, Value};

const CASES: u32 = 64;
const INGEST_TOKEN: &str = "hostile-ingest-token-0123456789abcdef";
const SCIM_ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Each error code and the statuses it may answer with
/// (405 for a wrong method and 413 for a big body are `invalid_argument`).
const CODES: &[(&str, &[u16])] = &[
    ("invalid_argument", &[400, 405, 413]),
    ("failed_precondition", &[400]),
    ("unauthenticated", &[401]),
    ("permission_denied", &[403]),
    ("not_found", &[404]),
    ("already_exists", &[409]),
    ("rate_limited", &[429]),
];

const GET_ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/v2/enterprise.key.list",
    "/v2/enterprise.key.detail",
    "/v2/enterprise.key_policy.detail",
    "/v2/enterprise.audit.list",
    "/v2/enterprise.audit.verify",
    "/v2/auth.whoami",
    "/v2/authz.check",
    "/v2/authz.check/v2/team.user.list",
    "/v2/team.user.list",
    "/v2/team.user.detail",
    "/v2/team.asset.list",
    "/v2/enterprise.hold.list",
    "/v2/enterprise.compliance.event.list",
    "/scim/v2/ServiceProviderConfig",
    "/scim/v2/ResourceTypes",
    "/scim/v2/Schemas",
    "/scim/v2/Users",
    "/scim/v2/Groups",
    "/v2/team.role_mapping.list",
    "/v2/enterprise.siem_sink.list",
    "/v2/enterprise.export.detail",
    "/v2/enterprise.export.list",
    "/v2/enterprise.export.downloadUrl",
    "/v2/enterprise.export.download",
    "/v2/enterprise.compliance.export.detail",
    "/v2/enterprise.compliance.export.downloadUrl",
    "/v2/enterprise.compliance.export.download",
];

const WRITE_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v2/enterprise.key.create"),
    ("POST", "/v2/enterprise.key.update"),
    ("POST", "/v2/enterprise.key.rotate"),
    ("POST", "/v2/enterprise.key.revoke"),
    ("POST", "/v2/enterprise.key_policy.update"),
    ("POST", "/v2/authz.check"),
    ("POST", "/v2/team.user.create"),
    ("POST", "/v2/team.user.update"),
    ("POST", "/v2/team.user.remove"),
    ("POST", "/v2/team.asset.update_scope"),
    ("POST", "/v2/enterprise.hold.create"),
    ("POST", "/v2/enterprise.hold.release"),
    ("POST", "/internal/v2/team.asset.upsert"),
    ("POST", "/internal/v2/team.asset.delete"),
    ("POST", "/scim/v2/Users"),
    ("PUT", "/scim/v2/Users/{id}"),
    ("PATCH", "/scim/v2/Users/{id}"),
    ("DELETE", "/scim/v2/Users/{id}"),
    ("POST", "/scim/v2/Groups"),
    ("PUT", "/scim/v2/Groups/{id}"),
    ("PATCH", "/scim/v2/Groups/{id}"),
    ("DELETE", "/scim/v2/Groups/{id}"),
    ("POST", "/v2/team.role_mapping.update"),
    ("POST", "/v2/enterprise.siem_sink.create"),
    ("POST", "/v2/enterprise.siem_sink.update"),
    ("POST", "/v2/enterprise.siem_sink.delete"),
    ("POST", "/v2/enterprise.siem_sink.replay"),
    ("POST", "/v2/enterprise.export.create"),
    ("POST", "/v2/enterprise.compliance.export.create"),
];

const QUERY_PARAMS: &[&str] = &[
    "limit",
    "offset",
    "cursor",
    "key_type",
    "key_id",
    "status",
    "role",
    "email",
    "team_user_id",
    "operation",
    "actor_id",
    "outcome",
    "since",
    "until",
    "asset_type",
    "keyword",
    "owner_id",
    "permission",
    "start_time",
    "end_time",
    "include_payload",
    "filter",
    "startIndex",
    "count",
    "uid",
    "expires",
    "sig",
];

const BODY_FIELDS: &[&str] = &[
    "key_type",
    "label",
    "expires_at",
    "ip_allowlist",
    "key_id",
    "reason",
    "revoke_reason",
    "grace_seconds",
    "max_lifetime_days",
    "siem_tier2_enabled",
    "team_user_id",
    "email",
    "role",
    "first_name",
    "last_name",
    "status",
    "user_ids",
    "asset_id",
    "asset_type",
    "asset_name",
    "owner_id",
    "scope",
    "share_uid",
    "name",
    "note",
    "release_reason",
    "hold_id",
    "uid",
    "start_time",
    "end_time",
    "since",
    "until",
    "include_files",
    "include_payload",
    "tenant_id",
    "schemas",
    "Operations",
    "op",
    "path",
    "value",
    "userName",
    "emails",
    "active",
    "externalId",
    "id",
    "sink_id",
    "kind",
    "url",
    "format",
    "filter_operations",
    "filter_outcomes",
    "token",
    "from_seq",
    "rotate_secret",
];

const ENUM_VALUES: &[&str] = &[
    "KEY_TYPE_EDISCOVERY",
    "KEY_TYPE_SIEM",
    "KEY_TYPE_TEAM_USER_MGMT",
    "KEY_TYPE_TEAM_ASSET_AUDIT",
    "KEY_TYPE_TEAM_ASSET_MGMT",
    "OWNER",
    "ADMIN",
    "AUDITOR",
    "MEMBER",
    "USER_STATUS_ACTIVE",
    "USER_STATUS_INACTIVE",
    "USER_STATUS_REMOVED",
    "ASSET_TYPE_DOCUMENT",
    "SHARE_SCOPE_PUBLIC",
    "SHARE_SCOPE_TEAM_ONLY",
    "ENTERPRISE_EXPORT_SCOPE_FULL",
    "HOLD_STATUS_ACTIVE",
    "2020-01-01T00:00:00Z",
    "2999-12-31T23:59:59Z",
    "1970-01-01T00:00:00+14:00",
    "0000-00-00T00:00:00Z",
    "10.0.0.0/8",
    "::1/128",
    "10.0.0.0/33",
    "a@b.example",
    "urn:ietf:params:scim:api:messages:2.0:PatchOp",
    "replace",
    "remove",
    "active",
    "userName eq \"a\"",
    "WEBHOOK",
    "SPLUNK_HEC",
    "ocsf",
    "https://siem.example.com/keyward",
    "http://127.0.0.1:9/",
    "enterprise.key.create",
];

/// Header (name, value) pairs a request presents as its credentials.
type Headers = Vec<(String, String)>;

struct Fixture {
    app: TestApp,
    /// Header sets a caller might present: none, the owner, each key in each form, the platform.
    creds: Vec<Headers>,
    /// The same by who presents them: "owner", "ingest", or a key type's tag.
    by_caller: Vec<(&'static str, Headers)>,
    /// Ids that exist (keys, members, the tenant) and a few that do not.
    ids: Vec<String>,
    /// Valid credentials to mutate.
    secrets: Vec<String>,
}

impl Fixture {
    /// The credentials a route is meant for (most requests get past authentication).
    fn creds_for(&self, route: &str) -> Vec<Headers> {
        let callers: &[&str] = match route {
            r if r.starts_with("/scim/") || r.starts_with("/v2/team.user.") => &["usermgmt"],
            r if r.starts_with("/internal/") => &["ingest"],
            r if r.starts_with("/v2/team.asset.list") => &["assetaudit", "assetmgmt"],
            r if r.starts_with("/v2/team.asset.") => &["assetmgmt"],
            r if r.starts_with("/v2/enterprise.hold.") || r.starts_with("/v2/enterprise.export.") => &["ediscovery"],
            r if r.starts_with("/v2/enterprise.compliance.") => &["siem"],
            r if r.starts_with("/v2/authz.check") || r.starts_with("/v2/auth.whoami") => {
                &["owner", "ediscovery", "siem", "usermgmt", "assetaudit", "assetmgmt"]
            }
            _ => &["owner"],
        };
        let right: Vec<_> =
            self.by_caller.iter().filter(|(who, _)| callers.contains(who)).map(|(_, c)| c.clone()).collect();
        if right.is_empty() {
            self.creds.clone()
        } else {
            right
        }
    }

    /// A route with credentials: mostly the right ones, sometimes any.
    fn routed<R: Clone + std::fmt::Debug + 'static>(
        &self,
        routes: Vec<(R, &'static str)>,
    ) -> impl Strategy<Value = (R, &'static str, Headers)> {
        let table: Vec<(R, &'static str, Vec<Headers>)> =
            routes.into_iter().map(|(r, path)| (r, path, self.creds_for(path))).collect();
        let all = self.creds.clone();
        select(table).prop_flat_map(move |(r, path, right)| {
            (Just(r), Just(path), prop_oneof![4 => select(right), 1 => select(all.clone())])
        })
    }
}

fn fixture(b: Backend) -> Fixture {
    let app = TestApp::spawn_with(b, &[("KEYWARD_INGEST_TOKEN", INGEST_TOKEN)]);
    let owner = vec![("Authorization".to_string(), format!("Bearer {}", app.owner_token))];
    let mut creds = vec![vec![], owner.clone()];
    let mut by_caller = vec![("owner", owner)];
    let mut ids = vec![app.owner_id.clone(), app.tenant_id.clone(), "mem_nope".into(), "".into(), "0".into()];
    let mut secrets = vec![app.owner_token.clone()];
    for (t, tag) in [
        ("KEY_TYPE_EDISCOVERY", "ediscovery"),
        ("KEY_TYPE_SIEM", "siem"),
        ("KEY_TYPE_TEAM_USER_MGMT", "usermgmt"),
        ("KEY_TYPE_TEAM_ASSET_AUDIT", "assetaudit"),
        ("KEY_TYPE_TEAM_ASSET_MGMT", "assetmgmt"),
    ] {
        let (_, secret) = app.create_key(t);
        for form in [
            vec![("X-API-Key".to_string(), secret.clone())],
            vec![("Authorization".to_string(), format!("Bearer {secret}"))],
            vec![("Api-Key".to_string(), secret.clone())],
        ] {
            creds.push(form.clone());
            by_caller.push((tag, form));
        }
        secrets.push(secret);
    }
    // Ids the bodies may name: keys and members that requests may revoke,
    // rotate or remove without taking the credentials above away.
    for t in ["KEY_TYPE_SIEM", "KEY_TYPE_TEAM_USER_MGMT"] {
        ids.push(app.create_key(t).0);
    }
    for role in ["ADMIN", "MEMBER"] {
        ids.push(app.add_member(&app.tenant_id, role).0);
    }
    let ingest = vec![("Authorization".to_string(), format!("Bearer {INGEST_TOKEN}"))];
    creds.push(ingest.clone());
    by_caller.push(("ingest", ingest));
    Fixture { app, creds, by_caller, ids, secrets }
}

// ------------------------------------------------------------------ raw HTTP

// ------------------------------------------------------------------ the check

/// Never a 5xx; a request id always; every non-2xx the §7 envelope (or the SCIM error under /scim/).
fn check(what: &str, target: &str, r: &Resp) -> TestCaseResult {
    prop_assert!(r.status < 500, "{what}: answered {}: {}", r.status, r.text);
    let rid = r.header("x-request-id");
    prop_assert!(rid.as_deref().is_some_and(|id| !id.is_empty()), "{what}: no X-Request-Id");
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    if target.starts_with("/scim/") && r.body["schemas"].is_array() {
        prop_assert_eq!(&r.body["schemas"], &json!([SCIM_ERROR_SCHEMA]), "{}: {}", what, r.text);
        let status = r.status.to_string();
        prop_assert_eq!(r.body["status"].as_str(), Some(status.as_str()), "{}: {}", what, r.text);
        prop_assert!(r.body["detail"].is_string(), "{what}: {}", r.text);
        return Ok(());
    }
    prop_assert_eq!(&r.body["ok"], &json!(false), "{}: {} {}", what, r.status, r.text);
    prop_assert_eq!(r.body["request_id"].as_str(), rid.as_deref(), "{}: {}", what, r.text);
    let code = r.body["error"]["code"].as_str().unwrap_or("");
    let statuses = CODES.iter().find(|(c, _)| *c == code).map(|(_, s)| *s);
    prop_assert!(
        statuses.is_some_and(|s| s.contains(&r.status)),
        "{what}: code {code:?} with {}: {}",
        r.status,
        r.text
    );
    prop_assert!(r.body["error"]["message"].is_string(), "{what}: {}", r.text);
    Ok(())
}

fn run<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> TestCaseResult) {
    let mut runner =
        TestRunner::new(Config { cases: CASES, max_shrink_iters: 200, failure_persistence: None, ..Config::default() });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

// ------------------------------------------------------------------ generators

/// Any string, sometimes made of characters that parsers trip over.
fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        prop::collection::vec(
            select(vec![
                "\"", "\\", "%", "%00", "%zz", "%ff", "&", "=", "+", ";", "/", "..", "{", "[", "\u{0}", "é", "kw_",
                "😀"
            ]),
            0..8
        )
        .prop_map(|v| v.concat()),
    ]
}

/// `text` one char edited (changed, added or removed), on char boundaries.
fn mutate(text: &str, at: prop::sample::Index, op: u8, c: char) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return c.to_string();
    }
    let i = at.index(chars.len());
    match op % 3 {
        0 => chars[i] = c,
        1 => chars.insert(i, c),
        _ => {
            chars.remove(i);
        }
    }
    chars.into_iter().collect()
}

fn mutated(of: Vec<String>) -> impl Strategy<Value = String> {
    (
        select(of),
        any::<prop::sample::Index>(),
        any::<u8>(),
        prop_oneof![any::<char>(), "[A-Za-z0-9._-]".prop_map(|s| s.chars().next().unwrap())],
    )
        .prop_map(|(s, at, op, c)| mutate(&s, at, op, c))
}

/// Bytes a request target may carry unencoded (http's path and query tables).
fn target_safe(b: u8, in_query: bool) -> bool {
    match b {
        b'#' | b'<' | b'>' | b'`' => false,
        b'"' => !in_query,
        b'?' => in_query,
        0x21..=0x7e => true,
        _ => false,
    }
}

fn encode_target(s: &str, in_query: bool) -> String {
    s.bytes().map(|b| if target_safe(b, in_query) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn json_leaf(ids: Vec<String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        select(vec![0i64, -1, 1, 2, 30, 31, 91, 365, 366, 1000, 1001, i64::MAX, i64::MIN]).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        select(ENUM_VALUES.to_vec()).prop_map(|s| json!(s)),
        select(ids).prop_map(Value::String),
        junk().prop_map(Value::String),
    ]
}

fn json_value(ids: Vec<String>) -> impl Strategy<Value = Value> {
    json_leaf(ids).prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (prop_oneof![select(BODY_FIELDS.to_vec()).prop_map(String::from), junk()], inner),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object of plausible fields with plausible or hostile values.
fn json_body(ids: Vec<String>) -> impl Strategy<Value = Value> {
    prop::collection::vec((select(BODY_FIELDS.to_vec()), json_value(ids)), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn body_bytes(fields: Vec<Field>, ids: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let punct = select(vec!['"', '{', '}', ',', ':', '\\', '[', '0', ' ', 'é']);
    prop_oneof![
        10 => schema_body(fields.clone(), ids.clone()).prop_map(|v| v.to_string().into_bytes()),
        // Valid JSON with one character changed, added or removed.
        3 => (schema_body(fields, ids.clone()), any::<prop::sample::Index>(), any::<u8>(), punct)
            .prop_map(|(v, at, op, c)| mutate(&v.to_string(), at, op, c).into_bytes()),
        2 => json_body(ids.clone()).prop_map(|v| v.to_string().into_bytes()),
        1 => json_value(ids).prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => select(vec!["", "{", "null", "[]", "\"x\"", "{}", "{\"a\":1}{}", "\u{feff}{}", "{\"label\":\"\\ud800\"}"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(Some("application/json".to_string())),
        2 => Just(Some("application/scim+json".to_string())),
        3 => select(vec!["application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", "", ";", "application/json;;;", "multipart/form-data; boundary=x"])
            .prop_map(|s| Some(s.to_string())),
        1 => Just(None),
    ]
}

/// A header value: junk, raw non-ASCII bytes, or a valid credential slightly changed.
fn header_value(secrets: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let scheme = || select(vec!["", "Bearer ", "bearer ", "Api-Key ", "Basic ", "Bearer  ", " Bearer\t"]);
    prop_oneof![
        junk().prop_map(|s| s.replace(|c: char| c.is_control() && c != '\t', "").into_bytes()),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..80),
        (scheme(), select(secrets.clone())).prop_map(|(s, v)| format!("{s}{v}").into_bytes()),
        (scheme(), mutated(secrets))
            .prop_map(|(s, v)| { format!("{s}{v}").replace(|c: char| c.is_control() && c != '\t', "").into_bytes() }),
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    select(vec![
        "X-API-Key",
        "x-api-key",
        "Api-Key",
        "Authorization",
        "X-Original-Method",
        "X-Original-URI",
        "X-Request-Id",
        "Content-Type",
        "X-Forwarded-For",
    ])
    .prop_map(String::from)
}

// ------------------------------------------------------------------ bodies from openapi.yaml

/// A request body field as openapi.yaml describes it, with values to try.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    required: bool,
    samples: Vec<Value>,
}

fn openapi() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).expect("openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => resolve(doc, doc.pointer(pointer).unwrap_or(&Value::Null)),
        None => schema,
    }
}

/// Values a property's schema allows, and its edges just outside.
fn samples(doc: &Value, schema: &Value, name: &str, ids: &[String], depth: usize) -> Vec<Value> {
    let s = resolve(doc, schema);
    let mut out: Vec<Value> = Vec::new();
    for k in ["enum", "examples"] {
        out.extend(s[k].as_array().cloned().unwrap_or_default());
    }
    for k in ["const", "example", "default"] {
        if let Some(v) = s.get(k) {
            out.push(v.clone());
        }
    }
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    for t in types {
        match t {
            "string" => {
                match s["format"].as_str() {
                    Some("date-time") => out.extend(
                        ["2020-01-01T00:00:00Z", "2999-12-31T23:59:59Z", "2030-06-01T12:00:00+02:00", "yesterday"]
                            .map(|v| json!(v)),
                    ),
                    Some("email") => {
                        out.extend(["new@acme.example", "OWNER@ACME.EXAMPLE", "not-an-email", "a@b"].map(|v| json!(v)))
                    }
                    _ => {}
                }
                if name.ends_with("_id") || name.ends_with("uid") || s["format"] == "uuid" {
                    out.extend(ids.iter().map(|i| json!(i)));
                }
                let max = s["maxLength"].as_u64().unwrap_or(200) as usize;
                out.extend([
                    json!(""),
                    json!("x"),
                    json!(" padded "),
                    json!("a".repeat(max + 1)),
                    json!("tab\tnul\u{0}"),
                ]);
            }
            "boolean" => out.extend([json!(true), json!(false)]),
            "integer" | "number" => out.extend([0, -1, 1, 30, 365, 604_800, 604_801, i64::MAX].map(|n| json!(n))),
            "null" => out.push(Value::Null),
            "array" if depth < 2 => {
                let items = samples(doc, &s["items"], name, ids, depth + 1);
                out.push(json!([]));
                out.extend(items.iter().take(6).map(|v| json!([v])));
                out.push(Value::Array(items.into_iter().take(3).collect()));
            }
            "object" if depth < 2 => {
                let props = s["properties"].as_object().cloned().unwrap_or_default();
                out.push(json!({}));
                out.push(Value::Object(
                    props
                        .iter()
                        .filter_map(|(k, v)| {
                            samples(doc, v, k, ids, depth + 1).into_iter().next().map(|x| (k.clone(), x))
                        })
                        .collect(),
                ));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out.extend([json!("x"), json!(1), Value::Null]);
    }
    out
}

/// The fields of a route's request body, from its schema.
fn request_fields(doc: &Value, method: &str, path: &str, ids: &[String]) -> Vec<Field> {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    let content = &op["requestBody"]["content"];
    let media = content.as_object().and_then(|c| c.values().next()).cloned().unwrap_or(Value::Null);
    let schema = resolve(doc, &media["schema"]);
    let required: Vec<&str> =
        schema["required"].as_array().map_or(vec![], |r| r.iter().filter_map(Value::as_str).collect());
    schema["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| Field {
                    name: name.clone(),
                    required: required.contains(&name.as_str()),
                    samples: samples(doc, prop, name, ids, 0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A body shaped like the route's schema: required fields mostly there, values mostly from the schema.
fn schema_body(fields: Vec<Field>, ids: Vec<String>) -> impl Strategy<Value = Value> {
    let per_field: Vec<_> = fields
        .into_iter()
        .map(|f| {
            let keep = if f.required { 0.95 } else { 0.5 };
            let value = prop_oneof![4 => select(f.samples), 1 => json_leaf(ids.clone())];
            (Just(f.name), prop::bool::weighted(keep), value)
        })
        .collect();
    let extra = proptest::option::weighted(0.1, (select(BODY_FIELDS.to_vec()), json_leaf(ids.clone())));
    (per_field, extra).prop_map(|(fields, extra)| {
        let mut m: Map<String, Value> =
            fields.into_iter().filter(|(_, keep, _)| *keep).map(|(k, _, v)| (k, v)).collect();
        if let Some((k, v)) = extra {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

// ------------------------------------------------------------------ the tests

fn hostile_bodies(b: Backend) {
    let fx = fixture(b);
    let doc = openapi();
    let ids = fx.ids.clone();
    let routes: Vec<((&str, Vec<Field>), &str)> =
        WRITE_ROUTES.iter().map(|(m, p)| ((*m, request_fields(&doc, m, p, &ids)), *p)).collect();
    let strategy =
        (fx.routed(routes), select(ids.clone())).prop_flat_map(move |(((method, fields), route, creds), id)| {
            (Just((method, route, creds, id)), content_type(), body_bytes(fields, ids.clone()))
        });
    run("hostile_bodies", strategy, |((method, route, creds, id), ctype, body)| {
        let target = route.replace("{id}", &encode_target(&id, false));
        let mut headers: Vec<(String, Vec<u8>)> =
            creds.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
        if let Some(c) = ctype {
            headers.push(("Content-Type".into(), c.into_bytes()));
        }
        let r = send(&fx.app, method, &target, &headers, Some(&body));
        check(&format!("{method} {target} {:?}", String::from_utf8_lossy(&body)), &target, &r)
    });
}
both!(hostile_bodies);

fn hostile_credentials(b: Backend) {
    let fx = fixture(b);
    let routes: Vec<(&str, &str)> =
        GET_ROUTES.iter().map(|r| ("GET", *r)).chain(WRITE_ROUTES.iter().copied()).collect();
    let strategy = (select(routes), prop::collection::vec((header_name(), header_value(fx.secrets.clone())), 1..4));
    run("hostile_credentials", strategy, |((method, route), headers)| {
        let target = route.replace("{id}", "mem_nope");
        let body = (method != "GET").then_some(&b"{}"[..]);
        let r = send(&fx.app, method, &target, &headers, body);
        let shown: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect();
        check(&format!("{method} {target} {shown:?}"), &target, &r)
    });
}
both!(hostile_credentials);

fn query_string(ids: Vec<String>) -> impl Strategy<Value = String> {
    let name = prop_oneof![4 => select(QUERY_PARAMS.to_vec()).prop_map(String::from), 1 => junk()];
    let value = prop_oneof![
        select(vec![
            "",
            "0",
            "-1",
            "1",
            "1000",
            "1001",
            "99999999999999999999",
            "true",
            "yes",
            "2020-01-01T00:00:00Z",
            "garbage"
        ])
        .prop_map(String::from),
        select(ENUM_VALUES.to_vec()).prop_map(String::from),
        select(ids),
        junk(),
        "[0-9a-f]{0,70}",
    ];
    let pairs = prop::collection::vec((name, value, any::<bool>()), 0..5);
    let raw_junk = prop::collection::vec(
        select(vec!["&", "=", "%", "%zz", "%ff", "%00", "+", "&&", "==", ";", "?", "%2", "/"]),
        0..4,
    );
    (pairs, raw_junk).prop_map(|(pairs, raw)| {
        let mut q: String = pairs
            .into_iter()
            .map(|(k, v, encode)| {
                if encode {
                    form_urlencoded::Serializer::new(String::new()).append_pair(&k, &v).finish()
                } else {
                    format!("{}={}", encode_target(&k, true), encode_target(&v, true))
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        q.push_str(&raw.concat());
        q
    })
}

fn hostile_queries(b: Backend) {
    let fx = fixture(b);
    let routes = GET_ROUTES.iter().map(|r| ((), *r)).collect();
    let strategy = (fx.routed(routes), query_string(fx.ids.clone()));
    run("hostile_queries", strategy, |(((), route, creds), query)| {
        let target = format!("{route}?{query}");
        let headers: Vec<(String, Vec<u8>)> = creds.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
        let r = send(&fx.app, "GET", &target, &headers, None);
        check(&format!("GET {target}"), &target, &r)
    });
}
both!(hostile_queries);

fn hostile_paths(b: Backend) {
    let fx = fixture(b);
    let prefixes: Vec<String> = [
        "/",
        "/v2/",
        "/v2/enterprise.",
        "/scim/v2/",
        "/scim/v2/Users/",
        "/internal/v2/",
        "/v2/authz.check/",
        "//",
        "/metrics/",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(GET_ROUTES.iter().map(|r| format!("{r}/")))
    .chain(WRITE_ROUTES.iter().map(|(_, r)| r.replace("{id}", "")))
    .collect();
    let segment = prop_oneof![
        junk().prop_map(|s| encode_target(&s, false)),
        select(vec![
            "..",
            ".",
            "%2e%2e",
            "%2F",
            "%00",
            "%zz",
            "%",
            "",
            "Users",
            "v2",
            "{id}",
            "\"x\"",
            "enterprise.key.list"
        ])
        .prop_map(String::from),
        select(fx.ids.clone()),
    ];
    let method = select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECTX", "get"]);
    let strategy =
        (method, select(prefixes), prop::collection::vec(segment, 0..4), select(fx.creds.clone()), any::<bool>());
    run("hostile_paths", strategy, |(method, prefix, segments, creds, with_body)| {
        let target = format!("{prefix}{}", segments.join("/"));
        let mut headers: Vec<(String, Vec<u8>)> =
            creds.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
        if with_body {
            headers.push(("Content-Type".into(), b"application/json".to_vec()));
        }
        let r = send(&fx.app, method, &target, &headers, with_body.then_some(&b"{}"[..]));
        check(&format!("{method} {target}"), &target, &r)
    });
}
both!(hostile_paths);

/// A NUL character in an id or a filter value is bad input, not an outage.
/// (PostgreSQL refuses NUL in text parameters; SQLite answers not found.)
fn nul_in_ids_is_refused_not_a_server_error(b: Backend) {
    let fx = fixture(b);
    let cred = |route: &str| -> Vec<(String, Vec<u8>)> {
        fx.creds_for(route)[0].iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect()
    };
    let json = |route: &str| {
        let mut h = cred(route);
        h.push(("Content-Type".into(), b"application/json".to_vec()));
        h
    };
    for (method, target, headers, body) in [
        ("GET", "/v2/enterprise.key.detail?key_id=%00", cred("/v2/enterprise.key.detail"), None),
        ("GET", "/v2/enterprise.audit.list?actor_id=a%00", cred("/v2/enterprise.audit.list"), None),
        ("GET", "/v2/team.user.detail?team_user_id=%00", cred("/v2/team.user.detail"), None),
        ("GET", "/v2/team.user.list?email=%00", cred("/v2/team.user.list"), None),
        ("GET", "/v2/enterprise.export.detail?uid=%00", cred("/v2/enterprise.export.detail"), None),
        ("GET", "/scim/v2/Users/%00", cred("/scim/v2/Users"), None),
        ("GET", "/scim/v2/Users?filter=userName%20eq%20%22a%5Cu0000%22", cred("/scim/v2/Users"), None),
        ("POST", "/v2/enterprise.key.update", json("/v2/enterprise.key.update"), Some(&br#"{"key_id":"\u0000"}"#[..])),
        ("POST", "/v2/team.user.remove", json("/v2/team.user.remove"), Some(&br#"{"team_user_id":"\u0000"}"#[..])),
    ] {
        let r = send(&fx.app, method, target, &headers, body);
        let what = format!("{method} {target}");
        if let Err(e) = check(&what, target, &r) {
            panic!("{e}");
        }
        assert!([200, 400, 404].contains(&r.status), "{what}: {} {}", r.status, r.text);
    }
}
both!(nul_in_ids_is_refused_not_a_server_error);
