//! The background verifier: runs are recorded and reported by
//! `enterprise.audit.verify`, progress shows in `/metrics`, a tampered event
//! makes a failed run (and the next one too), and the request itself reads
//! nothing of the chain.

use crate::both;
use crate::helpers::{Backend, TestApp};
use diesel::prelude::*;
use keyward::db::models::{now, to_naive};
use keyward::db::store;
use serde_json::json;

/// The value of a metric line starting with `name` (labels included), if any.
fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.get("/metrics", &[]).text;
    text.lines().find(|l| l.starts_with(&format!("{name} "))).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Polls `name` until `ok` holds (a pass ends after the chain a test waited for).
#[track_caller]
fn metric_until(app: &TestApp, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match metric(app, name) {
            Some(v) if ok(v) => return v,
            v => assert!(std::time::Instant::now() < deadline, "{name} stays at {v:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn a_run_completes_and_is_reported_with_its_progress_in_metrics(b: Backend) {
    let app = TestApp::spawn(b);
    app.create_key("KEY_TYPE_SIEM");
    let v = app.verification();
    assert_eq!(v["valid"], json!(true), "{v}");
    assert_eq!(v["state"], json!("passed"), "{v}");
    assert_eq!(v["complete"], json!(true), "{v}");
    assert!(v["finished_at"].is_string() && v["started_at"].is_string(), "{v}");
    let through = v["verified_through"].as_i64().unwrap();
    assert!(through >= 2, "{v}");
    assert_eq!(v["head_at_start"], json!(through), "{v}");
    assert_eq!(v["verified_from"], json!(0), "a full run: {v}");
    assert_eq!(v["events_read"], json!(through), "{v}");
    assert_eq!(v["problems"], json!([]));
    assert_eq!(v["tree_problems"], json!([]));
    assert!(v["head_seq"].as_i64().unwrap() >= through);

    assert!(metric(&app, "keyward_audit_verify_events_total").unwrap() >= through as f64);
    assert!(metric(&app, "keyward_audit_verify_runs_total{state=\"passed\"}").unwrap() >= 1.0);
    metric_until(&app, "keyward_audit_verify_last_completed_seconds", |t| t > 1.7e9);
    assert_eq!(metric(&app, "keyward_audit_verify_failing_chains"), Some(0.0));
    // A pass's progress: what it proved against what it set out to (the tenant's chain and `_system`).
    // Read while a pass holds them: a new pass starts both at 0 and sets its target first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let target = metric(&app, "keyward_audit_verify_target").unwrap();
        let done = metric(&app, "keyward_audit_verify_through").unwrap();
        if target >= through as f64 && done <= target {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{done} / {target}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(metric(&app, "keyward_audit_verify_running").is_some());
}
both!(a_run_completes_and_is_reported_with_its_progress_in_metrics);

fn a_tampered_event_is_a_failed_run_until_repaired(b: Backend) {
    let app = TestApp::spawn(b);
    app.create_key("KEY_TYPE_SIEM");
    assert_eq!(app.verification()["valid"], json!(true));
    let chain = app.tenant_id.clone();
    diesel::sql_query(format!("UPDATE audit_events SET status_code = 299 WHERE chain_id = '{chain}' AND seq = 2"))
        .execute(&mut app.db())
        .unwrap();
    let v = app.verification();
    assert_eq!(v["valid"], json!(false), "{v}");
    assert_eq!(v["state"], json!("failed"), "{v}");
    assert_eq!(v["complete"], json!(false), "{v}");
    assert_eq!(v["problems"][0]["seq"], json!(2), "{v}");
    assert_eq!(v["tree_problems"][0]["kind"], json!("altered"), "{v}");
    assert!(v["verified_through"].as_i64().unwrap() < 2, "not proved past the problem: {v}");
    // A later run does not paper over it.
    let again = app.verification();
    assert!(again["run_id"].as_i64() > v["run_id"].as_i64());
    assert_eq!(again["valid"], json!(false), "{again}");
    assert_eq!(again["problems"][0]["seq"], json!(2), "{again}");
    assert!(metric(&app, "keyward_audit_verify_runs_total{state=\"failed\"}").unwrap() >= 2.0);
    metric_until(&app, "keyward_audit_verify_failing_chains", |n| n >= 1.0);
}
both!(a_tampered_event_is_a_failed_run_until_repaired);

fn the_request_answers_from_the_runs_table_and_reads_no_event(b: Backend) {
    // No run for a day: whatever the request answers, it did not compute it.
    let app = TestApp::spawn_with(b, &[("KEYWARD_VERIFY_INTERVAL_MS", "86400000")]);
    app.create_key("KEY_TYPE_SIEM");
    let v = app.owner_get("/v2/enterprise.audit.verify").ok()["verification"].clone();
    assert_eq!(v["valid"], json!(null), "no run completed yet: {v}");
    assert_eq!(v["state"], json!(null), "{v}");
    assert_eq!(v["verified_through"], json!(0), "{v}");
    assert_eq!(v["current_run"], json!(null), "{v}");
    assert!(v["head_seq"].as_i64().unwrap() >= 2, "{v}");

    // A run under way (as another instance records it) over a chain far
    // larger than this one: answered as recorded.
    let mut conn = app.db();
    let chain = app.tenant_id.as_str();
    let later = to_naive(now() + chrono::Duration::minutes(5));
    assert!(store::take_verification_lease(&mut conn, chain, "elsewhere", to_naive(now()), later).unwrap());
    let run_id =
        store::start_verification_run(&mut conn, chain, "elsewhere", to_naive(now()), 0, 2_000_000).unwrap().unwrap();
    store::note_verification_progress(&mut conn, chain, "elsewhere", 700_000, 700_000, later).unwrap();
    let v = app.owner_get("/v2/enterprise.audit.verify").ok()["verification"].clone();
    assert_eq!(v["valid"], json!(null), "{v}");
    assert_eq!(
        v["current_run"],
        json!({"run_id": run_id, "started_at": v["current_run"]["started_at"], "verified_from": 0,
               "verified_through": 700_000, "head_at_start": 2_000_000, "events_read": 700_000}),
        "{v}"
    );
    // Its end: the last completed run, as recorded.
    let end = store::RunEnd {
        state: keyward::domain::verification::RunState::Passed,
        finished_at: to_naive(now()),
        events_read: 2_000_000,
        verified_through: 2_000_000,
        problems: r#"{"problems":[],"tree_problems":[]}"#,
    };
    store::finish_verification_run(&mut conn, chain, "elsewhere", &end).unwrap();
    let v = app.owner_get("/v2/enterprise.audit.verify").ok()["verification"].clone();
    assert_eq!(v["valid"], json!(true), "{v}");
    assert_eq!(v["run_id"], json!(run_id), "{v}");
    assert_eq!(v["events_read"], json!(2_000_000), "{v}");
    assert_eq!(v["verified_through"], json!(2_000_000), "{v}");
    assert_eq!(v["current_run"], json!(null), "{v}");
    // Another instance's unexpired lease keeps this one off the chain.
    assert!(store::take_verification_lease(&mut conn, chain, "elsewhere", to_naive(now()), later).unwrap());
    assert!(!store::take_verification_lease(&mut conn, chain, "here", to_naive(now()), later).unwrap());
    // Once it expired, the chain is taken over.
    let after = to_naive(now() + chrono::Duration::minutes(6));
    assert!(store::take_verification_lease(&mut conn, chain, "here", after, after).unwrap());
}
both!(the_request_answers_from_the_runs_table_and_reads_no_event);

fn a_gap_anywhere_in_a_page_is_found_where_it_is(b: Backend) {
    // The verifier reads 1,000 events a page: each gap below falls at a
    // different place in a page (its start, middle, end, the next one's),
    // where a reader that splits or prefetches pages could skip or repeat.
    let app = TestApp::spawn(b);
    let chain = app.tenant_id.clone();
    let drafts = (0..2_400)
        .map(|i| {
            let mut d = keyward::audit::EventDraft::new(keyward::domain::authz::Op::AuthWhoami, format!("req_gap_{i}"));
            d.tenant_id = Some(chain.clone());
            d.actor_type = keyward::audit::ActorType::ApiKey;
            d
        })
        .collect();
    keyward::audit::writer::append_now(&mut app.db(), drafts).unwrap();
    assert_eq!(app.verification()["valid"], json!(true));
    for gap in [1, 300, 1_000, 1_001, 1_500, 1_501, 1_999, 2_000] {
        let mut conn = app.db();
        let row = store::chain_events_after(&mut conn, &chain, gap - 1, 1).unwrap().pop().unwrap();
        assert_eq!(row.seq, gap);
        diesel::sql_query(format!("DELETE FROM audit_events WHERE chain_id = '{chain}' AND seq = {gap}"))
            .execute(&mut conn)
            .unwrap();
        let v = app.verification();
        assert_eq!(v["valid"], json!(false), "gap at {gap}: {v}");
        assert_eq!(v["tree_problems"][0]["kind"], json!("missing"), "gap at {gap}: {v}");
        assert_eq!(v["tree_problems"][0]["seq"], json!(gap), "gap at {gap}: {v}");
        // Every event there is read once: none twice, none skipped.
        assert_eq!(v["events_read"], json!(v["head_at_start"].as_i64().unwrap() - 1), "gap at {gap}: {v}");
        diesel::insert_into(keyward::db::schema::audit_events::table).values(&row).execute(&mut conn).unwrap();
    }
    assert_eq!(app.verification()["valid"], json!(true), "every gap filled again");
}
both!(a_gap_anywhere_in_a_page_is_found_where_it_is);
