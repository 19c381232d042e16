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

/// A checkpoint note's body and its one signature, checked with `ring`
/// against the verifier key (an implementation independent of the one that signed).
pub(crate) fn open_with_ring(note: &str, verifier_key: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (text, sigs) = note.split_once("\n\n").expect("a body, a blank line, signatures");
    let mut parts = verifier_key.splitn(3, '+');
    let (name, id, key) = (parts.next().unwrap(), parts.next().unwrap(), b64.decode(parts.next().unwrap()).unwrap());
    assert_eq!(key[0], 1, "an Ed25519 verifier key");
    let line = sigs.lines().find(|l| l.starts_with(&format!("\u{2014} {name} "))).expect("a signature by the key");
    let sig = b64.decode(line.rsplit(' ').next().unwrap()).unwrap();
    assert_eq!(format!("{:08x}", u32::from_be_bytes(sig[..4].try_into().unwrap())), id, "the key id");
    let body = format!("{text}\n");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key[1..])
        .verify(body.as_bytes(), &sig[4..])
        .expect("the signature verifies");
    body.lines().map(str::to_string).collect()
}

fn checkpoints_are_signed_for_every_chain_that_grows(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_CHECKPOINT_INTERVAL_MS", "20")]);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    app.get("/v2/auth.whoami", &[("X-API-Key", &secret)]);
    app.get("/v2/auth.whoami", &[("X-API-Key", "kw_live_not_a_key")]);
    let signer = &app.settings().checkpoint_signer;
    for chain in [app.tenant_id.as_str(), keyward::audit::SYSTEM_CHAIN] {
        let size = leaves(&app, chain).len() as u64;
        // The signer runs every 20 ms: wait for it to reach this size.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let checkpoint = loop {
            match store::find_checkpoint(&mut app.db(), chain, None).unwrap() {
                Some(c) if c.tree_size as u64 >= size => break c,
                _ => assert!(std::time::Instant::now() < deadline, "no checkpoint of {chain} at size {size}"),
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let body = open_with_ring(&checkpoint.note, signer.verifier_key());
        let size = checkpoint.tree_size as u64;
        assert_eq!(body[0], format!("{}/audit/{chain}", signer.name()), "the origin names the instance and the chain");
        assert_eq!(body[1], size.to_string());
        let expected = independent_tree(&leaves(&app, chain)[..size as usize]).root();
        use base64::Engine;
        assert_eq!(body[2], base64::engine::general_purpose::STANDARD.encode(expected.as_bytes()));
        assert_eq!(body.len(), 3);
        assert!(keyward::crypto::open_note(checkpoint.note.as_bytes(), signer.verifier_key()).is_ok());
    }
    // The signing key is nowhere in the database.
    let dump = app.dump_database();
    let key = app.settings().checkpoint_key.expose();
    let seed = key.splitn(5, '+').nth(4).unwrap();
    assert!(!dump.contains(key) && !dump.contains(seed), "the database holds the signing key");
    // Nor any log line (the key is registered with the redactor, as given and as its seed).
    let logs = app.logs();
    assert!(logs.contains("request"), "the app logged");
    assert!(!logs.contains(key) && !logs.contains(seed), "a log line holds the signing key");
}
both!(checkpoints_are_signed_for_every_chain_that_grows);
