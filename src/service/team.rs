//! Tenants and their members: bootstrap, and the team users surface.

use super::{meta, Meta};
use crate::db::models::{api_time, now, to_naive, Member, Tenant};
use crate::db::{store, DbConn};
use crate::domain::lifetime::LifetimePolicy;
use crate::domain::scim::UserProfile;
use crate::domain::{member, MemberStatus, Role, TenantStatus};
use crate::error::{AppError, AppResult};
use serde::Serialize;
use serde_json::json;
use std::borrow::Cow;

pub fn create_tenant_with_id(
    conn: &mut DbConn,
    tenant_id: &str,
    name: &str,
    owner_email: &str,
) -> AppResult<((String, String), Meta)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid("tenant name must be 1 to 200 characters"));
    }
    let email =
        member::normalize_email(owner_email).ok_or_else(|| AppError::invalid("owner email is not a valid address"))?;
    let at = to_naive(now());
    let tenant = Tenant {
        id: tenant_id.to_string(),
        name: name.to_string(),
        status: TenantStatus::Active,
        max_lifetime_days: LifetimePolicy::new(),
        siem_tier2_enabled: false,
        policy_updated_at: None,
        created_at: at,
        audit_retention_days: None,
        leaked_key_action: Default::default(),
        key_expiry_notice_days: Default::default(),
    };
    store::insert_tenant(conn, &tenant)?;
    let owner = new_member(&tenant.id, email, Role::Owner, at);
    store::insert_member(conn, &owner)?;
    let m = meta(json!({"tenant_id": tenant.id, "name": tenant.name, "owner_member_id": owner.id}));
    Ok(((tenant.id, owner.id), m))
}

fn new_member(tenant_id: &str, email: String, role: Role, at: chrono::NaiveDateTime) -> Member {
    Member {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_string(),
        email,
        role,
        status: MemberStatus::Active,
        first_name: None,
        last_name: None,
        user_name: None,
        external_id: None,
        created_at: at,
        updated_at: at,
        profile: UserProfile::default(),
    }
}

pub fn create_member(conn: &mut DbConn, tenant_id: &str, email: &str, role: Role) -> AppResult<(String, Meta)> {
    let email = member::normalize_email(email).ok_or_else(|| AppError::invalid("email is not a valid address"))?;
    store::find_tenant(conn, tenant_id)?.ok_or_else(|| AppError::not_found("no such tenant"))?;
    let m = new_member(tenant_id, email, role, to_naive(now()));
    store::insert_member(conn, &m)?;
    Ok((m.id.clone(), meta(json!({"member_id": m.id, "role": role.as_str()}))))
}

// ---------------------------------------------------------------- team users

/// A member as the team users surface (and the e-Discovery archive) shows it
/// (`team_user_id` is the member id). Borrowed from the row while an archive
/// is written, owned ([`into_owned`](Self::into_owned)) once it leaves the service.
#[derive(Debug, Serialize)]
pub struct TeamUserView<'a> {
    pub team_user_id: Cow<'a, str>,
    pub email: Cow<'a, str>,
    pub role: Role,
    pub status: MemberStatus,
    pub first_name: Option<Cow<'a, str>>,
    pub last_name: Option<Cow<'a, str>>,
    pub user_name: Option<Cow<'a, str>>,
    pub external_id: Option<Cow<'a, str>>,
    pub created_at: String,
    pub updated_at: String,
}

pub fn team_user_view(m: &Member) -> TeamUserView<'_> {
    TeamUserView {
        team_user_id: Cow::Borrowed(&m.id),
        email: Cow::Borrowed(&m.email),
        role: m.role,
        status: m.status,
        first_name: m.first_name.as_deref().map(Cow::Borrowed),
        last_name: m.last_name.as_deref().map(Cow::Borrowed),
        user_name: m.user_name.as_deref().map(Cow::Borrowed),
        external_id: m.external_id.as_deref().map(Cow::Borrowed),
        created_at: api_time(m.created_at),
        updated_at: api_time(m.updated_at),
    }
}

impl TeamUserView<'_> {
    /// The same view, no longer tied to the row it was read from.
    pub fn into_owned(self) -> TeamUserView<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        TeamUserView {
            team_user_id: own(self.team_user_id),
            email: own(self.email),
            role: self.role,
            status: self.status,
            first_name: self.first_name.map(own),
            last_name: self.last_name.map(own),
            user_name: self.user_name.map(own),
            external_id: self.external_id.map(own),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn owned_view(m: &Member) -> TeamUserView<'static> {
    team_user_view(m).into_owned()
}

/// A change's result as the team users surface answers it.
fn viewed((m, md): (Member, Meta)) -> (TeamUserView<'static>, Meta) {
    (owned_view(&m), md)
}

/// One page of the tenant's members, filtered, and how many match in all.
/// Members are stored under their normalized email, so an email that does
/// not normalize matches none.
pub fn list_team_users(
    conn: &mut DbConn,
    tenant_id: &str,
    status: Option<MemberStatus>,
    role: Option<Role>,
    email: Option<&str>,
    offset: i64,
    limit: i64,
) -> AppResult<(Vec<TeamUserView<'static>>, i64)> {
    let email = match email.map(member::normalize_email) {
        Some(None) => return Ok((Vec::new(), 0)),
        Some(Some(e)) => Some(e),
        None => None,
    };
    let filter = store::MemberFilter { status, role, email, ..store::MemberFilter::default() };
    let (rows, total) = store::list_members(conn, tenant_id, &filter, offset, limit)?;
    Ok((rows.iter().map(owned_view).collect(), total))
}

/// What a provisioning client may set on a member.
#[derive(Debug, Clone, Default)]
pub struct TeamUserFields {
    pub email: String,
    pub role: Option<Role>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    pub status: Option<MemberStatus>,
    /// SCIM only: None leaves the profile as it is.
    pub profile: Option<UserProfile>,
}

fn check_name(field: &str, v: &Option<String>) -> AppResult<()> {
    match v {
        Some(s) if s.chars().count() > 200 || s.chars().any(char::is_control) => {
            Err(AppError::invalid(format!("{field} must be at most 200 characters with no control characters")))
        }
        _ => Ok(()),
    }
}

fn check_fields(f: &TeamUserFields) -> AppResult<String> {
    let email = member::normalize_email(&f.email).ok_or_else(|| AppError::invalid("email is not a valid address"))?;
    check_name("first_name", &f.first_name)?;
    check_name("last_name", &f.last_name)?;
    check_name("user_name", &f.user_name)?;
    check_name("external_id", &f.external_id)?;
    Ok(email)
}

/// The OWNER role is never granted through the API (the owner keeps theirs).
fn check_grant(role: Option<Role>, holder_is_owner: bool) -> AppResult<()> {
    if role == Some(Role::Owner) && !holder_is_owner {
        return Err(AppError::invalid("the OWNER role cannot be granted through the API"));
    }
    Ok(())
}

/// userName is unique per tenant, case-insensitively (SCIM clients match on it).
fn check_user_name_free(
    conn: &mut DbConn,
    tenant_id: &str,
    user_name: &Option<String>,
    except: Option<&str>,
) -> AppResult<()> {
    if let Some(u) = user_name {
        if let Some(other) = store::find_live_member_by_user_name(conn, tenant_id, u)? {
            if Some(other.id.as_str()) != except {
                return Err(AppError::already_exists("a member with this user_name already exists in the tenant"));
            }
        }
    }
    Ok(())
}

/// Provisions a member (team.user.create). Never an OWNER.
pub fn add_team_user(
    conn: &mut DbConn,
    tenant_id: &str,
    f: TeamUserFields,
) -> AppResult<(TeamUserView<'static>, Meta)> {
    add_member(conn, tenant_id, f).map(viewed)
}

/// Provisions a member (team.user.create, SCIM POST). Never an OWNER.
pub(super) fn add_member(conn: &mut DbConn, tenant_id: &str, f: TeamUserFields) -> AppResult<(Member, Meta)> {
    let email = check_fields(&f)?;
    check_grant(f.role, false)?;
    // Removed members keep their row (e-Discovery, legal holds): the same
    // person provisioned again is a new member with a new id.
    if store::find_live_member_by_email(conn, tenant_id, &email)?.is_some() {
        return Err(AppError::already_exists("a member with this email already exists in the tenant"));
    }
    check_user_name_free(conn, tenant_id, &f.user_name, None)?;
    let status = f.status.unwrap_or(MemberStatus::Active);
    if status == MemberStatus::Removed {
        return Err(AppError::invalid("a new member cannot be created removed"));
    }
    let at = to_naive(now());
    let mut m = new_member(tenant_id, email, f.role.unwrap_or(Role::Member), at);
    m.status = status;
    m.first_name = f.first_name;
    m.last_name = f.last_name;
    m.user_name = f.user_name;
    m.external_id = f.external_id;
    m.profile = f.profile.unwrap_or_default();
    store::insert_member(conn, &m)?;
    let md = meta(json!({"team_user_id": m.id, "email": m.email, "role": m.role, "status": m.status}));
    Ok((m, md))
}

/// One member of the tenant, as the team users surface shows it.
pub fn team_user(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<TeamUserView<'static>> {
    Ok(owned_view(&load_team_user(conn, tenant_id, member_id)?))
}

fn load_team_user(conn: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<Member> {
    store::find_member(conn, tenant_id, member_id)?.ok_or_else(|| AppError::not_found("no team user with this id"))
}

/// The rules every change of a member obeys, whatever the path (team.user.*, SCIM):
/// removal is irreversible; the owner is never demoted, deactivated or removed
/// this way; a member under legal hold can be deactivated but not removed.
pub fn check_transition(
    conn: &mut DbConn,
    current: &Member,
    status: Option<MemberStatus>,
    role: Option<Role>,
) -> AppResult<()> {
    let is_owner = current.role == Role::Owner;
    if current.status == MemberStatus::Removed {
        return Err(AppError::precondition("the member was removed; removal is irreversible"));
    }
    check_grant(role, is_owner)?;
    if is_owner && (role.is_some_and(|r| r != Role::Owner) || status.is_some_and(|s| s != MemberStatus::Active)) {
        return Err(AppError::precondition(
            "the tenant owner cannot be demoted, deactivated or removed through the API",
        ));
    }
    if status == Some(MemberStatus::Removed) && store::member_is_held(conn, &current.tenant_id, &current.id)? {
        return Err(AppError::precondition("the member is under legal hold: they can be made inactive, not removed"));
    }
    Ok(())
}

/// Changes status, role or both (team.user.update, team.user.remove).
pub fn change_team_user(
    conn: &mut DbConn,
    tenant_id: &str,
    member_id: &str,
    status: Option<MemberStatus>,
    role: Option<Role>,
) -> AppResult<(TeamUserView<'static>, Meta)> {
    if status.is_none() && role.is_none() {
        return Err(AppError::invalid("give status, role or both"));
    }
    change_member(conn, tenant_id, member_id, status, role).map(viewed)
}

/// Changes status and/or role (team.user.update, team.user.remove, SCIM PATCH/DELETE).
pub(super) fn change_member(
    conn: &mut DbConn,
    tenant_id: &str,
    member_id: &str,
    status: Option<MemberStatus>,
    role: Option<Role>,
) -> AppResult<(Member, Meta)> {
    let before = load_team_user(conn, tenant_id, member_id)?;
    check_transition(conn, &before, status, role)?;
    super::groups::check_direct_role(conn, &before, role)?;
    let mut after = before.clone();
    if let Some(s) = status {
        after.status = s;
    }
    if let Some(r) = role {
        after.role = r;
    }
    after.updated_at = to_naive(now());
    store::update_member(conn, &after)?;
    let mut md = meta(json!({
        "team_user_id": after.id,
        "status": {"old": before.status, "new": after.status},
        "role": {"old": before.role, "new": after.role},
    }));
    if after.status == MemberStatus::Removed {
        let groups = super::groups::forget_member(conn, tenant_id, &after.id)?;
        if !groups.is_empty() {
            md.insert("groups_left".into(), json!(groups));
        }
    }
    Ok((after, md))
}

/// Replaces a member's provisioned attributes (SCIM PUT and attribute PATCH).
pub(super) fn replace_member(
    conn: &mut DbConn,
    tenant_id: &str,
    member_id: &str,
    f: TeamUserFields,
) -> AppResult<(Member, Meta)> {
    let before = load_team_user(conn, tenant_id, member_id)?;
    let email = check_fields(&f)?;
    check_transition(conn, &before, f.status, f.role)?;
    super::groups::check_direct_role(conn, &before, f.role)?;
    if email != before.email && store::find_live_member_by_email(conn, tenant_id, &email)?.is_some() {
        return Err(AppError::already_exists("a member with this email already exists in the tenant"));
    }
    check_user_name_free(conn, tenant_id, &f.user_name, Some(&before.id))?;
    let mut after = before.clone();
    after.email = email;
    after.first_name = f.first_name;
    after.last_name = f.last_name;
    after.user_name = f.user_name;
    after.external_id = f.external_id;
    if let Some(p) = f.profile {
        after.profile = p;
    }
    if let Some(s) = f.status {
        after.status = s;
    }
    if let Some(r) = f.role {
        after.role = r;
    }
    after.updated_at = to_naive(now());
    store::update_member(conn, &after)?;
    let md = meta(json!({
        "team_user_id": after.id,
        "email": {"old": before.email, "new": after.email},
        "status": {"old": before.status, "new": after.status},
    }));
    Ok((after, md))
}
