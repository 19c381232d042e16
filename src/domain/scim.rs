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
use super::scim_filter::{self, CompareOp, Filter, ResourceSchema, Test};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
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

// ------------------------------------------------------------------ filters

/// What a Users filter and projection know of the User resource.
pub static USER_RESOURCE: ResourceSchema = ResourceSchema {
    core: USER_SCHEMA,
    extensions: &[ENTERPRISE_SCHEMA],
    filterable: &[
        "id",
        "externalid",
        "username",
        "displayname",
        "nickname",
        "title",
        "preferredlanguage",
        "locale",
        "timezone",
        "active",
        "name.givenname",
        "name.familyname",
        "name.formatted",
        "emails",
        "emails.value",
        "emails.type",
        "emails.primary",
        "meta.created",
        "meta.lastmodified",
        "meta.resourcetype",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:employeenumber",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:costcenter",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:organization",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:division",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.displayname",
    ],
    case_exact: &["id", "externalid", "meta.location", "meta.version"],
    always: &["schemas", "id"],
};

/// Parses a Users `filter` (RFC 7644 §3.4.2.2).
pub fn parse_filter(text: &str) -> Result<Filter, ScimError> {
    scim_filter::parse(text, &USER_RESOURCE)
}

/// The attributes whose `eq` the store answers through an index.
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

/// An `eq` every match must satisfy, on an indexed attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub attr: FilterAttr,
    pub value: String,
}

/// The clause to find the candidate members by: ids, userNames and emails
/// are unique among live members; an externalId is whatever the client made
/// it. None: no top-level `eq` on an indexed attribute (the members are scanned).
pub fn most_selective(f: &Filter) -> Option<Clause> {
    let rank = |a: FilterAttr| match a {
        FilterAttr::Id => 0,
        FilterAttr::UserName => 1,
        FilterAttr::Email => 2,
        FilterAttr::ExternalId => 3,
    };
    f.conjuncts()
        .into_iter()
        .filter_map(|c| match c {
            Filter::Attr(path, Test::Compare(CompareOp::Eq, Value::String(v))) if path.schema.is_none() => {
                let attr = match path.key().as_str() {
                    "id" => FilterAttr::Id,
                    "username" => FilterAttr::UserName,
                    "externalid" => FilterAttr::ExternalId,
                    "emails" | "emails.value" => FilterAttr::Email,
                    _ => return None,
                };
                Some(Clause { attr, value: v.clone() })
            }
            _ => None,
        })
        .min_by_key(|c| rank(c.attr))
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
    pub profile: UserProfile,
}

/// Longest value of a profile attribute (they reach the audit trail's archives and every read).
pub const MAX_PROFILE_CHARS: usize = 256;

/// The User attributes keyward keeps for identity providers and shows back,
/// but does not act on: core `displayName` … `timezone` and the enterprise
/// extension (RFC 7643 §4.3). Stored as one JSON object, absent ones left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserProfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_display_name: Option<String>,
}

/// One attribute of [`UserProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileField {
    DisplayName,
    NickName,
    Title,
    PreferredLanguage,
    Locale,
    Timezone,
    EmployeeNumber,
    CostCenter,
    Organization,
    Division,
    Department,
    ManagerValue,
    ManagerRef,
    ManagerDisplayName,
}

impl ProfileField {
    const CORE: [(&'static str, ProfileField); 6] = [
        ("displayname", ProfileField::DisplayName),
        ("nickname", ProfileField::NickName),
        ("title", ProfileField::Title),
        ("preferredlanguage", ProfileField::PreferredLanguage),
        ("locale", ProfileField::Locale),
        ("timezone", ProfileField::Timezone),
    ];
    const ENTERPRISE: [(&'static str, ProfileField); 5] = [
        ("employeenumber", ProfileField::EmployeeNumber),
        ("costcenter", ProfileField::CostCenter),
        ("organization", ProfileField::Organization),
        ("division", ProfileField::Division),
        ("department", ProfileField::Department),
    ];
    const MANAGER: [(&'static str, ProfileField); 3] = [
        ("value", ProfileField::ManagerValue),
        ("$ref", ProfileField::ManagerRef),
        ("displayname", ProfileField::ManagerDisplayName),
    ];

    fn enterprise_fields() -> impl Iterator<Item = ProfileField> {
        Self::ENTERPRISE.into_iter().chain(Self::MANAGER).map(|(_, f)| f)
    }
}

impl UserProfile {
    fn slot(&mut self, f: ProfileField) -> &mut Option<String> {
        match f {
            ProfileField::DisplayName => &mut self.display_name,
            ProfileField::NickName => &mut self.nick_name,
            ProfileField::Title => &mut self.title,
            ProfileField::PreferredLanguage => &mut self.preferred_language,
            ProfileField::Locale => &mut self.locale,
            ProfileField::Timezone => &mut self.timezone,
            ProfileField::EmployeeNumber => &mut self.employee_number,
            ProfileField::CostCenter => &mut self.cost_center,
            ProfileField::Organization => &mut self.organization,
            ProfileField::Division => &mut self.division,
            ProfileField::Department => &mut self.department,
            ProfileField::ManagerValue => &mut self.manager_value,
            ProfileField::ManagerRef => &mut self.manager_ref,
            ProfileField::ManagerDisplayName => &mut self.manager_display_name,
        }
    }

    pub fn set(&mut self, f: ProfileField, v: Option<String>) {
        *self.slot(f) = v;
    }

    /// Whether any enterprise extension attribute is set.
    pub fn has_enterprise(&self) -> bool {
        let mut copy = self.clone();
        ProfileField::enterprise_fields().any(|f| copy.slot(f).is_some())
    }

    /// The stored JSON; a damaged one reads as None (the row is refused, not misread).
    pub fn from_json(text: &str) -> Option<UserProfile> {
        serde_json::from_str(text).ok()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
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
    Profile(ProfileField, Option<String>),
    /// A whole resource (POST, PUT) replaces the profile: what it leaves out is cleared.
    ClearProfile,
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
                Change::Profile(f, v) => self.profile.set(*f, v.clone()),
                Change::ClearProfile => self.profile = UserProfile::default(),
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

/// Most ignored attribute names an audit event lists, and their longest
/// shown length: the names are caller text.
const MAX_IGNORED_NAMES: usize = 20;
const MAX_IGNORED_NAME_CHARS: usize = 100;

/// The attributes of `changes` that keyward ignored (bounded, see above).
pub fn ignored(changes: &[Change]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in changes {
        if let Change::Ignored(p) = c {
            let shown: String = p.chars().take(MAX_IGNORED_NAME_CHARS).collect();
            if !out.contains(&shown) && out.len() < MAX_IGNORED_NAMES {
                out.push(shown);
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
    Profile(ProfileField),
    /// The enterprise extension's `manager` (complex).
    Manager,
    /// The enterprise extension as a whole (its URN as the key or path).
    Enterprise,
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
    let (schema, path) = match USER_RESOURCE.split_urn(trimmed) {
        Some(split) => split,
        // Another extension schema's attribute.
        None => return Ok(Target::Ignored(trimmed.to_string())),
    };
    if schema == Some(ENTERPRISE_SCHEMA) {
        return enterprise_target(trimmed, path);
    }
    let (name, filter, sub) = split_path(path)?;
    let name = name.to_ascii_lowercase();
    let sub = sub.map(str::to_ascii_lowercase);
    if let Some(filter) = filter {
        check_email_filter(&name, filter)?;
    }
    if let (None, None, Some(f)) = (filter, sub.as_deref(), lookup(&ProfileField::CORE, &name)) {
        return Ok(Target::Profile(f));
    }
    Ok(match (name.as_str(), filter, sub.as_deref()) {
        ("username", None, None) => Target::UserName,
        ("externalid", None, None) => Target::ExternalId,
        ("active", None, None) => Target::Active,
        ("name", None, None) => Target::Name,
        ("name", None, Some("givenname")) => Target::GivenName,
        ("name", None, Some("familyname")) => Target::FamilyName,
        // `emails[type eq "work"]`: the one address, as a whole.
        ("emails", _, None) => Target::Emails,
        ("emails", _, Some("value")) => Target::Email,
        ("id" | "meta" | "schemas", _, _) => Target::ReadOnly(trimmed.to_string()),
        _ => Target::Ignored(trimmed.to_string()),
    })
}

fn lookup(table: &[(&'static str, ProfileField)], name: &str) -> Option<ProfileField> {
    table.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// A path into the enterprise extension (`path` follows its URN; empty: the extension itself).
fn enterprise_target(raw: &str, path: &str) -> Result<Target, ScimError> {
    if path.is_empty() {
        return Ok(Target::Enterprise);
    }
    let (name, filter, sub) = split_path(path)?;
    let (name, sub) = (name.to_ascii_lowercase(), sub.map(str::to_ascii_lowercase));
    Ok(match (filter, sub.as_deref()) {
        (None, None) if name == "manager" => Target::Manager,
        (None, Some(s)) if name == "manager" => {
            lookup(&ProfileField::MANAGER, s).map_or_else(|| Target::Ignored(raw.to_string()), Target::Profile)
        }
        (None, None) => {
            lookup(&ProfileField::ENTERPRISE, &name).map_or_else(|| Target::Ignored(raw.to_string()), Target::Profile)
        }
        _ => Target::Ignored(raw.to_string()),
    })
}

/// A member keeps one address, served as `{"type": "work", "primary": true}`:
/// a value filter on `emails` must parse and select it (RFC 7644 §3.5.2: else noTarget).
fn check_email_filter(name: &str, filter: &str) -> Result<(), ScimError> {
    if name != "emails" {
        return Ok(());
    }
    let f = scim_filter::parse(&format!("emails[{filter}]"), &USER_RESOURCE)
        .map_err(|e| err(ScimType::InvalidPath, format!("emails[{filter}]: {}", e.detail)))?;
    let served = serde_json::json!({"emails": [{"type": "work", "primary": true}]});
    if !f.matches(&served, &USER_RESOURCE) {
        return Err(err(
            ScimType::NoTarget,
            format!("emails[{filter}] selects no address: a member keeps one work address"),
        ));
    }
    Ok(())
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    err(ScimType::InvalidValue, detail)
}

/// A profile attribute's value: a bounded single-line string, or null (or "") to clear it.
fn profile_string(attr: &str, v: &Value) -> Result<Option<String>, ScimError> {
    let value = optional_string(attr, v)?;
    if let Some(s) = &value {
        if s.chars().count() > MAX_PROFILE_CHARS || s.chars().any(char::is_control) {
            return Err(invalid_value(format!(
                "{attr} must be at most {MAX_PROFILE_CHARS} characters with no control characters"
            )));
        }
    }
    Ok(value)
}

fn profile_name(f: ProfileField) -> &'static str {
    match f {
        ProfileField::DisplayName => "displayName",
        ProfileField::NickName => "nickName",
        ProfileField::Title => "title",
        ProfileField::PreferredLanguage => "preferredLanguage",
        ProfileField::Locale => "locale",
        ProfileField::Timezone => "timezone",
        ProfileField::EmployeeNumber => "employeeNumber",
        ProfileField::CostCenter => "costCenter",
        ProfileField::Organization => "organization",
        ProfileField::Division => "division",
        ProfileField::Department => "department",
        ProfileField::ManagerValue => "manager.value",
        ProfileField::ManagerRef => "manager.$ref",
        ProfileField::ManagerDisplayName => "manager.displayName",
    }
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
        Target::Profile(f) => out.push(Change::Profile(f, profile_string(profile_name(f), v)?)),
        // Entra ID sends the manager's id alone.
        Target::Manager => match v {
            Value::Object(o) => {
                for (key, f) in ProfileField::MANAGER {
                    match o.iter().find(|(k, _)| k.to_ascii_lowercase() == key) {
                        Some((_, sub)) => out.push(Change::Profile(f, profile_string(profile_name(f), sub)?)),
                        None if mode == Mode::Resource => out.push(Change::Profile(f, None)),
                        None => {}
                    }
                }
            }
            Value::Null => out.extend(ProfileField::MANAGER.map(|(_, f)| Change::Profile(f, None))),
            other => out.push(Change::Profile(ProfileField::ManagerValue, profile_string("manager.value", other)?)),
        },
        Target::Enterprise => match v {
            Value::Object(o) => {
                for (key, sub) in o {
                    match enterprise_target(key, key)? {
                        Target::Ignored(_) => out.push(Change::Ignored(format!("{ENTERPRISE_SCHEMA}:{key}"))),
                        t => set(t, sub, mode, out)?,
                    }
                }
            }
            Value::Null => out.extend(ProfileField::enterprise_fields().map(|f| Change::Profile(f, None))),
            _ => return Err(invalid_value(format!("{ENTERPRISE_SCHEMA} must be an object"))),
        },
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
        Target::Profile(f) => out.push(Change::Profile(f, None)),
        Target::Manager => out.extend(ProfileField::MANAGER.map(|(_, f)| Change::Profile(f, None))),
        Target::Enterprise => out.extend(ProfileField::enterprise_fields().map(|f| Change::Profile(f, None))),
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
    let mut out = vec![Change::ClearProfile];
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

    fn driver(f: &str) -> Option<Clause> {
        most_selective(&parse_filter(f).unwrap_or_else(|e| panic!("{f}: {e:?}")))
    }

    #[test]
    fn filters_that_okta_and_entra_send_parse() {
        assert_eq!(
            driver(r#"userName eq "test.user@okta.local""#),
            Some(clause(FilterAttr::UserName, "test.user@okta.local"))
        );
        assert_eq!(
            driver(r#"USERNAME EQ "Ann""#),
            Some(clause(FilterAttr::UserName, "Ann")),
            "names and operators are case-insensitive"
        );
        assert_eq!(
            driver(r#"externalId eq "00ujl29u0le5T6Aj10h7""#),
            Some(clause(FilterAttr::ExternalId, "00ujl29u0le5T6Aj10h7"))
        );
        assert_eq!(
            driver(r#"emails[type eq "work"].value eq "a@b.example""#),
            Some(clause(FilterAttr::Email, "a@b.example"))
        );
        assert_eq!(
            driver(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#),
            Some(clause(FilterAttr::UserName, "x"))
        );
        assert_eq!(driver(r#"  id eq "m1"  "#), Some(clause(FilterAttr::Id, "m1")));
        assert_eq!(driver(r#"userName eq "a" or externalId eq "b""#), None, "an or is scanned");
        assert_eq!(driver(r#"displayName co "a""#), None);
    }

    #[test]
    fn unsupported_filters_are_invalid_filter() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"password eq "a""#,
            r#"name eq "a""#,
            r#"userName zz "a""#,
            r#"(userName eq "a""#,
            "userName eq unquoted",
            r#"userName eq "unterminated"#,
            r#"emails[type eq "work".value eq "a""#,
            r#"userName eq "a" and"#,
            r#"userName eq "a" junk"#,
            r#"urn:ietf:params:scim:schemas:extension:other:2.0:User:x eq "a""#,
        ] {
            let e = parse_filter(bad).expect_err(bad);
            assert_eq!(e.scim_type, ScimType::InvalidFilter, "{bad}");
        }
    }

    #[test]
    fn filters_match_case_as_the_schema_says() {
        let u = serde_json::json!({
            "id": "m1", "userName": "Ann.Lee@Acme.example", "externalId": "X1", "displayName": "Ann Lee",
            "emails": [{"value": "ann@acme.example", "type": "work", "primary": true}],
            ENTERPRISE_SCHEMA: {"department": "Legal"},
        });
        let m = |f: &str| parse_filter(f).unwrap().matches(&u, &USER_RESOURCE);
        assert!(m(r#"userName eq "ann.lee@acme.EXAMPLE""#));
        assert!(m(r#"emails.value eq "ANN@acme.example""#));
        assert!(m(r#"externalId eq "X1""#));
        assert!(!m(r#"externalId eq "x1""#), "externalId is case-exact");
        assert!(!m(r#"id eq "M1""#), "id is case-exact");
        assert!(!m(r#"userName eq "ann.lee@acme.example" and externalId eq "X2""#));
        assert!(m(
            r#"displayName sw "ann" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "legal""#
        ));
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
            profile: UserProfile::default(),
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
                profile: UserProfile::default(),
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
        assert!(ignored(&changes).is_empty(), "displayName and the enterprise extension are kept");
        let mut a = ann();
        a.apply(&changes);
        let profile = UserProfile {
            display_name: Some("Ann Ng".into()),
            employee_number: Some("42".into()),
            ..Default::default()
        };
        assert_eq!(
            a,
            UserAttrs { email: Some("ng@acme.example".into()), family_name: Some("Ng".into()), profile, ..ann() }
        );
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
            (json!({"Operations": [{"op": "remove", "path": "emails[type eq \"work\"]"}]}), ScimType::InvalidValue),
            (json!({"Operations": [{"op": "remove", "path": "emails[type eq \"home\"]"}]}), ScimType::NoTarget),
            (json!({"Operations": [{"op": "add", "path": "emails[type eq", "value": "a"}]}), ScimType::InvalidPath),
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
                profile: UserProfile {
                    display_name: Some("Test User".into()),
                    locale: Some("en-US".into()),
                    ..Default::default()
                },
            }
        );
        // A PUT echoes id and meta; a name without familyName clears it.
        let put = json!({"id": "m1", "meta": {"resourceType": "User"}, "UserName": "ann", "name": {"givenName": "A"}});
        let mut b = ann();
        b.apply(&parse_resource(&put).unwrap());
        assert_eq!(b, UserAttrs { given_name: Some("A".into()), family_name: None, ..ann() });
        assert_eq!(
            parse_resource(&json!({"userName": "a", "emails": []})).unwrap(),
            vec![Change::ClearProfile, Change::UserName("a".into())]
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
        let d = driver(r#"externalId eq "e1" and emails.value eq "a@b.example" and userName eq "ann""#);
        assert_eq!(d, Some(clause(FilterAttr::UserName, "ann")));
        assert_eq!(driver(r#"userName eq "ann" and id eq "m1""#), Some(clause(FilterAttr::Id, "m1")));
        let d = driver(r#"externalId eq "e1" and (emails.value eq "a@b.example" and active eq true)"#);
        assert_eq!(d, Some(clause(FilterAttr::Email, "a@b.example")));
    }

    #[test]
    fn the_enterprise_extension_is_kept_in_every_form() {
        let ent = |k: &str| format!("{ENTERPRISE_SCHEMA}:{k}");
        let body = json!({"Operations": [
            {"op": "add", "value": {ENTERPRISE_SCHEMA: {"department": "Legal", "manager": {"value": "m0", "displayName": "Bo"}}}},
            {"op": "replace", "path": ent("manager"), "value": "m9"},
            {"op": "replace", "path": ent("costCenter"), "value": "7"},
            {"op": "add", "path": "title", "value": "Counsel"},
        ]});
        let a = patched(&ann(), body);
        let want = UserProfile {
            department: Some("Legal".into()),
            manager_value: Some("m9".into()),
            manager_display_name: Some("Bo".into()),
            cost_center: Some("7".into()),
            title: Some("Counsel".into()),
            ..Default::default()
        };
        assert_eq!(a.profile, want);
        assert!(a.profile.has_enterprise());
        let r = patched(&a, json!({"Operations": [{"op": "remove", "path": ENTERPRISE_SCHEMA}]}));
        assert_eq!(r.profile, UserProfile { title: Some("Counsel".into()), ..Default::default() });
        assert!(!r.profile.has_enterprise());
        // Another extension is ignored, not refused.
        let other =
            parse_patch(&json!({"Operations": [{"op": "add", "path": "urn:x:ext:1.0:User:badge", "value": "1"}]}));
        assert_eq!(ignored(&other.unwrap()), vec!["urn:x:ext:1.0:User:badge"]);
    }

    #[test]
    fn profile_values_are_bounded_and_single_line() {
        let long = "é".repeat(MAX_PROFILE_CHARS + 1);
        for (path, value) in [("displayName", json!(long)), ("timezone", json!("a\u{7}b")), ("locale", json!(5))] {
            let e = parse_patch(&json!({"Operations": [{"op": "add", "path": path, "value": value}]})).unwrap_err();
            assert_eq!(e.scim_type, ScimType::InvalidValue, "{path}");
        }
        let ok = "é".repeat(MAX_PROFILE_CHARS);
        assert!(parse_patch(&json!({"Operations": [{"op": "add", "path": "displayName", "value": ok}]})).is_ok());
        // Ignored names reach the audit event bounded.
        let many: Map<String, Value> = (0..50).map(|i| (format!("x{i}{}", "y".repeat(500)), json!(1))).collect();
        let names = ignored(&parse_patch(&json!({"Operations": [{"op": "add", "value": many}]})).unwrap());
        assert_eq!(names.len(), 20);
        assert!(names.iter().all(|n| n.chars().count() <= 100));
    }

    #[test]
    fn a_put_replaces_the_profile() {
        let mut a = ann();
        a.profile.display_name = Some("Ann".into());
        a.apply(&parse_resource(&json!({"userName": "ann", "title": "T"})).unwrap());
        assert_eq!(a.profile, UserProfile { title: Some("T".into()), ..Default::default() });
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
