//! SCIM Groups over the tenant's members, and the console roles an owner maps
//! groups to. A member's effective role is kept on the member row (what the
//! console reads on every request), recomputed in the same transaction as
//! every change of a group's members or name, of a mapping, or of a member's
//! removal; the role the member was assigned directly is kept aside while a
//! mapping decides theirs, and comes back when none does.

use super::scim::{AttributeType, ListResponse, Mutability, SchemaAttribute, Uniqueness, BASE};
use super::{meta, Meta};
use crate::db::models::{api_time, now, to_naive, to_utc, Member};
use crate::db::store::{self, GroupQuery, GroupRow, RoleMappingRow, TARGET_DISPLAY_NAME, TARGET_GROUP_ID};
use crate::db::DbConn;
use crate::domain::groups::{self as rules, GroupChange, GroupDoc, GroupState, MappedRole, GROUP_RESOURCE};
use crate::domain::scim_filter::Filter;
use crate::domain::{MemberStatus, Role};
use crate::error::{AppError, AppResult};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};

fn not_found() -> AppError {
    AppError::not_found("no Group with this id")
}

fn load_group(c: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<GroupRow> {
    store::find_group(c, tenant_id, id)?.ok_or_else(not_found)
}

// ------------------------------------------------------------------ resources

/// A member of a Group as SCIM serves it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupMember {
    pub value: String,
    pub display: String,
    #[serde(rename = "$ref")]
    pub reference: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMeta {
    pub resource_type: &'static str,
    pub created: String,
    pub last_modified: String,
    pub location: String,
    pub version: String,
}

/// A Group (RFC 7643 §4.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResource {
    pub schemas: [&'static str; 1],
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub display_name: String,
    pub members: Vec<GroupMember>,
    pub meta: GroupMeta,
}

fn time(t: chrono::NaiveDateTime) -> String {
    to_utc(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn location(id: &str) -> String {
    format!("{BASE}/Groups/{id}")
}

fn group_member(m: &Member) -> GroupMember {
    GroupMember {
        value: m.id.clone(),
        display: m.user_name.clone().unwrap_or_else(|| m.email.clone()),
        reference: super::scim::location(&m.id),
        kind: "User",
    }
}

fn resource(g: &GroupRow, members: Vec<GroupMember>) -> GroupResource {
    GroupResource {
        schemas: [rules::GROUP_SCHEMA],
        id: g.id.clone(),
        external_id: g.external_id.clone(),
        display_name: g.display_name.clone(),
        members,
        meta: GroupMeta {
            resource_type: "Group",
            created: time(g.created_at),
            last_modified: time(g.updated_at),
            location: location(&g.id),
            version: format!("W/\"{:x}\"", to_utc(g.updated_at).timestamp_micros()),
        },
    }
}

/// The groups as resources, with their members when `with_members`.
fn resources(
    c: &mut DbConn,
    tenant_id: &str,
    groups: &[GroupRow],
    with_members: bool,
) -> AppResult<Vec<GroupResource>> {
    let mut by_group: HashMap<String, Vec<GroupMember>> = HashMap::new();
    if with_members {
        let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
        let pairs = store::members_of_groups(c, tenant_id, &ids)?;
        let mut member_ids: Vec<String> = pairs.iter().map(|(_, m)| m.clone()).collect();
        member_ids.sort();
        member_ids.dedup();
        let members: HashMap<String, Member> =
            store::members_by_ids(c, tenant_id, &member_ids)?.into_iter().map(|m| (m.id.clone(), m)).collect();
        for (g, m) in pairs {
            if let Some(m) = members.get(&m) {
                by_group.entry(g).or_default().push(group_member(m));
            }
        }
    }
    Ok(groups.iter().map(|g| resource(g, by_group.remove(&g.id).unwrap_or_default())).collect())
}

fn one_resource(c: &mut DbConn, g: &GroupRow) -> AppResult<GroupResource> {
    let mut v = resources(c, &g.tenant_id, std::slice::from_ref(g), true)?;
    v.pop().ok_or_else(AppError::internal)
}

pub fn get_group(c: &mut DbConn, tenant_id: &str, id: &str, with_members: bool) -> AppResult<GroupResource> {
    let g = load_group(c, tenant_id, id)?;
    let mut v = resources(c, tenant_id, std::slice::from_ref(&g), with_members)?;
    v.pop().ok_or_else(AppError::internal)
}

/// Groups read at a time when a filter is matched outside the store.
const SCAN_PAGE: i64 = 500;

/// One page of the tenant's Groups matching `filter`, in creation order from the 1-based `start`.
/// The store answers the indexed `eq` clauses; any other clause is matched on
/// the Groups as served, read `SCAN_PAGE` at a time.
pub fn list_groups(
    c: &mut DbConn,
    tenant_id: &str,
    filter: Option<&Filter>,
    start: i64,
    count: i64,
    with_members: bool,
) -> AppResult<ListResponse<GroupResource>> {
    let lookup = filter.map(rules::lookup).unwrap_or_else(|| rules::GroupLookup { exact: true, ..Default::default() });
    if lookup.contradictory {
        return Ok(ListResponse::new(0, start, Vec::new()));
    }
    let q = GroupQuery { id: lookup.id, display_key: lookup.display_key, external_id: lookup.external_id };
    let (Some(f), false) = (filter, lookup.exact) else {
        let (rows, total) = store::list_groups(c, tenant_id, &q, start - 1, count.max(0))?;
        let items = if count > 0 { resources(c, tenant_id, &rows, with_members)? } else { Vec::new() };
        return Ok(ListResponse::new(usize::try_from(total).unwrap_or(0), start, items));
    };
    let read_members = with_members || rules::names_members(f);
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(0);
    let (mut page, mut total, mut offset) = (Vec::new(), 0usize, 0i64);
    loop {
        let (rows, _) = store::list_groups(c, tenant_id, &q, offset, SCAN_PAGE)?;
        for g in resources(c, tenant_id, &rows, read_members)? {
            let served = serde_json::to_value(&g).map_err(|e| AppError::internal().caused_by(e))?;
            if f.matches(&served, &GROUP_RESOURCE) {
                if total >= skip && page.len() < take {
                    page.push(g);
                }
                total += 1;
            }
        }
        if rows.len() < usize::try_from(SCAN_PAGE).unwrap_or(0) {
            return Ok(ListResponse::new(total, start, page));
        }
        offset += SCAN_PAGE;
    }
}

// ------------------------------------------------------------------ changes

/// A role change a request caused, for the audit event.
#[derive(Debug, Clone, Serialize)]
pub struct RoleChange {
    pub member_id: String,
    pub group_id: String,
    pub group: String,
    pub old_role: Role,
    pub new_role: Role,
}

/// Refuses member ids that are not users SCIM sees in this tenant.
fn check_members(c: &mut DbConn, tenant_id: &str, ids: &[String]) -> AppResult<()> {
    let found: HashSet<String> = store::members_by_ids(c, tenant_id, ids)?
        .into_iter()
        .filter(|m| m.status != MemberStatus::Removed)
        .map(|m| m.id)
        .collect();
    match ids.iter().find(|id| !found.contains(*id)) {
        Some(id) => Err(AppError::invalid(format!("members: {id} is not a User of this tenant"))),
        None => Ok(()),
    }
}

pub fn create_group(c: &mut DbConn, tenant_id: &str, doc: GroupDoc) -> AppResult<(GroupResource, Meta)> {
    check_members(c, tenant_id, &doc.members)?;
    let at = to_naive(now());
    let g = GroupRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_string(),
        display_key: rules::display_key(&doc.display_name),
        display_name: doc.display_name,
        external_id: doc.external_id,
        created_at: at,
        updated_at: at,
    };
    store::insert_group(c, &g)?;
    for m in &doc.members {
        store::add_group_member(c, tenant_id, &g.id, m)?;
    }
    let changes = recompute(c, tenant_id, &doc.members, &g)?;
    let md = meta(json!({
        "group_id": g.id, "display_name": g.display_name, "members_added": doc.members, "role_changes": changes,
    }));
    Ok((one_resource(c, &g)?, md))
}

/// PUT: the group becomes the document.
pub fn replace_group(c: &mut DbConn, tenant_id: &str, id: &str, doc: GroupDoc) -> AppResult<(GroupResource, Meta)> {
    let changes = vec![
        GroupChange::DisplayName(doc.display_name),
        GroupChange::ExternalId(doc.external_id),
        GroupChange::ReplaceMembers(doc.members),
    ];
    change_group(c, tenant_id, id, &changes)
}

/// PATCH (and PUT): applies the changes, then recomputes the roles of every member they concern.
pub fn change_group(
    c: &mut DbConn,
    tenant_id: &str,
    id: &str,
    changes: &[GroupChange],
) -> AppResult<(GroupResource, Meta)> {
    let before = load_group(c, tenant_id, id)?;
    let current: Vec<String> =
        store::members_of_groups(c, tenant_id, std::slice::from_ref(&before.id))?.into_iter().map(|(_, m)| m).collect();
    let mut state = GroupState {
        display_name: before.display_name.clone(),
        external_id: before.external_id.clone(),
        members: current,
    };
    let old_members: HashSet<String> = state.members.iter().cloned().collect();
    state.apply(changes);
    let new_members: HashSet<String> = state.members.iter().cloned().collect();
    let added: Vec<String> = state.members.iter().filter(|m| !old_members.contains(*m)).cloned().collect();
    let mut removed: Vec<String> = old_members.difference(&new_members).cloned().collect();
    removed.sort();
    check_members(c, tenant_id, &added)?;
    let mut after = before.clone();
    after.display_name = state.display_name;
    after.display_key = rules::display_key(&after.display_name);
    after.external_id = state.external_id;
    after.updated_at = to_naive(now());
    store::update_group(c, &after)?;
    for m in &added {
        store::add_group_member(c, tenant_id, &after.id, m)?;
    }
    for m in &removed {
        store::remove_group_member(c, tenant_id, &after.id, m)?;
    }
    // A new name may match a display-name mapping: every member's role may change.
    let mut affected: Vec<String> =
        if after.display_key != before.display_key { new_members.iter().cloned().collect() } else { added.clone() };
    affected.extend(removed.iter().cloned());
    affected.sort();
    affected.dedup();
    let role_changes = recompute(c, tenant_id, &affected, &after)?;
    let md = meta(json!({
        "group_id": after.id,
        "display_name": {"old": before.display_name, "new": after.display_name},
        "members_added": added,
        "members_removed": removed,
        "role_changes": role_changes,
    }));
    Ok((one_resource(c, &after)?, md))
}

/// Deletes a group (and a mapping of its id, which can never name another group).
pub fn delete_group(c: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<((), Meta)> {
    let g = load_group(c, tenant_id, id)?;
    let members: Vec<String> =
        store::members_of_groups(c, tenant_id, std::slice::from_ref(&g.id))?.into_iter().map(|(_, m)| m).collect();
    store::delete_group(c, tenant_id, &g.id)?;
    store::delete_role_mapping(c, tenant_id, TARGET_GROUP_ID, &g.id)?;
    let role_changes = recompute(c, tenant_id, &members, &g)?;
    let md = meta(json!({
        "group_id": g.id, "display_name": g.display_name, "members_removed": members, "role_changes": role_changes,
    }));
    Ok(((), md))
}

/// Recomputes the effective role of `member_ids` after a change concerning group `cause`.
fn recompute(c: &mut DbConn, tenant_id: &str, member_ids: &[String], cause: &GroupRow) -> AppResult<Vec<RoleChange>> {
    if member_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_group: HashMap<String, Role> = HashMap::new();
    let mut by_name: HashMap<String, Role> = HashMap::new();
    for m in store::list_role_mappings(c, tenant_id)? {
        match m.target_kind.as_str() {
            TARGET_GROUP_ID => by_group.insert(m.target, m.role),
            _ => by_name.insert(m.target, m.role),
        };
    }
    let mut groups_of: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (member, group, key) in store::groups_of_members(c, tenant_id, member_ids)? {
        groups_of.entry(member).or_default().push((group, key));
    }
    let at = to_naive(now());
    let mut changes = Vec::new();
    for m in store::members_by_ids(c, tenant_id, member_ids)? {
        if m.status == MemberStatus::Removed {
            continue;
        }
        let kept = store::find_assigned_role(c, tenant_id, &m.id)?;
        let assigned = kept.unwrap_or(m.role);
        // A mapping of the group's id is more specific than one of its name.
        let mapped: Vec<MappedRole> = groups_of
            .get(&m.id)
            .into_iter()
            .flatten()
            .filter_map(|(g, key)| by_group.get(g).or_else(|| by_name.get(key)))
            .filter_map(|r| MappedRole::new(*r).ok())
            .collect();
        let effective = rules::effective_role(assigned, &mapped);
        let decided_by_groups = !mapped.is_empty() && assigned != Role::Owner;
        match (decided_by_groups, kept) {
            (true, k) if k != Some(assigned) => store::set_assigned_role(c, tenant_id, &m.id, assigned)?,
            (false, Some(_)) => store::clear_assigned_role(c, tenant_id, &m.id)?,
            _ => {}
        }
        if effective != m.role {
            store::set_member_role(c, tenant_id, &m.id, effective, at)?;
            changes.push(RoleChange {
                member_id: m.id.clone(),
                group_id: cause.id.clone(),
                group: cause.display_name.clone(),
                old_role: m.role,
                new_role: effective,
            });
        }
    }
    changes.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(changes)
}

// ------------------------------------------------------------------ members' other changes

/// A role set directly (team.user.update, SCIM) on a member whose role a group mapping decides is refused:
/// the IdP is the source of truth there.
pub fn check_direct_role(c: &mut DbConn, current: &Member, role: Option<Role>) -> AppResult<()> {
    if role.is_some_and(|r| r != current.role)
        && store::find_assigned_role(c, &current.tenant_id, &current.id)?.is_some()
    {
        return Err(AppError::precondition(
            "the member's role comes from their identity provider groups (team.role_mapping); change the mapping or the member's groups",
        ));
    }
    Ok(())
}

/// A removed member leaves every group; returns the groups they were in.
pub fn forget_member(c: &mut DbConn, tenant_id: &str, member_id: &str) -> AppResult<Vec<String>> {
    store::clear_assigned_role(c, tenant_id, member_id)?;
    store::remove_member_from_groups(c, tenant_id, member_id)
}

// ------------------------------------------------------------------ role mappings

/// What a mapping names.
#[derive(Debug, Clone)]
pub enum MappingTarget {
    Group(String),
    /// Any group of this name, whether it exists yet or not.
    DisplayName(String),
}

/// A mapping as `team.role_mapping.*` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoleMappingView {
    /// The mapped group (id mappings), or the group that has the name now (name mappings).
    pub group_id: Option<String>,
    pub display_name: Option<String>,
    /// `group_id` or `display_name`: what the mapping names.
    pub mapped_by: &'static str,
    pub role: Option<Role>,
    pub updated_at: Option<String>,
}

fn view(c: &mut DbConn, tenant_id: &str, m: &RoleMappingRow) -> AppResult<RoleMappingView> {
    let (group_id, display_name, mapped_by) = if m.target_kind == TARGET_GROUP_ID {
        let name = store::find_group(c, tenant_id, &m.target)?.map(|g| g.display_name);
        (Some(m.target.clone()), name, TARGET_GROUP_ID)
    } else {
        let group = store::find_group_by_display_key(c, tenant_id, &m.target)?.map(|g| g.id);
        (group, m.display_name.clone(), TARGET_DISPLAY_NAME)
    };
    Ok(RoleMappingView {
        group_id,
        display_name,
        mapped_by,
        role: Some(m.role),
        updated_at: Some(api_time(m.updated_at)),
    })
}

pub fn list_role_mappings(c: &mut DbConn, tenant_id: &str) -> AppResult<Vec<RoleMappingView>> {
    let rows = store::list_role_mappings(c, tenant_id)?;
    rows.iter().map(|m| view(c, tenant_id, m)).collect()
}

/// The result of `team.role_mapping.update`.
#[derive(Debug, Serialize)]
pub struct MappingUpdate {
    pub role_mapping: RoleMappingView,
    pub role_changes: Vec<RoleChange>,
}

/// Sets (role Some) or removes (None) a mapping, then recomputes the roles of the groups it names.
pub fn update_role_mapping(
    c: &mut DbConn,
    tenant_id: &str,
    target: MappingTarget,
    role: Option<MappedRole>,
) -> AppResult<(MappingUpdate, Meta)> {
    let (kind, key, display_name, group) = match target {
        MappingTarget::Group(id) => {
            let g = store::find_group(c, tenant_id, &id)?.ok_or_else(not_found)?;
            (TARGET_GROUP_ID, g.id.clone(), None, Some(g))
        }
        MappingTarget::DisplayName(name) => {
            let name = rules::display_name(&serde_json::Value::String(name))
                .map_err(|e| AppError::invalid(format!("display_name: {}", e.detail)))?;
            let key = rules::display_key(&name);
            let g = store::find_group_by_display_key(c, tenant_id, &key)?;
            (TARGET_DISPLAY_NAME, key, Some(name), g)
        }
    };
    let before = store::find_role_mapping(c, tenant_id, kind, &key)?.map(|m| m.role);
    let at = to_naive(now());
    let row = RoleMappingRow {
        tenant_id: tenant_id.to_string(),
        target_kind: kind.to_string(),
        target: key.clone(),
        display_name,
        // Written only when a role is given; a removal shows no role (below).
        role: role.map_or(Role::Member, MappedRole::role),
        updated_at: at,
    };
    match role {
        Some(_) => store::put_role_mapping(c, &row)?,
        None => store::delete_role_mapping(c, tenant_id, kind, &key)?,
    }
    let role_changes = match &group {
        Some(g) => {
            let members: Vec<String> = store::members_of_groups(c, tenant_id, std::slice::from_ref(&g.id))?
                .into_iter()
                .map(|(_, m)| m)
                .collect();
            recompute(c, tenant_id, &members, g)?
        }
        None => Vec::new(),
    };
    let mut shown = view(c, tenant_id, &row)?;
    if role.is_none() {
        shown.role = None;
        shown.updated_at = None;
    }
    let md = meta(json!({
        "mapped_by": kind,
        "group_id": shown.group_id,
        "display_name": shown.display_name,
        "role": {"old": before, "new": shown.role},
        "role_changes": role_changes,
    }));
    Ok((MappingUpdate { role_mapping: shown, role_changes }, md))
}

// ------------------------------------------------------------------ discovery

/// The core Group attributes keyward keeps (RFC 7643 §4.2).
pub static GROUP_ATTRIBUTES: [SchemaAttribute; 3] = {
    use super::scim::attribute;
    use AttributeType as T;
    use Mutability as M;
    use Uniqueness as U;
    [
        attribute("displayName", T::String, true, M::ReadWrite, U::Server, "Unique in the tenant, case-insensitively"),
        attribute("externalId", T::String, false, M::ReadWrite, U::None, "The identity provider's id for the group"),
        SchemaAttribute {
            multi_valued: true,
            sub_attributes: &[
                attribute("value", T::String, true, M::ReadWrite, U::None, "The id of a User of the tenant"),
                attribute("display", T::String, false, M::ReadOnly, U::None, "The User's userName"),
                attribute("$ref", T::String, false, M::ReadOnly, U::None, "The User's location"),
                attribute("type", T::String, false, M::ReadOnly, U::None, "Always User"),
            ],
            ..attribute(
                "members",
                T::Complex,
                false,
                M::ReadWrite,
                U::None,
                "Users of the tenant; a group's members take the console role an owner mapped the group to",
            )
        },
    ]
};
