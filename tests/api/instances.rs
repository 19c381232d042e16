//! Several keyward instances on one PostgreSQL database (the clustered
//! shape, §3 revocation and the 50-key cap, §6 the audit chain).
//!
//! PostgreSQL only: the SQLite shape is one instance by design. Each test
//! starts a second server with `TestApp::sibling` (same settings, same
//! database, same tenant) and drives both over HTTP.

use crate::helpers::{event_of, Backend, Resp, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Two instances; rate limiting off, since these tests are about concurrency.
fn two_instances() -> (TestApp, TestApp) {
    two_instances_with(&[])
}

fn two_instances_with(extra: &[(&str, &str)]) -> (TestApp, TestApp) {
    let mut settings = vec![("KEYWARD_RATE_LIMIT_READ_PER_MINUTE", "0"), ("KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE", "0")];
    settings.extend_from_slice(extra);
    let app = TestApp::spawn_with(Backend::Postgres, &settings);
    let other = app.sibling();
    assert_ne!(app.base, other.base, "the second instance listens on its own port");
    (app, other)
}

fn whoami(app: &TestApp, secret: &str) -> Resp {
    app.get("/v2/auth.whoami", &[("X-API-Key", secret)])
}

fn count(app: &TestApp, sql: &str) -> i64 {
    app.query_strings(sql)[0].parse().unwrap()
}

/// Revokes `key_id` on `on`, then asks `other` with the key until it refuses.
/// Returns the time from the revoke's 200 to `other`'s first 401, and the
/// number of requests `other` answered in that time.
fn revoke_and_measure(on: &TestApp, other: &TestApp, key_id: &str, secret: &str) -> (Duration, u32) {
    let r = on.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": key_id, "reason": "laptop lost"}));
    r.ok();
    let revoked_at = Instant::now();
    // The revoking instance refuses it from the very next request, cache or not.
    let r = whoami(on, secret);
    assert_eq!(r.status, 401, "the revoking instance still accepts the revoked key: {}", r.text);
    assert_eq!(event_of(on, &r)["reason"], json!("revoked"));
    let mut requests = 0;
    loop {
        let r = whoami(other, secret);
        requests += 1;
        if r.status == 401 {
            let latency = revoked_at.elapsed();
            assert_eq!(r.code().as_deref(), Some("unauthenticated"), "{}", r.text);
            let ev = event_of(other, &r);
            assert_eq!(ev["outcome"], json!("DENIED"));
            assert_eq!(ev["reason"], json!("revoked"), "event: {ev}");
            assert_eq!(ev["key_id"], json!(key_id));
            return (latency, requests);
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(revoked_at.elapsed() < Duration::from_secs(5), "the other instance still accepts the revoked key");
    }
}

/// A revocation takes effect for the next request on every
/// instance. With PostgreSQL every key check first reads `key_state` from
/// the shared database by default (a warm key's cache entry is used only if
/// it has not moved), and the revoke's change commits before its 200: the
/// very next request on any instance sees it.
#[test]
fn revocation_on_one_instance_is_refused_by_the_other_at_once_postgres() {
    let (one, two) = two_instances();
    for (on, other, name) in [(&one, &two, "1 → 2"), (&two, &one, "2 → 1")] {
        let (key_id, secret) = warm_key(on, other);
        let (latency, requests) = revoke_and_measure(on, other, &key_id, &secret);
        eprintln!("revocation {name}: refused after {latency:?} ({requests} request(s))");
        assert_eq!(requests, 1, "the very next request on the other instance is refused");
    }
    drop(two); // before the first app, whose drop removes the database
}

/// With the cache turned on (`KEYWARD_KEY_CACHE_SYNC_MS`, an operator's
/// trade of the every-instance promise for throughput), the revoking
/// instance still refuses the very next request, and the other one refuses
/// within its poll of the database's `key_state` version.
#[test]
fn with_the_key_cache_on_the_other_instance_refuses_within_the_sync_interval_postgres() {
    let (one, two) = two_instances_with(&[("KEYWARD_KEY_CACHE_SYNC_MS", "100")]);
    for (on, other, name) in [(&one, &two, "1 → 2"), (&two, &one, "2 → 1")] {
        let (key_id, secret) = warm_key(on, other);
        let (latency, requests) = revoke_and_measure(on, other, &key_id, &secret);
        eprintln!("revocation {name} (cache on): refused after {latency:?} ({requests} request(s))");
        assert!(latency < Duration::from_secs(1), "revocation took {latency:?} to reach the other instance");
    }
    drop(two);
}

/// A new key that works on both instances, several times (warm caches, if any).
fn warm_key(on: &TestApp, other: &TestApp) -> (String, String) {
    let (key_id, secret) = on.create_key("KEY_TYPE_SIEM");
    for _ in 0..3 {
        for app in [on, other] {
            let r = whoami(app, &secret);
            assert_eq!(r.ok()["caller"]["key_id"], json!(key_id));
        }
    }
    (key_id, secret)
}

/// 80 creates race across both instances; the cap of 50 live keys holds.
#[test]
fn the_key_cap_holds_across_instances_postgres() {
    let (one, two) = two_instances();
    const ATTEMPTS: usize = 80;
    let start = Barrier::new(ATTEMPTS);
    let results: Vec<(usize, Resp)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..ATTEMPTS)
            .map(|i| {
                let app = if i % 2 == 0 { &one } else { &two };
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let body = json!({"key_type": "KEY_TYPE_SIEM", "label": format!("race {i}")});
                    (i, app.owner_post("/v2/enterprise.key.create", &body))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut created = HashSet::new();
    let mut refused = 0;
    let mut by_instance = [0usize; 2];
    for (i, r) in &results {
        match r.status {
            200 => {
                created.insert(r.body["key"]["key_id"].as_str().unwrap().to_string());
                by_instance[i % 2] += 1;
            }
            400 => {
                assert_eq!(r.code().as_deref(), Some("failed_precondition"), "{}", r.text);
                let ev = event_of(&one, r);
                assert_eq!(ev["outcome"], json!("DENIED"));
                assert_eq!(ev["operation"], json!("enterprise.key.create"));
                refused += 1;
            }
            other => panic!("create {i} answered {other}: {}", r.text),
        }
    }
    eprintln!("key cap race: created per instance {by_instance:?}, refused {refused}");
    assert_eq!(created.len(), 50, "exactly 50 creates succeed");
    assert_eq!(refused, ATTEMPTS - 50);

    let list = one.owner_get("/v2/enterprise.key.list?status=ACTIVE&limit=1000");
    let body = list.ok();
    assert_eq!(body["total"], json!(50));
    let listed: HashSet<String> =
        body["keys"].as_array().unwrap().iter().map(|k| k["key_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, created, "the live keys are exactly the created ones");
    let total = two.owner_get("/v2/enterprise.key.list?limit=1000");
    assert_eq!(total.ok()["total"], json!(50), "no key beyond the cap was stored");
    assert_eq!(
        count(&one, &format!("SELECT CAST(COUNT(*) AS TEXT) AS v FROM api_keys WHERE tenant_id = '{}'", one.tenant_id)),
        50
    );

    // The 81st, on either instance, is still refused.
    for app in [&one, &two] {
        let r = app.owner_post("/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_SIEM", "label": "one more"}));
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.code().as_deref(), Some("failed_precondition"));
    }
    drop(two); // before the first app, whose drop removes the database
}

/// Both instances write the tenant's audit chain at once; it stays one gapless, valid chain.
#[test]
fn concurrent_audit_writes_from_two_instances_keep_the_chain_valid_postgres() {
    let (one, two) = two_instances();
    let (siem_id, siem) = one.create_key("KEY_TYPE_SIEM");
    let (revoked_id, revoked) = two.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    two.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": revoked_id, "reason": "rotated out"})).ok();

    const THREADS: usize = 8;
    const PER_THREAD: usize = 40;
    let start = Barrier::new(THREADS);
    let results: Vec<(String, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let app = if t % 2 == 0 { &one } else { &two };
                let (start, siem, revoked, siem_id) = (&start, &siem, &revoked, &siem_id);
                s.spawn(move || {
                    start.wait();
                    (0..PER_THREAD)
                        .map(|i| {
                            let r = match (t + i) % 5 {
                                0 => whoami(app, siem),
                                1 => app.get("/v2/enterprise.compliance.event.list?limit=1", &[("X-API-Key", siem)]),
                                2 => whoami(app, revoked),
                                3 => app.owner_post(
                                    "/v2/enterprise.key.update",
                                    &json!({"key_id": siem_id, "label": format!("thread {t} request {i}")}),
                                ),
                                _ => app.owner_get("/v2/enterprise.key.list?limit=1"),
                            };
                            (r.header("x-request-id").expect("X-Request-Id"), r.status)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.len(), THREADS * PER_THREAD);
    let denied = results.iter().filter(|(_, s)| *s == 401).count();
    assert_eq!(denied, THREADS * PER_THREAD / 5, "only the revoked key's requests are refused: {results:?}");
    assert!(results.iter().all(|(_, s)| *s == 200 || *s == 401), "{results:?}");

    // The chain verifies, through the API of either instance and through the operators' tool.
    for app in [&one, &two] {
        let v = &app.verification();
        assert_eq!(v["valid"], json!(true), "{v}");
        assert_eq!(v["problems"], json!([]), "{v}");
        assert_eq!(v["events_checked"], v["head_at_start"], "{v}");
    }
    let checks = keyward::admin::verify(&mut one.db(), Some(&one.tenant_id)).unwrap();
    assert_eq!(checks.len(), 1);
    assert!(checks[0].valid, "{:?}", checks[0].problems);
    assert!(checks[0].events_checked as usize >= THREADS * PER_THREAD);

    // One gapless sequence holding every request's event, each in this tenant.
    let events = one.audit_events();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(seqs, expected, "seq is gapless and ordered");
    assert!(events.len() as i64 >= checks[0].head_seq, "the listing reaches the verified head");
    let by_request: std::collections::HashMap<&str, &Value> =
        events.iter().map(|e| (e["request_id"].as_str().unwrap(), e)).collect();
    for (rid, status) in &results {
        let e = by_request.get(rid.as_str()).unwrap_or_else(|| panic!("request {rid} has no event in the chain"));
        assert_eq!(e["status_code"], json!(status), "{e}");
        assert_eq!(e["outcome"], json!(if *status == 200 { "ALLOWED" } else { "DENIED" }), "{e}");
    }
    assert!(events.iter().all(|e| e["tenant_id"] == json!(one.tenant_id)));
    let ids: HashSet<&str> = events.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    drop(two); // before the first app, whose drop removes the database
}

/// Audit groups committed by `path` (`known_head` or `locked`), from `/metrics`.
fn groups(app: &TestApp, path: &str) -> u64 {
    let name = format!("keyward_audit_groups_total{{path=\"{path}\"}}");
    let metrics = app.get("/metrics", &[]).text;
    metrics.lines().find_map(|l| l.strip_prefix(&name)).map_or(0, |n| n.trim().parse().unwrap())
}

/// A writer appends a group in one statement on the chain head it last left.
/// When the other instance has appended since, that statement writes nothing
/// and the group takes the lock instead: no request fails and the chain stays
/// gapless and valid.
#[test]
fn a_writer_whose_chain_head_moved_takes_the_lock_and_the_chain_stays_whole_postgres() {
    let (one, two) = two_instances();
    let (_, secret) = one.create_key("KEY_TYPE_SIEM");
    // A key's first use writes its `last_used_*` (the locked path); the next
    // ones, within the second, go on the head the writer knows.
    for _ in 0..3 {
        assert_eq!(whoami(&one, &secret).status, 200);
    }
    assert!(groups(&one, "known_head") >= 1, "a writer that knows its chain head appends in one statement");

    for _ in 0..5 {
        let (known, locked) = (groups(&one, "known_head"), groups(&one, "locked"));
        let r = whoami(&two, &secret);
        assert_eq!(r.status, 200, "{}", r.text);
        // `one`'s head is now stale: its next group must not append on it.
        let r = whoami(&one, &secret);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(groups(&one, "known_head"), known, "a stale head was appended on");
        assert_eq!(groups(&one, "locked"), locked + 1);
    }

    let checks = keyward::admin::verify(&mut one.db(), Some(&one.tenant_id)).unwrap();
    assert!(checks[0].valid, "{:?}", checks[0].problems);
    let events = one.audit_events();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>(), "seq is gapless and ordered");
    drop(two); // before the first app, whose drop removes the database
}
