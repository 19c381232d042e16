//! Seeds a large audit log for `make bench` (BENCH_ONLY=log): appends
//! `COUNT` whoami-like events to one tenant's chain, in groups of 10,000,
//! through the writer's own group commit (chain, tree and all).
//!
//! `seed_log <database url> <tenant id|new> <count>`; with `new`, creates a
//! tenant (owner owner@bench.example) and prints its id and owner's member id.

use keyward::audit::{ActorType, EventDraft};
use keyward::db;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, tenant, count] = &args[..] else {
        return Err("usage: seed_log <database url> <tenant id|new> <count>".into());
    };
    let url = db::DbUrl::parse(url)?;
    let mut conn = db::establish(&url).map_err(|e| e.to_string())?;
    db::run_migrations(&mut conn)?;
    let tenant = if tenant == "new" {
        let (tenant_id, owner) =
            keyward::admin::create_tenant(&mut conn, "bench", "owner@bench.example").map_err(|e| e.to_string())?;
        println!("{tenant_id} {owner}");
        tenant_id
    } else {
        tenant.clone()
    };
    let count: u64 = count.parse().map_err(|_| "count must be a number")?;
    let mut left = count;
    while left > 0 {
        let n = left.min(10_000);
        let drafts = (0..n)
            .map(|i| {
                let mut d = EventDraft::new(keyward::domain::authz::Op::AuthWhoami, format!("req_seed_{left}_{i}"));
                d.tenant_id = Some(tenant.clone());
                d.actor_type = ActorType::ApiKey;
                d.actor_id = Some("k_seed".into());
                d.client_ip = Some("127.0.0.1".into());
                d.user_agent = Some("seed_log".into());
                d
            })
            .collect();
        keyward::audit::writer::append_now(&mut conn, drafts).map_err(|e| e.to_string())?;
        left -= n;
    }
    Ok(())
}
