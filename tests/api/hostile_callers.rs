//! Hostile callers (SECURITY.md): no spelling of a path escapes the audit
//! log or reaches a handler under another name, no secret a caller plants is
//! stored or logged, and the gateway maps only what it can map safely.

use crate::both;
use crate::exports::{fetch, unzip, wait_done};
use crate::helpers::{event_of, key_get, key_post, send, Backend, Resp, TestApp, PLANTED_INGEST_TOKEN};
use crate::siem_feed::follow;
use keyward::domain::{authz, KeyType, Operation, Reach};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseResult, TestRunner};
use serde_json::json;

fn run<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult) {
    let mut runner =
        TestRunner::new(Config { cases, max_shrink_iters: 100, failure_persistence: None, ..Config::default() });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

/// The events a request left, by its id: (operation, outcome) each.
fn events_of(app: &TestApp, r: &Resp) -> Vec<(String, String)> {
    let rid = r.header("x-request-id").expect("every answer has a request id");
    app.query_strings(&format!("SELECT operation || ' ' || outcome AS v FROM audit_events WHERE request_id = '{rid}'"))
        .into_iter()
        .map(|v| {
            let (op, outcome) = v.split_once(' ').unwrap();
            (op.to_string(), outcome.to_string())
        })
        .collect()
}

// ------------------------------------------------------------------ one path, one operation

/// A credential the table lets call `op`, so that the request reaches its handler.
fn credential_for(app: &TestApp, keys: &[(KeyType, String)], op: &Operation) -> Vec<(String, Vec<u8>)> {
    let owner = format!("Bearer {}", app.owner_token);
    let key_for = |op: &Operation| {
        keys.iter().find(|(t, _)| authz::key_may_call(*t, op)).map(|(_, s)| s.clone()).expect("a key type")
    };
    match op.reach {
        Reach::Console(_) | Reach::ConsoleOrKey(..) | Reach::AnyCaller => headers(&[("Authorization", &owner)]),
        Reach::Key(..) => headers(&[("X-API-Key", &key_for(op))]),
        Reach::Gateway => headers(&[
            ("X-API-Key", &key_for(authz::find("team.asset.list").unwrap())),
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/v2/team.asset.list"),
        ]),
        Reach::Ingest => headers(&[("Authorization", &format!("Bearer {PLANTED_INGEST_TOKEN}"))]),
        Reach::SignedLink | Reach::ScanningPartner => vec![],
    }
}

/// One change to a path's spelling.
#[derive(Debug, Clone)]
enum Respell {
    /// Percent-encode one character, upper- or lower-case hex.
    Encode(Index, bool),
    /// Change the case of one letter.
    Case(Index),
    /// Insert `./` or `x/../` after a slash.
    DotSegment(Index, bool),
    /// Double a slash.
    DoubleSlash(Index),
}

fn respell() -> impl Strategy<Value = Respell> {
    prop_oneof![
        4 => (any::<Index>(), any::<bool>()).prop_map(|(i, u)| Respell::Encode(i, u)),
        2 => any::<Index>().prop_map(Respell::Case),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(i, x)| Respell::DotSegment(i, x)),
        1 => any::<Index>().prop_map(Respell::DoubleSlash),
    ]
}

/// A path as pieces: each the spelling of one character of the canonical
/// path (which it remembers, and whether it is part of the `{id}` value), or
/// an insertion.
struct Spelled {
    pieces: Vec<(String, Option<char>, bool)>,
}

impl Spelled {
    fn new(path: &str, id_range: Option<std::ops::Range<usize>>) -> Spelled {
        let pieces = path
            .chars()
            .enumerate()
            .map(|(i, c)| (c.to_string(), Some(c), id_range.as_ref().is_some_and(|r| r.contains(&i))))
            .collect();
        Spelled { pieces }
    }

    fn apply(&mut self, change: &Respell) {
        let plain: Vec<usize> = (0..self.pieces.len()).filter(|&i| self.pieces[i].0.chars().count() == 1).collect();
        let slashes: Vec<usize> = plain.iter().copied().filter(|&i| self.pieces[i].0 == "/").collect();
        match change {
            Respell::Encode(at, upper) => {
                // Not the first slash: a request target must start with one (HTTP itself refuses others).
                let i = plain[1 + at.index(plain.len() - 1)];
                let c = self.pieces[i].0.chars().next().unwrap();
                self.pieces[i].0 = if *upper { format!("%{:02X}", c as u32) } else { format!("%{:02x}", c as u32) };
            }
            Respell::Case(at) => {
                let letters: Vec<usize> = plain
                    .iter()
                    .copied()
                    .filter(|&i| self.pieces[i].0.chars().all(|c| c.is_ascii_alphabetic()))
                    .collect();
                let i = letters[at.index(letters.len())];
                let c = self.pieces[i].0.chars().next().unwrap();
                let flipped = if c.is_ascii_uppercase() { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() };
                self.pieces[i].0 = flipped.to_string();
            }
            Respell::DotSegment(at, up) => {
                let i = slashes[at.index(slashes.len())];
                self.pieces.insert(i + 1, ((if *up { "x/../" } else { "./" }).to_string(), None, false));
            }
            Respell::DoubleSlash(at) => {
                let i = slashes[at.index(slashes.len())];
                self.pieces.insert(i + 1, ("/".to_string(), None, false));
            }
        }
    }

    /// Whether the spelling still names the same resource (RFC 3986 §6.2.2):
    /// unreserved characters may be percent-encoded; an encoded slash is not a
    /// separator; case is significant (in the id value it names another id,
    /// of the same operation); dot segments and empty segments are not canonical.
    fn equivalent(&self) -> bool {
        self.pieces.iter().all(|(spelled, original, in_id)| {
            let Some(original) = *original else { return false };
            let meant = match spelled.strip_prefix('%') {
                Some(hex) => char::from(u8::from_str_radix(hex, 16).unwrap()),
                None => spelled.chars().next().unwrap(),
            };
            let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
            let same = meant == original || (*in_id && meant.eq_ignore_ascii_case(&original));
            same && (spelled.len() == 1 || unreserved(meant))
        })
    }

    fn text(&self) -> String {
        self.pieces.iter().map(|(p, _, _)| p.as_str()).collect()
    }
}

fn every_spelling_of_every_route_has_one_event_naming_its_operation(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_INGEST_TOKEN", PLANTED_INGEST_TOKEN)]);
    let keys: Vec<(KeyType, String)> = KeyType::ALL.iter().map(|t| (*t, app.create_key(t.wire_name()).1)).collect();
    let ops: Vec<&'static Operation> = authz::OPERATIONS.iter().collect();
    let strategy = (select(ops), prop::collection::vec(respell(), 0..4));
    run("every spelling", 160, strategy, |(op, changes)| {
        // An id that exists nowhere: the handler answers it, nothing is changed.
        let id = "3b1a4c2e-0d9f-4e57-9a68-b2c1d0e9f8a7";
        let path = op.path.replace("{id}", id);
        let id_range = op.path.find("{id}").map(|at| at..at + id.len());
        let mut spelled = Spelled::new(&path, id_range);
        for change in &changes {
            spelled.apply(change);
        }
        let target = spelled.text();
        let mut h = credential_for(&app, &keys, op);
        let body = (op.method.as_str() != "GET").then_some(&b"{}"[..]);
        if body.is_some() {
            h.push(("Content-Type".into(), b"application/json".to_vec()));
        }
        let r = send(&app, op.method.as_str(), &target, &h, body);
        let what = format!("{} {target} ({})", op.method.as_str(), op.name);
        prop_assert!(r.status < 500, "{what}: {} {}", r.status, r.text);
        prop_assert!(
            r.header("x-request-id").is_some(),
            "{what}: no request id: {} {:?} {}",
            r.status,
            r.headers,
            r.text
        );
        let events = events_of(&app, &r);
        prop_assert_eq!(events.len(), 1, "{}: events {:?}", what, events);
        let (operation, outcome) = &events[0];
        if spelled.equivalent() {
            // Reached its handler, and recorded under its own name whatever the answer.
            prop_assert_eq!(operation.as_str(), op.name, "{}: {}", what, r.text);
        } else {
            prop_assert!((400..500).contains(&r.status), "{what}: {} {}", r.status, r.text);
            prop_assert_eq!(operation.as_str(), "unknown_route", "{}: {}", what, r.text);
            prop_assert_eq!(outcome.as_str(), "DENIED");
            if r.status != 404 && target.starts_with("/scim/") {
                let schemas = json!(["urn:ietf:params:scim:api:messages:2.0:Error"]);
                prop_assert_eq!(&r.body["schemas"], &schemas, "{}: {}", what, r.text);
            } else if r.status != 404 {
                let code = r.code();
                prop_assert_eq!(code.as_deref(), Some("invalid_argument"), "{}: {}", what, r.text);
            }
        }
        Ok(())
    });
}
both!(every_spelling_of_every_route_has_one_event_naming_its_operation);

/// The examples of SECURITY.md, spelled out.
fn known_bypasses_are_closed(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_INGEST_TOKEN", PLANTED_INGEST_TOKEN)]);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let key = headers(&[("X-API-Key", &siem), ("X-Original-Method", "GET"), ("X-Original-URI", "/v2/auth.whoami")]);
    let r = send(&app, "GET", "/%762/authz.check", &key, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(events_of(&app, &r), vec![("authz.check".into(), "ALLOWED".into())]);

    let ingest =
        headers(&[("Authorization", &format!("Bearer {PLANTED_INGEST_TOKEN}")), ("Content-Type", "application/json")]);
    let body = json!({"tenant_id": app.tenant_id, "asset_type": "ASSET_TYPE_DOCUMENT", "asset_id": "a-1"}).to_string();
    let r = send(&app, "POST", "/%69nternal/v2/team.asset.delete", &ingest, Some(body.as_bytes()));
    assert!(r.status < 500, "{}", r.text);
    assert_eq!(events_of(&app, &r)[0].0, "team.asset.delete");

    let r = send(&app, "GET", "/v2/auth%2Ewhoami", &headers(&[("X-API-Key", &siem)]), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(events_of(&app, &r), vec![("auth.whoami".into(), "ALLOWED".into())]);

    for target in ["/v2/auth%2Fwhoami", "/v2/../v2/auth.whoami", "//v2/auth.whoami", "/v2/%2e%2e/v2/auth.whoami"] {
        let r = send(&app, "GET", target, &headers(&[("X-API-Key", &siem)]), None);
        assert_eq!(r.status, 400, "{target}: {}", r.text);
        let e = event_of(&app, &r);
        assert_eq!(e["reason"], json!("non_canonical_path"), "{target}: {e}");
        assert_eq!(e["operation"], json!("unknown_route"), "{target}: {e}");
    }
    // Under /scim/ the refusal speaks SCIM (RFC 7644 §3.12), with its event all the same.
    let (_, users) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let r = send(&app, "GET", "/scim/v2/Users/a%2Fb", &headers(&[("X-API-Key", &users)]), None);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.header("content-type").as_deref(), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{}", r.text);
    assert_eq!(events_of(&app, &r), vec![("unknown_route".into(), "DENIED".into())]);
    // A case change is another path, and it is audited like any unknown route.
    let r = send(&app, "GET", "/V2/auth.whoami", &headers(&[("X-API-Key", &siem)]), None);
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(event_of(&app, &r)["operation"], json!("unknown_route"));
}
both!(known_bypasses_are_closed);

// ------------------------------------------------------------------ the gateway

fn the_gateway_refuses_what_it_cannot_map_safely(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, users) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let check = |key: &str, method: &str, uri: &str| {
        app.get("/v2/authz.check", &[("X-API-Key", key), ("X-Original-Method", method), ("X-Original-URI", uri)])
    };
    for uri in [
        "/scim/v2/Users/..%2F..%2Finternal%2Fv2%2Fteam.asset.delete",
        "/scim/v2/Users/%2E%2E",
        "/scim/v2/Users/..",
        "/scim/v2/Users/a%2Fb",
        "/scim/v2/Users/a%00b",
        "/scim/v2/Users/a%0Ab",
        "/scim/v2//Users",
        "/scim/v2/./Users",
    ] {
        let r = check(&users, "DELETE", uri);
        assert_eq!(r.status, 401, "{uri}: {}", r.text);
        let e = event_of(&app, &r);
        assert_eq!(e["reason"], json!("non_canonical_uri"), "{uri}: {e}");
        assert_eq!(e["metadata"]["original_uri"], json!(uri), "{e}");
        assert!(e["metadata"].get("checked_operation").is_none(), "{e}");
    }
    // Envoy's path form: the same rule for the path after the prefix.
    let r = app.request("DELETE", "/v2/authz.check/scim/v2/Users/..%2F..%2Finternal", &[("X-API-Key", &users)], None);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(event_of(&app, &r)["reason"], json!("non_canonical_uri"));
    // An id that is a plain segment is still mapped.
    let r = check(&users, "DELETE", "/scim/v2/Users/3b1a4c2e-0d9f-4e57-9a68-b2c1d0e9f8a7");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-keyward-key-type").as_deref(), Some("KEY_TYPE_TEAM_USER_MGMT"));
    // HEAD is checked as GET: allowed where GET is, recorded as sent.
    let r = check(&audit, "HEAD", "/v2/team.asset.list?limit=1");
    assert_eq!(r.status, 200, "{}", r.text);
    let e = event_of(&app, &r);
    assert_eq!(e["metadata"]["original_method"], json!("HEAD"), "{e}");
    assert_eq!(e["metadata"]["checked_operation"], json!("team.asset.list"), "{e}");
    let r = check(&audit, "HEAD", "/v2/team.asset.update_scope");
    assert_eq!(r.status, 401, "{}", r.text);
    // Anything else that names no operation of the table is refused.
    for method in ["OPTIONS", "TRACE", "G E T", ""] {
        let r = check(&audit, method, "/v2/team.asset.list");
        assert_eq!(r.status, 401, "{method:?}: {}", r.text);
        assert_eq!(event_of(&app, &r)["reason"], json!("unknown_operation"));
    }
}
both!(the_gateway_refuses_what_it_cannot_map_safely);

// ------------------------------------------------------------------ secrets

/// Where a caller puts a secret; each place is one request.
#[derive(Debug, Clone, Copy)]
enum Place {
    UserAgentOfKey,
    UserAgentOfConsole,
    OriginalUriQuery,
    OriginalMethod,
    EnvoyPath,
    UnknownRoutePath,
    ScimIdSegment,
    QueryParameter,
    KeyLabel,
    ScimUserName,
    AssetName,
    KeyHeader,
    ConsoleHeader,
}

const PLACES: [Place; 13] = [
    Place::UserAgentOfKey,
    Place::UserAgentOfConsole,
    Place::OriginalUriQuery,
    Place::OriginalMethod,
    Place::EnvoyPath,
    Place::UnknownRoutePath,
    Place::ScimIdSegment,
    Place::QueryParameter,
    Place::KeyLabel,
    Place::ScimUserName,
    Place::AssetName,
    Place::KeyHeader,
    Place::ConsoleHeader,
];

/// Percent-encodes the underscores and dots (a secret still, to anyone who decodes it).
fn encoded(secret: &str, upper: bool) -> String {
    let (u, d) = if upper { ("%5F", "%2E") } else { ("%5f", "%2e") };
    secret.replace('_', u).replace('.', d)
}

fn no_secret_is_stored_or_logged_wherever_a_caller_puts_it(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_INGEST_TOKEN", PLANTED_INGEST_TOKEN)]);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, users) = app.create_key("KEY_TYPE_TEAM_USER_MGMT");
    let (_, ediscovery) = app.create_key("KEY_TYPE_EDISCOVERY");
    let r = app.owner_post("/v2/enterprise.key_policy.update", &json!({"siem_tier2_enabled": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    let owner = format!("Bearer {}", app.owner_token);
    let planted = std::cell::RefCell::new(Vec::<String>::new());

    // A key with a valid checksum, one without, one glued to other text; a
    // console JWT (drawn as empty, minted per case); the ingest token.
    let secret = prop_oneof![
        select(KeyType::ALL.to_vec()).prop_map(keyward::crypto::new_key_secret),
        select(KeyType::ALL.to_vec()).prop_map(|t| format!("{}x", keyward::crypto::new_key_secret(t))),
        select(KeyType::ALL.to_vec()).prop_map(|t| format!("prod_{}", keyward::crypto::new_key_secret(t))),
        Just(String::new()),
        Just(PLANTED_INGEST_TOKEN.to_string()),
    ];
    let strategy = (select(PLACES.to_vec()), secret, 0..3u8, any::<bool>());
    run("planted secrets", 60, strategy, |(place, secret, encodings, upper)| {
        // An empty draw stands for a console JWT, minted fresh so that each is unique.
        let secret = if secret.is_empty() {
            app.token(&app.tenant_id, &app.add_member(&app.tenant_id, "AUDITOR").0)
        } else {
            secret
        };
        // Raw, percent-encoded once, or twice (`%255F`).
        let in_url = match encodings {
            0 => secret.clone(),
            1 => encoded(&secret, upper),
            _ => encoded(&secret, upper).replace('%', "%25"),
        };
        planted.borrow_mut().extend([secret.clone(), in_url.clone()]);
        let json = ("Content-Type", "application/json");
        let r = match place {
            Place::UserAgentOfKey => send(
                &app,
                "GET",
                "/v2/auth.whoami",
                &headers(&[("X-API-Key", &siem), ("User-Agent", &format!("agent/1 {secret}"))]),
                None,
            ),
            Place::UserAgentOfConsole => send(
                &app,
                "GET",
                "/v2/enterprise.key.list",
                &headers(&[("Authorization", &owner), ("User-Agent", &secret)]),
                None,
            ),
            Place::OriginalUriQuery => send(
                &app,
                "GET",
                "/v2/authz.check",
                &headers(&[
                    ("X-API-Key", &siem),
                    ("X-Original-Method", "GET"),
                    ("X-Original-URI", &format!("/v2/enterprise.compliance.event.list?token={in_url}")),
                ]),
                None,
            ),
            Place::OriginalMethod => send(
                &app,
                "GET",
                "/v2/authz.check",
                &headers(&[
                    ("X-API-Key", &siem),
                    ("X-Original-Method", &secret),
                    ("X-Original-URI", "/v2/auth.whoami"),
                ]),
                None,
            ),
            Place::EnvoyPath => {
                send(&app, "GET", &format!("/v2/authz.check/v2/{in_url}"), &headers(&[("X-API-Key", &siem)]), None)
            }
            Place::UnknownRoutePath => send(&app, "GET", &format!("/v2/{in_url}"), &[], None),
            Place::ScimIdSegment => send(
                &app,
                "GET",
                &format!("/scim/v2/Users/{in_url}"),
                &headers(&[("Authorization", &format!("Bearer {users}"))]),
                None,
            ),
            Place::QueryParameter => send(
                &app,
                "GET",
                &format!("/v2/enterprise.compliance.event.list?cursor={in_url}"),
                &headers(&[("X-API-Key", &siem)]),
                None,
            ),
            Place::KeyLabel => {
                let body = json!({"key_type": "KEY_TYPE_SIEM", "label": format!("label {secret}")}).to_string();
                send(
                    &app,
                    "POST",
                    "/v2/enterprise.key.create",
                    &headers(&[("Authorization", &owner), json]),
                    Some(body.as_bytes()),
                )
            }
            Place::ScimUserName => {
                let body =
                    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": secret}).to_string();
                send(
                    &app,
                    "POST",
                    "/scim/v2/Users",
                    &headers(&[
                        ("Authorization", &format!("Bearer {users}")),
                        ("Content-Type", "application/scim+json"),
                    ]),
                    Some(body.as_bytes()),
                )
            }
            Place::AssetName => {
                let body = json!({"tenant_id": app.tenant_id, "asset_type": "ASSET_TYPE_DOCUMENT", "asset_id": "doc-1",
                    "asset_name": secret, "owner_id": app.owner_id, "shared_at": "2026-01-01T00:00:00Z",
                    "permission": "SHARE_SCOPE_TEAM_ONLY"})
                .to_string();
                send(
                    &app,
                    "POST",
                    "/internal/v2/team.asset.upsert",
                    &headers(&[("Authorization", &format!("Bearer {PLANTED_INGEST_TOKEN}")), json]),
                    Some(body.as_bytes()),
                )
            }
            Place::KeyHeader => send(&app, "GET", "/v2/auth.whoami", &headers(&[("X-API-Key", &secret)]), None),
            Place::ConsoleHeader => send(
                &app,
                "GET",
                "/v2/enterprise.key.list",
                &headers(&[("Authorization", &format!("Bearer {secret}"))]),
                None,
            ),
        };
        prop_assert!(r.status < 500, "{place:?}: {} {}", r.status, r.text);
        prop_assert!(!r.text.contains(&secret) || r.body["secret"].is_string(), "{place:?}: echoed back: {}", r.text);
        prop_assert_eq!(events_of(&app, &r).len(), 1, "{:?}: one event", place);
        Ok(())
    });

    // Everything a SIEM, an auditor or an operator can read afterwards.
    let (tier1, _, _) = follow(&app, &siem, "", 1000, None);
    let (tier2, _, _) = follow(&app, &siem, "&include_payload=true", 1000, None);
    let r = key_post(&app, &siem, "/v2/enterprise.compliance.export.create", &json!({}));
    let compliance_uid = r.ok()["export"]["uid"].as_str().unwrap().to_string();
    let r = key_post(
        &app,
        &ediscovery,
        "/v2/enterprise.export.create",
        &json!({"user_id": app.owner_id, "scope": "ENTERPRISE_EXPORT_SCOPE_FULL", "include_files": false, "reason": "leak check"}),
    );
    let export_uid = r.ok()["export"]["uid"].as_str().unwrap().to_string();
    let mut exported = String::new();
    for (key, detail, url, uid) in [
        (
            &siem,
            "/v2/enterprise.compliance.export.detail",
            "/v2/enterprise.compliance.export.downloadUrl",
            &compliance_uid,
        ),
        (&ediscovery, "/v2/enterprise.export.detail", "/v2/enterprise.export.downloadUrl", &export_uid),
    ] {
        wait_done(&app, key, detail, uid);
        let link = key_get(&app, key, &format!("{url}?uid={uid}")).ok()["download_url"].as_str().unwrap().to_string();
        let file = fetch(&link);
        assert_eq!(file.status, 200);
        match unzip_or_text(&file.bytes) {
            Ok(files) => exported.extend(files.into_values()),
            Err(text) => exported.push_str(&text),
        }
    }
    let places = [
        ("the SIEM feed (Tier 1)", serde_json::to_string(&tier1).unwrap()),
        ("the SIEM feed (Tier 2)", serde_json::to_string(&tier2).unwrap()),
        ("the exports", exported.clone()),
        ("the database", app.dump_database()),
        ("the log", app.logs()),
    ];
    for secret in planted.borrow().iter() {
        for (place, text) in &places {
            assert!(!text.contains(secret.as_str()), "a planted secret reached {place}: {secret}");
        }
    }
    // The places were recorded (with the secret redacted): the check above could fail.
    let feed = serde_json::to_string(&tier2).unwrap();
    assert!(feed.contains("[REDACTED]"), "nothing redacted in the feed: the planted fields were not recorded");
    assert!(exported.contains("[REDACTED]"), "nothing redacted in the exports");
}
both!(no_secret_is_stored_or_logged_wherever_a_caller_puts_it);

fn unzip_or_text(bytes: &[u8]) -> Result<std::collections::BTreeMap<String, String>, String> {
    if bytes.starts_with(b"PK") {
        Ok(unzip(bytes))
    } else {
        Err(String::from_utf8_lossy(bytes).into_owned())
    }
}

// ------------------------------------------------------------------ origins

fn links_take_their_origin_from_configuration_not_the_request(b: Backend) {
    for public in [None, Some("https://keyward.example.com/kw")] {
        let extra: Vec<(&str, &str)> = public.map(|p| ("KEYWARD_PUBLIC_URL", p)).into_iter().collect();
        let app = TestApp::spawn_with(b, &extra);
        let (_, siem) = app.create_key("KEY_TYPE_SIEM");
        let uid = key_post(&app, &siem, "/v2/enterprise.compliance.export.create", &json!({})).ok()["export"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        wait_done(&app, &siem, "/v2/enterprise.compliance.export.detail", &uid);
        let path = format!("/v2/enterprise.compliance.export.downloadUrl?uid={uid}");
        let forged = headers(&[
            ("X-API-Key", &siem),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "host=evil.example;proto=https"),
        ]);
        let r = send(&app, "GET", &path, &forged, None);
        let link = r.ok()["download_url"].as_str().unwrap().to_string();
        let origin = public.map(str::to_string).unwrap_or_else(|| app.base.clone());
        assert!(link.starts_with(&format!("{origin}/v2/enterprise.compliance.export.download?")), "{link}");
        assert!(!link.contains("evil"), "{link}");
        let r = app.get(&path, &[("X-API-Key", &siem), ("Host", "evil.example")]);
        assert!(!r.ok()["download_url"].as_str().unwrap().contains("evil"), "{}", r.text);
    }
}
both!(links_take_their_origin_from_configuration_not_the_request);
