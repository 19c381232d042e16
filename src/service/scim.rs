//! SCIM Users over the tenant's members: which members SCIM sees, how a
//! member reads as a SCIM User, and the changes SCIM makes, all under the
//! team rules (`service::team`). Also the discovery documents.
//!
//! A removed member is invisible here and keeps its row untouched (e-Discovery,
//! legal holds); its email and userName are free again, so an identity
//! provider that deletes a person and provisions them again makes a new member.

use super::team::{self, TeamUserFields};
use super::Meta;
use crate::db::models::{to_utc, Member};
use crate::db::store::{self, MemberFilter};
use crate::db::DbConn;
use crate::domain::scim::{self as rules, Change, Clause, FilterAttr, UserAttrs, UserProfile, USER_RESOURCE};
use crate::domain::scim_filter::Filter;
use crate::domain::{member, MemberStatus};
use crate::error::{AppError, AppResult};
use serde::Serialize;
use serde_json::Value;

/// Where the SCIM resources live.
pub const BASE: &str = "/scim/v2";
/// Most members a filtered list looks at through an indexed `eq` (ids, userNames and emails are unique).
const CANDIDATE_CAP: i64 = 10_000;
/// Members read at a time when a filter has no indexed `eq` and the members are scanned.
const SCAN_PAGE: i64 = 500;

// ------------------------------------------------------------------ visibility

fn not_found() -> AppError {
    AppError::not_found("no User with this id")
}

fn is_removed(m: &Member) -> bool {
    m.status == MemberStatus::Removed
}

fn is_active(m: &Member) -> bool {
    m.status == MemberStatus::Active
}

/// A member SCIM may see: of the tenant, not removed.
fn load_user(c: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<Member> {
    match store::find_member(c, tenant_id, id)? {
        Some(m) if !is_removed(&m) => Ok(m),
        _ => Err(not_found()),
    }
}

/// Every member SCIM may see.
fn visible() -> MemberFilter {
    MemberFilter { hide_removed: true, ..MemberFilter::default() }
}

/// A member as a filter sees it: the User SCIM serves.
fn filter_view(m: &Member) -> Value {
    serde_json::to_value(user_resource(m)).unwrap_or_default()
}

/// The members an indexed `eq` may match (a superset, matched in full afterwards).
fn candidates(c: &mut DbConn, tenant_id: &str, driver: &Clause) -> AppResult<Vec<Member>> {
    let mut query = |filter: MemberFilter| -> AppResult<Vec<Member>> {
        Ok(store::list_members(c, tenant_id, &filter, 0, CANDIDATE_CAP)?.0)
    };
    let base = visible();
    let mut found: Vec<Member> = match driver.attr {
        FilterAttr::Id => Vec::new(),
        FilterAttr::UserName => {
            let mut v = query(MemberFilter { user_name: Some(driver.value.clone()), ..base.clone() })?;
            // A member without a userName of its own is served under its email.
            if let Some(email) = member::normalize_email(&driver.value) {
                v.extend(query(MemberFilter { email: Some(email), ..base.clone() })?);
            }
            v
        }
        FilterAttr::Email => match member::normalize_email(&driver.value) {
            Some(email) => query(MemberFilter { email: Some(email), ..base.clone() })?,
            None => Vec::new(),
        },
        FilterAttr::ExternalId => query(MemberFilter { external_id: Some(driver.value.clone()), ..base.clone() })?,
    };
    if driver.attr == FilterAttr::Id {
        found.extend(store::find_member(c, tenant_id, &driver.value)?.filter(|m| !is_removed(m)));
    }
    found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    found.dedup_by(|a, b| a.id == b.id);
    Ok(found)
}

/// A User SCIM may see.
pub fn get_user(c: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<UserResource> {
    Ok(user_resource(&load_user(c, tenant_id, id)?))
}

/// One page of the Users SCIM sees, matching `filter` if given, in creation
/// order from the 1-based `start`, with how many match in all.
pub fn list_users(
    c: &mut DbConn,
    tenant_id: &str,
    filter: Option<&Filter>,
    start: i64,
    count: i64,
) -> AppResult<ListResponse<UserResource>> {
    let (page, total) = list_members(c, tenant_id, filter, start, count)?;
    Ok(user_page(&page, total, start))
}

fn list_members(
    c: &mut DbConn,
    tenant_id: &str,
    filter: Option<&Filter>,
    start: i64,
    count: i64,
) -> AppResult<(Vec<Member>, usize)> {
    let Some(f) = filter else {
        let (rows, total) = store::list_members(c, tenant_id, &visible(), start - 1, count)?;
        return Ok((rows, usize::try_from(total).unwrap_or(0)));
    };
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(0);
    let matches = |m: &Member| f.matches(&filter_view(m), &USER_RESOURCE);
    if let Some(driver) = rules::most_selective(f) {
        let mut all = candidates(c, tenant_id, &driver)?;
        all.retain(matches);
        let total = all.len();
        return Ok((all.into_iter().skip(skip).take(take).collect(), total));
    }
    // No indexed clause: every member is read, a page at a time; only the asked page is kept.
    let (mut page, mut total, mut offset) = (Vec::new(), 0usize, 0i64);
    loop {
        let (rows, _) = store::list_members(c, tenant_id, &visible(), offset, SCAN_PAGE)?;
        let read = rows.len();
        for m in rows {
            if matches(&m) {
                if total >= skip && page.len() < take {
                    page.push(m);
                }
                total += 1;
            }
        }
        if read < usize::try_from(SCAN_PAGE).unwrap_or(0) {
            return Ok((page, total));
        }
        offset += SCAN_PAGE;
    }
}

// ------------------------------------------------------------------ changes

/// A member without a userName of its own is served under its email, so no
/// other live member may take that as a userName.
fn check_served_user_name(c: &mut DbConn, tenant_id: &str, user_name: &Option<String>, except: &str) -> AppResult<()> {
    let Some(email) = user_name.as_deref().and_then(member::normalize_email) else {
        return Ok(());
    };
    match store::find_live_member_by_email(c, tenant_id, &email)? {
        Some(other) if other.user_name.is_none() && other.id != except => {
            Err(AppError::already_exists("a User with this userName already exists"))
        }
        _ => Ok(()),
    }
}

fn attrs_of(m: &Member) -> UserAttrs {
    UserAttrs {
        user_name: m.user_name.clone(),
        email: Some(m.email.clone()),
        given_name: m.first_name.clone(),
        family_name: m.last_name.clone(),
        external_id: m.external_id.clone(),
        active: is_active(m),
        profile: m.profile.clone(),
    }
}

fn fields_of(a: UserAttrs, status: Option<MemberStatus>) -> TeamUserFields {
    TeamUserFields {
        email: a.email.unwrap_or_default(),
        role: None,
        first_name: a.given_name,
        last_name: a.family_name,
        user_name: a.user_name,
        external_id: a.external_id,
        status,
        profile: Some(a.profile),
    }
}

/// A change's result as SCIM answers it.
fn as_user((m, md): (Member, Meta)) -> (UserResource, Meta) {
    (user_resource(&m), md)
}

/// Provisions a member from a POSTed User (see `rules::new_user`). A removed
/// member with the same email, userName or externalId stays as it is: this
/// is a new member with a new id.
pub fn create_user(c: &mut DbConn, tenant_id: &str, attrs: UserAttrs) -> AppResult<(UserResource, Meta)> {
    check_served_user_name(c, tenant_id, &attrs.user_name, "")?;
    let status = rules::status_for(attrs.active);
    // New members are MEMBERs (the default role of add_member).
    team::add_member(c, tenant_id, fields_of(attrs, Some(status))).map(as_user)
}

/// Applies `changes` to a member (PUT, PATCH).
pub fn change_user(c: &mut DbConn, tenant_id: &str, id: &str, changes: &[Change]) -> AppResult<(UserResource, Meta)> {
    let before = load_user(c, tenant_id, id)?;
    let mut attrs = attrs_of(&before);
    attrs.apply(changes);
    // Status is asserted only when it changes, so the owner's other attributes stay editable.
    let status = (attrs.active != is_active(&before)).then(|| rules::status_for(attrs.active));
    check_served_user_name(c, tenant_id, &attrs.user_name, &before.id)?;
    team::replace_member(c, tenant_id, id, fields_of(attrs, status)).map(as_user)
}

/// Removes the member (irreversible; refused for the owner and for members under legal hold).
pub fn remove_user(c: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<((), Meta)> {
    load_user(c, tenant_id, id)?;
    let (_, md) = team::change_member(c, tenant_id, id, Some(MemberStatus::Removed), None)?;
    Ok(((), md))
}

// ------------------------------------------------------------------ views

fn time(t: chrono::NaiveDateTime) -> String {
    to_utc(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The URL path of a User.
pub fn location(id: &str) -> String {
    format!("{BASE}/Users/{id}")
}

/// A User's version: it changes with every change of the member.
fn version(m: &Member) -> String {
    format!("W/\"{:x}\"", to_utc(m.updated_at).timestamp_micros())
}

/// A member as a SCIM User (RFC 7643 §4.1, §4.3). A member with no userName
/// of its own is served under its email. Attributes the member lacks are left out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserResource {
    /// The core schema, and the enterprise extension's when the member has any of it.
    pub schemas: Vec<&'static str>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<UserName>,
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
    pub emails: [UserEmail; 1],
    pub active: bool,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise: Option<EnterpriseUser>,
    pub meta: UserMeta,
}

/// Left out when the member has neither part.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserName {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    pub formatted: String,
}

/// A member keeps one address: its primary work address.
#[derive(Debug, Serialize)]
pub struct UserEmail {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub primary: bool,
}

/// The enterprise User extension (RFC 7643 §4.3).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnterpriseUser {
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
    pub manager: Option<Manager>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manager {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "$ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMeta {
    pub resource_type: &'static str,
    pub created: String,
    pub last_modified: String,
    pub location: String,
    pub version: String,
}

fn enterprise_of(p: &UserProfile) -> Option<EnterpriseUser> {
    if !p.has_enterprise() {
        return None;
    }
    let has_manager = p.manager_value.is_some() || p.manager_ref.is_some() || p.manager_display_name.is_some();
    Some(EnterpriseUser {
        employee_number: p.employee_number.clone(),
        cost_center: p.cost_center.clone(),
        organization: p.organization.clone(),
        division: p.division.clone(),
        department: p.department.clone(),
        manager: has_manager.then(|| Manager {
            value: p.manager_value.clone(),
            reference: p.manager_ref.clone(),
            display_name: p.manager_display_name.clone(),
        }),
    })
}

pub fn user_resource(m: &Member) -> UserResource {
    let parts: Vec<&str> = [m.first_name.as_deref(), m.last_name.as_deref()].into_iter().flatten().collect();
    let name = (!parts.is_empty()).then(|| UserName {
        formatted: parts.join(" "),
        given_name: m.first_name.clone(),
        family_name: m.last_name.clone(),
    });
    let p = &m.profile;
    let enterprise = enterprise_of(p);
    let mut schemas = vec![rules::USER_SCHEMA];
    if enterprise.is_some() {
        schemas.push(rules::ENTERPRISE_SCHEMA);
    }
    UserResource {
        schemas,
        id: m.id.clone(),
        external_id: m.external_id.clone(),
        user_name: m.user_name.as_deref().unwrap_or(&m.email).to_string(),
        name,
        display_name: p.display_name.clone(),
        nick_name: p.nick_name.clone(),
        title: p.title.clone(),
        preferred_language: p.preferred_language.clone(),
        locale: p.locale.clone(),
        timezone: p.timezone.clone(),
        emails: [UserEmail { value: m.email.clone(), kind: "work", primary: true }],
        active: is_active(m),
        enterprise,
        meta: UserMeta {
            resource_type: "User",
            created: time(m.created_at),
            last_modified: time(m.updated_at),
            location: location(&m.id),
            version: version(m),
        },
    }
}

/// A ListResponse (RFC 7644 §3.4.2): `Resources` always present, empty when count=0 or nothing matches.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub schemas: [&'static str; 1],
    pub total_results: usize,
    pub start_index: i64,
    pub items_per_page: usize,
    #[serde(rename = "Resources")]
    pub resources: Vec<T>,
}

impl<T> ListResponse<T> {
    pub fn new(total_results: usize, start_index: i64, resources: Vec<T>) -> Self {
        ListResponse {
            schemas: [rules::LIST_RESPONSE_SCHEMA],
            total_results,
            start_index,
            items_per_page: resources.len(),
            resources,
        }
    }
}

/// A page of Users as `list_members` read it (empty when count=0: the total alone, RFC 7644 §3.4.2.4).
fn user_page(page: &[Member], total: usize, start: i64) -> ListResponse<UserResource> {
    ListResponse::new(total, start, page.iter().map(user_resource).collect())
}

// ------------------------------------------------------------------ discovery

/// Where a discovery document lives.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentMeta {
    pub resource_type: &'static str,
    pub location: String,
}

#[derive(Debug, Serialize)]
pub struct Supported {
    pub supported: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkSupport {
    pub supported: bool,
    pub max_operations: u32,
    pub max_payload_size: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterSupport {
    pub supported: bool,
    pub max_results: i64,
}

#[derive(Debug, Serialize)]
pub struct AuthenticationScheme {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// What keyward's SCIM service supports (RFC 7643 §5).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProviderConfig {
    pub schemas: [&'static str; 1],
    pub patch: Supported,
    pub bulk: BulkSupport,
    pub filter: FilterSupport,
    pub change_password: Supported,
    pub sort: Supported,
    pub etag: Supported,
    pub authentication_schemes: [AuthenticationScheme; 2],
    pub meta: DocumentMeta,
}

pub fn service_provider_config() -> ServiceProviderConfig {
    ServiceProviderConfig {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        patch: Supported { supported: true },
        bulk: BulkSupport { supported: false, max_operations: 0, max_payload_size: 0 },
        filter: FilterSupport { supported: true, max_results: rules::MAX_COUNT },
        change_password: Supported { supported: false },
        sort: Supported { supported: false },
        etag: Supported { supported: false },
        authentication_schemes: [
            AuthenticationScheme {
                kind: "oauthbearertoken",
                name: "Bearer key",
                description: "A keyward Team User Management key (kw_usermgmt_…) sent as Authorization: Bearer <key>",
                primary: Some(true),
            },
            AuthenticationScheme {
                kind: "apikey",
                name: "X-API-Key",
                description: "The same key in the X-API-Key header (also Api-Key, or Authorization: Api-Key <key>)",
                primary: None,
            },
        ],
        meta: DocumentMeta {
            resource_type: "ServiceProviderConfig",
            location: format!("{BASE}/ServiceProviderConfig"),
        },
    }
}

/// An extension schema a resource type takes.
#[derive(Debug, Serialize)]
pub struct SchemaExtension {
    pub schema: &'static str,
    pub required: bool,
}

/// A resource type keyward serves (RFC 7643 §6).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceType {
    pub schemas: [&'static str; 1],
    pub id: &'static str,
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static str,
    pub schema_extensions: Vec<SchemaExtension>,
    pub meta: DocumentMeta,
}

pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// The User resource type; another resource type is one more entry of [`resource_type_documents`].
fn user_resource_type() -> ResourceType {
    ResourceType {
        schemas: [RESOURCE_TYPE_SCHEMA],
        id: "User",
        name: "User",
        endpoint: "/Users",
        description: "A member of the tenant",
        schema: rules::USER_SCHEMA,
        schema_extensions: vec![SchemaExtension { schema: rules::ENTERPRISE_SCHEMA, required: false }],
        meta: DocumentMeta { resource_type: "ResourceType", location: format!("{BASE}/ResourceTypes/User") },
    }
}

fn group_resource_type() -> ResourceType {
    ResourceType {
        schemas: [RESOURCE_TYPE_SCHEMA],
        id: "Group",
        name: "Group",
        endpoint: "/Groups",
        description: "A group of the tenant's members, which an owner may map to a console role",
        schema: crate::domain::groups::GROUP_SCHEMA,
        schema_extensions: vec![],
        meta: DocumentMeta { resource_type: "ResourceType", location: format!("{BASE}/ResourceTypes/Group") },
    }
}

/// Every resource type served.
pub fn resource_type_documents() -> Vec<ResourceType> {
    vec![user_resource_type(), group_resource_type()]
}

pub fn resource_types() -> ListResponse<ResourceType> {
    let all = resource_type_documents();
    ListResponse::new(all.len(), 1, all)
}

/// A resource type by its id (`/ResourceTypes/{id}`).
pub fn resource_type(id: &str) -> AppResult<ResourceType> {
    resource_type_documents()
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| AppError::not_found("no ResourceType with this id"))
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AttributeType {
    String,
    Boolean,
    Complex,
    Reference,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Default,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    None,
    Server,
}

/// An attribute of a schema (RFC 7643 §7).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaAttribute {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: AttributeType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub reference_types: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub sub_attributes: &'static [SchemaAttribute],
}

/// A single-valued, case-insensitive attribute returned by default, with no sub-attributes.
pub(super) const fn attribute(
    name: &'static str,
    kind: AttributeType,
    required: bool,
    mutability: Mutability,
    uniqueness: Uniqueness,
    description: &'static str,
) -> SchemaAttribute {
    SchemaAttribute {
        name,
        kind,
        multi_valued: false,
        description,
        required,
        case_exact: false,
        mutability,
        returned: Returned::Default,
        uniqueness,
        reference_types: &[],
        sub_attributes: &[],
    }
}

/// A profile attribute: a string keyward keeps and shows back but does not act on.
const fn kept(name: &'static str, description: &'static str) -> SchemaAttribute {
    attribute(name, AttributeType::String, false, Mutability::ReadWrite, Uniqueness::None, description)
}

/// The core User attributes keyward keeps.
static USER_ATTRIBUTES: [SchemaAttribute; 10] = {
    use AttributeType as T;
    use Mutability as M;
    use Uniqueness as U;
    [
        attribute(
            "userName",
            T::String,
            true,
            M::ReadWrite,
            U::Server,
            "Unique in the tenant, case-insensitively; a member without one is served under its email",
        ),
        SchemaAttribute {
            sub_attributes: &[
                attribute("givenName", T::String, false, M::ReadWrite, U::None, "First name"),
                attribute("familyName", T::String, false, M::ReadWrite, U::None, "Last name"),
                attribute("formatted", T::String, false, M::ReadOnly, U::None, "givenName familyName"),
            ],
            ..attribute(
                "name",
                T::Complex,
                false,
                M::ReadWrite,
                U::None,
                "The member's name: givenName and familyName are stored; formatted is derived",
            )
        },
        SchemaAttribute {
            multi_valued: true,
            sub_attributes: &[
                attribute("value", T::String, true, M::ReadWrite, U::Server, "The address"),
                attribute("type", T::String, false, M::ReadOnly, U::None, "Always work"),
                attribute("primary", T::Boolean, false, M::ReadOnly, U::None, "Always true"),
            ],
            ..attribute(
                "emails",
                T::Complex,
                true,
                M::ReadWrite,
                U::None,
                "A member keeps one address: the primary one sent, else the first; it is unique in the tenant",
            )
        },
        attribute(
            "active",
            T::Boolean,
            false,
            M::ReadWrite,
            U::None,
            "false deactivates the member (USER_STATUS_INACTIVE); it stays listed",
        ),
        kept("displayName", "Kept and shown back (at most 256 characters)"),
        kept("nickName", "Kept and shown back (at most 256 characters)"),
        kept("title", "Kept and shown back (at most 256 characters)"),
        kept("preferredLanguage", "Kept and shown back (at most 256 characters)"),
        kept("locale", "Kept and shown back (at most 256 characters)"),
        kept("timezone", "Kept and shown back (at most 256 characters)"),
    ]
};

/// The enterprise User extension's attributes (RFC 7643 §4.3), all kept.
static ENTERPRISE_ATTRIBUTES: [SchemaAttribute; 6] = [
    kept("employeeNumber", "Kept and shown back (at most 256 characters)"),
    kept("costCenter", "Kept and shown back (at most 256 characters)"),
    kept("organization", "Kept and shown back (at most 256 characters)"),
    kept("division", "Kept and shown back (at most 256 characters)"),
    kept("department", "Kept and shown back (at most 256 characters)"),
    SchemaAttribute {
        sub_attributes: &[
            kept("value", "The manager's id at the identity provider"),
            SchemaAttribute {
                reference_types: &["User"],
                ..attribute(
                    "$ref",
                    AttributeType::Reference,
                    false,
                    Mutability::ReadWrite,
                    Uniqueness::None,
                    "The manager's URI",
                )
            },
            kept("displayName", "The manager's name"),
        ],
        ..attribute(
            "manager",
            AttributeType::Complex,
            false,
            Mutability::ReadWrite,
            Uniqueness::None,
            "Kept and shown back",
        )
    },
];

/// A schema keyward serves (RFC 7643 §7).
#[derive(Debug, Serialize)]
pub struct Schema {
    pub schemas: [&'static str; 1],
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [SchemaAttribute],
    pub meta: DocumentMeta,
}

pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

fn schema_document(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    attributes: &'static [SchemaAttribute],
) -> Schema {
    Schema {
        schemas: [SCHEMA_SCHEMA],
        id,
        name,
        description,
        attributes,
        meta: DocumentMeta { resource_type: "Schema", location: format!("{BASE}/Schemas/{id}") },
    }
}

/// Every resource schema served; another resource type adds its own here.
pub fn schema_documents() -> Vec<Schema> {
    vec![
        schema_document(rules::USER_SCHEMA, "User", "A member of the tenant", &USER_ATTRIBUTES),
        schema_document(rules::ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise User", &ENTERPRISE_ATTRIBUTES),
        schema_document(
            crate::domain::groups::GROUP_SCHEMA,
            "Group",
            "A group of the tenant's members",
            &super::groups::GROUP_ATTRIBUTES,
        ),
    ]
}

pub fn schemas() -> ListResponse<Schema> {
    let all = schema_documents();
    ListResponse::new(all.len(), 1, all)
}

/// A schema by its URN (`/Schemas/{id}`); URNs compare case-insensitively.
pub fn schema(id: &str) -> AppResult<Schema> {
    schema_documents()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| AppError::not_found("no Schema with this id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn member(first: Option<&str>, last: Option<&str>, external_id: Option<&str>) -> Member {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).and_then(|d| d.and_hms_micro_opt(3, 4, 5, 123_456));
        let at = at.unwrap_or_default();
        Member {
            id: "m1".into(),
            tenant_id: "t1".into(),
            email: "ann@acme.example".into(),
            role: crate::domain::Role::Member,
            status: MemberStatus::Inactive,
            first_name: first.map(Into::into),
            last_name: last.map(Into::into),
            user_name: None,
            external_id: external_id.map(Into::into),
            created_at: at,
            updated_at: at,
            profile: UserProfile::default(),
        }
    }

    fn as_value<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap_or_default()
    }

    #[test]
    fn a_user_leaves_out_what_the_member_lacks() {
        let bare = as_value(&user_resource(&member(None, None, None)));
        assert_eq!(
            bare,
            json!({
                "schemas": [rules::USER_SCHEMA],
                "id": "m1",
                "userName": "ann@acme.example",
                "emails": [{"value": "ann@acme.example", "type": "work", "primary": true}],
                "active": false,
                "meta": {
                    "resourceType": "User",
                    "created": "2026-01-02T03:04:05.123Z",
                    "lastModified": "2026-01-02T03:04:05.123Z",
                    "location": "/scim/v2/Users/m1",
                    "version": "W/\"6475ef64ed580\"",
                },
            })
        );
        let named = as_value(&user_resource(&member(None, Some("Lee"), Some("X1"))));
        assert_eq!(named["name"], json!({"familyName": "Lee", "formatted": "Lee"}));
        assert_eq!(named["externalId"], json!("X1"));
    }

    #[test]
    fn the_profile_and_the_enterprise_extension_are_served() {
        let mut m = member(Some("Ann"), None, None);
        m.profile = UserProfile {
            display_name: Some("Ann L".into()),
            department: Some("Legal".into()),
            manager_value: Some("m0".into()),
            ..UserProfile::default()
        };
        let v = as_value(&user_resource(&m));
        assert_eq!(v["schemas"], json!([rules::USER_SCHEMA, rules::ENTERPRISE_SCHEMA]));
        assert_eq!(v["displayName"], json!("Ann L"));
        assert_eq!(v[rules::ENTERPRISE_SCHEMA], json!({"department": "Legal", "manager": {"value": "m0"}}));
        assert_eq!(v["name"], json!({"givenName": "Ann", "formatted": "Ann"}));
    }

    #[test]
    fn a_count_of_zero_lists_the_total_alone() {
        let total_only = as_value(&user_page(&[], 5, 2));
        assert_eq!(
            total_only,
            json!({"schemas": [rules::LIST_RESPONSE_SCHEMA], "totalResults": 5, "startIndex": 2, "itemsPerPage": 0, "Resources": []})
        );
        let rows = [member(None, None, None)];
        let page = as_value(&user_page(&rows, 5, 2));
        assert_eq!(page["itemsPerPage"], json!(1));
        assert_eq!(page["Resources"][0]["id"], json!("m1"));
    }

    #[test]
    fn discovery_documents_describe_what_is_served() {
        let config = as_value(&service_provider_config());
        assert_eq!(config["filter"], json!({"supported": true, "maxResults": rules::MAX_COUNT}));
        assert_eq!(config["authenticationSchemes"][0]["primary"], json!(true));
        assert!(config["authenticationSchemes"][1].get("primary").is_none());
        let types = as_value(&resource_types());
        assert_eq!(
            types["Resources"][0]["schemaExtensions"],
            json!([{"schema": rules::ENTERPRISE_SCHEMA, "required": false}])
        );
        // User, its enterprise extension, Group.
        assert_eq!(as_value(&schemas())["totalResults"], json!(3));
        assert_eq!(types["totalResults"], json!(2));
        assert!(resource_type("Group").is_ok());
        assert!(schema(crate::domain::groups::GROUP_SCHEMA).is_ok());
        assert!(schema("URN:ietf:params:scim:schemas:core:2.0:user").is_ok());
        assert!(schema("urn:nope").is_err() && resource_type("Nope").is_err());
        let schema = as_value(&schemas());
        let attrs = &schema["Resources"][0]["attributes"];
        assert_eq!(attrs[2]["name"], json!("emails"));
        assert_eq!(attrs[2]["multiValued"], json!(true));
        assert_eq!(attrs[2]["subAttributes"][0]["uniqueness"], json!("server"));
        assert!(attrs[0].get("subAttributes").is_none(), "simple attributes have none");
    }
}
