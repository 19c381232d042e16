use crate::both;
use crate::helpers::{Backend, TestApp};
use serde_json::json;

fn owner_issues_a_key_and_the_key_calls_whoami(b: Backend) {
    let app = TestApp::spawn(b);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let r = app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]);
    assert_eq!(r.ok()["caller"]["key_id"], json!(key_id));
    assert_eq!(r.body["caller"]["tenant_id"], json!(app.tenant_id));
}
both!(owner_issues_a_key_and_the_key_calls_whoami);
