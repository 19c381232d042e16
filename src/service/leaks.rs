//! Keys reported leaked in public: finding the key a reported token is, and
//! what its tenant's policy does with it (revoke, or mark only). Each key's
//! change commits with its own event in its tenant's chain.

use super::{keys, meta, Meta};
use crate::crypto::KeyHasher;
use crate::db::models::{now, to_naive, ApiKey, KeyLeak};
use crate::db::{store, DbConn};
use crate::domain::key_format;
use crate::domain::leaks::{LeakAction, ReportedToken};
use crate::error::{AppError, AppResult};
use serde_json::json;

/// The revocation reason a leaked key gets.
pub const LEAKED: &str = "leaked";

/// The keyward key a reported token is, if any. Tokens that are not in
/// keyward's format (or fail its checksum) are not looked up.
pub fn find_reported_key(conn: &mut DbConn, hasher: &KeyHasher, token: &str) -> AppResult<Option<ApiKey>> {
    if key_format::parse_secret(token).is_err() {
        return Ok(None);
    }
    Ok(store::find_key_by_hash(conn, &hasher.hash(token))?.map(|(key, _)| key))
}

/// Acts on the leak of `key_id`, under its tenant's policy, and records the
/// leak (the first report of a key is kept). Meant for the writer's transaction.
pub fn act_on_leak(
    conn: &mut DbConn,
    tenant_id: &str,
    key_id: &str,
    reported: &ReportedToken,
) -> AppResult<(LeakAction, Meta)> {
    let tenant = store::find_tenant(conn, tenant_id)?.ok_or_else(AppError::internal)?;
    let key = store::find_key(conn, tenant_id, key_id)?.ok_or_else(AppError::internal)?;
    let action = LeakAction::for_key(key.revoked_at.is_some(), tenant.leaked_key_action);
    if action == LeakAction::Revoked {
        keys::revoke_key(conn, tenant_id, key_id, LEAKED)?;
    }
    let first_report = store::find_key_leak(conn, tenant_id, key_id)?.is_none();
    if first_report {
        store::insert_key_leak(
            conn,
            &KeyLeak {
                key_id: key_id.to_string(),
                tenant_id: tenant_id.to_string(),
                reported_at: to_naive(now()),
                url: reported.url.clone(),
                source: reported.source.clone(),
                action,
            },
        )?;
    }
    let m = meta(json!({
        "key_id": key_id,
        "key_type": key.key_type,
        "label": key.label,
        "hint": key.hint,
        "action": action,
        "policy": tenant.leaked_key_action,
        "url": reported.url,
        "source": reported.source,
        "token_type": reported.token_type,
        "first_report": first_report,
    }));
    Ok((action, m))
}
