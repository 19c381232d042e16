//! The audit log as Merkle trees: every chain's stored tree is the RFC 6962
//! tree of its events' canonical bytes, on both backends, whichever way the
//! writer appended them; its proofs verify with a second, independent
//! implementation (the `ct-merkle` crate).

use crate::both;
use crate::helpers::{Backend, TestApp};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use keyward::audit::{canonical, tree};
use keyward::db::store;
use sha2::Sha256;

/// A chain's events' canonical bytes, in order, read straight from the database.
fn leaves(app: &TestApp, chain_id: &str) -> Vec<Vec<u8>> {
    let rows = store::chain_events_after(&mut app.db(), chain_id, 0, i64::MAX).unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.seq, i as i64 + 1, "seq is the leaf index plus one");
    }
    rows.iter().map(canonical).collect()
}

fn independent_tree(leaves: &[Vec<u8>]) -> MemoryBackedTree<Sha256, Vec<u8>> {
    let mut t = MemoryBackedTree::new();
    for leaf in leaves {
        t.push(leaf.clone());
    }
    t
}

fn root_hash(app: &TestApp, chain_id: &str, size: u64) -> RootHash<Sha256> {
    let root = tree::root(&mut app.db(), chain_id, size).unwrap();
    RootHash::new(root.0.into(), size)
}

fn proof_bytes(hashes: &[tree::Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

fn every_chain_is_the_rfc_6962_tree_of_its_events(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    // Single requests (on PostgreSQL, the known-head path), changes (the locked
    // path), refusals (the system chain), in a burst so that groups hold several.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]);
                }
            });
        }
        s.spawn(|| {
            for i in 0..5 {
                app.create_key(if i % 2 == 0 { "KEY_TYPE_SIEM" } else { "KEY_TYPE_EDISCOVERY" });
                app.get("/v2/auth.whoami", &[("X-API-Key", "kw_live_not_a_key")]);
            }
        });
    });
    for chain in [app.tenant_id.as_str(), keyward::audit::SYSTEM_CHAIN] {
        let leaves = leaves(&app, chain);
        let n = leaves.len() as u64;
        assert!(n >= 5, "{chain}: {n} events");
        let expected = independent_tree(&leaves);
        for size in [1, n / 2, n - 1, n] {
            let prefix = independent_tree(&leaves[..size as usize]);
            assert_eq!(root_hash(&app, chain, size).as_bytes(), prefix.root().as_bytes(), "{chain} at size {size}");
        }
        let root = root_hash(&app, chain, n);
        assert_eq!(root.as_bytes(), expected.root().as_bytes());

        for i in [0, n / 3, n - 1] {
            let proof = tree::inclusion_proof(&mut app.db(), chain, i, n).unwrap();
            let proof = InclusionProof::<Sha256>::try_from_bytes(proof_bytes(&proof)).unwrap();
            root.verify_inclusion(&leaves[i as usize], i, &proof).unwrap();
            let mut altered = leaves[i as usize].clone();
            altered[1] ^= 1;
            assert!(root.verify_inclusion(&altered, i, &proof).is_err(), "an altered event is not in the tree");
        }
        for from in [1, n / 2, n - 1] {
            let proof = tree::consistency_proof(&mut app.db(), chain, from, n).unwrap();
            let proof = ConsistencyProof::<Sha256>::try_from_bytes(proof_bytes(&proof)).unwrap();
            root.verify_consistency(&root_hash(&app, chain, from), &proof).unwrap();
        }
    }
}
both!(every_chain_is_the_rfc_6962_tree_of_its_events);
