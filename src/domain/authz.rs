//! The authorizer: one declarative table of every API operation, and the rule
//! that decides whether a caller may call it.
//!
//! A key type grants `(surface, level)`; a key may call an operation iff the
//! surfaces are equal and the granted level is at least the required one
//! (WRITE implies READ). Console operations are out of every key's reach.

use super::key_type::KeyType;
use super::member::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    Ediscovery,
    Siem,
    TeamUsers,
    TeamAssets,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Ediscovery => "ediscovery",
            Surface::Siem => "siem",
            Surface::TeamUsers => "team_users",
            Surface::TeamAssets => "team_assets",
        }
    }
}

/// Ordered so that `Write >= Read`: write implies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "READ",
            Access::Write => "WRITE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const ALL: [Method; 5] = [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// Who may reach an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The admin console acting for a member with one of these roles. No key reaches these.
    Console(&'static [Role]),
    /// An enterprise key whose grant covers `(surface, access)`.
    Key(Surface, Access),
    /// A console member with one of these roles, or an enterprise key whose
    /// grant covers `(surface, access)`: the audit log's proofs, which
    /// auditors and the tenant's SIEM check alike.
    ConsoleOrKey(&'static [Role], Surface, Access),
    /// Any valid key or console caller (identity, "test connection").
    AnyCaller,
    /// Any valid key; the decision is made for the operation the gateway maps to.
    Gateway,
    /// The platform, with the ingest token.
    Ingest,
    /// Anyone holding a signed, expiring link that keyward issued (export downloads).
    SignedLink,
    /// A secret-scanning partner, by its signature over the report (ECDSA, configured keys).
    ScanningPartner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub id: Op,
    pub name: &'static str,
    pub method: Method,
    /// Path template; `{name}` matches one path segment.
    pub path: &'static str,
    pub reach: Reach,
}

const OWNER: &[Role] = &[Role::Owner];
const OWNER_AUDITOR: &[Role] = &[Role::Owner, Role::Auditor];
const OWNER_ADMIN_AUDITOR: &[Role] = &[Role::Owner, Role::Admin, Role::Auditor];

const fn op(id: Op, name: &'static str, method: Method, path: &'static str, reach: Reach) -> Operation {
    Operation { id, name, method, path, reach }
}

impl Op {
    /// The operation's row of the table.
    pub fn spec(self) -> &'static Operation {
        &OPERATIONS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

use Access::{Read, Write};
use Method::{Delete, Get, Patch, Post, Put};
use Surface::{Ediscovery, Siem, TeamAssets, TeamUsers};

/// Every operation of the API, as a variant of [`Op`] and a row of
/// [`OPERATIONS`], from one list: routing (an exhaustive `match` on `Op`, so
/// a row without a handler does not compile), the gateway, whoami, the README
/// matrix and the exhaustive tests all read it.
macro_rules! operations {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $method:ident, $path:literal, $reach:expr;)*) => {
        /// An operation of the API (its name, method, path and reach: [`Op::spec`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Op {
            $($(#[$doc])* $variant,)*
        }

        impl Op {
            pub const ALL: &'static [Op] = &[$(Op::$variant),*];
        }

        pub static OPERATIONS: &[Operation] = &[$(op(Op::$variant, $name, $method, $path, $reach)),*];
    };
}

operations! {
    // Console: key lifecycle, policy, audit.
    EnterpriseKeyCreate = "enterprise.key.create", Post, "/v2/enterprise.key.create", Reach::Console(OWNER);
    EnterpriseKeyList = "enterprise.key.list", Get, "/v2/enterprise.key.list", Reach::Console(OWNER_AUDITOR);
    EnterpriseKeyDetail = "enterprise.key.detail", Get, "/v2/enterprise.key.detail", Reach::Console(OWNER_AUDITOR);
    EnterpriseKeyUpdate = "enterprise.key.update", Post, "/v2/enterprise.key.update", Reach::Console(OWNER);
    EnterpriseKeyRotate = "enterprise.key.rotate", Post, "/v2/enterprise.key.rotate", Reach::Console(OWNER);
    EnterpriseKeyRevoke = "enterprise.key.revoke", Post, "/v2/enterprise.key.revoke", Reach::Console(OWNER);
    EnterpriseKeyPolicyDetail = "enterprise.key_policy.detail", Get, "/v2/enterprise.key_policy.detail", Reach::Console(OWNER_AUDITOR);
    EnterpriseKeyPolicyUpdate = "enterprise.key_policy.update", Post, "/v2/enterprise.key_policy.update", Reach::Console(OWNER);
    EnterpriseAuditList = "enterprise.audit.list", Get, "/v2/enterprise.audit.list", Reach::Console(OWNER_AUDITOR);
    EnterpriseAuditVerify = "enterprise.audit.verify", Get, "/v2/enterprise.audit.verify", Reach::Console(OWNER_AUDITOR);
    // Audit proofs: signed checkpoints, inclusion and consistency proofs.
    EnterpriseAuditCheckpoint = "enterprise.audit.checkpoint", Get, "/v2/enterprise.audit.checkpoint", Reach::ConsoleOrKey(OWNER_AUDITOR, Siem, Read);
    EnterpriseAuditProof = "enterprise.audit.proof", Get, "/v2/enterprise.audit.proof", Reach::ConsoleOrKey(OWNER_AUDITOR, Siem, Read);
    EnterpriseAuditConsistency = "enterprise.audit.consistency", Get, "/v2/enterprise.audit.consistency", Reach::ConsoleOrKey(OWNER_AUDITOR, Siem, Read);
    // Identity and gateway.
    AuthWhoami = "auth.whoami", Get, "/v2/auth.whoami", Reach::AnyCaller;
    AuthzCheck = "authz.check", Get, "/v2/authz.check", Reach::Gateway;
    // team_users: the User Management key.
    TeamUserList = "team.user.list", Get, "/v2/team.user.list", Reach::Key(TeamUsers, Read);
    TeamUserDetail = "team.user.detail", Get, "/v2/team.user.detail", Reach::Key(TeamUsers, Read);
    TeamUserCreate = "team.user.create", Post, "/v2/team.user.create", Reach::Key(TeamUsers, Write);
    TeamUserUpdate = "team.user.update", Post, "/v2/team.user.update", Reach::Key(TeamUsers, Write);
    TeamUserRemove = "team.user.remove", Post, "/v2/team.user.remove", Reach::Key(TeamUsers, Write);
    ScimServiceProviderConfig = "scim.service_provider_config", Get, "/scim/v2/ServiceProviderConfig", Reach::Key(TeamUsers, Read);
    ScimResourceTypes = "scim.resource_types", Get, "/scim/v2/ResourceTypes", Reach::Key(TeamUsers, Read);
    ScimSchemas = "scim.schemas", Get, "/scim/v2/Schemas", Reach::Key(TeamUsers, Read);
    ScimResourceTypeGet = "scim.resource_types.get", Get, "/scim/v2/ResourceTypes/{id}", Reach::Key(TeamUsers, Read);
    ScimSchemaGet = "scim.schemas.get", Get, "/scim/v2/Schemas/{id}", Reach::Key(TeamUsers, Read);
    ScimUsersList = "scim.users.list", Get, "/scim/v2/Users", Reach::Key(TeamUsers, Read);
    ScimUsersGet = "scim.users.get", Get, "/scim/v2/Users/{id}", Reach::Key(TeamUsers, Read);
    ScimUsersCreate = "scim.users.create", Post, "/scim/v2/Users", Reach::Key(TeamUsers, Write);
    ScimUsersReplace = "scim.users.replace", Put, "/scim/v2/Users/{id}", Reach::Key(TeamUsers, Write);
    ScimUsersPatch = "scim.users.patch", Patch, "/scim/v2/Users/{id}", Reach::Key(TeamUsers, Write);
    ScimUsersDelete = "scim.users.delete", Delete, "/scim/v2/Users/{id}", Reach::Key(TeamUsers, Write);
    ScimGroupsList = "scim.groups.list", Get, "/scim/v2/Groups", Reach::Key(TeamUsers, Read);
    ScimGroupsGet = "scim.groups.get", Get, "/scim/v2/Groups/{id}", Reach::Key(TeamUsers, Read);
    ScimGroupsCreate = "scim.groups.create", Post, "/scim/v2/Groups", Reach::Key(TeamUsers, Write);
    ScimGroupsReplace = "scim.groups.replace", Put, "/scim/v2/Groups/{id}", Reach::Key(TeamUsers, Write);
    ScimGroupsPatch = "scim.groups.patch", Patch, "/scim/v2/Groups/{id}", Reach::Key(TeamUsers, Write);
    ScimGroupsDelete = "scim.groups.delete", Delete, "/scim/v2/Groups/{id}", Reach::Key(TeamUsers, Write);
    // Console: which console role the members of an IdP group get.
    TeamRoleMappingList = "team.role_mapping.list", Get, "/v2/team.role_mapping.list", Reach::Console(OWNER_ADMIN_AUDITOR);
    TeamRoleMappingUpdate = "team.role_mapping.update", Post, "/v2/team.role_mapping.update", Reach::Console(OWNER);
    // Console: SIEM sinks that keyward pushes the tenant's audit events to.
    EnterpriseSiemSinkCreate = "enterprise.siem_sink.create", Post, "/v2/enterprise.siem_sink.create", Reach::Console(OWNER);
    EnterpriseSiemSinkList = "enterprise.siem_sink.list", Get, "/v2/enterprise.siem_sink.list", Reach::Console(OWNER_AUDITOR);
    EnterpriseSiemSinkUpdate = "enterprise.siem_sink.update", Post, "/v2/enterprise.siem_sink.update", Reach::Console(OWNER);
    EnterpriseSiemSinkDelete = "enterprise.siem_sink.delete", Post, "/v2/enterprise.siem_sink.delete", Reach::Console(OWNER);
    EnterpriseSiemSinkReplay = "enterprise.siem_sink.replay", Post, "/v2/enterprise.siem_sink.replay", Reach::Console(OWNER);
    // team_assets: Asset Audit (read) and Asset Management (write) keys.
    TeamAssetList = "team.asset.list", Get, "/v2/team.asset.list", Reach::Key(TeamAssets, Read);
    TeamAssetUpdateScope = "team.asset.update_scope", Post, "/v2/team.asset.update_scope", Reach::Key(TeamAssets, Write);
    // ediscovery: exports and legal holds.
    EnterpriseExportCreate = "enterprise.export.create", Post, "/v2/enterprise.export.create", Reach::Key(Ediscovery, Write);
    EnterpriseExportDetail = "enterprise.export.detail", Get, "/v2/enterprise.export.detail", Reach::Key(Ediscovery, Read);
    EnterpriseExportList = "enterprise.export.list", Get, "/v2/enterprise.export.list", Reach::Key(Ediscovery, Read);
    EnterpriseExportDownloadUrl = "enterprise.export.downloadUrl", Get, "/v2/enterprise.export.downloadUrl", Reach::Key(Ediscovery, Read);
    EnterpriseHoldCreate = "enterprise.hold.create", Post, "/v2/enterprise.hold.create", Reach::Key(Ediscovery, Write);
    EnterpriseHoldList = "enterprise.hold.list", Get, "/v2/enterprise.hold.list", Reach::Key(Ediscovery, Read);
    EnterpriseHoldRelease = "enterprise.hold.release", Post, "/v2/enterprise.hold.release", Reach::Key(Ediscovery, Write);
    // siem: the event feed and bulk exports.
    EnterpriseComplianceEventList = "enterprise.compliance.event.list", Get, "/v2/enterprise.compliance.event.list", Reach::Key(Siem, Read);
    EnterpriseComplianceExportCreate = "enterprise.compliance.export.create", Post, "/v2/enterprise.compliance.export.create", Reach::Key(Siem, Write);
    EnterpriseComplianceExportDetail = "enterprise.compliance.export.detail", Get, "/v2/enterprise.compliance.export.detail", Reach::Key(Siem, Read);
    EnterpriseComplianceExportDownloadUrl = "enterprise.compliance.export.downloadUrl", Get, "/v2/enterprise.compliance.export.downloadUrl", Reach::Key(Siem, Read);
    // Signed download links, issued by the downloadUrl operations above.
    EnterpriseExportDownload = "enterprise.export.download", Get, "/v2/enterprise.export.download", Reach::SignedLink;
    EnterpriseComplianceExportDownload = "enterprise.compliance.export.download", Get, "/v2/enterprise.compliance.export.download", Reach::SignedLink;
    // Secret-scanning partners (GitHub) reporting keys found in public.
    SecretScanningReport = "secret_scanning.report", Post, "/v2/secret_scanning.report", Reach::ScanningPartner;
    // Platform ingestion.
    TeamAssetUpsert = "team.asset.upsert", Post, "/internal/v2/team.asset.upsert", Reach::Ingest;
    TeamAssetDelete = "team.asset.delete", Post, "/internal/v2/team.asset.delete", Reach::Ingest;
}

/// What keyward records under a name of its own: events that no operation of
/// the table names (its own work, and requests that name no operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unrouted {
    /// A request that names no operation of the table, or has no canonical path.
    UnknownRoute,
    /// `/healthz`, `/readyz`, `/metrics`: counted in the metrics, never audited.
    Probe,
    /// Refusals over their client address's budget: one summary per address and window.
    RefusalsSummarized,
    /// CLI: a tenant and its first owner; a console member; a console token minted.
    TenantCreate,
    MemberCreate,
    ConsoleTokenIssue,
    /// The background runner moving an export job along.
    ExportProcess,
    ComplianceExportProcess,
    /// A key reported leaked: revoked or marked, in its tenant's chain.
    KeyLeaked,
    /// Lifecycle notices of the notice job, in the key's tenant's chain: a key
    /// expires within one of the tenant's thresholds, or has expired.
    KeyExpiring,
    KeyExpired,
    /// A SIEM sink that failed for longer than allowed and is no longer tried.
    SiemSinkDead,
}

impl Unrouted {
    pub const ALL: [Unrouted; 12] = [
        Unrouted::UnknownRoute,
        Unrouted::Probe,
        Unrouted::RefusalsSummarized,
        Unrouted::TenantCreate,
        Unrouted::MemberCreate,
        Unrouted::ConsoleTokenIssue,
        Unrouted::ExportProcess,
        Unrouted::ComplianceExportProcess,
        Unrouted::KeyLeaked,
        Unrouted::KeyExpiring,
        Unrouted::KeyExpired,
        Unrouted::SiemSinkDead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Unrouted::UnknownRoute => "unknown_route",
            Unrouted::Probe => "probe",
            Unrouted::RefusalsSummarized => "audit.refusals_summarized",
            Unrouted::TenantCreate => "tenant.create",
            Unrouted::MemberCreate => "member.create",
            Unrouted::ConsoleTokenIssue => "console_token.issue",
            Unrouted::ExportProcess => "enterprise.export.process",
            Unrouted::ComplianceExportProcess => "enterprise.compliance.export.process",
            Unrouted::KeyLeaked => "enterprise.key.leaked",
            Unrouted::KeyExpiring => "enterprise.key.expiring",
            Unrouted::KeyExpired => "enterprise.key.expired",
            Unrouted::SiemSinkDead => "enterprise.siem_sink.dead",
        }
    }
}

pub fn find(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// Whether a key of `key_type` may call `op`. Pure: the heart of the authorizer.
pub fn key_may_call(key_type: KeyType, op: &Operation) -> bool {
    match op.reach {
        Reach::Key(surface, required) | Reach::ConsoleOrKey(_, surface, required) => {
            let (granted_surface, granted) = key_type.grant();
            granted_surface == surface && granted >= required
        }
        Reach::AnyCaller | Reach::Gateway => true,
        Reach::Console(_) | Reach::Ingest | Reach::SignedLink | Reach::ScanningPartner => false,
    }
}

/// The console roles that may call `op` (none: no console member may).
pub fn roles_for(op: &Operation) -> &'static [Role] {
    match op.reach {
        Reach::Console(roles) | Reach::ConsoleOrKey(roles, ..) => roles,
        Reach::AnyCaller => &Role::ALL,
        Reach::Key(..) | Reach::Gateway | Reach::Ingest | Reach::SignedLink | Reach::ScanningPartner => &[],
    }
}

/// Whether a console member with `role` may call `op`.
pub fn member_may_call(role: Role, op: &Operation) -> bool {
    roles_for(op).contains(&role)
}

/// The operations a key type may call, in table order (for whoami).
pub fn operations_for_key(key_type: KeyType) -> Vec<&'static str> {
    OPERATIONS.iter().filter(|o| key_may_call(key_type, o)).map(|o| o.name).collect()
}

pub fn operations_for_member(role: Role) -> Vec<&'static str> {
    OPERATIONS.iter().filter(|o| member_may_call(role, o)).map(|o| o.name).collect()
}

/// Maps an original request (as a gateway forwards it) to an operation of the
/// table. The query string is ignored; a trailing slash is not.
pub fn resolve(method: Method, path: &str) -> Option<&'static Operation> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    OPERATIONS
        .iter()
        .filter(|o| o.reach != Reach::Gateway)
        .find(|o| o.method == method && template_matches(o.path, path))
}

fn template_matches(template: &str, path: &str) -> bool {
    // Most templates have no parameter: one comparison instead of two splits.
    if !template.contains('{') {
        return template == path;
    }
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) => {
                let is_param = ts.starts_with('{') && ts.ends_with('}');
                if is_param {
                    if ps.is_empty() {
                        return false;
                    }
                } else if ts != ps {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The key-type × operation matrix as a Markdown table (the README embeds it; a test keeps it current).
pub fn matrix_markdown() -> String {
    let mut out = String::from("| operation | method | reach |");
    for t in KeyType::ALL {
        out.push_str(&format!(" {} |", t.wire_name().trim_start_matches("KEY_TYPE_")));
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(KeyType::ALL.len()));
    out.push('\n');
    for o in OPERATIONS {
        let reach = match o.reach {
            Reach::Console(roles) => {
                let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
                format!("console ({})", names.join(", "))
            }
            Reach::Key(s, a) => format!("key: {} {}", s.as_str(), a.as_str()),
            Reach::ConsoleOrKey(roles, s, a) => {
                let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
                format!("console ({}) or key: {} {}", names.join(", "), s.as_str(), a.as_str())
            }
            Reach::AnyCaller => "any key or console caller".into(),
            Reach::Gateway => "any key (decides the mapped operation)".into(),
            Reach::Ingest => "ingest token".into(),
            Reach::SignedLink => "signed download link".into(),
            Reach::ScanningPartner => "secret-scanning partner (signed report)".into(),
        };
        out.push_str(&format!("| `{}` | {} | {} |", o.name, o.method.as_str(), reach));
        for t in KeyType::ALL {
            out.push_str(if key_may_call(t, o) { " ✅ |" } else { " — |" });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_op_is_its_own_row_and_every_name_is_one_event_kind() {
        assert_eq!(Op::ALL.len(), OPERATIONS.len());
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(OPERATIONS[i].id, *op);
            assert_eq!(op.spec().id, *op);
            assert_eq!(find(op.name()).map(|o| o.id), Some(*op));
        }
        let unrouted = Unrouted::ALL;
        let mut names: Vec<&str> = OPERATIONS.iter().map(|o| o.name).chain(unrouted.iter().map(|u| u.name())).collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all, "an event kind's name is used twice");
    }

    /// The expected decision, written out independently of `key_may_call`.
    fn expected(key_type: KeyType, name: &str) -> bool {
        let surface_ops: &[&str] = match key_type {
            KeyType::Ediscovery => &[
                "enterprise.export.create",
                "enterprise.export.detail",
                "enterprise.export.list",
                "enterprise.export.downloadUrl",
                "enterprise.hold.create",
                "enterprise.hold.list",
                "enterprise.hold.release",
            ],
            KeyType::Siem => &[
                "enterprise.compliance.event.list",
                "enterprise.compliance.export.create",
                "enterprise.compliance.export.detail",
                "enterprise.compliance.export.downloadUrl",
                "enterprise.audit.checkpoint",
                "enterprise.audit.proof",
                "enterprise.audit.consistency",
            ],
            KeyType::TeamUserMgmt => &[
                "team.user.list",
                "team.user.detail",
                "team.user.create",
                "team.user.update",
                "team.user.remove",
                "scim.service_provider_config",
                "scim.resource_types",
                "scim.schemas",
                "scim.resource_types.get",
                "scim.schemas.get",
                "scim.users.list",
                "scim.users.get",
                "scim.users.create",
                "scim.users.replace",
                "scim.users.patch",
                "scim.users.delete",
                "scim.groups.list",
                "scim.groups.get",
                "scim.groups.create",
                "scim.groups.replace",
                "scim.groups.patch",
                "scim.groups.delete",
            ],
            KeyType::TeamAssetAudit => &["team.asset.list"],
            KeyType::TeamAssetMgmt => &["team.asset.list", "team.asset.update_scope"],
        };
        name == "auth.whoami" || name == "authz.check" || surface_ops.contains(&name)
    }

    #[test]
    fn every_key_type_against_every_operation() {
        let mut checked = 0;
        for t in KeyType::ALL {
            for o in OPERATIONS {
                assert_eq!(key_may_call(t, o), expected(t, o.name), "{} on {}", t, o.name);
                checked += 1;
            }
        }
        assert_eq!(checked, KeyType::ALL.len() * OPERATIONS.len());
    }

    #[test]
    fn the_seed_examples_hold() {
        let list = find("team.asset.list").unwrap();
        let scope = find("team.asset.update_scope").unwrap();
        assert!(key_may_call(KeyType::TeamAssetMgmt, list), "write implies read");
        assert!(key_may_call(KeyType::TeamAssetAudit, list));
        assert!(!key_may_call(KeyType::TeamAssetAudit, scope));
    }

    #[test]
    fn no_key_reaches_a_console_or_ingest_operation() {
        for o in OPERATIONS.iter().filter(|o| matches!(o.reach, Reach::Console(_) | Reach::Ingest | Reach::SignedLink))
        {
            for t in KeyType::ALL {
                assert!(!key_may_call(t, o), "{t} reached {}", o.name);
            }
        }
        assert!(!key_may_call(KeyType::TeamUserMgmt, find("enterprise.key.create").unwrap()));
    }

    #[test]
    fn console_roles() {
        let create = find("enterprise.key.create").unwrap();
        let list = find("enterprise.key.list").unwrap();
        let audit = find("enterprise.audit.list").unwrap();
        assert!(member_may_call(Role::Owner, create));
        for r in [Role::Admin, Role::Auditor, Role::Member] {
            assert!(!member_may_call(r, create));
        }
        assert!(member_may_call(Role::Auditor, list) && member_may_call(Role::Auditor, audit));
        assert!(!member_may_call(Role::Admin, list) && !member_may_call(Role::Member, audit));
        assert!(!member_may_call(Role::Owner, find("team.asset.list").unwrap()));
    }

    #[test]
    fn proofs_reach_auditors_and_the_siem_key_alone() {
        for name in ["enterprise.audit.checkpoint", "enterprise.audit.proof", "enterprise.audit.consistency"] {
            let op = find(name).unwrap();
            assert_eq!(op.method, Method::Get);
            assert!(member_may_call(Role::Owner, op) && member_may_call(Role::Auditor, op), "{name}");
            assert!(!member_may_call(Role::Admin, op) && !member_may_call(Role::Member, op), "{name}");
            assert_eq!(roles_for(op), &[Role::Owner, Role::Auditor]);
            for t in KeyType::ALL {
                assert_eq!(key_may_call(t, op), t == KeyType::Siem, "{t} on {name}");
            }
        }
    }

    #[test]
    fn names_and_routes_are_unique() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(!(a.method == b.method && a.path == b.path), "{} and {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn gateway_paths_resolve() {
        assert_eq!(resolve(Method::Get, "/v2/team.asset.list?limit=5").unwrap().name, "team.asset.list");
        assert_eq!(resolve(Method::Patch, "/scim/v2/Users/abc").unwrap().name, "scim.users.patch");
        assert_eq!(resolve(Method::Get, "/scim/v2/Users").unwrap().name, "scim.users.list");
        assert!(resolve(Method::Get, "/scim/v2/Users/").is_none());
        assert!(resolve(Method::Post, "/v2/team.asset.list").is_none());
        assert!(resolve(Method::Get, "/v2/nope").is_none());
        assert!(resolve(Method::Get, "/v2/authz.check").is_none(), "the gateway never maps to itself");
        for o in OPERATIONS.iter().filter(|o| o.reach != Reach::Gateway) {
            let concrete = o.path.replace("{id}", "x1");
            assert_eq!(resolve(o.method, &concrete).map(|r| r.name), Some(o.name));
        }
    }
}
