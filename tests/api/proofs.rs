//! The audit log's proofs over HTTP (`enterprise.audit.checkpoint`, `.proof`,
//! `.consistency`): what auditors and the tenant's SIEM key fetch verifies
//! with implementations independent of keyward's (`ring` for the signed
//! note, `ct-merkle` for the RFC 9162 proofs), for their own tenant only.

use crate::both;
use crate::helpers::{assert_error, assert_refused, key_get, Backend, Resp, TestApp};
use crate::merkle::open_with_ring;
use base64::Engine;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use keyward::audit::canonical;
use keyward::db::store;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

const CHECKPOINT: &str = "/v2/enterprise.audit.checkpoint";
const PROOF: &str = "/v2/enterprise.audit.proof";
const CONSISTENCY: &str = "/v2/enterprise.audit.consistency";
const FEED: &str = "/v2/enterprise.compliance.event.list";
const FAST_CHECKPOINTS: (&str, &str) = ("KEYWARD_CHECKPOINT_INTERVAL_MS", "20");

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A checkpoint note, opened: its tree size and root, once its signature
/// verifies (with `ring`) and its origin names this instance and `tenant`'s chain.
#[derive(Debug, Clone)]
struct Checkpoint {
    note: String,
    size: u64,
    root: RootHash<Sha256>,
}

#[track_caller]
fn open(app: &TestApp, tenant: &str, note: &str) -> Checkpoint {
    let signer = &app.settings().checkpoint_signer;
    let body = open_with_ring(note, signer.verifier_key());
    assert_eq!(body.len(), 3, "origin, size, root: {note}");
    assert_eq!(body[0], format!("{}/audit/{tenant}", signer.name()), "the origin names the tenant's chain");
    let size: u64 = body[1].parse().unwrap();
    let root: [u8; 32] = b64().decode(&body[2]).unwrap().try_into().unwrap();
    Checkpoint { note: note.to_string(), size, root: RootHash::new(root.into(), size) }
}

/// The checkpoint an answer carries, opened.
#[track_caller]
fn checkpoint_of(app: &TestApp, tenant: &str, r: &Resp) -> Checkpoint {
    let note = r.ok()["checkpoint"].as_str().unwrap_or_else(|| panic!("a checkpoint note: {}", r.text));
    open(app, tenant, note)
}

/// Polls the checkpoint over HTTP until one covers at least `size` events.
#[track_caller]
fn checkpoint_covering(app: &TestApp, headers: &[(&str, &str)], size: u64) -> Checkpoint {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(CHECKPOINT, headers);
        if r.status == 200 {
            let c = checkpoint_of(app, &app.tenant_id, &r);
            if c.size >= size {
                return c;
            }
        } else {
            assert_eq!(r.code().as_deref(), Some("not_found"), "{}", r.text);
        }
        assert!(Instant::now() < deadline, "no checkpoint covering {size} events: {}", r.text);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number of events in a chain now.
fn chain_size(app: &TestApp, chain: &str) -> u64 {
    let sql = format!("SELECT CAST(last_seq AS TEXT) AS v FROM audit_chains WHERE chain_id = '{chain}'");
    app.query_strings(&sql)[0].parse().unwrap()
}

/// A chain's events' canonical bytes, in order, straight from the database.
fn leaves(app: &TestApp, chain: &str) -> Vec<Vec<u8>> {
    store::chain_events_after(&mut app.db(), chain, 0, i64::MAX).unwrap().iter().map(canonical).collect()
}

fn event_ids(app: &TestApp, chain: &str) -> Vec<String> {
    store::chain_events_after(&mut app.db(), chain, 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.event_id.to_string())
        .collect()
}

#[track_caller]
fn hashes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list of hashes: {v}"))
        .iter()
        .flat_map(|h| {
            let bytes = b64().decode(h.as_str().unwrap()).unwrap();
            assert_eq!(bytes.len(), 32, "a SHA-256 hash: {h}");
            bytes
        })
        .collect()
}

/// The inclusion proof of an answer, checked against `checkpoint` with
/// `ct-merkle`; its `leaf_hash` recomputed with `sha2`. An altered leaf fails.
#[track_caller]
fn verify_inclusion(r: &Resp, checkpoint: &Checkpoint, leaf: &[u8], leaf_index: u64) {
    let body = r.ok();
    assert_eq!(body["leaf_index"], json!(leaf_index), "{}", r.text);
    assert_eq!(body["tree_size"], json!(checkpoint.size), "{}", r.text);
    let expected_leaf_hash = Sha256::new().chain_update([0u8]).chain_update(leaf).finalize();
    assert_eq!(body["leaf_hash"], json!(b64().encode(expected_leaf_hash)), "SHA-256(0x00 ‖ canonical event)");
    let proof = InclusionProof::<Sha256>::try_from_bytes(hashes(&body["inclusion"])).unwrap();
    checkpoint.root.verify_inclusion(&leaf.to_vec(), leaf_index, &proof).expect("the event is in the signed tree");
    let mut altered = leaf.to_vec();
    altered[2] ^= 1;
    assert!(checkpoint.root.verify_inclusion(&altered, leaf_index, &proof).is_err(), "an altered event verifies");
    if checkpoint.size > 1 {
        let other = if leaf_index == 0 { 1 } else { leaf_index - 1 };
        assert!(checkpoint.root.verify_inclusion(&leaf.to_vec(), other, &proof).is_err(), "another index verifies");
    }
}

// ------------------------------------------------------------------ the tests

fn checkpoints_and_proofs_over_http_verify_independently(b: Backend) {
    let app = TestApp::spawn_with(b, &[FAST_CHECKPOINTS]);
    let tenant = app.tenant_id.clone();
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, auditor) = app.add_member(&tenant, "AUDITOR");
    let owner = format!("Bearer {}", app.owner_token);
    let auditor = format!("Bearer {auditor}");
    let callers: [(&str, Vec<(&str, &str)>); 3] = [
        ("owner", vec![("Authorization", owner.as_str())]),
        ("auditor", vec![("Authorization", auditor.as_str())]),
        ("SIEM key", vec![("X-API-Key", siem.as_str())]),
    ];
    for _ in 0..6 {
        key_get(&app, &siem, "/v2/auth.whoami").ok();
    }

    // Each caller fetches a signed checkpoint of the tenant's chain.
    let mut first = None;
    for (who, headers) in &callers {
        let c = checkpoint_covering(&app, headers, chain_size(&app, &tenant));
        assert!(c.size >= 8, "{who}: {}", c.size);
        first.get_or_insert(c);
    }
    let first = first.unwrap();
    // The one at a size is the same note, later too.
    for (who, headers) in &callers {
        let r = app.get(&format!("{CHECKPOINT}?tree_size={}", first.size), headers);
        assert_eq!(r.ok()["checkpoint"], json!(first.note), "{who}");
    }

    // Inclusion proofs of several events, against the checkpoint's signed root.
    let leaves = leaves(&app, &tenant);
    let ids = event_ids(&app, &tenant);
    let n = first.size;
    for (i, (who, headers)) in [0, 1, n / 2, n - 2, n - 1].into_iter().zip(callers.iter().cycle()) {
        let r = app.get(&format!("{PROOF}?event_id={}&tree_size={n}", ids[i as usize]), headers);
        assert!(r.status == 200, "{who}: {}", r.text);
        verify_inclusion(&r, &first, &leaves[i as usize], i);
    }

    // Without a tree size: the newest signed checkpoint's, which the caller can then fetch.
    for (who, headers) in &callers {
        let r = app.get(&format!("{PROOF}?event_id={}", ids[3]), headers);
        let size = r.ok()["tree_size"].as_u64().unwrap_or_else(|| panic!("{who}: {}", r.text));
        assert!(size >= n, "{who}: {size}");
        let at = app.get(&format!("{CHECKPOINT}?tree_size={size}"), headers);
        verify_inclusion(&r, &checkpoint_of(&app, &tenant, &at), &leaves[3], 3);
    }

    // Consistency between two signed checkpoints.
    let second = checkpoint_covering(&app, &callers[0].1, n + 1);
    assert!(second.size > first.size);
    let leaves = self::leaves(&app, &tenant);
    for (who, headers) in &callers {
        let r = app.get(&format!("{CONSISTENCY}?from={}&to={}", first.size, second.size), headers);
        let body = r.ok();
        assert_eq!((body["from"].as_u64(), body["to"].as_u64()), (Some(first.size), Some(second.size)), "{who}");
        let proof = ConsistencyProof::<Sha256>::try_from_bytes(hashes(&body["consistency"])).unwrap();
        second.root.verify_consistency(&first.root, &proof).expect("the later tree extends the earlier one");
        // A root the log never signed at that size does not verify.
        let forged = RootHash::<Sha256>::new([7u8; 32].into(), first.size);
        assert!(second.root.verify_consistency(&forged, &proof).is_err(), "{who}: a forged old root verifies");
    }
    for from in [1, 2, second.size - 1] {
        let r = app.owner_get(&format!("{CONSISTENCY}?from={from}&to={}", second.size));
        let proof = ConsistencyProof::<Sha256>::try_from_bytes(hashes(&r.ok()["consistency"])).unwrap();
        let old = ct_merkle_root(&leaves[..from as usize]);
        second.root.verify_consistency(&old, &proof).expect("consistent from an early size");
    }
    let r = app.owner_get(&format!("{CONSISTENCY}?from={n}&to={n}"));
    assert_eq!(r.ok()["consistency"], json!([]), "the same tree needs no proof");
}
both!(checkpoints_and_proofs_over_http_verify_independently);

/// The RFC 6962 root of `leaves`, computed by `ct-merkle`.
fn ct_merkle_root(leaves: &[Vec<u8>]) -> RootHash<Sha256> {
    let mut t = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for leaf in leaves {
        t.push(leaf.clone());
    }
    t.root()
}

fn proofs_keep_to_their_tenant_and_table(b: Backend) {
    let app = TestApp::spawn_with(b, &[FAST_CHECKPOINTS]);
    let tenant = app.tenant_id.clone();
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, ediscovery) = app.create_key("KEY_TYPE_EDISCOVERY");
    let a_checkpoint = checkpoint_covering(&app, &[("X-API-Key", &siem)], chain_size(&app, &tenant));
    let a_events = event_ids(&app, &tenant);

    // Another tenant, with its own owner and SIEM key: A's events are not found, by id or at any size.
    let (b_tenant, _, b_token) = app.new_tenant("Other Corp");
    let b_owner = format!("Bearer {b_token}");
    let r = app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &b_owner)],
        &json!({"key_type": "KEY_TYPE_SIEM", "label": "b"}),
    );
    let b_siem = r.ok()["secret"].as_str().unwrap().to_string();
    for headers in [[("Authorization", b_owner.as_str())], [("X-API-Key", b_siem.as_str())]] {
        for id in [&a_events[0], &a_events[a_events.len() - 1]] {
            for q in [format!("event_id={id}"), format!("event_id={id}&tree_size=1")] {
                let r = app.get(&format!("{PROOF}?{q}"), &headers);
                let e = assert_error(&app, &r, 404, "not_found");
                assert_eq!(e["tenant_id"], json!(b_tenant), "recorded in B's chain");
                assert!(!r.text.contains(&tenant), "{}", r.text);
            }
        }
        // B's checkpoint is B's chain's, never A's.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = app.get(CHECKPOINT, &headers);
            if r.status == 200 {
                let note = r.body["checkpoint"].as_str().unwrap();
                open(&app, &b_tenant, note);
                assert_ne!(note, a_checkpoint.note);
                break;
            }
            assert_eq!(r.code().as_deref(), Some("not_found"), "{}", r.text);
            assert!(Instant::now() < deadline, "no checkpoint of B");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // Roles and keys the table does not let in: its usual refusals.
    let (_, member) = app.add_member(&tenant, "MEMBER");
    let (_, admin) = app.add_member(&tenant, "ADMIN");
    let some_event = format!("{PROOF}?event_id={}&tree_size={}", a_events[0], a_checkpoint.size);
    let consistency = format!("{CONSISTENCY}?from=1&to={}", a_checkpoint.size);
    for path in [CHECKPOINT, some_event.as_str(), consistency.as_str()] {
        for token in [&member, &admin] {
            let r = app.get(path, &[("Authorization", &format!("Bearer {token}"))]);
            assert_refused(&app, &r, 403, "permission_denied", "role_required");
            assert!(r.text.contains("OWNER or AUDITOR"), "{}", r.text);
        }
        let r = key_get(&app, &ediscovery, path);
        assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
        let r = app.get(path, &[]);
        assert_eq!((r.status, r.code().as_deref()), (401, Some("unauthenticated")), "{}", r.text);
        // And the ones it does.
        app.owner_get(path).ok();
        key_get(&app, &siem, path).ok();
    }

    // Bad, missing, out-of-range and unknown parameters: the error envelope.
    let size = chain_size(&app, &tenant);
    let event = &event_ids(&app, &tenant)[4];
    let bad = [
        format!("{CHECKPOINT}?tree_size=abc"),
        format!("{CHECKPOINT}?tree_size=-1"),
        format!("{CHECKPOINT}?bogus=1"),
        PROOF.to_string(),
        format!("{PROOF}?tree_size=3"),
        format!("{PROOF}?event_id={event}&tree_size=0"),
        format!("{PROOF}?event_id={event}&tree_size=x"),
        format!("{PROOF}?event_id={event}&tree_size={}", size + 1000),
        // Leaf index 4 is in trees of 5 leaves or more.
        format!("{PROOF}?event_id={event}&tree_size=4"),
        format!("{PROOF}?event_id={event}&bogus=1"),
        CONSISTENCY.to_string(),
        format!("{CONSISTENCY}?from=1"),
        format!("{CONSISTENCY}?to=2"),
        format!("{CONSISTENCY}?from=0&to=2"),
        format!("{CONSISTENCY}?from=3&to=2"),
        format!("{CONSISTENCY}?from=1&to={}", size + 1000),
        format!("{CONSISTENCY}?from=-1&to=2"),
        format!("{CONSISTENCY}?from=1&to=2&bogus=1"),
        format!("{CONSISTENCY}?from=1&to=99999999999999999999999"),
    ];
    for path in &bad {
        let r = app.owner_get(path);
        assert_error(&app, &r, 400, "invalid_argument");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.len() > 10, "{path}: a clear message: {message}");
    }
    let r = app.owner_get(&format!("{PROOF}?event_id={event}&tree_size=4"));
    assert!(r.text.contains("leaf_index 4"), "{}", r.text);
    let r = app.owner_get(&format!("{CONSISTENCY}?from=3&to=2"));
    assert!(r.text.contains("from must not exceed to"), "{}", r.text);
    // Well-formed but naming nothing: not found.
    for path in [
        format!("{CHECKPOINT}?tree_size=99999999999"),
        format!("{CHECKPOINT}?tree_size=18446744073709551615"),
        format!("{PROOF}?event_id=00000000-0000-7000-8000-000000000000"),
        format!("{PROOF}?event_id=not-an-id&tree_size=1"),
    ] {
        assert_error(&app, &app.owner_get(&path), 404, "not_found");
    }
    let r = app.owner_get(&format!("{PROOF}?event_id={event}&tree_size=5"));
    assert_eq!(r.ok()["leaf_index"], json!(4));
}
both!(proofs_keep_to_their_tenant_and_table);

fn events_carry_their_leaf_index_and_the_feed_a_checkpoint(b: Backend) {
    let app = TestApp::spawn_with(b, &[FAST_CHECKPOINTS]);
    let tenant = app.tenant_id.clone();
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    for _ in 0..4 {
        key_get(&app, &siem, "/v2/auth.whoami").ok();
    }
    let listed = app.audit_events();
    assert!(listed.len() >= 5);
    for e in &listed {
        assert_eq!(e["leaf_index"].as_i64(), e["seq"].as_i64().map(|s| s - 1), "{e}");
    }

    // Wait until everything so far is signed, quietly (reading the database), then
    // take the checkpoints away: a feed page before any checkpoint carries null.
    let quiet_and_signed = |app: &TestApp| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let size = chain_size(app, &tenant);
            let signed = store::find_checkpoint(&mut app.db(), &tenant, None).unwrap().map(|c| c.tree_size as u64);
            if signed == Some(size) {
                return;
            }
            assert!(Instant::now() < deadline, "no checkpoint at size {size}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let forget_checkpoints = |app: &TestApp| {
        quiet_and_signed(app);
        app.exec_sql(&format!("DELETE FROM audit_checkpoints WHERE chain_id = '{tenant}'"));
    };
    forget_checkpoints(&app);
    let r = key_get(&app, &siem, &format!("{FEED}?limit=1000"));
    assert_eq!(r.ok()["checkpoint"], Value::Null, "{}", r.text);
    assert!(r.body.as_object().unwrap().contains_key("checkpoint"), "always present: {}", r.text);
    forget_checkpoints(&app);
    assert_error(&app, &app.owner_get(CHECKPOINT), 404, "not_found");
    forget_checkpoints(&app);
    let id = &event_ids(&app, &tenant)[0];
    assert_error(&app, &app.owner_get(&format!("{PROOF}?event_id={id}")), 404, "not_found");

    // Once signed again, every page carries the newest checkpoint, and its events prove against it.
    let size = chain_size(&app, &tenant);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (events, checkpoint) = loop {
        let r = key_get(&app, &siem, &format!("{FEED}?limit=1000"));
        let body = r.ok();
        if let Some(note) = body["checkpoint"].as_str() {
            let c = open(&app, &tenant, note);
            if c.size >= size {
                break (body["events"].as_array().unwrap().clone(), c);
            }
        }
        assert!(Instant::now() < deadline, "no checkpoint in the feed");
        std::thread::sleep(Duration::from_millis(10));
    };
    let leaves = leaves(&app, &tenant);
    assert!(events.len() as u64 >= size);
    for e in &events {
        let leaf_index = e["leaf_index"].as_u64().unwrap_or_else(|| panic!("leaf_index: {e}"));
        assert_eq!(Some(leaf_index as i64), e["seq"].as_i64().map(|s| s - 1), "{e}");
        if leaf_index < checkpoint.size && leaf_index % 3 == 0 {
            let r = key_get(
                &app,
                &siem,
                &format!("{PROOF}?event_id={}&tree_size={}", e["event_id"].as_str().unwrap(), checkpoint.size),
            );
            verify_inclusion(&r, &checkpoint, &leaves[leaf_index as usize], leaf_index);
        }
    }
    // Pages of the feed each carry it, also one that is caught up.
    let cursor = key_get(&app, &siem, &format!("{FEED}?limit=1000")).ok()["next_cursor"].as_str().unwrap().to_string();
    let r = key_get(&app, &siem, &format!("{FEED}?cursor={cursor}&limit=1"));
    open(&app, &tenant, r.ok()["checkpoint"].as_str().unwrap_or_else(|| panic!("{}", r.text)));
}
both!(events_carry_their_leaf_index_and_the_feed_a_checkpoint);
