//! What the fast key path must keep (issue #4): known keys are answered from
//! the verified-key cache, yet a change to a key reaches it at once on this
//! instance and within the sync interval from elsewhere, and every answered
//! request's audit event is already committed. With SQLite the cache polls
//! `key_state`; with PostgreSQL each check reads `key_state` by default. The
//! `both!` tests set the polling mode for both backends.

use crate::both;
use crate::helpers::{assert_refused, event_of, key_get, Backend, Resp, TestApp};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const WHOAMI: &str = "/v2/auth.whoami";

/// A sync interval so long that only this instance's own invalidation can
/// make a change take effect during a test.
const NO_POLLING: (&str, &str) = ("KEYWARD_KEY_CACHE_SYNC_MS", "10000");

fn whoami(app: &TestApp, secret: &str) -> Resp {
    key_get(app, secret, WHOAMI)
}

/// A counter or gauge from `/metrics`.
fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics", &[]).text;
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{name}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

both!(
    a_known_key_is_answered_from_the_cache,
    revocation_is_refused_from_the_very_next_request_under_load,
    every_change_through_the_api_reaches_a_warm_cache_at_once,
    a_change_behind_the_instances_back_reaches_it_within_the_sync_interval,
    an_answered_request_has_its_event_committed_under_concurrent_load,
);

fn a_known_key_is_answered_from_the_cache(backend: Backend) {
    // A long poll interval: on a loaded machine a late poll must not make entries stale mid-test.
    let app = TestApp::spawn_with(backend, &[NO_POLLING]);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    let unknown = keyward::crypto::new_key_secret(keyward::domain::KeyType::Siem);
    whoami(&app, &secret).ok();
    assert_eq!(whoami(&app, &unknown).status, 401);
    let (hits, misses) = (metric(&app, "keyward_key_cache_hits_total"), metric(&app, "keyward_key_cache_misses_total"));
    for _ in 0..10 {
        whoami(&app, &secret).ok();
        assert_eq!(whoami(&app, &unknown).status, 401);
    }
    assert_eq!(metric(&app, "keyward_key_cache_hits_total") - hits, 20.0, "known and unknown keys come from the cache");
    assert_eq!(metric(&app, "keyward_key_cache_misses_total"), misses);

    // Off: every check reads the database, and nothing else changes.
    let off = TestApp::spawn_with(backend, &[("KEYWARD_KEY_CACHE_SYNC_MS", "0")]);
    let (_, secret) = off.create_key("KEY_TYPE_SIEM");
    for _ in 0..3 {
        off.get(WHOAMI, &[("X-API-Key", &secret)]).ok();
    }
    assert_eq!(metric(&off, "keyward_key_cache_hits_total"), 0.0);
    assert_eq!(metric(&off, "keyward_key_cache_misses_total"), 3.0);
}

/// Threads keep calling with a warm key while it is revoked: every request
/// sent after the revoke's 200 is refused, with reason `revoked`.
fn revocation_is_refused_from_the_very_next_request_under_load(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[NO_POLLING]);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    for _ in 0..3 {
        whoami(&app, &secret).ok();
    }
    const THREADS: usize = 4;
    let start = Barrier::new(THREADS + 1);
    let stop = AtomicBool::new(false);
    let (revoked_at, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (app, secret, start, stop) = (&app, &secret, &start, &stop);
                s.spawn(move || {
                    start.wait();
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        let sent = Instant::now();
                        seen.push((sent, whoami(app, secret)));
                    }
                    seen
                })
            })
            .collect();
        start.wait();
        std::thread::sleep(Duration::from_millis(50)); // let the load run before the revoke
        let revoke = app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": key_id, "reason": "laptop lost"}));
        let revoked_at = Instant::now();
        let next = whoami(&app, &secret);
        // Keep the load on until each thread has sent several requests after the revoke.
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Release);
        revoke.ok();
        assert_eq!(next.status, 401, "the very next request: {}", next.text);
        (revoked_at, handles.into_iter().flat_map(|h| h.join().unwrap()).collect::<Vec<_>>())
    });
    let before = results.iter().filter(|(sent, _)| *sent < revoked_at).count();
    let after: Vec<&Resp> = results.iter().filter(|(sent, _)| *sent > revoked_at).map(|(_, r)| r).collect();
    assert!(before > 0 && after.len() >= THREADS, "{before} before, {} after", after.len());
    for r in &after {
        assert_refused(&app, r, 401, "unauthenticated", "revoked");
    }
    eprintln!("{before} requests before the revoke, {} after: every one after refused", after.len());
}

fn every_change_through_the_api_reaches_a_warm_cache_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[NO_POLLING]);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    let warm = |secret: &str| {
        for _ in 0..3 {
            whoami(&app, secret).ok();
        }
    };
    warm(&secret);

    // Label: shown at once.
    app.owner_post("/v2/enterprise.key.update", &json!({"key_id": key_id, "label": "renamed"})).ok();
    assert_eq!(whoami(&app, &secret).ok()["caller"]["label"], json!("renamed"));

    // Allowlist: enforced at once, and lifted at once.
    warm(&secret);
    app.owner_post("/v2/enterprise.key.update", &json!({"key_id": key_id, "ip_allowlist": ["10.0.0.0/8"]})).ok();
    assert_refused(&app, &whoami(&app, &secret), 401, "unauthenticated", "ip_not_allowed");
    app.owner_post("/v2/enterprise.key.update", &json!({"key_id": key_id, "ip_allowlist": []})).ok();
    whoami(&app, &secret).ok();

    // Rotation without grace: the old key stops at once, the new one works at once.
    warm(&secret);
    let r = app.owner_post("/v2/enterprise.key.rotate", &json!({"key_id": key_id, "grace_seconds": 0}));
    let new_secret = r.ok()["secret"].as_str().unwrap().to_string();
    assert_refused(&app, &whoami(&app, &secret), 401, "unauthenticated", "expired");
    whoami(&app, &new_secret).ok();
}

/// A change this instance did not make (the CLI, another instance, a hand
/// edit) reaches its warm cache through the `key_state` poll.
fn a_change_behind_the_instances_back_reaches_it_within_the_sync_interval(backend: Backend) {
    // The SQLite default, set for both (PostgreSQL's default is no cache).
    let app = TestApp::spawn_with(backend, &[("KEYWARD_KEY_CACHE_SYNC_MS", "100")]);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    for _ in 0..3 {
        whoami(&app, &secret).ok();
    }
    let mut conn = app.db();
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!("UPDATE tenants SET status = 'SUSPENDED' WHERE id = '{}'", app.tenant_id)),
        &mut conn,
    )
    .unwrap();
    let changed_at = Instant::now();
    loop {
        let r = whoami(&app, &secret);
        if r.status == 401 {
            let e = event_of(&app, &r);
            assert_eq!(e["reason"], json!("tenant_inactive"), "{e}");
            assert_eq!(e["key_id"], json!(key_id));
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(changed_at.elapsed() < Duration::from_secs(1), "a suspended tenant's key still works");
    }
    eprintln!("a hand edit reached the cache after {:?}", changed_at.elapsed());
}

/// PostgreSQL's default: a warm key is answered from the cache, yet a change
/// behind the instance's back (another instance, a hand edit) is refused by
/// the very next request, because every check first reads `key_state`.
#[test]
fn by_default_on_postgres_each_check_reads_the_version_and_a_hand_edit_is_refused_at_once_postgres() {
    let app = TestApp::spawn(Backend::Postgres);
    let (key_id, secret) = app.create_key("KEY_TYPE_SIEM");
    whoami(&app, &secret).ok();
    let hits = metric(&app, "keyward_key_cache_hits_total");
    for _ in 0..5 {
        whoami(&app, &secret).ok();
    }
    assert_eq!(metric(&app, "keyward_key_cache_hits_total") - hits, 5.0, "a warm key comes from the cache");

    // No poll runs and nothing waits for one: the revoke lands in the database only.
    let mut conn = app.db();
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!("UPDATE api_keys SET revoked_at = now() WHERE id = '{key_id}'")),
        &mut conn,
    )
    .unwrap();
    let r = whoami(&app, &secret);
    assert_refused(&app, &r, 401, "unauthenticated", "revoked");
}

/// Issue #4's durability point: when a request is answered, its event is
/// already committed. Threads read each answer's event back at once, through
/// connections of their own, while the others keep the writer busy.
fn an_answered_request_has_its_event_committed_under_concurrent_load(backend: Backend) {
    let app = TestApp::spawn(backend);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, audit) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    let unknown = keyward::crypto::new_key_secret(keyward::domain::KeyType::Siem);
    const THREADS: usize = 8;
    const PER_THREAD: usize = 40;
    let start = Barrier::new(THREADS);
    let checked: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (app, start, siem, audit, unknown) = (&app, &start, &siem, &audit, &unknown);
                s.spawn(move || {
                    let mut conn = app.db();
                    start.wait();
                    for i in 0..PER_THREAD {
                        let r = match (t + i) % 3 {
                            0 => whoami(app, siem),
                            1 => app.get(
                                "/v2/authz.check",
                                &[
                                    ("X-API-Key", audit),
                                    ("X-Original-Method", "GET"),
                                    ("X-Original-URI", "/v2/team.asset.list"),
                                ],
                            ),
                            _ => whoami(app, unknown),
                        };
                        assert!(matches!(r.status, 200 | 401), "{}", r.text);
                        let rid = r.header("x-request-id").unwrap();
                        let n = committed_events(&mut conn, &rid);
                        assert_eq!(n, 1, "request {rid} was answered {} before its event committed", r.status);
                    }
                    PER_THREAD
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(checked, THREADS * PER_THREAD);
}

fn committed_events(conn: &mut keyward::db::DbConn, request_id: &str) -> i64 {
    use diesel::prelude::*;
    use keyward::db::schema::audit_events::dsl;
    dsl::audit_events.filter(dsl::request_id.eq(request_id)).count().get_result(conn).unwrap()
}

/// SQLite: each answer waits for a fsync of the WAL, and every fsync is timed
/// in `keyward_audit_fsync_seconds` (a slow disk shows there, not as a guess).
#[test]
fn every_answer_waits_for_a_timed_wal_fsync_sqlite() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[NO_POLLING]);
    let (_, secret) = app.create_key("KEY_TYPE_SIEM");
    let before = metric(&app, "keyward_audit_fsync_seconds_count");
    for _ in 0..5 {
        whoami(&app, &secret).ok();
    }
    // One request at a time: no two of them can share a group, so each waited for its own fsync.
    assert_eq!(metric(&app, "keyward_audit_fsync_seconds_count") - before, 5.0);
}
