//! Hash-chain verification: finds any edited, deleted, inserted or reordered event.

use super::canonical;
use crate::crypto::{chain_hash, GENESIS_HASH};
use crate::db::{store, DbConn};
use crate::error::AppResult;
use serde::Serialize;

const PAGE: i64 = 1000;
const MAX_PROBLEMS: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub chain_id: String,
    pub valid: bool,
    pub events_checked: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub problems: Vec<Problem>,
}

/// Walks one chain from its first event and compares it with the stored head.
pub fn verify_chain(conn: &mut DbConn, chain_id: &str) -> AppResult<Verification> {
    let (head_seq, head_hash) = store::load_chain_head(conn, chain_id)?.unwrap_or((0, GENESIS_HASH.to_string()));
    let mut problems = Vec::new();
    let mut note = |seq: i64, problem: String| {
        if problems.len() < MAX_PROBLEMS {
            problems.push(Problem { seq, problem });
        }
    };
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut checked = 0;
    let mut after = 0;
    loop {
        let page = store::chain_events_after(conn, chain_id, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            checked += 1;
            if row.seq != expected_seq {
                note(row.seq, format!("expected seq {expected_seq}: events are missing or out of order"));
            }
            if row.prev_hash != prev_hash {
                note(row.seq, "prev_hash does not match the previous event's hash".into());
            }
            if chain_hash(&row.prev_hash, &canonical(row)) != row.hash {
                note(row.seq, "hash does not match the event's content: the event was edited".into());
            }
            expected_seq = row.seq + 1;
            prev_hash = row.hash.clone();
        }
    }
    let last_seq = expected_seq - 1;
    if last_seq != head_seq || prev_hash != head_hash {
        note(last_seq, format!("chain head says seq {head_seq}, events end at seq {last_seq}: events were deleted or the head was changed"));
    }
    Ok(Verification {
        chain_id: chain_id.to_string(),
        valid: problems.is_empty(),
        events_checked: checked,
        head_seq,
        head_hash,
        problems,
    })
}
