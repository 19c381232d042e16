//! `deploy/envoy/keyward-ext-authz.yaml`. Envoy is not installable on the
//! build machines, so the file is read instead of run: its ext_authz settings
//! must match keyward's gateway, and keyward is sent exactly the check requests
//! Envoy would send for it, and must answer what the filter passes on.

use crate::both;
use crate::helpers::{event_of, Backend, Resp, TestApp};
use serde_json::json;
use serde_yaml_ng::Value as Yaml;

const DEPLOY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/envoy/keyward-ext-authz.yaml");
const IDENTITY_HEADERS: [&str; 3] = ["x-keyward-tenant-id", "x-keyward-key-id", "x-keyward-key-type"];

/// The deploy file with its placeholders filled, as envsubst would, and parsed.
fn rendered(keyward_port: u16) -> Yaml {
    let text = std::fs::read_to_string(DEPLOY_FILE).expect("deploy/envoy/keyward-ext-authz.yaml");
    let port = keyward_port.to_string();
    let text = [
        ("${KEYWARD_GATEWAY_PORT}", "10000"),
        ("${KEYWARD_HOST}", "keyward.internal"),
        ("${KEYWARD_PORT}", port.as_str()),
        ("${KEYWARD_APP_HOST}", "app.internal"),
        ("${KEYWARD_APP_PORT}", "9000"),
    ]
    .iter()
    .fold(text, |t, (placeholder, value)| t.replace(placeholder, value));
    let unfilled: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#') && l.contains("${")).collect();
    assert!(unfilled.is_empty(), "placeholders left: {unfilled:?}");
    serde_yaml_ng::from_str(&text).expect("the Envoy configuration parses")
}

/// What the ext_authz filter is told, from the file.
struct ExtAuthz {
    path_prefix: String,
    cluster: String,
    uri: String,
    allowed_headers: Vec<String>,
    allowed_upstream_headers: Vec<String>,
    allowed_client_headers: Vec<String>,
    failure_mode_allow: bool,
}

fn exact_patterns(list: &Yaml) -> Vec<String> {
    list["patterns"]
        .as_sequence()
        .expect("patterns")
        .iter()
        .map(|p| p["exact"].as_str().expect("exact header names").to_string())
        .collect()
}

/// The connection manager of the one listener.
fn connection_manager(doc: &Yaml) -> &Yaml {
    let listeners = doc["static_resources"]["listeners"].as_sequence().expect("listeners");
    assert_eq!(listeners.len(), 1);
    let filters = listeners[0]["filter_chains"][0]["filters"].as_sequence().expect("network filters");
    let hcm = filters
        .iter()
        .find(|f| f["name"].as_str() == Some("envoy.filters.network.http_connection_manager"))
        .expect("an http_connection_manager");
    &hcm["typed_config"]
}

fn ext_authz(doc: &Yaml) -> ExtAuthz {
    let filters = connection_manager(doc)["http_filters"].as_sequence().expect("http_filters");
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names, ["envoy.filters.http.ext_authz", "envoy.filters.http.router"], "the check runs before routing");
    let config = &filters[0]["typed_config"];
    assert_eq!(
        config["@type"].as_str(),
        Some("type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz")
    );
    let service = &config["http_service"];
    ExtAuthz {
        path_prefix: service["path_prefix"].as_str().expect("path_prefix").to_string(),
        cluster: service["server_uri"]["cluster"].as_str().expect("server_uri.cluster").to_string(),
        uri: service["server_uri"]["uri"].as_str().expect("server_uri.uri").to_string(),
        allowed_headers: exact_patterns(&service["authorization_request"]["allowed_headers"]),
        allowed_upstream_headers: exact_patterns(&service["authorization_response"]["allowed_upstream_headers"]),
        allowed_client_headers: exact_patterns(&service["authorization_response"]["allowed_client_headers"]),
        failure_mode_allow: config["failure_mode_allow"].as_bool().expect("failure_mode_allow set"),
    }
}

/// The (address, port) of a cluster's one endpoint.
fn cluster_endpoint(doc: &Yaml, name: &str) -> (String, u64) {
    let clusters = doc["static_resources"]["clusters"].as_sequence().expect("clusters");
    let cluster =
        clusters.iter().find(|c| c["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("cluster {name}"));
    let socket =
        &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    (socket["address"].as_str().unwrap().to_string(), socket["port_value"].as_u64().expect("a numeric port"))
}

#[test]
fn envoy_ext_authz_points_at_keywards_gateway() {
    let doc = rendered(18080);
    let authz = ext_authz(&doc);
    // Envoy asks `<path_prefix><original path>`: keyward's Envoy form.
    assert_eq!(authz.path_prefix, keyward::api::gateway_path());
    assert!(authz.allowed_headers.contains(&"x-api-key".to_string()), "the key goes to keyward");
    assert_eq!(authz.allowed_upstream_headers, IDENTITY_HEADERS, "keyward's identity goes to the service");
    for header in ["content-type", "x-request-id", "retry-after"] {
        assert!(authz.allowed_client_headers.contains(&header.to_string()), "{header} reaches a refused caller");
    }
    assert!(!authz.failure_mode_allow, "fail closed");
    // The caller's address reaches keyward as the last X-Forwarded-For entry,
    // which Envoy appends itself (keyward believes it from KEYWARD_TRUSTED_PROXIES).
    assert!(authz.allowed_headers.contains(&"x-forwarded-for".to_string()));
    assert_eq!(connection_manager(&doc)["use_remote_address"].as_bool(), Some(true));
    assert_eq!(cluster_endpoint(&doc, &authz.cluster), ("keyward.internal".to_string(), 18080), "keyward's port");
    assert_eq!(authz.uri, "http://keyward.internal:18080");

    // The service is reached only through the check, and without the caller's key.
    let routes = connection_manager(&doc)["route_config"]["virtual_hosts"][0]["routes"].as_sequence().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0]["route"]["cluster"].as_str(), Some("protected_app"));
    let removed: Vec<&str> =
        routes[0]["request_headers_to_remove"].as_sequence().unwrap().iter().filter_map(|h| h.as_str()).collect();
    assert_eq!(removed, ["x-api-key"]);
}

/// The check request Envoy sends for a caller's request: the same method, the
/// path under `path_prefix`, only the headers it lets through (Authorization
/// always is), and no body.
fn as_envoy_would(app: &TestApp, authz: &ExtAuthz, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let forwarded: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            name == "authorization" || authz.allowed_headers.contains(&name)
        })
        .copied()
        .collect();
    app.request(method, &format!("{}{path}", authz.path_prefix), &forwarded, None)
}

/// What Envoy passes to a refused caller: keyward's status and body, and the allowed headers.
#[track_caller]
fn assert_refusal_reaches_the_caller(authz: &ExtAuthz, r: &Resp) {
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    assert!(r.header("x-request-id").is_some());
    for (name, _) in &r.headers {
        let name = name.to_ascii_lowercase();
        assert!(!IDENTITY_HEADERS.contains(&name.as_str()), "a refusal names no identity");
    }
    assert!(authz.allowed_client_headers.iter().all(|h| !IDENTITY_HEADERS.contains(&h.as_str())));
}

fn keyward_answers_the_checks_envoy_sends(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_RATE_LIMIT_READ_PER_MINUTE", "1")]);
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let authz = ext_authz(&rendered(port));
    let (mgmt_id, mgmt) = app.create_key("KEY_TYPE_TEAM_ASSET_MGMT");
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");

    // Allowed: the headers Envoy copies to the service carry keyward's identity.
    let caller = [("X-API-Key", mgmt.as_str()), ("X-Keyward-Key-Type", "forged"), ("Cookie", "session=1")];
    let r = as_envoy_would(&app, &authz, "POST", "/v2/team.asset.update_scope", &caller);
    assert_eq!(r.status, 200, "{}", r.text);
    let upstream: Vec<(String, String)> = authz
        .allowed_upstream_headers
        .iter()
        .map(|h| (h.clone(), r.header(h).unwrap_or_else(|| panic!("keyward answers {h}"))))
        .collect();
    assert_eq!(
        upstream,
        [
            ("x-keyward-tenant-id".to_string(), app.tenant_id.clone()),
            ("x-keyward-key-id".to_string(), mgmt_id.clone()),
            ("x-keyward-key-type".to_string(), "KEY_TYPE_TEAM_ASSET_MGMT".to_string()),
        ]
    );
    let ev = event_of(&app, &r);
    assert_eq!(ev["metadata"]["checked_operation"], json!("team.asset.update_scope"));
    assert_eq!(ev["metadata"]["original_method"], json!("POST"));

    // The Bearer form, which Envoy always forwards.
    let bearer = format!("Bearer {mgmt}");
    let r = as_envoy_would(&app, &authz, "GET", "/v2/auth.whoami", &[("Authorization", &bearer)]);
    assert_eq!(r.status, 200, "{}", r.text);

    // Refused: 401 with keyward's body and the headers Envoy passes on.
    let r = as_envoy_would(&app, &authz, "POST", "/v2/team.asset.update_scope", &[("X-API-Key", &audit)]);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("unauthenticated"));
    assert_refusal_reaches_the_caller(&authz, &r);
    assert_eq!(event_of(&app, &r)["reason"], json!("type_mismatch"));

    // Rate limited: 429 with Retry-After, which the filter lets through to the caller.
    let list =
        |secret: &str| as_envoy_would(&app, &authz, "GET", "/v2/team.asset.list?limit=2", &[("X-API-Key", secret)]);
    assert_eq!(list(&audit).status, 200);
    let r = list(&audit);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.code().as_deref(), Some("rate_limited"));
    assert_refusal_reaches_the_caller(&authz, &r);
    let retry = r.header("retry-after").expect("Retry-After");
    assert!(authz.allowed_client_headers.contains(&"retry-after".to_string()));
    assert!((1..=60).contains(&retry.parse::<u64>().unwrap()), "Retry-After {retry}");
    assert_eq!(event_of(&app, &r)["reason"], json!("rate_limited"));
}
both!(keyward_answers_the_checks_envoy_sends);
