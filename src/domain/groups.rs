//! SCIM Groups (RFC 7643 §4.2) and the console roles they map to. Pure: the
//! effective-role rule, the Group resource as filters and projections see
//! it (the grammar is `scim_filter`'s, as for Users), the group documents and
//! PATCH operations that Okta and Entra ID send.
//!
//! Okta pushes groups with `{"op":"add","path":"members","value":[…]}`,
//! `{"op":"remove","path":"members[value eq \"id\"]"}` and a no-path
//! `{"op":"replace","value":{"id":…,"displayName":…}}`; Entra ID capitalizes
//! ops (`Add`, `Remove`, `Replace`) and removes with
//! `{"op":"Remove","path":"members","value":[{"value":id}]}`.

use super::member::Role;
use super::scim::{ScimError, ScimType};
use super::scim_filter::{self, CompareOp, Filter, ResourceSchema, Test};
use serde_json::{Map, Value};

pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Most member values one request may name (a POST or PUT body, or all the operations of a PATCH).
pub const MAX_MEMBERS_PER_REQUEST: usize = 1000;
/// Most operations in one PATCH.
pub const MAX_PATCH_OPERATIONS: usize = 100;
/// Longest displayName or externalId, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest member value (member ids are UUIDs).
const MAX_ID_CHARS: usize = 64;

fn err(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
    ScimError { scim_type, detail: detail.into() }
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    err(ScimType::InvalidValue, detail)
}

// ------------------------------------------------------------------ roles

/// How much a role may do in the console, for "the highest mapped role": ADMIN > AUDITOR > MEMBER.
fn rank(r: Role) -> u8 {
    match r {
        Role::Owner => 3,
        Role::Admin => 2,
        Role::Auditor => 1,
        Role::Member => 0,
    }
}

/// A role a group may be mapped to: never OWNER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedRole(Role);

impl MappedRole {
    pub fn new(role: Role) -> Result<MappedRole, &'static str> {
        match role {
            Role::Owner => Err("a group cannot be mapped to OWNER: ownership is never granted by an identity provider"),
            r => Ok(MappedRole(r)),
        }
    }

    pub fn role(self) -> Role {
        self.0
    }
}

/// A member's effective role: the owner stays owner; otherwise, while any of
/// their groups is mapped, the highest mapped role (the IdP is the source of
/// truth once mappings apply, even below the directly assigned role); with
/// no mapped group, the role assigned directly.
pub fn effective_role(assigned: Role, mapped: &[MappedRole]) -> Role {
    if assigned == Role::Owner {
        return Role::Owner;
    }
    mapped.iter().map(|m| m.role()).max_by_key(|r| rank(*r)).unwrap_or(assigned)
}

/// The key a displayName is matched and kept unique by (case-insensitive, RFC 7643 §4.2).
pub fn display_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// A displayName as keyward keeps it: trimmed, 1 to 256 characters, no control characters.
pub fn display_name(v: &Value) -> Result<String, ScimError> {
    let s = v.as_str().ok_or_else(|| invalid_value("displayName must be a string"))?.trim();
    if s.is_empty() {
        return Err(invalid_value("displayName is required and cannot be empty"));
    }
    check_text("displayName", s)?;
    Ok(s.to_string())
}

fn check_text(attr: &str, s: &str) -> Result<(), ScimError> {
    if s.chars().count() > MAX_NAME_CHARS || s.chars().any(char::is_control) {
        return Err(invalid_value(format!(
            "{attr} must be at most {MAX_NAME_CHARS} characters with no control characters"
        )));
    }
    Ok(())
}

/// An externalId: a string, or null/"" to clear it.
fn external_id(v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            check_text("externalId", s.trim())?;
            Ok(Some(s.trim().to_string()))
        }
        _ => Err(invalid_value("externalId must be a string")),
    }
}

// ------------------------------------------------------------------ filters

/// What a Groups filter and projection know of the Group resource.
pub static GROUP_RESOURCE: ResourceSchema = ResourceSchema {
    core: GROUP_SCHEMA,
    extensions: &[],
    filterable: &[
        "id",
        "externalid",
        "displayname",
        "members",
        "members.value",
        "members.display",
        "members.type",
        "meta.created",
        "meta.lastmodified",
        "meta.resourcetype",
    ],
    case_exact: &["id", "externalid", "members", "members.value", "meta.location", "meta.version"],
    always: &["schemas", "id"],
};

/// Parses a Groups `filter` (RFC 7644 §3.4.2.2): the same grammar as Users'.
pub fn parse_filter(text: &str) -> Result<Filter, ScimError> {
    scim_filter::parse(text, &GROUP_RESOURCE)
}

/// What the store can narrow a Groups filter to through its indexes: the
/// top-level `eq` clauses on `id`, `displayName` (as a display key) and `externalId`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupLookup {
    pub id: Option<String>,
    /// Compared case-insensitively (as a display key).
    pub display_key: Option<String>,
    /// Compared exactly.
    pub external_id: Option<String>,
    /// Two clauses on one attribute with different values: nothing matches.
    pub contradictory: bool,
    /// Every clause of the filter is one of the above: the store's answer is the
    /// filter's, with no further matching (what Okta and Entra ID send).
    pub exact: bool,
}

/// The indexed lookup every match of `f` satisfies.
pub fn lookup(f: &Filter) -> GroupLookup {
    let mut l = GroupLookup { exact: true, ..GroupLookup::default() };
    for clause in f.conjuncts() {
        let indexed = match clause {
            Filter::Attr(path, Test::Compare(CompareOp::Eq, Value::String(v)))
                if path.schema.is_none() && path.element_filter.is_none() =>
            {
                match path.key().as_str() {
                    "id" => Some((&mut l.id, v.clone())),
                    "displayname" => Some((&mut l.display_key, display_key(v))),
                    "externalid" => Some((&mut l.external_id, v.clone())),
                    _ => None,
                }
            }
            _ => None,
        };
        match indexed {
            Some((slot, value)) => match slot {
                Some(existing) if *existing != value => l.contradictory = true,
                _ => *slot = Some(value),
            },
            None => l.exact = false,
        }
    }
    l
}

/// Whether matching `f` needs a group's members (so a scan must read them).
pub fn names_members(f: &Filter) -> bool {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => names_members(a) || names_members(b),
        Filter::Not(a) => names_members(a),
        Filter::Attr(path, _) => path.attr.eq_ignore_ascii_case("members"),
    }
}

// ------------------------------------------------------------------ documents

/// A Group as a POST or PUT body gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDoc {
    pub display_name: String,
    pub external_id: Option<String>,
    /// Member ids, deduplicated, in the order given.
    pub members: Vec<String>,
}

/// Looks a key up case-insensitively (attribute names are, RFC 7643 §2.1).
fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// Parses a POSTed or PUT Group. `id`, `meta` and `schemas` are the server's; other attributes are ignored.
pub fn parse_group(doc: &Value) -> Result<GroupDoc, ScimError> {
    let obj = doc.as_object().ok_or_else(|| err(ScimType::InvalidSyntax, "the body must be a Group object"))?;
    let display_name = display_name(get_ci(obj, "displayName").unwrap_or(&Value::Null))?;
    let external_id = external_id(get_ci(obj, "externalId").unwrap_or(&Value::Null))?;
    let mut members = Vec::new();
    if let Some(v) = get_ci(obj, "members") {
        push_member_values(&mut members, v)?;
    }
    Ok(GroupDoc { display_name, external_id, members })
}

/// A member id as a `members` value gives it.
fn member_id(v: &Value) -> Result<String, ScimError> {
    let id = match v {
        Value::Object(o) => get_ci(o, "value").unwrap_or(&Value::Null),
        other => other,
    };
    let id = id.as_str().map(str::trim).ok_or_else(|| {
        invalid_value("each member must be an object whose value is a User id string: {\"value\": \"<id>\"}")
    })?;
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid_value("a member value is not a User id"));
    }
    Ok(id.to_string())
}

/// Appends the ids of a `members` value (a list of `{value}` objects, or one), bounded and deduplicated.
fn push_member_values(out: &mut Vec<String>, v: &Value) -> Result<(), ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![v],
        Value::Null => Vec::new(),
        _ => return Err(invalid_value("members must be a list of {\"value\": \"<User id>\"} objects")),
    };
    if items.len() + out.len() > MAX_MEMBERS_PER_REQUEST {
        return Err(invalid_value(format!("at most {MAX_MEMBERS_PER_REQUEST} members may be named in one request")));
    }
    for item in items {
        let id = member_id(item)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ PATCH

/// One change a Groups PATCH asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    AddMembers(Vec<String>),
    RemoveMembers(Vec<String>),
    RemoveAllMembers,
    ReplaceMembers(Vec<String>),
    DisplayName(String),
    ExternalId(Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchOp {
    Add,
    Remove,
    Replace,
}

/// Parses a PatchOp body (RFC 7644 §3.5.2) for a Group. Ops compare case-insensitively.
pub fn parse_patch(doc: &Value) -> Result<Vec<GroupChange>, ScimError> {
    let obj = doc.as_object().ok_or_else(|| err(ScimType::InvalidSyntax, "the body must be a PatchOp object"))?;
    let ops = match get_ci(obj, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => return Err(err(ScimType::InvalidSyntax, "Operations must be a non-empty list")),
    };
    if ops.len() > MAX_PATCH_OPERATIONS {
        return Err(invalid_value(format!("at most {MAX_PATCH_OPERATIONS} operations per PATCH")));
    }
    let mut changes = Vec::new();
    let mut named = 0usize;
    for op in ops {
        let change = parse_operation(op)?;
        named += change
            .iter()
            .map(|c| match c {
                GroupChange::AddMembers(v) | GroupChange::RemoveMembers(v) | GroupChange::ReplaceMembers(v) => v.len(),
                _ => 0,
            })
            .sum::<usize>();
        if named > MAX_MEMBERS_PER_REQUEST {
            return Err(invalid_value(format!(
                "at most {MAX_MEMBERS_PER_REQUEST} members may be named in one request"
            )));
        }
        changes.extend(change);
    }
    Ok(changes)
}

fn parse_operation(op: &Value) -> Result<Vec<GroupChange>, ScimError> {
    let o = op.as_object().ok_or_else(|| invalid_value("each operation must be an object"))?;
    let kind = match get_ci(o, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => PatchOp::Add,
        Some("remove") => PatchOp::Remove,
        Some("replace") => PatchOp::Replace,
        _ => return Err(invalid_value("op must be add, remove or replace")),
    };
    let value = get_ci(o, "value");
    let path = match get_ci(o, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.trim()),
        Some(_) => return Err(err(ScimType::InvalidPath, "path must be a string")),
    };
    let Some(path) = path else {
        // No path: the value holds attributes to set (Okta renames this way).
        if kind == PatchOp::Remove {
            return Err(err(ScimType::NoTarget, "remove needs a path"));
        }
        let attrs = value
            .and_then(Value::as_object)
            .ok_or_else(|| invalid_value("an operation without a path needs an object value"))?;
        return no_path_changes(kind, attrs);
    };
    let path = path.strip_prefix(GROUP_SCHEMA).and_then(|p| p.strip_prefix(':')).unwrap_or(path);
    let lower = path.to_ascii_lowercase();
    let members = |v: Option<&Value>| -> Result<Vec<String>, ScimError> {
        let mut ids = Vec::new();
        push_member_values(&mut ids, v.unwrap_or(&Value::Null))?;
        Ok(ids)
    };
    Ok(vec![match (kind, lower.as_str()) {
        (PatchOp::Add, "members") => GroupChange::AddMembers(members(value)?),
        (PatchOp::Replace, "members") => GroupChange::ReplaceMembers(members(value)?),
        (PatchOp::Remove, "members") => match value {
            None | Some(Value::Null) => GroupChange::RemoveAllMembers,
            v => GroupChange::RemoveMembers(members(v)?),
        },
        (PatchOp::Remove, _) if lower.starts_with("members[") => {
            GroupChange::RemoveMembers(vec![member_selector(path)?])
        }
        (PatchOp::Add | PatchOp::Replace, "displayname") => {
            GroupChange::DisplayName(display_name(value.unwrap_or(&Value::Null))?)
        }
        (PatchOp::Add | PatchOp::Replace, "externalid") => {
            GroupChange::ExternalId(external_id(value.unwrap_or(&Value::Null))?)
        }
        (PatchOp::Remove, "externalid") => GroupChange::ExternalId(None),
        (PatchOp::Remove, "displayname") => return Err(err(ScimType::Mutability, "displayName is required")),
        (_, "id" | "meta" | "schemas") => return Err(err(ScimType::Mutability, format!("{path} is read-only"))),
        _ => return Err(err(ScimType::InvalidPath, format!("{path:?} is not a Group attribute keyward changes"))),
    }])
}

/// The id in `members[value eq "<id>"]`, read with the filter grammar.
fn member_selector(path: &str) -> Result<String, ScimError> {
    let bad = || err(ScimType::InvalidPath, format!("{path:?}: expected members[value eq \"<User id>\"]"));
    let Ok(Filter::Attr(attr, Test::Any)) = parse_filter(path) else { return Err(bad()) };
    let Some(Filter::Attr(inner, Test::Compare(CompareOp::Eq, Value::String(id)))) = attr.element_filter.as_deref()
    else {
        return Err(bad());
    };
    if !attr.attr.eq_ignore_ascii_case("members") || attr.sub.is_some() || inner.key() != "members.value" {
        return Err(bad());
    }
    member_id(&Value::String(id.clone()))
}

fn no_path_changes(kind: PatchOp, attrs: &Map<String, Value>) -> Result<Vec<GroupChange>, ScimError> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        match k.to_ascii_lowercase().as_str() {
            "displayname" => out.push(GroupChange::DisplayName(display_name(v)?)),
            "externalid" => out.push(GroupChange::ExternalId(external_id(v)?)),
            "members" => {
                let mut ids = Vec::new();
                push_member_values(&mut ids, v)?;
                out.push(if kind == PatchOp::Add {
                    GroupChange::AddMembers(ids)
                } else {
                    GroupChange::ReplaceMembers(ids)
                });
            }
            // Okta sends the id back with a rename; the id never changes.
            "id" | "schemas" | "meta" => {}
            other => {
                return Err(err(ScimType::InvalidPath, format!("{other:?} is not a Group attribute keyward changes")))
            }
        }
    }
    if out.is_empty() {
        return Err(err(ScimType::NoTarget, "the operation changes nothing"));
    }
    Ok(out)
}

/// A Group's state, as changes apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<String>,
}

impl GroupState {
    pub fn apply(&mut self, changes: &[GroupChange]) {
        for c in changes {
            match c {
                GroupChange::AddMembers(ids) => {
                    for id in ids {
                        if !self.members.contains(id) {
                            self.members.push(id.clone());
                        }
                    }
                }
                GroupChange::RemoveMembers(ids) => self.members.retain(|m| !ids.contains(m)),
                GroupChange::RemoveAllMembers => self.members.clear(),
                GroupChange::ReplaceMembers(ids) => self.members = ids.clone(),
                GroupChange::DisplayName(n) => self.display_name = n.clone(),
                GroupChange::ExternalId(e) => self.external_id = e.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapped(roles: &[Role]) -> Vec<MappedRole> {
        roles.iter().map(|r| MappedRole::new(*r).unwrap()).collect()
    }

    #[test]
    fn the_highest_mapped_role_wins_and_the_owner_stays_owner() {
        use Role::*;
        assert_eq!(effective_role(Member, &mapped(&[Auditor, Admin, Member])), Admin);
        assert_eq!(effective_role(Member, &mapped(&[Member, Auditor])), Auditor);
        assert_eq!(effective_role(Admin, &mapped(&[Member])), Member, "the IdP decides once a mapping applies");
        assert_eq!(effective_role(Auditor, &[]), Auditor, "no mapped group: the assigned role");
        assert_eq!(effective_role(Owner, &mapped(&[Member])), Owner);
        assert!(MappedRole::new(Owner).is_err());
    }

    #[test]
    fn filters_that_okta_and_entra_send_are_answered_by_the_index() {
        let l = lookup(&parse_filter(r#"displayName eq "Eng Admins""#).unwrap());
        assert_eq!((l.display_key.as_deref(), l.exact), (Some("eng admins"), true));
        let l = lookup(&parse_filter(r#"externalId eq "00g1" and DISPLAYNAME EQ "x""#).unwrap());
        assert_eq!((l.external_id.as_deref(), l.display_key.as_deref(), l.exact), (Some("00g1"), Some("x"), true));
        assert!(lookup(&parse_filter(r#"id eq "a" and id eq "b""#).unwrap()).contradictory);
    }

    #[test]
    fn other_filters_narrow_what_they_can_and_are_matched() {
        let f = parse_filter(r#"displayName eq "x" and members[value eq "m1"]"#).unwrap();
        let l = lookup(&f);
        assert_eq!((l.display_key.as_deref(), l.exact), (Some("x"), false));
        assert!(names_members(&f));
        let f = parse_filter(r#"displayName sw "Eng" or not (externalId pr)"#).unwrap();
        assert_eq!(lookup(&f), GroupLookup::default());
        assert!(!names_members(&f));
        let group = json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Eng Admins",
            "members": [{"value": "m1", "display": "ada"}]});
        let m = |text: &str| parse_filter(text).unwrap().matches(&group, &GROUP_RESOURCE);
        assert!(m(r#"displayName sw "eng""#));
        assert!(m(r#"members[value eq "m1"]"#));
        assert!(m(r#"members.display eq "ADA""#));
        assert!(!m(r#"members[value eq "M1"]"#), "member ids compare exactly");
        assert!(!m(r#"displayName eq "Eng" or externalId pr"#));
    }

    #[test]
    fn bad_groups_filters_are_invalid_filter() {
        for bad in ["", "displayName", r#"displayName eq x"#, r#"displayName eq "x"#, r#"nickName eq "x""#] {
            assert_eq!(parse_filter(bad).unwrap_err().scim_type, ScimType::InvalidFilter, "{bad}");
        }
    }

    #[test]
    fn okta_and_entra_patches_parse() {
        let okta = json!({"Operations": [
            {"op": "add", "path": "members", "value": [{"value": "u1", "display": "ann"}]},
            {"op": "remove", "path": "members[value eq \"u2\"]"},
            {"op": "replace", "value": {"id": "g1", "displayName": "Renamed"}},
        ]});
        assert_eq!(
            parse_patch(&okta).unwrap(),
            vec![
                GroupChange::AddMembers(vec!["u1".into()]),
                GroupChange::RemoveMembers(vec!["u2".into()]),
                GroupChange::DisplayName("Renamed".into()),
            ]
        );
        let entra = json!({"Operations": [
            {"op": "Add", "path": "members", "value": [{"value": "u1"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "u1"}]},
            {"op": "Replace", "path": "displayName", "value": "New"},
            {"op": "Replace", "path": "externalId", "value": "e1"},
        ]});
        let changes = parse_patch(&entra).unwrap();
        assert_eq!(changes[1], GroupChange::RemoveMembers(vec!["u1".into()]));
        let mut g = GroupState { display_name: "Old".into(), external_id: None, members: vec!["u9".into()] };
        g.apply(&changes);
        assert_eq!(
            g,
            GroupState { display_name: "New".into(), external_id: Some("e1".into()), members: vec!["u9".into()] }
        );
    }

    #[test]
    fn hostile_patches_are_scim_400s() {
        let too_many: Vec<Value> = (0..=MAX_MEMBERS_PER_REQUEST).map(|i| json!({"value": format!("u{i}")})).collect();
        for (body, kind) in [
            (json!({"Operations": [{"op": "add", "path": "members", "value": too_many}]}), ScimType::InvalidValue),
            (
                json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": 7}]}]}),
                ScimType::InvalidValue,
            ),
            (json!({"Operations": [{"op": "add", "path": "members", "value": "u1"}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "move", "path": "members"}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "remove", "path": "members[value eq u1]"}]}), ScimType::InvalidPath),
            (json!({"Operations": [{"op": "replace", "path": "displayName", "value": ""}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "replace", "path": "id", "value": "x"}]}), ScimType::Mutability),
            (json!({"Operations": []}), ScimType::InvalidSyntax),
            (json!({"Operations": "x"}), ScimType::InvalidSyntax),
        ] {
            assert_eq!(parse_patch(&body).unwrap_err().scim_type, kind, "{body}");
        }
    }
}
