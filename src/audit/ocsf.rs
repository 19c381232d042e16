//! Audit events in OCSF 1.1.0, the form AWS Security Lake takes from custom
//! sources and most SIEMs map natively.
//!
//! Which class an event becomes:
//! - a refusal of a caller's credential or permission (401, 403, 429 before
//!   any work) is **Authentication** (3002, Logon failed): the key or token
//!   was presented and not accepted; the precise reason is `status_detail`;
//! - a committed change to a key or a member (create, rotate, revoke,
//!   disable, remove, ...) is **Account Change** (3001): keys are accounts of
//!   a kind (`user.type_id` Other, `user.type` "API Key"), members are users;
//!   so are the key notices (expiring: Other "Expiring"; expired: Disable);
//! - every other call, gateway checks included, is **API Activity** (6003),
//!   with `api.operation` the operation's name.
//!
//! Nothing of keyward's own event is lost: its id is `metadata.uid` (the
//! dedupe key), `seq` is `metadata.sequence`, and the fields that tie it to
//! the hash chain and the Merkle tree (`event_id`, `seq`, `leaf_index`,
//! `hash`, `prev_hash`, and an export's proof) sit in `unmapped.keyward`
//! next to the event as keyward shows it.

use super::EventView;
use crate::db::models::{to_utc, AuditRow};
use crate::domain::authz::{self, Method, Op, Unrouted};
use crate::domain::event::{ActorType, Outcome};
use serde_json::{json, Map, Value};

/// The OCSF schema version every event declares.
pub const OCSF_VERSION: &str = "1.1.0";

const CATEGORY_IAM: u32 = 3;
const CATEGORY_APPLICATION: u32 = 6;

/// An OCSF class with the activity it records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcsfClass {
    AccountChange(AccountActivity),
    Authentication,
    ApiActivity(ApiActivity),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountActivity {
    Create = 1,
    Enable = 2,
    /// A key's secret replaced (rotation).
    PasswordChange = 3,
    /// Revoked keys, deactivated members: the account remains, unusable.
    Disable = 5,
    Delete = 6,
    /// A member's role changed.
    AttachPolicy = 7,
    Other = 99,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiActivity {
    Create = 1,
    Read = 2,
    Update = 3,
    Delete = 4,
    Other = 99,
}

impl OcsfClass {
    pub fn uid(self) -> u32 {
        match self {
            OcsfClass::AccountChange(_) => 3001,
            OcsfClass::Authentication => 3002,
            OcsfClass::ApiActivity(_) => 6003,
        }
    }

    fn name(self) -> &'static str {
        match self {
            OcsfClass::AccountChange(_) => "Account Change",
            OcsfClass::Authentication => "Authentication",
            OcsfClass::ApiActivity(_) => "API Activity",
        }
    }

    fn category(self) -> (u32, &'static str) {
        match self {
            OcsfClass::AccountChange(_) | OcsfClass::Authentication => (CATEGORY_IAM, "Identity & Access Management"),
            OcsfClass::ApiActivity(_) => (CATEGORY_APPLICATION, "Application Activity"),
        }
    }

    fn activity(self) -> (u32, &'static str) {
        match self {
            OcsfClass::AccountChange(a) => (
                a as u32,
                match a {
                    AccountActivity::Create => "Create",
                    AccountActivity::Enable => "Enable",
                    AccountActivity::PasswordChange => "Password Change",
                    AccountActivity::Disable => "Disable",
                    AccountActivity::Delete => "Delete",
                    AccountActivity::AttachPolicy => "Attach Policy",
                    AccountActivity::Other => "Other",
                },
            ),
            // A credential presented to be let in.
            OcsfClass::Authentication => (1, "Logon"),
            OcsfClass::ApiActivity(a) => (
                a as u32,
                match a {
                    ApiActivity::Create => "Create",
                    ApiActivity::Read => "Read",
                    ApiActivity::Update => "Update",
                    ApiActivity::Delete => "Delete",
                    ApiActivity::Other => "Other",
                },
            ),
        }
    }
}

/// Refusals of the caller: no valid credential (401), not allowed (403), or
/// over a rate limit before any work (429).
fn is_refusal(row: &AuditRow) -> bool {
    row.outcome == Outcome::Denied && matches!(row.status_code, 401 | 403 | 429)
}

fn metadata_of(row: &AuditRow) -> Value {
    serde_json::from_str(&row.metadata).unwrap_or(Value::Null)
}

/// "old"/"new" of a metadata field that records a change.
fn changed<'a>(md: &'a Value, field: &str) -> Option<(&'a str, &'a str)> {
    let c = md.get(field)?;
    let (old, new) = (c.get("old")?.as_str()?, c.get("new")?.as_str()?);
    (old != new).then_some((old, new))
}

/// What a committed member update did, from its recorded changes.
fn member_update(md: &Value) -> AccountActivity {
    match changed(md, "status") {
        Some((_, "USER_STATUS_INACTIVE")) => AccountActivity::Disable,
        Some((_, "USER_STATUS_ACTIVE")) => AccountActivity::Enable,
        Some((_, "USER_STATUS_REMOVED")) => AccountActivity::Delete,
        _ if changed(md, "role").is_some() => AccountActivity::AttachPolicy,
        _ => AccountActivity::Other,
    }
}

/// The class and activity of a stored event.
pub fn classify(row: &AuditRow) -> OcsfClass {
    if is_refusal(row) {
        return OcsfClass::Authentication;
    }
    let op = authz::find(&row.operation);
    if row.outcome == Outcome::Allowed {
        let lifecycle = match op.map(|o| o.id) {
            Some(Op::EnterpriseKeyCreate | Op::TeamUserCreate | Op::ScimUsersCreate) => Some(AccountActivity::Create),
            Some(Op::EnterpriseKeyRotate) => Some(AccountActivity::PasswordChange),
            Some(Op::EnterpriseKeyRevoke) => Some(AccountActivity::Disable),
            Some(Op::EnterpriseKeyUpdate) => Some(AccountActivity::Other),
            Some(Op::TeamUserRemove | Op::ScimUsersDelete) => Some(AccountActivity::Delete),
            Some(Op::TeamUserUpdate | Op::ScimUsersReplace | Op::ScimUsersPatch) => {
                Some(member_update(&metadata_of(row)))
            }
            None if row.operation == Unrouted::TenantCreate.name()
                || row.operation == Unrouted::MemberCreate.name() =>
            {
                Some(AccountActivity::Create)
            }
            // An expired key is unusable from then on, as a revoked one is:
            // Disable, so that rules on keys going out of service see both.
            None if row.operation == Unrouted::KeyExpired.name() => Some(AccountActivity::Disable),
            // A key that will expire changed nothing yet: no OCSF activity
            // names a warning, so Other, with `activity_name` "Expiring".
            None if row.operation == Unrouted::KeyExpiring.name() => Some(AccountActivity::Other),
            // A key reported leaked: revoked (disabled), or only marked.
            None if row.operation == Unrouted::KeyLeaked.name() => {
                Some(match metadata_of(row).get("action").and_then(Value::as_str) {
                    Some("REVOKED") => AccountActivity::Disable,
                    _ => AccountActivity::Other,
                })
            }
            _ => None,
        };
        if let Some(a) = lifecycle {
            return OcsfClass::AccountChange(a);
        }
    }
    let activity = match op {
        None => ApiActivity::Other,
        Some(o) => match o.method {
            Method::Get => ApiActivity::Read,
            Method::Delete => ApiActivity::Delete,
            Method::Put | Method::Patch => ApiActivity::Update,
            Method::Post => {
                let verb = o.name.rsplit('.').next().unwrap_or_default();
                match verb {
                    "create" | "upsert" => ApiActivity::Create,
                    "remove" | "revoke" | "release" | "delete" => ApiActivity::Delete,
                    _ => ApiActivity::Update,
                }
            }
        },
    };
    OcsfClass::ApiActivity(activity)
}

/// The account a lifecycle event changed: a key or a member, from what the
/// event recorded.
fn changed_account(row: &AuditRow, md: &Value) -> Value {
    let field = |k: &str| md.get(k).and_then(Value::as_str).map(str::to_string);
    let key = field("new_key_id").or_else(|| field("revoked_key_id")).or_else(|| field("key_id"));
    if let Some(uid) = key {
        let mut user = json!({"uid": uid, "type_id": 99, "type": "API Key"});
        if let Some(label) = field("label") {
            user["name"] = json!(label);
        }
        return user;
    }
    let member = field("team_user_id").or_else(|| field("member_id")).or_else(|| field("owner_member_id"));
    match member {
        Some(uid) => {
            let mut user = json!({"uid": uid, "type_id": 1, "type": "User"});
            if let Some(email) = md.get("email").and_then(|e| e.as_str().or_else(|| e.get("new")?.as_str())) {
                user["email_addr"] = json!(email);
            }
            user
        }
        None => json!({"uid": row.request_id, "type_id": 0, "type": "Unknown"}),
    }
}

/// Who called: a member, a key, keyward itself, or nobody known.
fn actor_user(row: &AuditRow) -> Value {
    match (row.actor_type, row.actor_id.as_deref()) {
        (ActorType::Member, Some(id)) => json!({"uid": id, "type_id": 1, "type": "User"}),
        (ActorType::ApiKey, Some(id)) => {
            let mut u = json!({"uid": id, "type_id": 99, "type": "API Key"});
            if let Some(t) = row.key_type {
                u["account"] = json!({"uid": id, "name": t.wire_name(), "type_id": 99, "type": "API Key"});
            }
            u
        }
        (ActorType::Service, id) => json!({"uid": id.unwrap_or("keyward"), "type_id": 3, "type": "System"}),
        (_, Some(id)) => json!({"uid": id, "type_id": 0, "type": "Unknown"}),
        (_, None) => match row.key_hint.as_deref() {
            // An unknown key: only its non-secret hint is known.
            Some(hint) => json!({"name": hint, "type_id": 99, "type": "API Key"}),
            None => json!({"name": "anonymous", "type_id": 0, "type": "Unknown"}),
        },
    }
}

/// The user whose credential an Authentication event judged.
fn presented_credential(row: &AuditRow) -> Value {
    match (row.key_id.as_deref(), row.key_hint.as_deref()) {
        (Some(id), _) => json!({"uid": id, "type_id": 99, "type": "API Key", "credential_uid": id}),
        (None, Some(hint)) => json!({"name": hint, "type_id": 99, "type": "API Key"}),
        (None, None) => actor_user(row),
    }
}

fn severity(class: OcsfClass, row: &AuditRow) -> (u32, &'static str) {
    if row.operation == Unrouted::KeyLeaked.name() {
        return (4, "High");
    }
    // A key out of service is Medium; one about to be, Medium on its last
    // day (threshold 1) and Low before: time is left to rotate it.
    if row.operation == Unrouted::KeyExpired.name() {
        return (3, "Medium");
    }
    if row.operation == Unrouted::KeyExpiring.name() {
        let last_day = metadata_of(row).get("threshold").and_then(Value::as_u64).is_some_and(|d| d <= 1);
        return if last_day { (3, "Medium") } else { (2, "Low") };
    }
    match (class, row.outcome) {
        (OcsfClass::Authentication, _) => (3, "Medium"),
        (_, Outcome::Denied) => (2, "Low"),
        (_, Outcome::Allowed) => (1, "Informational"),
    }
}

/// The event in OCSF. `event` is keyward's own view of it as the caller may
/// see it (Tier 2 payload and proofs included or not); it is kept whole under
/// `unmapped.keyward`.
pub fn event(row: &AuditRow, keyward_event: Value) -> Value {
    let class = classify(row);
    let (category_uid, category_name) = class.category();
    let (activity_id, activity_name) = match class.activity() {
        (id, _) if row.operation == Unrouted::KeyExpiring.name() => (id, "Expiring"),
        named => named,
    };
    let (severity_id, severity_name) = severity(class, row);
    let ok = row.outcome == Outcome::Allowed;
    let md = metadata_of(row);
    let mut e = Map::new();
    e.insert("class_uid".into(), json!(class.uid()));
    e.insert("class_name".into(), json!(class.name()));
    e.insert("category_uid".into(), json!(category_uid));
    e.insert("category_name".into(), json!(category_name));
    e.insert("activity_id".into(), json!(activity_id));
    e.insert("activity_name".into(), json!(activity_name));
    e.insert("type_uid".into(), json!(u64::from(class.uid()) * 100 + u64::from(activity_id)));
    e.insert("type_name".into(), json!(format!("{}: {activity_name}", class.name())));
    e.insert("severity_id".into(), json!(severity_id));
    e.insert("severity".into(), json!(severity_name));
    e.insert("time".into(), json!(to_utc(row.occurred_at).timestamp_millis()));
    e.insert("status_id".into(), json!(if ok { 1 } else { 2 }));
    e.insert("status".into(), json!(if ok { "Success" } else { "Failure" }));
    e.insert("status_code".into(), json!(row.status_code.to_string()));
    if let Some(reason) = &row.reason {
        e.insert("status_detail".into(), json!(reason));
    }
    e.insert("message".into(), json!(format!("{} {}", row.operation, row.outcome.as_str())));
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": {"name": "keyward", "vendor_name": "keyward", "version": env!("CARGO_PKG_VERSION")},
        "uid": row.event_id.to_string(),
        "sequence": row.seq,
        "correlation_uid": row.request_id,
        "log_name": "audit",
    });
    if let Some(t) = row.tenant_id() {
        metadata["tenant_uid"] = json!(t);
    }
    e.insert("metadata".into(), metadata);
    e.insert("actor".into(), json!({"user": actor_user(row)}));
    let mut src = Map::new();
    match &row.client_ip {
        Some(ip) => src.insert("ip".into(), json!(ip)),
        // Events of keyward's own work (CLI, runners) come from no address.
        None => src.insert("name".into(), json!("keyward")),
    };
    e.insert("src_endpoint".into(), Value::Object(src));
    let mut http = Map::new();
    http.insert("uid".into(), json!(row.request_id));
    if let Some(ua) = &row.user_agent {
        http.insert("user_agent".into(), json!(ua));
    }
    e.insert("http_request".into(), Value::Object(http));
    match class {
        OcsfClass::Authentication => {
            e.insert("user".into(), presented_credential(row));
            e.insert("service".into(), json!({"name": "keyward"}));
        }
        OcsfClass::AccountChange(_) => {
            e.insert("user".into(), changed_account(row, &md));
        }
        OcsfClass::ApiActivity(_) => {}
    }
    // `api` is API Activity's own; the other classes name the operation in
    // `message` and in keyward's fields.
    if matches!(class, OcsfClass::ApiActivity(_)) {
        let api = json!({
            "operation": row.operation,
            "service": {"name": "keyward"},
            "request": {"uid": row.request_id},
            "response": {"code": row.status_code},
        });
        e.insert("api".into(), api);
        if let Some(checked) = md.get("checked_operation").and_then(Value::as_str) {
            e.insert("resources".into(), json!([{"type": "operation", "name": checked}]));
        }
    }
    let view = EventView::of(row);
    e.insert(
        "unmapped".into(),
        json!({"keyward": {
            "event_id": view.event_id,
            "seq": view.seq,
            "leaf_index": view.leaf_index,
            "hash": view.hash,
            "prev_hash": view.prev_hash,
            "event": keyward_event,
        }}),
    );
    Value::Object(e)
}
