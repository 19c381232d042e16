//! A witness of an instance's audit log (`keyward audit witness`): it fetches
//! the latest signed checkpoint of a chain over HTTP, checks its signature,
//! and proves it consistent with the checkpoint it kept from its previous run
//! (an RFC 9162 §2.1.4 consistency proof, fetched too), then keeps the new
//! one. A log whose history was rewritten cannot give such a proof: the
//! witness says so and exits non-zero. It needs no database, only the
//! instance's URL, its verifier key and a credential that may read the log.

use crate::audit::tree::Hash;
use crate::audit::verify::{open_checkpoint, OpenedCheckpoint};
use crate::domain::authz::Op;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a new checkpoint is, next to the one kept from the previous run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No previous checkpoint: this one is trusted from now on.
    First,
    /// The same tree as before.
    Unchanged,
    /// A larger tree that holds the previous one as its prefix.
    Grown,
}

/// Judges `new` against `previous` (both already opened with the verifier
/// key) with `proof`, the consistency proof from `previous`'s size to
/// `new`'s (ignored unless the tree grew). The error is one line saying what
/// was found.
pub fn judge(previous: Option<&OpenedCheckpoint>, new: &OpenedCheckpoint, proof: &[Hash]) -> Result<Verdict, String> {
    let Some(prev) = previous else { return Ok(Verdict::First) };
    if prev.chain_id != new.chain_id {
        return Err(format!("the checkpoint is of chain {}, the one kept of chain {}", new.chain_id, prev.chain_id));
    }
    let (m, n) = (prev.size, new.size);
    if n < m {
        return Err(format!(
            "history rewritten: rolled back: the log's checkpoint is at size {n}, below the size {m} it signed before"
        ));
    }
    if n == m {
        return if new.root == prev.root {
            Ok(Verdict::Unchanged)
        } else {
            Err(format!(
                "history rewritten: two signed checkpoints of size {n} with different roots ({} and {})",
                prev.root, new.root
            ))
        };
    }
    if m == 0 {
        return if prev.root == tlog_tiles::EMPTY_HASH {
            Ok(Verdict::Grown)
        } else {
            Err("history rewritten: the checkpoint kept has size 0 and a root that is not the empty tree's".into())
        };
    }
    tlog_tiles::check_tree(&proof.to_vec(), n, new.root, m, prev.root).map_err(|_| {
        format!("history rewritten: the tree of size {n} does not hold the tree of size {m} signed before (the consistency proof does not verify)")
    })?;
    Ok(Verdict::Grown)
}

/// How the witness reaches the instance.
pub struct Remote {
    pub url: String,
    /// Header name and value of the credential (`X-API-Key` or `Authorization`).
    pub credential: (&'static str, String),
}

/// A failure: the exit code (1: the log failed; 2: configuration; 3: the
/// instance could not be reached or answered nonsense) and one line.
#[derive(Debug)]
pub struct WitnessError(pub u8, pub String);

/// What a run did, as printed.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub origin: String,
    pub verdict: Verdict,
    pub previous_size: Option<u64>,
    pub tree_size: u64,
    pub root: String,
}

/// One witness run: fetch, check, keep.
pub fn run(remote: &Remote, verifier_key: &str, state_dir: &Path) -> Result<Outcome, WitnessError> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let body = get(&agent, remote, Op::EnterpriseAuditCheckpoint.spec().path)?;
    let note = body["checkpoint"]
        .as_str()
        .ok_or_else(|| WitnessError(3, "the checkpoint answer has no \"checkpoint\" text".into()))?;
    let new = open_checkpoint(note.as_bytes(), verifier_key).map_err(|p| WitnessError(1, p.message))?;
    let origin = crate::audit::checkpoint::origin(key_name(verifier_key), &new.chain_id);
    let kept = state_file(state_dir, &origin);
    let previous = match std::fs::read(&kept) {
        Ok(bytes) => Some(open_checkpoint(&bytes, verifier_key).map_err(|p| {
            WitnessError(
                2,
                format!("{}: the checkpoint kept there does not open with this key: {}", kept.display(), p.message),
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(WitnessError(2, format!("{}: {e}", kept.display()))),
    };
    let proof = match &previous {
        Some(prev) if new.size > prev.size && prev.size > 0 => {
            let path = format!("{}?from={}&to={}", Op::EnterpriseAuditConsistency.spec().path, prev.size, new.size);
            parse_proof(&get(&agent, remote, &path)?)?
        }
        _ => Vec::new(),
    };
    let verdict = judge(previous.as_ref(), &new, &proof).map_err(|line| WitnessError(1, line))?;
    if verdict != Verdict::Unchanged {
        keep(state_dir, &kept, note.as_bytes())?;
    }
    Ok(Outcome {
        origin,
        verdict,
        previous_size: previous.map(|p| p.size),
        tree_size: new.size,
        root: new.root.to_string(),
    })
}

fn key_name(verifier_key: &str) -> &str {
    verifier_key.trim().split('+').next().unwrap_or_default()
}

/// A GET answered `{ok: true, …}`, as JSON.
fn get(agent: &ureq::Agent, remote: &Remote, path: &str) -> Result<serde_json::Value, WitnessError> {
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let unreachable = |why: String| WitnessError(3, format!("GET {path}: {why}"));
    let answer = match agent.get(&url).set(remote.credential.0, &remote.credential.1).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let body: serde_json::Value = r.into_json().unwrap_or_default();
            let message = body["error"]["message"].as_str().or(body["message"].as_str()).unwrap_or("no message");
            return Err(unreachable(format!("HTTP {code}: {message}")));
        }
        Err(e) => return Err(unreachable(e.to_string())),
    };
    let body: serde_json::Value = answer.into_json().map_err(|e| unreachable(format!("not JSON: {e}")))?;
    if body["ok"] != serde_json::Value::Bool(true) {
        return Err(unreachable(format!("the answer is not ok: {body}")));
    }
    Ok(body)
}

fn parse_proof(body: &serde_json::Value) -> Result<Vec<Hash>, WitnessError> {
    let bad = || WitnessError(3, "the consistency answer has no \"consistency\" list of base64 hashes".into());
    body["consistency"]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|h| h.as_str().and_then(|s| Hash::parse_hash(s).ok()).ok_or_else(bad))
        .collect()
}

/// The file that keeps the last checkpoint of an origin: the origin with
/// every byte but `[A-Za-z0-9._-]` percent-encoded (no two origins share one).
pub fn state_file(state_dir: &Path, origin: &str) -> PathBuf {
    let name: String = origin
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    state_dir.join(format!("{name}.checkpoint"))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, renamed over it.
pub fn keep(state_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), WitnessError> {
    use std::io::Write;
    let fail = |e: std::io::Error| WitnessError(2, format!("{}: {e}", path.display()));
    std::fs::create_dir_all(state_dir).map_err(fail)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    // The rename itself is durable once the folder is synced.
    if let Ok(dir) = std::fs::File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tree::Frontier;
    use tlog_tiles::HashReader;

    /// A tree of `n` leaves kept whole in memory (every stored hash), for proofs.
    struct MemTree(Vec<Hash>);

    impl HashReader for MemTree {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            indexes.iter().map(|&i| self.0.get(i as usize).copied().ok_or(tlog_tiles::Error::InvalidProof)).collect()
        }
    }

    fn tree(leaves: &[&str]) -> (MemTree, Vec<Hash>) {
        let mut f = Frontier::default();
        let mut stored = Vec::new();
        let mut roots = vec![f.root()];
        for leaf in leaves {
            stored.extend(f.append(leaf.as_bytes()).into_iter().map(|(_, h)| h));
            roots.push(f.root());
        }
        (MemTree(stored), roots)
    }

    fn cp(size: u64, root: Hash) -> OpenedCheckpoint {
        OpenedCheckpoint { chain_id: "t".into(), size, root }
    }

    #[test]
    fn a_grown_log_is_proved_consistent_and_a_rewritten_one_is_not() {
        let leaves = ["a", "b", "c", "d", "e", "f", "g"];
        let (t, roots) = tree(&leaves);
        for m in 1..leaves.len() as u64 {
            for n in m + 1..=leaves.len() as u64 {
                let proof = tlog_tiles::prove_tree(n, m, &t).unwrap();
                let (prev, new) = (cp(m, roots[m as usize]), cp(n, roots[n as usize]));
                assert_eq!(judge(Some(&prev), &new, &proof), Ok(Verdict::Grown), "{m} -> {n}");
                // The same proof does not tie a different previous tree to this one.
                let forged = cp(m, roots[m as usize - 1]);
                assert!(judge(Some(&forged), &new, &proof).unwrap_err().starts_with("history rewritten"));
            }
        }
        // A tree whose third leaf was rewritten, with its own (valid for it) proof.
        let (rt, rroots) = tree(&["a", "b", "X", "d", "e"]);
        let proof = tlog_tiles::prove_tree(5, 3, &rt).unwrap();
        let err = judge(Some(&cp(3, roots[3])), &cp(5, rroots[5]), &proof).unwrap_err();
        assert!(err.contains("does not hold the tree of size 3"), "{err}");
        // A prefix the rewrite left alone still proves consistent.
        let proof = tlog_tiles::prove_tree(5, 2, &rt).unwrap();
        assert_eq!(judge(Some(&cp(2, roots[2])), &cp(5, rroots[5]), &proof), Ok(Verdict::Grown));
    }

    #[test]
    fn same_size_must_be_the_same_tree_and_smaller_is_a_rollback() {
        let (_, roots) = tree(&["a", "b", "c"]);
        let (_, other) = tree(&["a", "b", "Z"]);
        assert_eq!(judge(None, &cp(3, roots[3]), &[]), Ok(Verdict::First));
        assert_eq!(judge(Some(&cp(3, roots[3])), &cp(3, roots[3]), &[]), Ok(Verdict::Unchanged));
        assert!(judge(Some(&cp(3, roots[3])), &cp(3, other[3]), &[]).unwrap_err().contains("different roots"));
        assert!(judge(Some(&cp(3, roots[3])), &cp(2, roots[2]), &[]).unwrap_err().contains("rolled back"));
        let elsewhere = OpenedCheckpoint { chain_id: "u".into(), ..cp(3, roots[3]) };
        assert!(judge(Some(&cp(3, roots[3])), &elsewhere, &[]).is_err());
    }

    #[test]
    fn state_files_are_one_per_origin() {
        let dir = Path::new("/s");
        assert_eq!(state_file(dir, "kw.example/audit/t-1"), Path::new("/s/kw.example%2Faudit%2Ft-1.checkpoint"));
        assert_ne!(state_file(dir, "a/b"), state_file(dir, "a%2Fb"));
    }
}
