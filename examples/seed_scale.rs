//! Seeds a large, varied audit log for `make bench-scale`: `COUNT` events in
//! one tenant's chain, through the writer's own group commit (chain, tree and
//! all), in groups of 10,000, without HTTP. The mix gives every filter of
//! `enterprise.audit.list` something rare and something common to find:
//!
//! - key uses, `auth.whoami` and `authz.check` alternately, by 1,000 keys
//!   (`k_0000`..`k_0999`): almost every event;
//! - one issuance (`enterprise.key.create` by the owner) every 100,000 events;
//! - one denied call (401, no key) every 50,000 events;
//! - a key used once every 1,000,000 events (`k_rare`).
//!
//! `seed_scale <database url> <count>`: creates the tenant and prints its id
//! and its owner's member id.

use keyward::audit::{ActorType, EventDraft};
use keyward::db;
use keyward::domain::authz::Op;

fn draft(i: u64, tenant: &str, owner: &str) -> EventDraft {
    let (op, status, actor, key) = if i % 100_000 == 50_000 {
        (Op::EnterpriseKeyCreate, 200, ActorType::Member, None)
    } else if i % 50_000 == 25_001 {
        (Op::AuthWhoami, 401, ActorType::Anonymous, None)
    } else if i % 1_000_000 == 3 {
        (Op::AuthWhoami, 200, ActorType::ApiKey, Some("k_rare".to_string()))
    } else {
        let op = if i % 2 == 0 { Op::AuthWhoami } else { Op::AuthzCheck };
        (op, 200, ActorType::ApiKey, Some(format!("k_{:04}", i % 1000)))
    };
    let mut d = EventDraft::new(op, format!("req_scale_{i}"));
    d.tenant_id = Some(tenant.to_string());
    d.actor_type = actor;
    d.actor_id = match actor {
        ActorType::Member => Some(owner.to_string()),
        _ => key.clone(),
    };
    d.key_id = key;
    d.status_code = status;
    d.client_ip = Some("10.1.2.3".into());
    d.user_agent = Some("okta-connector/2.1".into());
    d
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, count] = &args[..] else {
        return Err("usage: seed_scale <database url> <count>".into());
    };
    let url = db::DbUrl::parse(url)?;
    let mut conn = db::establish(&url).map_err(|e| e.to_string())?;
    db::run_migrations(&mut conn)?;
    let (tenant, owner) =
        keyward::admin::create_tenant(&mut conn, "scale", "owner@scale.example").map_err(|e| e.to_string())?;
    println!("{tenant} {owner}");
    let count: u64 = count.parse().map_err(|_| "count must be a number")?;
    let mut i = 0;
    while i < count {
        let n = (count - i).min(10_000);
        let drafts = (i..i + n).map(|i| draft(i, &tenant, &owner)).collect();
        keyward::audit::writer::append_now(&mut conn, drafts).map_err(|e| e.to_string())?;
        i += n;
    }
    Ok(())
}
