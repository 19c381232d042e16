//! Times one full run of the background verifier over a chain, as the job
//! does it (`make bench`, BENCH_ONLY=log): `verify_run <database url> <chain id>`
//! with `KEYWARD_CHECKPOINT_KEY` the key that signed its checkpoints.
//! Prints one JSON line: the run's state, events read, seconds and events/s.

use keyward::audit::verifier;
use keyward::crypto::CheckpointSigner;
use keyward::db;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, chain] = &args[..] else {
        return Err("usage: verify_run <database url> <chain id>".into());
    };
    let key = std::env::var("KEYWARD_CHECKPOINT_KEY").map_err(|_| "KEYWARD_CHECKPOINT_KEY is not set")?;
    let signer = CheckpointSigner::parse(&key)?;
    let mut conn = db::establish(&db::DbUrl::parse(url)?).map_err(|e| e.to_string())?;
    let metrics = keyward::metrics::Metrics::new();
    let started = std::time::Instant::now();
    let run = verifier::run_chain(&mut conn, chain, "bench", signer.verifier_key(), true, &metrics)
        .map_err(|e| e.to_string())?
        .ok_or("another verifier holds the chain")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "state": run.state.as_str(),
            "events_read": run.events_read,
            "seconds": seconds,
            "events_per_second": run.events_read as f64 / seconds,
            "problems": run.findings.problems.len() + run.findings.tree_problems.len(),
        })
    );
    Ok(())
}
