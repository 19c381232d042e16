//! SCIM 2.0 (RFC 7643, RFC 7644) for the Users resource: the filter subset
//! keyward answers, PATCH operations, and how a SCIM document changes the
//! attributes a member has. Pure: no HTTP, no storage.
//!
//! Tolerant where the identity providers that matter are known to deviate
//! from the RFC: Entra ID capitalizes ops (`Replace`), sends booleans as
//! strings (`"False"`) and puts attribute paths in the keys of a no-path
//! value (`{"name.givenName": …}`); Okta deactivates with a no-path value
//! (`{"op":"replace","value":{"active":false}}`). Attributes keyward does not
//! store (displayName, phoneNumbers, extension schemas, password, …) are
//! ignored, not refused, so a provisioning run never stalls on them.

use super::member::{self, MemberStatus};
use serde_json::{Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Paging (RFC 7644 §3.4.2.4): `count` defaults to this, and is capped at `MAX_COUNT`.
pub const DEFAULT_COUNT: i64 = 100;
pub const MAX_COUNT: i64 = 1000;

/// The `scimType` of an error response (RFC 7644 §3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    InvalidSyntax,
    InvalidPath,
    InvalidValue,
    NoTarget,
    Uniqueness,
    Mutability,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::InvalidValue => "invalidValue",
            ScimType::NoTarget => "noTarget",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
        }
    }
}

/// A request keyward refuses, with its `scimType` (always HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub scim_type: ScimType,
    pub detail: String,
}

fn err(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
    ScimError { scim_type, detail: detail.into() }
}

/// `startIndex` and `count` as RFC 7644 §3.4.2.4 reads them: 1-based, values
/// below 1 mean 1; a negative count means 0; `count` is capped.
pub fn paging(start_index: Option<i64>, count: Option<i64>) -> (i64, i64) {
    let start = start_index.unwrap_or(1).max(1);
    let count = count.unwrap_or(DEFAULT_COUNT).clamp(0, MAX_COUNT);
    (start, count)
}

/// Strips the core User schema URN from a fully qualified attribute name.
fn strip_core_urn(path: &str) -> &str {
    match (path.get(..USER_SCHEMA.len()), path.get(USER_SCHEMA.len()..)) {
        (Some(head), Some(rest))
            if head.eq_ignore_ascii_case(USER_SCHEMA) && rest.len() > 1 && rest.starts_with(':') =>
        {
            &rest[1..]
        }
        _ => path,
    }
}

// ------------------------------------------------------------------ filters

/// The attributes a Users filter may compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAttr {
    /// Case-insensitive (RFC 7643 §4.1.1: `caseExact` false).
    UserName,
    /// Case-sensitive.
    ExternalId,
    /// `emails.value`, `emails[type eq "work"].value`: case-insensitive.
    Email,
    Id,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub attr: FilterAttr,
    pub value: String,
}

/// A conjunction of `eq` comparisons: what Okta and Entra ID send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub clauses: Vec<Clause>,
}

/// What a filter is matched against: a user as SCIM serves it.
#[derive(Debug, Clone, Copy)]
pub struct UserView<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    pub email: &'a str,
    pub external_id: Option<&'a str>,
}

impl Clause {
    pub fn matches(&self, u: &UserView<'_>) -> bool {
        match self.attr {
            FilterAttr::UserName => u.user_name.to_lowercase() == self.value.to_lowercase(),
            FilterAttr::Email => u.email.to_lowercase() == self.value.to_lowercase(),
            FilterAttr::ExternalId => u.external_id == Some(self.value.as_str()),
            FilterAttr::Id => u.id == self.value,
        }
    }
}

impl Filter {
    pub fn matches(&self, u: &UserView<'_>) -> bool {
        self.clauses.iter().all(|c| c.matches(u))
    }

    /// The clause to find the candidate members by: ids, userNames and emails
    /// are unique in the tenant; an externalId is whatever the client made it.
    pub fn most_selective(&self) -> Option<&Clause> {
        let rank = |a: FilterAttr| match a {
            FilterAttr::Id => 0,
            FilterAttr::UserName => 1,
            FilterAttr::Email => 2,
            FilterAttr::ExternalId => 3,
        };
        self.clauses.iter().min_by_key(|c| rank(c.attr))
    }
}

const FILTER_HELP: &str =
    "supported filters: userName, externalId, emails.value or id compared with eq, optionally joined with and";

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with(|c: char| c.is_whitespace()) {
            self.pos += self.s[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.s.len()
    }

    /// An attribute path; a bracketed value filter (`emails[type eq "work"]`) is one part of it.
    fn attr_path(&mut self) -> Result<&'a str, ScimError> {
        self.skip_ws();
        let start = self.pos;
        let bytes = self.s.as_bytes();
        let mut depth = 0usize;
        let mut in_string = false;
        while self.pos < bytes.len() {
            let b = bytes[self.pos];
            if in_string {
                if b == b'\\' {
                    self.pos += 1;
                } else if b == b'"' {
                    in_string = false;
                }
            } else {
                match b {
                    b'"' if depth > 0 => in_string = true,
                    b'[' => depth += 1,
                    b']' if depth > 0 => depth -= 1,
                    b if b.is_ascii_whitespace() && depth == 0 => break,
                    b'(' | b')' | b'"' if depth == 0 => break,
                    _ => {}
                }
            }
            self.pos += 1;
        }
        if depth > 0 || in_string {
            return Err(err(ScimType::InvalidFilter, "unbalanced brackets in the filter"));
        }
        let word = &self.s[start..self.pos];
        if word.is_empty() {
            return Err(err(ScimType::InvalidFilter, format!("expected an attribute name; {FILTER_HELP}")));
        }
        Ok(word)
    }

    fn word(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        while self.s[self.pos..].starts_with(|c: char| !c.is_whitespace() && c != '(' && c != ')') {
            self.pos += self.s[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
        &self.s[start..self.pos]
    }

    /// A comparison value: a JSON string (other JSON literals are refused).
    fn string_value(&mut self) -> Result<String, ScimError> {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        if !rest.starts_with('"') {
            let w = self.word();
            return Err(err(
                ScimType::InvalidFilter,
                if w.is_empty() {
                    "expected a quoted value after the operator".to_string()
                } else {
                    format!("the value {w} must be a quoted string")
                },
            ));
        }
        let bytes = rest.as_bytes();
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    let literal = &rest[..=i];
                    self.pos += i + 1;
                    return serde_json::from_str::<String>(literal)
                        .map_err(|_| err(ScimType::InvalidFilter, "the quoted value is not a valid string"));
                }
                _ => i += 1,
            }
        }
        Err(err(ScimType::InvalidFilter, "unterminated quoted value"))
    }
}

fn filter_attr(path: &str) -> Option<FilterAttr> {
    let path = strip_core_urn(path);
    let lower = path.to_ascii_lowercase();
    match lower.as_str() {
        "username" => Some(FilterAttr::UserName),
        "externalid" => Some(FilterAttr::ExternalId),
        "id" => Some(FilterAttr::Id),
        "emails" | "emails.value" => Some(FilterAttr::Email),
        _ => {
            let (name, _, sub) = split_path(path).ok()?;
            (name.eq_ignore_ascii_case("emails") && sub.is_some_and(|s| s.eq_ignore_ascii_case("value")))
                .then_some(FilterAttr::Email)
        }
    }
}

/// Parses a Users `filter` (RFC 7644 §3.4.2.2) in the subset keyward answers.
pub fn parse_filter(text: &str) -> Result<Filter, ScimError> {
    let mut lx = Lexer { s: text, pos: 0 };
    let mut clauses = Vec::new();
    loop {
        if lx.at_end() {
            return Err(err(ScimType::InvalidFilter, format!("the filter is incomplete; {FILTER_HELP}")));
        }
        if lx.s[lx.pos..].starts_with('(') {
            return Err(err(ScimType::InvalidFilter, format!("grouping is not supported; {FILTER_HELP}")));
        }
        let path = lx.attr_path()?;
        if path.eq_ignore_ascii_case("not") {
            return Err(err(ScimType::InvalidFilter, format!("not is not supported; {FILTER_HELP}")));
        }
        let attr = filter_attr(path).ok_or_else(|| {
            err(ScimType::InvalidFilter, format!("filtering on {path} is not supported; {FILTER_HELP}"))
        })?;
        let op = lx.word();
        if !op.eq_ignore_ascii_case("eq") {
            let shown = if op.is_empty() { "nothing" } else { op };
            return Err(err(ScimType::InvalidFilter, format!("operator {shown} is not supported; {FILTER_HELP}")));
        }
        let value = lx.string_value()?;
        clauses.push(Clause { attr, value });
        if lx.at_end() {
            return Ok(Filter { clauses });
        }
        let joiner = lx.word();
        if !joiner.eq_ignore_ascii_case("and") {
            let shown = if joiner.is_empty() { &lx.s[lx.pos..] } else { joiner };
            return Err(err(ScimType::InvalidFilter, format!("unexpected {shown} in the filter; {FILTER_HELP}")));
        }
    }
}

// ------------------------------------------------------------------ attributes

/// The SCIM-visible attributes of a member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAttrs {
    /// None: the member has no userName of its own (SCIM serves its email).
    pub user_name: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
}

/// One change a SCIM document asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    UserName(String),
    Email(String),
    GivenName(Option<String>),
    FamilyName(Option<String>),
    ExternalId(Option<String>),
    Active(bool),
    /// An attribute keyward does not store (named for the audit event).
    Ignored(String),
}

impl UserAttrs {
    pub fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::UserName(v) => self.user_name = Some(v.clone()),
                Change::Email(v) => self.email = Some(v.clone()),
                Change::GivenName(v) => self.given_name = v.clone(),
                Change::FamilyName(v) => self.family_name = v.clone(),
                Change::ExternalId(v) => self.external_id = v.clone(),
                Change::Active(v) => self.active = *v,
                Change::Ignored(_) => {}
            }
        }
    }
}

/// The attributes a POSTed User gives a new member: active unless it says
/// otherwise; with no emails, a userName that is an address is the email.
pub fn new_user(changes: &[Change]) -> Result<UserAttrs, ScimError> {
    let mut attrs = UserAttrs { active: true, ..UserAttrs::default() };
    attrs.apply(changes);
    if attrs.email.is_none() {
        attrs.email = attrs.user_name.clone().filter(|u| member::normalize_email(u).is_some());
    }
    if attrs.email.is_none() {
        return Err(invalid_value("emails is required unless userName is an email address"));
    }
    Ok(attrs)
}

/// The member status a User's `active` stands for.
pub fn status_for(active: bool) -> MemberStatus {
    if active {
        MemberStatus::Active
    } else {
        MemberStatus::Inactive
    }
}

/// The attributes of `changes` that keyward ignored.
pub fn ignored(changes: &[Change]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in changes {
        if let Change::Ignored(p) = c {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    UserName,
    /// `emails[…].value`, `emails.value`
    Email,
    /// `emails`: the multi-valued attribute itself.
    Emails,
    Name,
    GivenName,
    FamilyName,
    ExternalId,
    Active,
    /// `id`, `meta`, `schemas`: set by keyward only.
    ReadOnly(String),
    Ignored(String),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}

/// Splits `attr[filter].sub` into its parts; refuses what is not an attribute path.
fn split_path(path: &str) -> Result<(&str, Option<&str>, Option<&str>), ScimError> {
    let bad = || err(ScimType::InvalidPath, format!("{path:?} is not a valid attribute path"));
    let name_end = path.find(['[', '.']).unwrap_or(path.len());
    let name = &path[..name_end];
    let mut rest = &path[name_end..];
    let mut filter = None;
    if let Some(r) = rest.strip_prefix('[') {
        let close = r.rfind(']').ok_or_else(bad)?;
        let inner = r[..close].trim();
        if inner.is_empty() {
            return Err(bad());
        }
        filter = Some(inner);
        rest = &r[close + 1..];
    }
    let sub = match rest {
        "" => None,
        r => Some(r.strip_prefix('.').ok_or_else(bad)?),
    };
    let valid = |s: &str| !s.is_empty() && s.chars().all(is_name_char);
    if !valid(name) || sub.is_some_and(|s| !valid(s)) {
        return Err(bad());
    }
    Ok((name, filter, sub))
}

fn parse_target(raw: &str) -> Result<Target, ScimError> {
    let trimmed = raw.trim();
    let path = strip_core_urn(trimmed);
    if path.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        // An extension schema's attribute (e.g. the enterprise User extension).
        return Ok(Target::Ignored(trimmed.to_string()));
    }
    let (name, filter, sub) = split_path(path)?;
    let name = name.to_ascii_lowercase();
    let sub = sub.map(str::to_ascii_lowercase);
    Ok(match (name.as_str(), filter, sub.as_deref()) {
        ("username", None, None) => Target::UserName,
        ("externalid", None, None) => Target::ExternalId,
        ("active", None, None) => Target::Active,
        ("name", None, None) => Target::Name,
        ("name", None, Some("givenname")) => Target::GivenName,
        ("name", None, Some("familyname")) => Target::FamilyName,
        ("emails", None, None) => Target::Emails,
        ("emails", _, Some("value")) => Target::Email,
        ("id" | "meta" | "schemas", _, _) => Target::ReadOnly(trimmed.to_string()),
        _ => Target::Ignored(trimmed.to_string()),
    })
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    err(ScimType::InvalidValue, detail)
}

/// A string attribute's value: a string, or null (or "") to clear it.
fn optional_string(attr: &str, v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        _ => Err(invalid_value(format!("{attr} must be a string"))),
    }
}

fn required_string(attr: &str, v: &Value) -> Result<String, ScimError> {
    optional_string(attr, v)?.ok_or_else(|| invalid_value(format!("{attr} is required and cannot be empty")))
}

/// A boolean; Entra ID sends `"True"`/`"False"` strings.
fn boolean(attr: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid_value(format!("{attr} must be true or false"))),
    }
}

/// Looks a key up case-insensitively (attribute names are, RFC 7643 §2.1).
fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// The address a member keeps from a multi-valued `emails`: the primary one, else the first.
fn pick_email(v: &Value) -> Result<String, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![v],
        Value::Null => Vec::new(),
        _ => return Err(invalid_value("emails must be a list of {value, type, primary} objects")),
    };
    let is_primary = |e: &&Value| {
        e.as_object().and_then(|o| get_ci(o, "primary")).is_some_and(|p| boolean("primary", p).unwrap_or(false))
    };
    let chosen = items.iter().copied().find(is_primary).or_else(|| items.first().copied());
    let Some(chosen) = chosen else {
        return Err(invalid_value("emails is required: a member has an email address"));
    };
    let value = match chosen {
        Value::Object(o) => get_ci(o, "value").unwrap_or(&Value::Null),
        other => other,
    };
    required_string("emails.value", value)
}

/// How a complex `name` value is read: PATCH merges the sub-attributes it
/// names; a whole resource (POST, PUT) replaces both.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Patch,
    Resource,
}

fn set(target: Target, v: &Value, mode: Mode, out: &mut Vec<Change>) -> Result<(), ScimError> {
    match target {
        Target::UserName => out.push(Change::UserName(required_string("userName", v)?)),
        Target::Email => {
            // Some clients send the value of `emails[…].value` as a one-element list.
            let v = match v {
                Value::Array(items) if items.len() == 1 => &items[0],
                other => other,
            };
            out.push(Change::Email(required_string("emails.value", v)?));
        }
        // A resource with no addresses keeps (PUT) or derives (POST) the member's one.
        Target::Emails if mode == Mode::Resource && v.as_array().is_some_and(Vec::is_empty) => {}
        Target::Emails if mode == Mode::Resource && v.is_null() => {}
        Target::Emails => out.push(Change::Email(pick_email(v)?)),
        Target::GivenName => out.push(Change::GivenName(optional_string("name.givenName", v)?)),
        Target::FamilyName => out.push(Change::FamilyName(optional_string("name.familyName", v)?)),
        Target::ExternalId => out.push(Change::ExternalId(optional_string("externalId", v)?)),
        Target::Active => out.push(Change::Active(boolean("active", v)?)),
        Target::Name => match v {
            Value::Null => {
                out.push(Change::GivenName(None));
                out.push(Change::FamilyName(None));
            }
            Value::Object(o) => {
                for (key, target) in [("givenName", Target::GivenName), ("familyName", Target::FamilyName)] {
                    match get_ci(o, key) {
                        Some(sub) => set(target, sub, mode, out)?,
                        None if mode == Mode::Resource => set(target, &Value::Null, mode, out)?,
                        None => {}
                    }
                }
            }
            _ => return Err(invalid_value("name must be an object with givenName and familyName")),
        },
        Target::ReadOnly(p) => {
            if mode == Mode::Patch {
                return Err(err(ScimType::Mutability, format!("{p} is read-only")));
            }
        }
        Target::Ignored(p) => out.push(Change::Ignored(p)),
    }
    Ok(())
}

fn remove(target: Target, path: &str, out: &mut Vec<Change>) -> Result<(), ScimError> {
    match target {
        Target::UserName => return Err(invalid_value("userName is required and cannot be removed")),
        Target::Email | Target::Emails => {
            return Err(invalid_value("a member keeps one email address; it can be replaced, not removed"))
        }
        Target::Active => return Err(invalid_value("active cannot be removed; replace it with true or false")),
        Target::ReadOnly(p) => return Err(err(ScimType::Mutability, format!("{p} is read-only"))),
        Target::Name => {
            out.push(Change::GivenName(None));
            out.push(Change::FamilyName(None));
        }
        Target::GivenName => out.push(Change::GivenName(None)),
        Target::FamilyName => out.push(Change::FamilyName(None)),
        Target::ExternalId => out.push(Change::ExternalId(None)),
        Target::Ignored(_) => out.push(Change::Ignored(path.trim().to_string())),
    }
    Ok(())
}

/// Every attribute of a JSON object, each key read as an attribute path.
fn set_object(obj: &Map<String, Value>, mode: Mode, out: &mut Vec<Change>) -> Result<(), ScimError> {
    for (key, v) in obj {
        let target = parse_target(key)?;
        let target = match target {
            // Inside a value or a resource these are echoes of what keyward served.
            Target::ReadOnly(_) => continue,
            t => t,
        };
        set(target, v, mode, out)?;
    }
    Ok(())
}

/// The changes of a PATCH body (RFC 7644 §3.5.2): both the path form and the
/// no-path value form, ops in any case.
pub fn parse_patch(body: &Value) -> Result<Vec<Change>, ScimError> {
    let syntax = |d: &str| err(ScimType::InvalidSyntax, d);
    let obj = body.as_object().ok_or_else(|| syntax("the body must be a PatchOp object"))?;
    if let Some(schemas) = get_ci(obj, "schemas") {
        let listed = schemas.as_array().is_some_and(|s| s.iter().any(|v| v.as_str() == Some(PATCH_OP_SCHEMA)));
        if !listed {
            return Err(syntax("schemas must list urn:ietf:params:scim:api:messages:2.0:PatchOp"));
        }
    }
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| syntax("Operations must be a non-empty list"))?;
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let op =
            op.as_object().ok_or_else(|| err(ScimType::InvalidSyntax, format!("Operations[{i}] must be an object")))?;
        let name = get_ci(op, "op").and_then(Value::as_str).unwrap_or("");
        let path = match get_ci(op, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.trim().is_empty() => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err(err(ScimType::InvalidPath, format!("Operations[{i}].path must be a string"))),
        };
        let value = get_ci(op, "value");
        match name.to_ascii_lowercase().as_str() {
            "add" | "replace" => {
                let value = value
                    .ok_or_else(|| err(ScimType::InvalidValue, format!("Operations[{i}] ({name}) needs a value")))?;
                match path {
                    Some(p) => set(parse_target(p)?, value, Mode::Patch, &mut out)?,
                    None => {
                        let obj = value.as_object().ok_or_else(|| {
                            err(
                                ScimType::InvalidValue,
                                format!("Operations[{i}] has no path, so its value must be an object of attributes"),
                            )
                        })?;
                        set_object(obj, Mode::Patch, &mut out)?;
                    }
                }
            }
            "remove" => {
                let p =
                    path.ok_or_else(|| err(ScimType::NoTarget, format!("Operations[{i}] (remove) needs a path")))?;
                remove(parse_target(p)?, p, &mut out)?;
            }
            _ => {
                return Err(err(
                    ScimType::InvalidSyntax,
                    format!("Operations[{i}].op must be add, replace or remove, not {name:?}"),
                ))
            }
        }
    }
    Ok(out)
}

/// The changes a whole User resource asks for (POST, PUT). `userName` is
/// required; attributes the body does not carry are left as they are.
pub fn parse_resource(body: &Value) -> Result<Vec<Change>, ScimError> {
    let obj = body.as_object().ok_or_else(|| err(ScimType::InvalidSyntax, "the body must be a User object"))?;
    let mut out = Vec::new();
    set_object(obj, Mode::Resource, &mut out)?;
    if !out.iter().any(|c| matches!(c, Change::UserName(_))) {
        return Err(invalid_value("userName is required"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clause(attr: FilterAttr, v: &str) -> Clause {
        Clause { attr, value: v.into() }
    }

    #[test]
    fn filters_that_okta_and_entra_send_parse() {
        assert_eq!(
            parse_filter(r#"userName eq "test.user@okta.local""#).unwrap().clauses,
            vec![clause(FilterAttr::UserName, "test.user@okta.local")]
        );
        assert_eq!(
            parse_filter(r#"USERNAME EQ "Ann""#).unwrap().clauses,
            vec![clause(FilterAttr::UserName, "Ann")],
            "names and operators are case-insensitive"
        );
        assert_eq!(
            parse_filter(r#"externalId eq "00ujl29u0le5T6Aj10h7""#).unwrap().clauses,
            vec![clause(FilterAttr::ExternalId, "00ujl29u0le5T6Aj10h7")]
        );
        assert_eq!(
            parse_filter(r#"emails[type eq "work"].value eq "a@b.example""#).unwrap().clauses,
            vec![clause(FilterAttr::Email, "a@b.example")]
        );
        assert_eq!(
            parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#).unwrap().clauses,
            vec![clause(FilterAttr::UserName, "x")]
        );
        assert_eq!(
            parse_filter(r#"userName eq "a \"q\" b" and externalId eq "e1""#).unwrap().clauses,
            vec![clause(FilterAttr::UserName, "a \"q\" b"), clause(FilterAttr::ExternalId, "e1")]
        );
        assert_eq!(parse_filter(r#"  id eq "m1"  "#).unwrap().clauses, vec![clause(FilterAttr::Id, "m1")]);
    }

    #[test]
    fn unsupported_filters_are_invalid_filter() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName co "a""#,
            r#"userName sw "a""#,
            "userName pr",
            r#"displayName eq "a""#,
            r#"userName eq "a" or userName eq "b""#,
            r#"(userName eq "a")"#,
            r#"not (userName eq "a")"#,
            "userName eq unquoted",
            "userName eq true",
            r#"userName eq "unterminated"#,
            r#"emails[type eq "work".value eq "a""#,
            r#"userName eq "a" and"#,
            r#"userName eq "a" junk"#,
        ] {
            let e = parse_filter(bad).expect_err(bad);
            assert_eq!(e.scim_type, ScimType::InvalidFilter, "{bad}");
        }
    }

    #[test]
    fn filters_match_case_as_the_schema_says() {
        let u = UserView {
            id: "m1",
            user_name: "Ann.Lee@Acme.example",
            email: "ann@acme.example",
            external_id: Some("X1"),
        };
        assert!(parse_filter(r#"userName eq "ann.lee@acme.EXAMPLE""#).unwrap().matches(&u));
        assert!(parse_filter(r#"emails.value eq "ANN@acme.example""#).unwrap().matches(&u));
        assert!(parse_filter(r#"externalId eq "X1""#).unwrap().matches(&u));
        assert!(!parse_filter(r#"externalId eq "x1""#).unwrap().matches(&u), "externalId is case-exact");
        assert!(!parse_filter(r#"userName eq "ann.lee@acme.example" and externalId eq "X2""#).unwrap().matches(&u));
    }

    #[test]
    fn paging_follows_rfc_7644() {
        assert_eq!(paging(None, None), (1, 100));
        assert_eq!(paging(Some(0), Some(-5)), (1, 0));
        assert_eq!(paging(Some(-3), Some(5000)), (1, 1000));
        assert_eq!(paging(Some(7), Some(2)), (7, 2));
    }

    fn patched(start: &UserAttrs, body: Value) -> UserAttrs {
        let mut a = start.clone();
        a.apply(&parse_patch(&body).unwrap());
        a
    }

    fn ann() -> UserAttrs {
        UserAttrs {
            user_name: Some("ann".into()),
            email: Some("ann@acme.example".into()),
            given_name: Some("Ann".into()),
            family_name: Some("Lee".into()),
            external_id: Some("e1".into()),
            active: true,
        }
    }

    #[test]
    fn okta_deactivation_without_a_path() {
        let a = patched(
            &ann(),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "replace", "value": {"active": false}}]}),
        );
        assert_eq!(a, UserAttrs { active: false, ..ann() });
    }

    #[test]
    fn entra_ops_capitalized_with_paths_and_string_booleans() {
        let a = patched(
            &ann(),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@acme.example"},
                {"op": "Replace", "path": "name.familyName", "value": "Ng"},
                {"op": "Add", "path": "name.givenName", "value": "Annie"},
                {"op": "Replace", "path": "externalId", "value": "e2"},
                {"op": "Replace", "path": "userName", "value": "annie"},
                {"op": "Replace", "path": "active", "value": "False"},
            ]}),
        );
        assert_eq!(
            a,
            UserAttrs {
                user_name: Some("annie".into()),
                email: Some("new@acme.example".into()),
                given_name: Some("Annie".into()),
                family_name: Some("Ng".into()),
                external_id: Some("e2".into()),
                active: false,
            }
        );
        let back = patched(&a, json!({"Operations": [{"op": "REPLACE", "path": "active", "value": "True"}]}));
        assert!(back.active);
    }

    #[test]
    fn entra_no_path_value_with_path_keys() {
        let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "replace", "value": {
            "displayName": "Ann Ng",
            "emails[type eq \"work\"].value": "ng@acme.example",
            "name.givenName": "Ann",
            "name.familyName": "Ng",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
        }}]});
        let changes = parse_patch(&body).unwrap();
        assert_eq!(
            ignored(&changes),
            vec!["displayName", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"]
        );
        let mut a = ann();
        a.apply(&changes);
        assert_eq!(a, UserAttrs { email: Some("ng@acme.example".into()), family_name: Some("Ng".into()), ..ann() });
    }

    #[test]
    fn patch_merges_name_and_removes() {
        let a =
            patched(&ann(), json!({"Operations": [{"op": "replace", "path": "name", "value": {"familyName": "Ng"}}]}));
        assert_eq!(a.given_name.as_deref(), Some("Ann"), "sub-attributes not named are unchanged");
        assert_eq!(a.family_name.as_deref(), Some("Ng"));
        let r = patched(
            &ann(),
            json!({"Operations": [
                {"op": "remove", "path": "externalId"},
                {"op": "Remove", "path": "name.givenName"},
                {"op": "remove", "path": "phoneNumbers[type eq \"work\"]"},
            ]}),
        );
        assert_eq!(r, UserAttrs { external_id: None, given_name: None, ..ann() });
        let e = patched(
            &ann(),
            json!({"Operations": [{"op": "add", "path": "emails", "value": [
                {"value": "home@x.example", "type": "home"},
                {"value": "work@x.example", "type": "work", "primary": true},
            ]}]}),
        );
        assert_eq!(e.email.as_deref(), Some("work@x.example"), "the primary address wins");
    }

    #[test]
    fn bad_patches_name_their_scim_type() {
        let cases = [
            (json!({}), ScimType::InvalidSyntax),
            (json!({"Operations": []}), ScimType::InvalidSyntax),
            (json!({"schemas": ["urn:x"], "Operations": [{"op": "add", "value": {}}]}), ScimType::InvalidSyntax),
            (json!({"Operations": [{"op": "move", "path": "active", "value": true}]}), ScimType::InvalidSyntax),
            (json!({"Operations": [{"op": "remove"}]}), ScimType::NoTarget),
            (json!({"Operations": [{"op": "remove", "path": "userName"}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "remove", "path": "emails"}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "replace", "path": "active"}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "replace", "value": false}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "replace", "path": "userName", "value": ""}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "replace", "path": "name..x", "value": "a"}]}), ScimType::InvalidPath),
            (json!({"Operations": [{"op": "replace", "path": "emails[", "value": "a"}]}), ScimType::InvalidPath),
            (json!({"Operations": [{"op": "replace", "path": "id", "value": "a"}]}), ScimType::Mutability),
        ];
        for (body, want) in cases {
            assert_eq!(parse_patch(&body).expect_err(&body.to_string()).scim_type, want, "{body}");
        }
    }

    #[test]
    fn resources_from_okta_and_entra() {
        let okta = json!({
            "schemas": [USER_SCHEMA],
            "userName": "test.user@okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": true,
        });
        let mut a = UserAttrs { active: true, ..Default::default() };
        a.apply(&parse_resource(&okta).unwrap());
        assert_eq!(
            a,
            UserAttrs {
                user_name: Some("test.user@okta.local".into()),
                email: Some("test.user@okta.local".into()),
                given_name: Some("Test".into()),
                family_name: Some("User".into()),
                external_id: Some("00ujl29u0le5T6Aj10h7".into()),
                active: true,
            }
        );
        // A PUT echoes id and meta; a name without familyName clears it.
        let put = json!({"id": "m1", "meta": {"resourceType": "User"}, "UserName": "ann", "name": {"givenName": "A"}});
        let mut b = ann();
        b.apply(&parse_resource(&put).unwrap());
        assert_eq!(b, UserAttrs { given_name: Some("A".into()), family_name: None, ..ann() });
        assert_eq!(
            parse_resource(&json!({"userName": "a", "emails": []})).unwrap(),
            vec![Change::UserName("a".into())]
        );
        assert_eq!(
            parse_resource(&json!({"userName": "a", "emails": [{"type": "work"}]})).unwrap_err().scim_type,
            ScimType::InvalidValue
        );
        assert_eq!(parse_resource(&json!({"name": {}})).unwrap_err().detail, "userName is required");
        assert_eq!(
            parse_resource(&json!({"userName": "a", "active": "yes"})).unwrap_err().scim_type,
            ScimType::InvalidValue
        );
    }

    #[test]
    fn candidates_are_found_by_the_most_selective_clause() {
        let f = parse_filter(r#"externalId eq "e1" and emails.value eq "a@b.example" and userName eq "ann""#).unwrap();
        assert_eq!(f.most_selective(), Some(&clause(FilterAttr::UserName, "ann")));
        let f = parse_filter(r#"userName eq "ann" and id eq "m1""#).unwrap();
        assert_eq!(f.most_selective(), Some(&clause(FilterAttr::Id, "m1")));
        let f = parse_filter(r#"externalId eq "e1" and emails.value eq "a@b.example""#).unwrap();
        assert_eq!(f.most_selective(), Some(&clause(FilterAttr::Email, "a@b.example")));
    }

    #[test]
    fn a_new_user_needs_an_address() {
        let created = new_user(&parse_resource(&json!({"userName": "Ann@Acme.example"})).unwrap()).unwrap();
        assert_eq!(created.email.as_deref(), Some("Ann@Acme.example"), "the userName is the address");
        assert!(created.active, "active unless the resource says otherwise");
        let inactive =
            new_user(&parse_resource(&json!({"userName": "a@b.example", "active": false})).unwrap()).unwrap();
        assert!(!inactive.active);
        let e = new_user(&parse_resource(&json!({"userName": "ann"})).unwrap()).unwrap_err();
        assert_eq!(e.scim_type, ScimType::InvalidValue);
        assert_eq!(e.detail, "emails is required unless userName is an email address");
        let both = json!({"userName": "ann", "emails": [{"value": "ann@acme.example"}]});
        assert_eq!(new_user(&parse_resource(&both).unwrap()).unwrap().email.as_deref(), Some("ann@acme.example"));
    }

    #[test]
    fn active_is_the_member_status() {
        assert_eq!(status_for(true), MemberStatus::Active);
        assert_eq!(status_for(false), MemberStatus::Inactive);
    }
}
