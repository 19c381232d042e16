//! The documents stay in step with the code: openapi.yaml with the router,
//! the README's authorizer matrix with the table.

use serde_yaml_ng::Value as Yaml;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn openapi() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).expect("openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

fn documented_routes(doc: &Yaml) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_mapping().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.as_str().unwrap().to_string()));
            }
        }
    }
    out
}

#[test]
fn openapi_and_router_list_the_same_routes() {
    let doc = openapi();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true), "OpenAPI 3.1");
    let served: BTreeSet<(String, String)> =
        keyward::api::routes().into_iter().map(|(m, p)| (m.to_string(), p)).collect();
    let documented = documented_routes(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "routes missing from openapi.yaml: {undocumented:?}");
    assert!(unserved.is_empty(), "openapi.yaml documents routes the router does not serve: {unserved:?}");
}

#[test]
fn every_documented_operation_has_an_id_and_a_success_and_error_response() {
    let doc = openapi();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let where_ = format!("{m} {}", path.as_str().unwrap());
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{where_}: operationId"));
            assert!(ids.insert(id.to_string()), "{where_}: duplicate operationId {id}");
            let responses = op["responses"].as_mapping().unwrap_or_else(|| panic!("{where_}: responses"));
            let success = responses.keys().filter_map(|k| k.as_str()).any(|k| k.starts_with('2'));
            assert!(success, "{where_}: a 2xx response");
            if path.as_str().unwrap().starts_with("/v2/") {
                for code in ["401", "500", "503"] {
                    assert!(responses.contains_key(code), "{where_}: {code} response");
                }
            }
        }
    }
}

#[test]
fn every_table_operation_with_a_route_is_documented_under_its_own_name() {
    let doc = openapi();
    let ids: BTreeSet<String> = doc["paths"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(|item| METHODS.iter().filter_map(move |m| item.get(*m)))
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect();
    for (method, path) in keyward::api::routes() {
        if let Some(op) = keyward::domain::Method::parse(method).and_then(|m| keyward::domain::authz::resolve(m, &path))
        {
            assert!(ids.contains(op.name), "{} has no operationId {:?}", path, op.name);
        }
    }
}

#[test]
fn readme_matrix_is_generated_from_the_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- authz-matrix:start -->").expect("start marker") + "<!-- authz-matrix:start -->".len();
    let end = readme.find("<!-- authz-matrix:end -->").expect("end marker");
    assert_eq!(
        readme[start..end].trim(),
        keyward::domain::authz::matrix_markdown().trim(),
        "README matrix is stale: regenerate it with `cargo run --example authz_matrix`"
    );
}
