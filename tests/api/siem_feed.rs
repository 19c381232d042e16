//! The SIEM feed (`enterprise.compliance.event.list`): a poller following
//! `next_cursor` sees every event of its tenant exactly once, in order, also
//! while events are written concurrently; Tier 2 payloads need the agreement.

use crate::both;
use crate::helpers::{assert_refused, key_get, Backend, Resp, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

const FEED: &str = "/v2/enterprise.compliance.event.list";
const KEY_REFUSED: &str = "Invalid or missing enterprise API key";

// ------------------------------------------------------------------ helpers

/// One page of the feed: (events, next_cursor, has_more, the response).
#[track_caller]
fn page(app: &TestApp, secret: &str, query: &str) -> (Vec<Value>, String, bool, Resp) {
    let r = key_get(app, secret, &format!("{FEED}?{query}"));
    let body = r.ok().clone();
    let events = body["events"].as_array().expect("events").clone();
    let cursor =
        body["next_cursor"].as_str().unwrap_or_else(|| panic!("next_cursor always present: {body}")).to_string();
    let more = body["has_more"].as_bool().unwrap_or_else(|| panic!("has_more: {body}"));
    (events, cursor, more, r)
}

/// Follows the feed from the start (or `cursor`) until `has_more` is false.
/// Returns the events, the last cursor and the request id of the last poll.
pub(crate) fn follow(
    app: &TestApp,
    secret: &str,
    extra: &str,
    limit: usize,
    cursor: Option<String>,
) -> (Vec<Value>, String, String) {
    let mut out = Vec::new();
    let mut cursor = cursor;
    loop {
        let mut q = format!("limit={limit}{extra}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (events, next, more, r) = page(app, secret, &q);
        assert!(events.len() <= limit, "a page holds at most limit events");
        if more {
            assert_eq!(events.len(), limit, "a page before the end is full");
        }
        out.extend(events);
        cursor = Some(next.clone());
        if !more {
            return (out, next, r.header("x-request-id").unwrap());
        }
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect()
}

fn db_event_ids(app: &TestApp) -> HashSet<String> {
    app.query_strings(&format!(
        "SELECT {} AS v FROM audit_events WHERE chain_id = '{}'",
        app.event_id_sql("event_id"),
        app.tenant_id
    ))
    .into_iter()
    .collect()
}

fn event_id_of_request(app: &TestApp, rid: &str) -> String {
    let v = app.query_strings(&format!(
        "SELECT {} AS v FROM audit_events WHERE request_id = '{rid}'",
        app.event_id_sql("event_id")
    ));
    assert_eq!(v.len(), 1, "one event for {rid}");
    v[0].clone()
}

/// Strictly increasing seq, no duplicate event ids, every event the tenant's.
#[track_caller]
fn assert_ordered_unique(app: &TestApp, events: &[Value]) {
    let mut last = 0;
    let mut seen = HashSet::new();
    for e in events {
        let seq = e["seq"].as_i64().unwrap();
        assert!(seq > last, "seq not strictly increasing: {last} then {seq}");
        last = seq;
        assert!(seen.insert(e["event_id"].as_str().unwrap().to_string()), "duplicate {e}");
        assert_eq!(e["tenant_id"], json!(app.tenant_id), "{e}");
    }
}

/// Makes some varied events: key lifecycle, reads, denials.
fn make_events(app: &TestApp, n: usize) {
    let (_, k) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");
    for i in 0..n {
        match i % 3 {
            0 => {
                key_get(app, &k, "/v2/auth.whoami").ok();
            }
            1 => {
                app.owner_get("/v2/enterprise.key.list").ok();
            }
            _ => {
                let r = key_get(app, &k, "/v2/team.user.list");
                assert_eq!(r.status, 401);
            }
        }
    }
}

// ------------------------------------------------------------------ following the cursor

fn poller_following_next_cursor_sees_every_event_once(b: Backend) {
    let app = TestApp::spawn(b);
    let (siem_id, siem) = app.create_key("KEY_TYPE_SIEM");
    make_events(&app, 30);
    // Another tenant's events never show.
    let (_, _, other_owner) = app.new_tenant("Globex");
    app.post(
        "/v2/enterprise.key.create",
        &[("Authorization", &format!("Bearer {other_owner}"))],
        &json!({"key_type": "KEY_TYPE_SIEM", "label": "globex siem"}),
    )
    .ok();

    let (events, cursor, last_rid) = follow(&app, &siem, "", 7, None);
    assert_ordered_unique(&app, &events);
    assert!(events.len() > 30, "{}", events.len());
    // The chain is gapless: seqs 1..=n.
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    // Tier 1 only: no payload field without include_payload.
    for e in &events {
        assert!(e.get("payload").is_none(), "{e}");
        assert!(e["metadata"].is_object(), "{e}");
    }
    // Everything in the database but the last poll's own event (committed after its read).
    let last_poll = event_id_of_request(&app, &last_rid);
    let mut want = db_event_ids(&app);
    assert!(want.remove(&last_poll));
    assert_eq!(ids(&events).into_iter().collect::<HashSet<_>>(), want);
    assert_eq!(ids(&events).len(), want.len());

    // The polls themselves are audited, as the SIEM key's events.
    let polls: Vec<&Value> = events.iter().filter(|e| e["operation"] == "enterprise.compliance.event.list").collect();
    assert!(!polls.is_empty());
    for p in polls {
        assert_eq!(p["key_id"], json!(siem_id));
        assert_eq!(p["actor"]["type"], "API_KEY");
    }

    // Resuming from the last cursor yields exactly what happened since: the last poll.
    let (resumed, cursor2, more, _) = page(&app, &siem, &format!("cursor={cursor}"));
    assert!(!more);
    assert_eq!(ids(&resumed), vec![last_poll.clone()]);
    assert_eq!(resumed[0]["request_id"], json!(last_rid));
    assert_ne!(cursor2, cursor);
    // Caught up with nothing new (until in the past): the cursor is still there, unchanged.
    let (none, cursor3, more, _) = page(&app, &siem, &format!("cursor={cursor2}&until=2000-01-01T00:00:00Z"));
    assert!(none.is_empty());
    assert!(!more);
    assert_eq!(cursor3, cursor2);

    // One big page gives the same events as the small ones.
    let (big, _, more, _) = page(&app, &siem, "limit=1000");
    assert!(!more);
    assert_eq!(ids(&big[..events.len()]), ids(&events));
}
both!(poller_following_next_cursor_sees_every_event_once);

// ------------------------------------------------------------------ since / until

fn since_and_until_filter_the_feed(b: Backend) {
    let app = TestApp::spawn(b);
    make_events(&app, 12);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let t = app.tenant_id.clone();
    // Back-date the first events into two bands (no sleeping).
    app.exec_sql(&format!(
        "UPDATE audit_events SET occurred_at = '2020-06-01 00:00:00' WHERE chain_id = '{t}' AND seq <= 3"
    ));
    app.exec_sql(&format!(
        "UPDATE audit_events SET occurred_at = '2022-06-01 00:00:00' WHERE chain_id = '{t}' AND seq > 3 AND seq <= 7"
    ));
    let seqs = |events: &[Value]| events.iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>();

    let (old, _, _) = follow(&app, &siem, "&until=2021-01-01T00:00:00Z", 2, None);
    assert_eq!(seqs(&old), [1, 2, 3]);
    let (mid, _, _) = follow(&app, &siem, "&since=2021-01-01T00:00:00Z&until=2023-01-01T00:00:00Z", 2, None);
    assert_eq!(seqs(&mid), [4, 5, 6, 7]);
    let (both_bands, _, _) = follow(&app, &siem, "&until=2023-01-01T00:00:00Z", 100, None);
    assert_eq!(seqs(&both_bands), [1, 2, 3, 4, 5, 6, 7]);
    // since is inclusive
    let (from_mid, _, _) = follow(&app, &siem, "&since=2022-06-01T00:00:00Z", 100, None);
    assert_eq!(from_mid[0]["seq"], 4);
    assert_ordered_unique(&app, &from_mid);
    assert!(from_mid.iter().all(|e| e["occurred_at"].as_str().unwrap() >= "2022-06-01T00:00:00"));
    let recent = follow(&app, &siem, "&since=2023-01-01T00:00:00Z", 100, None).0;
    assert_eq!(recent[0]["seq"], 8);
    // The same events as from_mid's from seq 8 on, plus the polls made since.
    assert_eq!(ids(&recent[..from_mid.len() - 4]), ids(&from_mid[4..]));
    // A filter with a cursor: the cursor still counts.
    let (after, _, _) = follow(&app, &siem, "&until=2023-01-01T00:00:00Z", 100, Some(old_cursor_after(&app, &siem)));
    assert_eq!(seqs(&after), [4, 5, 6, 7]);

    for bad in [
        "since=2021-01-01",
        "until=tomorrow",
        "since=2023-01-01T00:00:00Z&until=2021-01-01T00:00:00Z",
        "limit=0",
        "limit=1001",
        "include_payload=maybe",
        "operation=auth.whoami",
    ] {
        let r = key_get(&app, &siem, &format!("{FEED}?{bad}"));
        assert_refused(&app, &r, 400, "invalid_argument", "invalid_argument");
    }
}
both!(since_and_until_filter_the_feed);

/// The cursor after the first three events (a page of three).
fn old_cursor_after(app: &TestApp, siem: &str) -> String {
    let (events, cursor, more, _) = page(app, siem, "limit=3");
    assert_eq!(events.len(), 3);
    assert!(more);
    cursor
}

// ------------------------------------------------------------------ concurrency

fn concurrent_writers_poller_sees_every_event_exactly_once(b: Backend) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 200;
    let app = TestApp::spawn(b);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let (_, writer_key) = app.create_key("KEY_TYPE_TEAM_ASSET_AUDIT");

    let written = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let signal = (Mutex::new(()), Condvar::new());

    let (seen, last_rid) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..PER_WRITER {
                        let r = key_get(&app, &writer_key, "/v2/auth.whoami");
                        assert_eq!(r.status, 200, "{}", r.text);
                        let _guard = signal.0.lock().unwrap();
                        written.fetch_add(1, Ordering::SeqCst);
                        signal.1.notify_all();
                    }
                })
            })
            .collect();
        let poller = s.spawn(|| {
            let mut seen: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let mut q = "limit=100".to_string();
                if let Some(c) = &cursor {
                    q.push_str(&format!("&cursor={c}"));
                }
                let (events, next, more, r) = page(&app, &siem, &q);
                seen.extend(events);
                cursor = Some(next);
                if more {
                    continue;
                }
                if finished {
                    // Drained after every writer finished.
                    return (seen, r.header("x-request-id").unwrap());
                }
                // Caught up: wait (without sleeping) for a batch of new writes, or the end.
                let mut guard = signal.0.lock().unwrap();
                let mark = written.load(Ordering::SeqCst);
                while !done.load(Ordering::SeqCst) && written.load(Ordering::SeqCst) < mark + 100 {
                    guard = signal.1.wait(guard).unwrap();
                }
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        {
            let _guard = signal.0.lock().unwrap();
            done.store(true, Ordering::SeqCst);
            signal.1.notify_all();
        }
        poller.join().unwrap()
    });

    assert_ordered_unique(&app, &seen);
    let last_poll = event_id_of_request(&app, &last_rid);
    let mut want = db_event_ids(&app);
    assert!(want.remove(&last_poll));
    let got: HashSet<String> = ids(&seen).into_iter().collect();
    assert_eq!(got.len(), seen.len(), "no duplicates");
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    let whoamis = seen.iter().filter(|e| e["operation"] == "auth.whoami").count();
    assert_eq!(whoamis, WRITERS * PER_WRITER);
    assert!(want.len() < 2500, "{} events", want.len());
}
both!(concurrent_writers_poller_sees_every_event_exactly_once);

// ------------------------------------------------------------------ Tier 2

fn tier2_payload_needs_the_agreement_and_is_redacted(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let r = app.owner_post(
        "/v2/enterprise.key.create",
        &json!({"key_type": "KEY_TYPE_TEAM_ASSET_AUDIT", "label": "tier2 probe"}),
    );
    let created_rid = r.header("x-request-id").unwrap();
    let secret = r.ok()["secret"].as_str().unwrap().to_string();
    let key_id = r.body["key"]["key_id"].as_str().unwrap().to_string();
    // A secret pasted into a label is refused; its event must not keep it either.
    let r = app.owner_post(
        "/v2/enterprise.key.create",
        &json!({"key_type": "KEY_TYPE_TEAM_ASSET_AUDIT", "label": format!("oops {secret}")}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let pasted_rid = r.header("x-request-id").unwrap();
    // Rotation answers a new secret; it must not reach the feed either.
    let r = app.owner_post("/v2/enterprise.key.rotate", &json!({"key_id": key_id, "grace_seconds": 60}));
    let rotated = r.ok()["secret"].as_str().unwrap().to_string();

    // Without the agreement: refused, for include_payload=true only.
    let r = key_get(&app, &siem, &format!("{FEED}?include_payload=true"));
    assert_refused(&app, &r, 400, "failed_precondition", "failed_precondition");
    let (events, _, _) = follow(&app, &siem, "&include_payload=false", 100, None);
    assert!(events.iter().all(|e| e.get("payload").is_none()));

    let r = app.owner_post("/v2/enterprise.key_policy.update", &json!({"siem_tier2_enabled": true}));
    assert_eq!(r.ok()["policy"]["siem_tier2_enabled"], true);

    let (events, _, _) = follow(&app, &siem, "&include_payload=true", 100, None);
    let by_rid = |rid: &str| events.iter().find(|e| e["request_id"] == json!(rid)).cloned().expect("the event");
    let created = by_rid(&created_rid);
    assert_eq!(created["operation"], "enterprise.key.create");
    assert_eq!(created["payload"], json!({"key_type": "KEY_TYPE_TEAM_ASSET_AUDIT", "label": "tier2 probe"}));
    assert!(created["metadata"].is_object());
    let pasted = by_rid(&pasted_rid);
    assert_eq!(
        pasted["payload"]["label"], "oops [REDACTED]",
        "the secret is redacted, not the words around it: {pasted}"
    );
    // Reads without a body carry a null payload; every event has the field.
    assert!(events.iter().all(|e| e.get("payload").is_some()));
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&secret), "a secret leaked into the feed");
    assert!(!text.contains(&rotated), "a rotated secret leaked into the feed");
    assert!(!text.contains(&siem), "the SIEM key leaked into the feed");

    // Tier 1 only without include_payload, even with the agreement.
    let (events, _, _) = follow(&app, &siem, "", 100, None);
    assert!(events.iter().all(|e| e.get("payload").is_none()));
    assert!(events.iter().any(|e| e["request_id"] == json!(created_rid)));
}
both!(tier2_payload_needs_the_agreement_and_is_redacted);

// ------------------------------------------------------------------ refusals

fn feed_refuses_bad_cursors_and_other_callers(b: Backend) {
    let app = TestApp::spawn(b);
    let (_, siem) = app.create_key("KEY_TYPE_SIEM");
    let long = "a".repeat(100);
    let huge = "763a".to_string() + &"39".repeat(30);
    for bad in ["zz", "abc", "763a2d31", "7631", "not-a-cursor", long.as_str(), huge.as_str(), ""] {
        let r = key_get(&app, &siem, &format!("{FEED}?cursor={bad}"));
        if bad.is_empty() {
            // An empty cursor is no cursor or a bad one, never a 5xx.
            assert!(r.status == 200 || r.status == 400, "{}", r.text);
            continue;
        }
        assert_refused(&app, &r, 400, "invalid_argument", "invalid_argument");
    }
    for kt in
        ["KEY_TYPE_EDISCOVERY", "KEY_TYPE_TEAM_USER_MGMT", "KEY_TYPE_TEAM_ASSET_AUDIT", "KEY_TYPE_TEAM_ASSET_MGMT"]
    {
        let (key_id, secret) = app.create_key(kt);
        let r = key_get(&app, &secret, FEED);
        let e = assert_refused(&app, &r, 401, "unauthenticated", "type_mismatch");
        assert_eq!(r.body["error"]["message"], KEY_REFUSED);
        assert_eq!(e["key_id"], json!(key_id));
        assert!(r.body.get("events").is_none());
    }
    let r = app.get(FEED, &[]);
    assert_refused(&app, &r, 401, "unauthenticated", "missing");
    let r = app.owner_get(FEED);
    assert_refused(&app, &r, 401, "unauthenticated", "missing");
}
both!(feed_refuses_bad_cursors_and_other_callers);
