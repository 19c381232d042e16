//! Signed checkpoints of the chains' trees: C2SP tlog-checkpoint bodies
//! (`<origin>\n<tree size>\n<base64 root>\n`) signed as C2SP signed notes
//! with the instance's checkpoint key. The origin names the instance (the
//! key's name) and the chain: `<key name>/audit/<chain id>`.
//!
//! A background thread signs a checkpoint of every chain that grew, at least
//! once per interval while events arrive; nothing on a request's path signs.
//! Every signed checkpoint is kept.

use super::tree::{self, Hash};
use crate::crypto::CheckpointSigner;
use crate::db::models::{now, to_naive};
use crate::db::{self, store, DbConn, DbUrl};
use crate::error::{AppError, AppResult, ErrorCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The origin line of `chain_id`'s checkpoints.
pub fn origin(signer_name: &str, chain_id: &str) -> String {
    format!("{signer_name}/audit/{chain_id}")
}

/// The checkpoint body of a tree (no signature).
pub fn body(origin: &str, size: u64, root: Hash) -> Vec<u8> {
    tlog_tiles::Checkpoint::new(origin, size, root, "").expect("an origin without newlines").to_bytes()
}

/// The signed checkpoint of `chain_id`'s tree at `size` (a size its tree has reached), not yet stored.
pub fn signed(
    conn: &mut DbConn,
    signer: &CheckpointSigner,
    chain_id: &str,
    size: u64,
) -> AppResult<store::CheckpointRow> {
    let root = tree::root(conn, chain_id, size)?;
    let note = signer
        .sign_note(&body(&origin(signer.name(), chain_id), size, root))
        .map_err(|e| AppError::internal().caused_by(std::io::Error::other(e)))?;
    Ok(store::CheckpointRow {
        chain_id: chain_id.to_string(),
        tree_size: size as i64,
        root_hash: root.to_string(),
        note: String::from_utf8(note).expect("a note is text"),
        signed_at: to_naive(now()),
    })
}

/// Signs and stores the checkpoint of `chain_id`'s tree at `size`; returns
/// what is stored (an earlier signature of the same size, if any, stays).
pub fn sign(
    conn: &mut DbConn,
    signer: &CheckpointSigner,
    chain_id: &str,
    size: u64,
) -> AppResult<store::CheckpointRow> {
    let row = signed(conn, signer, chain_id, size)?;
    store::insert_checkpoint(conn, &row)?;
    Ok(store::find_checkpoint(conn, chain_id, Some(size as i64))?.unwrap_or(row))
}

/// Signs a checkpoint of every chain that grew past the size in `signed`
/// (the newest this process knows is signed), stores them in one
/// transaction (one commit, however many chains grew), and notes the new
/// sizes. Returns how many were signed.
pub fn sign_grown(conn: &mut DbConn, signer: &CheckpointSigner, known: &mut HashMap<String, u64>) -> AppResult<usize> {
    use diesel::Connection;
    let mut rows = Vec::new();
    for (chain_id, size) in store::chain_sizes(conn)? {
        let size = size as u64;
        let last = match known.get(&chain_id) {
            Some(s) => *s,
            None => store::find_checkpoint(conn, &chain_id, None)?.map_or(0, |c| c.tree_size as u64),
        };
        known.insert(chain_id.clone(), last);
        if size > last {
            rows.push(signed(conn, signer, &chain_id, size)?);
        }
    }
    if !rows.is_empty() {
        conn.transaction::<_, AppError, _>(|conn| {
            store::take_write_lock(conn)?;
            rows.iter().try_for_each(|row| store::insert_checkpoint(conn, row))
        })?;
        for row in &rows {
            known.insert(row.chain_id.clone(), row.tree_size as u64);
        }
    }
    Ok(rows.len())
}

/// The newest checkpoint of a chain, or the one at `tree_size`.
pub fn find(conn: &mut DbConn, chain_id: &str, tree_size: Option<u64>) -> AppResult<store::CheckpointRow> {
    store::find_checkpoint(conn, chain_id, tree_size.map(|s| s as i64))?.ok_or_else(|| {
        AppError::new(
            ErrorCode::NotFound,
            match tree_size {
                Some(_) => "no checkpoint was signed at this tree size",
                None => "no checkpoint has been signed yet; one is signed within a second of the first event",
            },
        )
    })
}

/// This instance's checkpoint signer thread; dropping the handle stops it.
pub struct Checkpointer {
    _stop: crate::threads::Stop,
}

impl Checkpointer {
    /// Starts the thread; it owns its connection and the signer.
    pub fn start(url: DbUrl, options: db::ConnOptions, signer: Arc<CheckpointSigner>, every: Duration) -> Checkpointer {
        let (stop, rounds) = crate::threads::stop_handle();
        std::thread::Builder::new()
            .name("audit-checkpoints".into())
            .spawn(move || {
                let mut conn: Option<DbConn> = None;
                let mut known = HashMap::new();
                while rounds.next(every) {
                    if conn.is_none() {
                        conn = db::establish_with(&url, options).ok();
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    if let Err(e) = sign_grown(c, &signer, &mut known) {
                        tracing::warn!(error = %e, cause = e.cause_chain().as_deref(), "cannot sign audit checkpoints; retrying");
                        conn = None;
                        known.clear();
                    }
                }
                tracing::debug!("checkpoint signer stopped");
            })
            .expect("spawn the checkpoint signer thread");
        Checkpointer { _stop: stop }
    }
}
