//! SCIM Users over the tenant's members: which members SCIM sees, how a
//! member reads as a SCIM User, and the changes SCIM makes, all under the
//! team rules (`service::team`). Also the fixed discovery documents.

use super::team::{self, TeamUserFields};
use super::Meta;
use crate::db::models::{to_utc, Member};
use crate::db::store::{self, MemberFilter};
use crate::db::DbConn;
use crate::domain::scim::{self as rules, Change, Filter, FilterAttr, UserAttrs, UserView};
use crate::domain::{member, MemberStatus};
use crate::error::{AppError, AppResult};
use serde::Serialize;

/// Where the SCIM resources live.
pub const BASE: &str = "/scim/v2";
/// Most members a filtered list looks at (filters select by near-unique attributes).
const CANDIDATE_CAP: i64 = 10_000;

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

/// A member as a filter sees it: a member without a userName of its own is served under its email.
fn filter_view(m: &Member) -> UserView<'_> {
    UserView {
        id: &m.id,
        user_name: m.user_name.as_deref().unwrap_or(&m.email),
        email: &m.email,
        external_id: m.external_id.as_deref(),
    }
}

/// The members a filter may match, found by its most selective clause, then matched in full.
fn filtered(c: &mut DbConn, tenant_id: &str, f: &Filter) -> AppResult<Vec<Member>> {
    let driver = f.most_selective().ok_or_else(AppError::internal)?;
    let mut query = |filter: MemberFilter| -> AppResult<Vec<Member>> {
        Ok(store::list_members(c, tenant_id, &filter, 0, CANDIDATE_CAP)?.0)
    };
    let base = visible();
    let mut found: Vec<Member> = match driver.attr {
        FilterAttr::Id => Vec::new(),
        FilterAttr::UserName => {
            let mut v = query(MemberFilter { user_name: Some(driver.value.clone()), ..base.clone() })?;
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
    found.retain(|m| f.matches(&filter_view(m)));
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
    Ok(user_page(&page, total, start, count))
}

fn list_members(
    c: &mut DbConn,
    tenant_id: &str,
    filter: Option<&Filter>,
    start: i64,
    count: i64,
) -> AppResult<(Vec<Member>, usize)> {
    match filter {
        None => {
            let (rows, total) = store::list_members(c, tenant_id, &visible(), start - 1, count)?;
            Ok((rows, usize::try_from(total).unwrap_or(0)))
        }
        Some(f) => {
            let all = filtered(c, tenant_id, f)?;
            let total = all.len();
            let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
            let take = usize::try_from(count).unwrap_or(0);
            Ok((all.into_iter().skip(skip).take(take).collect(), total))
        }
    }
}

// ------------------------------------------------------------------ changes

/// A member without a userName of its own is served under its email, so no
/// other member may take that as a userName.
fn check_served_user_name(c: &mut DbConn, tenant_id: &str, user_name: &Option<String>, except: &str) -> AppResult<()> {
    let Some(email) = user_name.as_deref().and_then(member::normalize_email) else {
        return Ok(());
    };
    match store::find_member_by_email(c, tenant_id, &email)? {
        Some(other) if other.user_name.is_none() && other.id != except && !is_removed(&other) => {
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
    }
}

/// A change's result as SCIM answers it.
fn as_user((m, md): (Member, Meta)) -> (UserResource, Meta) {
    (user_resource(&m), md)
}

/// Provisions a member from a POSTed User (see `rules::new_user`).
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

/// A member as a SCIM User (RFC 7643 §4.1). A member with no userName of its
/// own is served under its email.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserResource {
    pub schemas: [&'static str; 1],
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub user_name: String,
    pub name: UserName,
    pub emails: [UserEmail; 1],
    pub active: bool,
    pub meta: UserMeta,
}

/// Always present, possibly empty: its parts are left out when unknown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserName {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
}

/// A member keeps one address: its primary work address.
#[derive(Debug, Serialize)]
pub struct UserEmail {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub primary: bool,
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

pub fn user_resource(m: &Member) -> UserResource {
    let (given_name, family_name) = (m.first_name.clone(), m.last_name.clone());
    let parts: Vec<&str> = [given_name.as_deref(), family_name.as_deref()].into_iter().flatten().collect();
    let formatted = (!parts.is_empty()).then(|| parts.join(" "));
    UserResource {
        schemas: [rules::USER_SCHEMA],
        id: m.id.clone(),
        external_id: m.external_id.clone(),
        user_name: m.user_name.as_deref().unwrap_or(&m.email).to_string(),
        name: UserName { given_name, family_name, formatted },
        emails: [UserEmail { value: m.email.clone(), kind: "work", primary: true }],
        active: is_active(m),
        meta: UserMeta {
            resource_type: "User",
            created: time(m.created_at),
            last_modified: time(m.updated_at),
            location: location(&m.id),
            version: version(m),
        },
    }
}

/// A ListResponse (RFC 7644 §3.4.2). Without `Resources` when only the total was asked for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub schemas: [&'static str; 1],
    pub total_results: usize,
    pub start_index: i64,
    pub items_per_page: usize,
    #[serde(rename = "Resources", skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<T>>,
}

impl<T> ListResponse<T> {
    pub fn new(total_results: usize, start_index: i64, resources: Option<Vec<T>>) -> Self {
        ListResponse {
            schemas: [rules::LIST_RESPONSE_SCHEMA],
            total_results,
            start_index,
            items_per_page: resources.as_ref().map_or(0, Vec::len),
            resources,
        }
    }
}

/// A page of Users as `list_members` read it; count=0 asks for totalResults alone (RFC 7644 §3.4.2.4).
fn user_page(page: &[Member], total: usize, start: i64, count: i64) -> ListResponse<UserResource> {
    let items = (count > 0).then(|| page.iter().map(user_resource).collect());
    ListResponse::new(total, start, items)
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

/// A resource type keyward serves (RFC 7643 §6): Users and Groups.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceType {
    pub schemas: [&'static str; 1],
    pub id: &'static str,
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static str,
    pub schema_extensions: [&'static str; 0],
    pub meta: DocumentMeta,
}

pub fn resource_types() -> ListResponse<ResourceType> {
    let user = ResourceType {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        id: "User",
        name: "User",
        endpoint: "/Users",
        description: "A member of the tenant",
        schema: rules::USER_SCHEMA,
        schema_extensions: [],
        meta: DocumentMeta { resource_type: "ResourceType", location: format!("{BASE}/ResourceTypes/User") },
    };
    let group = ResourceType {
        id: "Group",
        name: "Group",
        endpoint: "/Groups",
        description: "A group of the tenant's members, which an owner may map to a console role",
        schema: crate::domain::groups::GROUP_SCHEMA,
        meta: DocumentMeta { resource_type: "ResourceType", location: format!("{BASE}/ResourceTypes/Group") },
        ..user
    };
    ListResponse::new(2, 1, Some(vec![user, group]))
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AttributeType {
    String,
    Boolean,
    Complex,
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
        sub_attributes: &[],
    }
}

/// The core User attributes keyward keeps.
static USER_ATTRIBUTES: [SchemaAttribute; 4] = {
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
    ]
};

/// A schema keyward serves (RFC 7643 §7): the core User schema.
#[derive(Debug, Serialize)]
pub struct Schema {
    pub schemas: [&'static str; 1],
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [SchemaAttribute],
    pub meta: DocumentMeta,
}

pub fn schemas() -> ListResponse<Schema> {
    let user = Schema {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        id: rules::USER_SCHEMA,
        name: "User",
        description: "A member of the tenant",
        attributes: &USER_ATTRIBUTES,
        meta: DocumentMeta { resource_type: "Schema", location: format!("{BASE}/Schemas/{}", rules::USER_SCHEMA) },
    };
    let group_schema = crate::domain::groups::GROUP_SCHEMA;
    let group = Schema {
        id: group_schema,
        name: "Group",
        description: "A group of the tenant's members",
        attributes: &super::groups::GROUP_ATTRIBUTES,
        meta: DocumentMeta { resource_type: "Schema", location: format!("{BASE}/Schemas/{group_schema}") },
        ..user
    };
    ListResponse::new(2, 1, Some(vec![user, group]))
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
                "name": {},
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
    fn a_count_of_zero_lists_the_total_alone() {
        let rows = [member(None, None, None)];
        let total_only = as_value(&user_page(&rows, 5, 2, 0));
        assert_eq!(
            total_only,
            json!({"schemas": [rules::LIST_RESPONSE_SCHEMA], "totalResults": 5, "startIndex": 2, "itemsPerPage": 0})
        );
        let page = as_value(&user_page(&rows, 5, 2, 1));
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
        assert_eq!(types["Resources"][0]["schemaExtensions"], json!([]));
        let schema = as_value(&schemas());
        let attrs = &schema["Resources"][0]["attributes"];
        assert_eq!(attrs[2]["name"], json!("emails"));
        assert_eq!(attrs[2]["multiValued"], json!(true));
        assert_eq!(attrs[2]["subAttributes"][0]["uniqueness"], json!("server"));
        assert!(attrs[0].get("subAttributes").is_none(), "simple attributes have none");
    }
}
