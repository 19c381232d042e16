//! Key lifecycle notices: `enterprise.key.expiring` once per key and
//! threshold (the tenant's `key_expiry_notice_days`, default 14 and 1) and
//! `enterprise.key.expired` once, in the key's tenant's chain, across passes,
//! restarts and instances.
//!
//! Passes run either through `keyward::admin::notices` (what `keyward audit
//! notices` runs) or the background job with a short
//! `KEYWARD_NOTICE_INTERVAL_MS`. To get keys past a threshold or their expiry
//! without waiting days, tests move `api_keys.expires_at` in the database
//! (keyward never changes a key's expiry itself, so nothing else notices).

use crate::both;
use crate::helpers::{Backend, TestApp};
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use std::time::Instant;

const POLICY: &str = "/v2/enterprise.key_policy.update";

/// A key of the owner's tenant expiring `in_days` from now, created through the API; (key_id, secret).
fn key_expiring(app: &TestApp, token: &str, in_days: i64) -> (String, String) {
    let expires_at = (Utc::now() + Duration::days(in_days)).to_rfc3339();
    let body = json!({"key_type": "KEY_TYPE_SIEM", "label": "expiring key", "expires_at": expires_at});
    let r = app.post("/v2/enterprise.key.create", &[("Authorization", &format!("Bearer {token}"))], &body);
    let b = r.ok();
    (b["key"]["key_id"].as_str().unwrap().to_string(), b["secret"].as_str().unwrap().to_string())
}

/// Moves a key's expiry to `from_now` (test only: see the module comment).
fn move_expiry(app: &TestApp, key_id: &str, from_now: Duration) {
    let at = (Utc::now() + from_now).naive_utc().format("%Y-%m-%d %H:%M:%S%.6f");
    app.exec_sql(&format!("UPDATE api_keys SET expires_at = '{at}' WHERE id = '{key_id}'"));
}

/// keyward whose own notice job waits a day between passes: this test's
/// passes are the only ones, so their reports count everything.
fn spawn(b: Backend) -> TestApp {
    TestApp::spawn_with(b, &[("KEYWARD_NOTICE_INTERVAL_MS", "86400000")])
}

/// One pass now, as `keyward audit notices` runs it.
fn pass(app: &TestApp) -> Value {
    let report = keyward::admin::notices(&mut app.db()).unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    serde_json::to_value(report).unwrap()
}

/// Every event of a chain (the tenant's), straight from the database.
fn chain_events(app: &TestApp, chain: &str) -> Vec<Value> {
    let mut conn = app.db();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let rows = keyward::db::store::chain_events_after(&mut conn, chain, after, 1000).unwrap();
        let Some(last) = rows.last() else { return out };
        after = last.seq;
        out.extend(rows.iter().map(keyward::audit::event_json));
    }
}

/// The notice events (`expiring`, `expired`) of `key_id` in `chain`.
fn notices_of(app: &TestApp, chain: &str, key_id: &str) -> Vec<Value> {
    chain_events(app, chain)
        .into_iter()
        .filter(|e| {
            let op = e["operation"].as_str().unwrap();
            (op == "enterprise.key.expiring" || op == "enterprise.key.expired")
                && e["metadata"]["key_id"] == json!(key_id)
        })
        .collect()
}

/// The `key_notices` rows of a key, sorted.
fn recorded(app: &TestApp, key_id: &str) -> Vec<String> {
    let mut kinds = app.query_strings(&format!("SELECT kind AS v FROM key_notices WHERE key_id = '{key_id}'"));
    kinds.sort();
    kinds
}

fn policy_is_set_shown_validated_and_audited(b: Backend) {
    let app = spawn(b);
    let r = app.owner_get("/v2/enterprise.key_policy.detail");
    assert_eq!(r.ok()["policy"]["key_expiry_notice_days"], json!([14, 1]), "the default");

    let r = app.owner_post(POLICY, &json!({"key_expiry_notice_days": [1, 30, 7]}));
    assert_eq!(r.ok()["policy"]["key_expiry_notice_days"], json!([30, 7, 1]), "largest first");
    let event = crate::helpers::event_of(&app, &r);
    assert_eq!(event["metadata"]["key_expiry_notice_days"], json!({"old": [14, 1], "new": [30, 7, 1]}));
    // Other fields leave it as it is.
    let r = app.owner_post(POLICY, &json!({"siem_tier2_enabled": true}));
    assert_eq!(r.ok()["policy"]["key_expiry_notice_days"], json!([30, 7, 1]));

    for bad in [
        json!([0]),
        json!([366]),
        json!([-1]),
        json!([7, 7]),
        json!([1, 2, 3, 4, 5, 6]),
        json!([1.5]),
        json!(["14"]),
        json!("14"),
        json!(14),
        json!({"days": 14}),
        json!([1e300]),
        json!([[14]]),
    ] {
        let r = app.owner_post(POLICY, &json!({"key_expiry_notice_days": bad, "siem_tier2_enabled": false}));
        crate::helpers::assert_error(&app, &r, 400, "invalid_argument");
        assert!(r.text.contains("key_expiry_notice_days"), "{bad}: {}", r.text);
    }
    // Nothing of a refused update was written.
    let r = app.owner_get("/v2/enterprise.key_policy.detail");
    assert_eq!(r.ok()["policy"]["key_expiry_notice_days"], json!([30, 7, 1]));
    assert_eq!(r.ok()["policy"]["siem_tier2_enabled"], json!(true));

    // An ADMIN may read the policy but not change it.
    let (_, admin) = app.add_member(&app.tenant_id, "ADMIN");
    let r = app.post(POLICY, &[("Authorization", &format!("Bearer {admin}"))], &json!({"key_expiry_notice_days": []}));
    assert_eq!(r.status, 403, "{}", r.text);
}
both!(policy_is_set_shown_validated_and_audited);

fn a_key_expiring_in_ten_days_gets_one_14_day_notice_and_no_1_day_notice(b: Backend) {
    let app = spawn(b);
    let (key_id, secret) = key_expiring(&app, &app.owner_token, 10);
    let (later, _) = key_expiring(&app, &app.owner_token, 30);
    let report = pass(&app);
    assert_eq!(report["expiring"], json!(1), "{report}");
    for _ in 0..3 {
        assert_eq!(pass(&app)["expiring"], json!(0), "once");
    }
    let notices = notices_of(&app, &app.tenant_id, &key_id);
    assert_eq!(notices.len(), 1, "{notices:?}");
    let e = &notices[0];
    assert_eq!(e["operation"], json!("enterprise.key.expiring"));
    assert_eq!(e["outcome"], json!("ALLOWED"));
    assert_eq!(e["actor"], json!({"type": "SERVICE", "id": "notice-job"}));
    assert_eq!(e["key_id"], json!(key_id));
    let md = &e["metadata"];
    assert_eq!(md["key_id"], json!(key_id));
    assert_eq!(md["threshold"], json!(14));
    assert_eq!(md["key_type"], json!("KEY_TYPE_SIEM"));
    assert_eq!(md["label"], json!("expiring key"));
    assert!(md["days_left"] == json!(9) || md["days_left"] == json!(10), "{md}");
    assert!(md["expires_at"].is_string());
    assert_eq!(recorded(&app, &key_id), vec!["expiring:14"]);
    assert!(notices_of(&app, &app.tenant_id, &later).is_empty(), "30 days out: nothing yet");

    // The event holds no secret, nor does anything stored about the notice.
    assert!(!e.to_string().contains(&secret));
    assert!(!app.dump_database().contains(&secret));
    // The tenant sees it in its audit log, as any other event.
    let listed = app.audit_events();
    assert!(listed.iter().any(|l| l["event_id"] == e["event_id"]), "listed with the tenant's events");
}
both!(a_key_expiring_in_ten_days_gets_one_14_day_notice_and_no_1_day_notice);

fn thresholds_crossed_while_down_give_one_notice_for_the_smallest(b: Backend) {
    let app = spawn(b);
    let (key_id, _) = key_expiring(&app, &app.owner_token, 20);
    assert_eq!(pass(&app)["expiring"], json!(0), "20 days out");
    // No pass ran while the key went past 14 and 1 days left.
    move_expiry(&app, &key_id, Duration::hours(12));
    assert_eq!(pass(&app)["expiring"], json!(1));
    let notices = notices_of(&app, &app.tenant_id, &key_id);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["metadata"]["threshold"], json!(1));
    assert_eq!(notices[0]["metadata"]["days_left"], json!(0));
    assert_eq!(recorded(&app, &key_id), vec!["expiring:1", "expiring:14"], "both recorded, one sent");
    assert_eq!(pass(&app)["expiring"], json!(0));

    // A key that got its 14-day notice gets the 1-day one when it comes.
    let (second, _) = key_expiring(&app, &app.owner_token, 5);
    pass(&app);
    move_expiry(&app, &second, Duration::hours(20));
    pass(&app);
    let thresholds: Vec<Value> =
        notices_of(&app, &app.tenant_id, &second).iter().map(|e| e["metadata"]["threshold"].clone()).collect();
    assert_eq!(thresholds, vec![json!(14), json!(1)]);
}
both!(thresholds_crossed_while_down_give_one_notice_for_the_smallest);

fn an_expired_key_gets_one_expired_notice_and_revoked_keys_get_none(b: Backend) {
    let app = spawn(b);
    let (expired, _) = key_expiring(&app, &app.owner_token, 3);
    let (revoked, _) = key_expiring(&app, &app.owner_token, 3);
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": revoked, "reason": "not needed"})).ok();
    let (revoked_later, _) = key_expiring(&app, &app.owner_token, 3);
    app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": revoked_later, "reason": "gone"})).ok();
    move_expiry(&app, &expired, Duration::hours(-1));
    move_expiry(&app, &revoked_later, Duration::hours(-1));

    let report = pass(&app);
    assert_eq!(report["expired"], json!(1), "{report}");
    assert_eq!(report["expiring"], json!(0), "an expired key is not told it will expire");
    pass(&app);
    let notices = notices_of(&app, &app.tenant_id, &expired);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["operation"], json!("enterprise.key.expired"));
    assert_eq!(notices[0]["metadata"]["key_id"], json!(expired));
    assert!(notices[0]["metadata"]["days_left"].as_i64().unwrap() <= 0);
    assert_eq!(recorded(&app, &expired), vec!["expired"]);
    for key in [&revoked, &revoked_later] {
        assert!(notices_of(&app, &app.tenant_id, key).is_empty(), "a revoked key gets no notice");
        assert!(recorded(&app, key).is_empty());
    }
}
both!(an_expired_key_gets_one_expired_notice_and_revoked_keys_get_none);

fn an_empty_list_turns_notices_off(b: Backend) {
    let app = spawn(b);
    app.owner_post(POLICY, &json!({"key_expiry_notice_days": []})).ok();
    let (soon, _) = key_expiring(&app, &app.owner_token, 2);
    let (gone, _) = key_expiring(&app, &app.owner_token, 2);
    move_expiry(&app, &gone, Duration::hours(-1));
    let report = pass(&app);
    assert_eq!((report["expiring"].clone(), report["expired"].clone()), (json!(0), json!(0)), "{report}");
    assert!(recorded(&app, &soon).is_empty() && recorded(&app, &gone).is_empty());

    // Turned on again, the notices due now are written.
    app.owner_post(POLICY, &json!({"key_expiry_notice_days": [3]})).ok();
    let report = pass(&app);
    assert_eq!((report["expiring"].clone(), report["expired"].clone()), (json!(1), json!(1)), "{report}");
    assert_eq!(notices_of(&app, &app.tenant_id, &soon)[0]["metadata"]["threshold"], json!(3));
}
both!(an_empty_list_turns_notices_off);

/// Waits (polling, 20 s at most) until `key_id` has `n` notice events.
#[track_caller]
fn await_notices(app: &TestApp, key_id: &str, n: usize) {
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while notices_of(app, &app.tenant_id, key_id).len() < n {
        assert!(Instant::now() < deadline, "no notice for {key_id} from the background job");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn the_background_job_never_repeats_a_notice_across_restarts(b: Backend) {
    let mut app = TestApp::spawn_with(b, &[("KEYWARD_NOTICE_INTERVAL_MS", "20")]);
    let (key_id, _) = key_expiring(&app, &app.owner_token, 10);
    await_notices(&app, &key_id, 1);
    app.stop();
    app.start();
    // A key noticed after the restart proves passes ran on the same database since.
    let (marker, _) = key_expiring(&app, &app.owner_token, 10);
    await_notices(&app, &marker, 1);
    assert_eq!(notices_of(&app, &app.tenant_id, &key_id).len(), 1, "not repeated after the restart");
    // Passes of the CLI beside the running job repeat nothing either.
    pass(&app);
    assert_eq!(notices_of(&app, &app.tenant_id, &key_id).len(), 1);
    assert_eq!(notices_of(&app, &app.tenant_id, &marker).len(), 1);
}
both!(the_background_job_never_repeats_a_notice_across_restarts);

fn two_instances_write_each_notice_exactly_once(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_NOTICE_INTERVAL_MS", "10")]);
    let sibling = app.sibling();
    // Both instances' jobs, and passes of this process on their own
    // connections, race for the same notices.
    let mut keys = Vec::new();
    for i in 0..12 {
        let (id, _) = key_expiring(&app, &app.owner_token, if i % 2 == 0 { 10 } else { 2 });
        keys.push(id);
    }
    let (expired, _) = key_expiring(&app, &app.owner_token, 2);
    move_expiry(&app, &expired, Duration::hours(-1));
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..3 {
                    pass(&app);
                }
            });
        }
    });
    for k in &keys {
        await_notices(&app, k, 1);
    }
    await_notices(&app, &expired, 1);
    // Let both jobs run more passes: a key noticed now was noticed after every key above.
    let (marker, _) = key_expiring(&sibling, &app.owner_token, 10);
    await_notices(&app, &marker, 1);
    let (marker2, _) = key_expiring(&app, &app.owner_token, 10);
    await_notices(&app, &marker2, 1);
    for k in keys.iter().chain([&marker]) {
        let n = notices_of(&app, &app.tenant_id, k);
        assert_eq!(n.len(), 1, "exactly one notice for {k}: {n:?}");
    }
    // The expired key may have had its 14-day notice before its expiry was
    // moved (the jobs run every 10 ms); each kind came once.
    let kinds: Vec<Value> = notices_of(&app, &app.tenant_id, &expired).iter().map(|e| e["operation"].clone()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == json!("enterprise.key.expired")).count(), 1, "{kinds:?}");
    assert!(kinds.iter().filter(|k| **k == json!("enterprise.key.expiring")).count() <= 1, "{kinds:?}");
    // Each threshold crossed is recorded once (the primary key), whichever instance wrote it.
    let rows = app.query_strings("SELECT key_id || ' ' || kind AS v FROM key_notices");
    let mut unique = rows.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rows.len());
    // The chain still verifies.
    let mut conn = app.db();
    let report = keyward::admin::verify(&mut conn, Some(&app.tenant_id)).unwrap();
    assert!(report.iter().all(|c| c.valid), "{report:?}");
    drop(sibling);
}
both!(two_instances_write_each_notice_exactly_once);

fn lifecycle_events_carry_the_key_id(b: Backend) {
    let app = spawn(b);
    let r = app.owner_post("/v2/enterprise.key.create", &json!({"key_type": "KEY_TYPE_SIEM", "label": "siem"}));
    let key_id = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    assert_eq!(crate::helpers::event_of(&app, &r)["metadata"]["key_id"], json!(key_id));
    let r = app.owner_post("/v2/enterprise.key.update", &json!({"key_id": key_id, "label": "siem 2"}));
    assert_eq!(crate::helpers::event_of(&app, &r)["metadata"]["key_id"], json!(key_id));
    let r = app.owner_post("/v2/enterprise.key.rotate", &json!({"key_id": key_id}));
    let successor = r.ok()["key"]["key_id"].as_str().unwrap().to_string();
    let md = crate::helpers::event_of(&app, &r)["metadata"].clone();
    assert_eq!((md["key_id"].clone(), md["new_key_id"].clone()), (json!(key_id), json!(successor)));
    let r = app.owner_post("/v2/enterprise.key.revoke", &json!({"key_id": successor, "reason": "done"}));
    assert_eq!(crate::helpers::event_of(&app, &r)["metadata"]["key_id"], json!(successor));
}
both!(lifecycle_events_carry_the_key_id);

/// `keyward audit notices` beside a running server: one pass, its report on
/// stdout as one JSON line, nothing repeated by a second run.
fn the_cli_runs_one_pass(b: Backend) {
    let app = spawn(b);
    let (key_id, _) = key_expiring(&app, &app.owner_token, 10);
    let s = app.settings();
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["audit", "notices"])
            .env_clear()
            .env("KEYWARD_DATABASE_URL", &app.database_url)
            .env("KEYWARD_KEY_PEPPER", s.key_pepper.expose())
            .env("KEYWARD_CONSOLE_JWT_SECRET", s.console_jwt_secret.as_ref().unwrap().expose())
            .env("KEYWARD_CHECKPOINT_KEY", s.checkpoint_key.expose())
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    assert_eq!(run(), json!({"expiring": 1, "expired": 0, "already_sent": 0, "failed": []}));
    assert_eq!(run()["expiring"], json!(0));
    let notices = notices_of(&app, &app.tenant_id, &key_id);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["actor"]["id"], json!("notice-job"));
}
both!(the_cli_runs_one_pass);

/// A key issued before the tenant tightened its maximum lifetime ends when
/// the policy says, not at its own expiry: its notices follow that end, and
/// say so (`expires_by: tenant_policy`). (Its creation time is moved back in
/// the database, as expiries are elsewhere here.)
fn a_tightened_lifetime_policy_brings_its_own_notices(b: Backend) {
    let app = spawn(b);
    let (key_id, _) = key_expiring(&app, &app.owner_token, 300);
    let created = |days_ago: i64| {
        let at = (Utc::now() - Duration::days(days_ago)).naive_utc().format("%Y-%m-%d %H:%M:%S%.6f");
        app.exec_sql(&format!("UPDATE api_keys SET created_at = '{at}' WHERE id = '{key_id}'"));
    };
    created(10);
    assert_eq!(pass(&app)["expiring"], json!(0), "300 days out: nothing yet");
    app.owner_post(POLICY, &json!({"max_lifetime_days": {"KEY_TYPE_SIEM": 20}})).ok();
    assert_eq!(pass(&app)["expiring"], json!(1), "the policy ends it in 10 days");
    let notices = notices_of(&app, &app.tenant_id, &key_id);
    assert_eq!(notices.len(), 1, "{notices:?}");
    let md = &notices[0]["metadata"];
    assert_eq!((md["threshold"].clone(), md["expires_by"].clone()), (json!(14), json!("tenant_policy")), "{md}");
    assert_eq!(md["days_left"], json!(9), "{md}");

    created(25);
    let report = pass(&app);
    assert_eq!((report["expired"].clone(), report["expiring"].clone()), (json!(1), json!(0)), "{report}");
    let notices = notices_of(&app, &app.tenant_id, &key_id);
    assert_eq!(notices[1]["operation"], json!("enterprise.key.expired"));
    assert_eq!(notices[1]["metadata"]["expires_by"], json!("tenant_policy"));
    assert_eq!(pass(&app)["expired"], json!(0), "once");
}
both!(a_tightened_lifetime_policy_brings_its_own_notices);

/// The background job's notices are counted in `/metrics`, by kind, as it writes them.
fn the_jobs_notices_are_counted_in_metrics(b: Backend) {
    let app = TestApp::spawn_with(b, &[("KEYWARD_NOTICE_INTERVAL_MS", "20")]);
    let (soon, _) = key_expiring(&app, &app.owner_token, 10);
    let (gone, _) = key_expiring(&app, &app.owner_token, 2);
    move_expiry(&app, &gone, Duration::hours(-1));
    await_notices(&app, &soon, 1);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let expired_written =
        || notices_of(&app, &app.tenant_id, &gone).iter().any(|e| e["operation"] == json!("enterprise.key.expired"));
    while !expired_written() {
        assert!(Instant::now() < deadline, "no expired notice for {gone}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Every notice event of the chain, by kind: this instance's job wrote them all.
    let written =
        |op: &str| chain_events(&app, &app.tenant_id).iter().filter(|e| e["operation"] == json!(op)).count() as u64;
    let (expiring, expired) = (written("enterprise.key.expiring"), written("enterprise.key.expired"));
    assert_eq!((expiring >= 1, expired), (true, 1));
    let counted = |kind: &str| {
        let metrics = app.get("/metrics", &[]).text;
        let line = format!("keyward_key_notices_total{{kind=\"{kind}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).map(|n| n.trim().parse::<u64>().unwrap())
    };
    // The pass that wrote the last event counts it once it ends.
    while (counted("expiring"), counted("expired")) != (Some(expiring), Some(expired)) {
        assert!(
            Instant::now() < deadline,
            "metrics count {:?} expiring and {:?} expired, the chain holds {expiring} and {expired}",
            counted("expiring"),
            counted("expired")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(app.get("/metrics", &[]).text.contains("keyward_key_notice_failures_total 0"));
}
both!(the_jobs_notices_are_counted_in_metrics);
