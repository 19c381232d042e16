//! SIEM sinks: where a tenant's audit events are pushed (a Standard Webhooks
//! receiver or Splunk HEC), which of them, and how a failing receiver is
//! retried. Pure rules: names, URLs, filters, backoff and the wire bodies.

use super::authz::{Unrouted, OPERATIONS};
use super::event::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// Where a sink delivers, and in which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SinkKind {
    /// POST per the Standard Webhooks specification, signed with a secret keyward generates.
    Webhook,
    /// Splunk's HTTP Event Collector, with the owner's HEC token.
    SplunkHec,
}

impl SinkKind {
    pub const ALL: [SinkKind; 2] = [SinkKind::Webhook, SinkKind::SplunkHec];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "WEBHOOK",
            SinkKind::SplunkHec => "SPLUNK_HEC",
        }
    }

    pub fn parse(s: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Whether a sink is still tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SinkState {
    Active,
    /// Failed for longer than the configured time: no longer tried until replayed.
    Dead,
}

impl SinkState {
    pub const ALL: [SinkState; 2] = [SinkState::Active, SinkState::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkState::Active => "ACTIVE",
            SinkState::Dead => "DEAD",
        }
    }

    pub fn parse(s: &str) -> Option<SinkState> {
        SinkState::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_TOKEN_CHARS: usize = 256;
pub const MAX_FILTER_ITEMS: usize = 200;
/// Events read and sent in one batch.
pub const BATCH_EVENTS: i64 = 100;
/// The longest wait between two tries of a failing sink.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// `last_error` is kept short: a reason, never a response body.
pub const MAX_ERROR_CHARS: usize = 200;

/// A sink's name: 1 to 100 characters, no control characters, not blank.
pub fn parse_name(name: &str) -> Result<String, String> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > MAX_NAME_CHARS {
        return Err(format!("name must be 1 to {MAX_NAME_CHARS} characters, not blank"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(name.to_string())
}

/// A receiver's URL: `https://` anywhere, `http://` only to a loopback host
/// (a receiver on the same machine, as in tests); no user info (credentials
/// go in the token or the signature, never in a URL that list shows), no
/// query (for the same reason), no fragment, at most 2048 bytes.
pub fn parse_url(raw: &str) -> Result<url::Url, String> {
    if raw.is_empty() || raw.len() > MAX_URL_BYTES {
        return Err(format!("url must be 1 to {MAX_URL_BYTES} bytes"));
    }
    // The URL parser silently drops tabs and newlines: refuse them instead.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url must not contain spaces or control characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("url is not a valid absolute URL: {e}"))?;
    let host = url.host().ok_or("url must name a host")?;
    let loopback = match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err("url must be https:// (http:// only to a loopback host)".into()),
        _ => return Err("url must be https://".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not hold a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("url must not have a fragment".into());
    }
    // Receivers that take an API key in the query (`?key=…`) would have it
    // stored and listed in clear: credentials go in the sealed token or secret.
    if url.query().is_some() {
        return Err("url must not have a query: a receiver's credential goes in token (Splunk HEC) or is the signing secret keyward makes (webhooks)".into());
    }
    Ok(url)
}

/// A Splunk HEC token as the owner gives it: printable ASCII, no spaces.
pub fn parse_hec_token(token: &str) -> Result<String, String> {
    let n = token.chars().count();
    if n == 0 || n > MAX_TOKEN_CHARS || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("token must be 1 to {MAX_TOKEN_CHARS} printable ASCII characters without spaces"));
    }
    Ok(token.to_string())
}

/// Every event kind's name: the operations of the table and keyward's own.
fn known_operation(name: &str) -> bool {
    OPERATIONS.iter().any(|o| o.name == name) || Unrouted::ALL.iter().any(|u| u.name() == name)
}

/// Which events a sink receives (None: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkFilter {
    pub operations: Option<Vec<String>>,
    pub outcomes: Option<Vec<Outcome>>,
}

impl SinkFilter {
    /// Checks the operation names (each an event kind keyward records).
    pub fn parse_operations(names: Option<Vec<String>>) -> Result<Option<Vec<String>>, String> {
        let Some(names) = names else { return Ok(None) };
        if names.is_empty() || names.len() > MAX_FILTER_ITEMS {
            return Err(format!(
                "filter_operations must hold 1 to {MAX_FILTER_ITEMS} operation names (null: every operation)"
            ));
        }
        for n in &names {
            if !known_operation(n) {
                let shown: String = n.chars().filter(|c| !c.is_control()).take(100).collect();
                return Err(format!("filter_operations: unknown operation `{shown}`"));
            }
        }
        let mut names = names;
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    pub fn parse_outcomes(names: Option<Vec<String>>) -> Result<Option<Vec<Outcome>>, String> {
        let Some(names) = names else { return Ok(None) };
        if names.is_empty() || names.len() > 2 {
            return Err("filter_outcomes must hold ALLOWED, DENIED or both (null: every outcome)".into());
        }
        let mut out = Vec::new();
        for n in &names {
            let o = Outcome::parse(n).ok_or("filter_outcomes: each must be ALLOWED or DENIED")?;
            if !out.contains(&o) {
                out.push(o);
            }
        }
        Ok(Some(out))
    }

    pub fn matches(&self, operation: &str, outcome: Outcome) -> bool {
        self.operations.as_ref().is_none_or(|ops| ops.iter().any(|o| o == operation))
            && self.outcomes.as_ref().is_none_or(|os| os.contains(&outcome))
    }

    /// As stored: JSON arrays, or None for "all".
    pub fn operations_json(&self) -> Option<String> {
        self.operations.as_ref().map(|o| json!(o).to_string())
    }

    pub fn outcomes_json(&self) -> Option<String> {
        self.outcomes.as_ref().map(|o| json!(o.iter().map(|o| o.as_str()).collect::<Vec<_>>()).to_string())
    }

    /// Read back from the stored text (written by `*_json`); unreadable text is an error, not "all".
    pub fn from_stored(operations: Option<&str>, outcomes: Option<&str>) -> Result<SinkFilter, String> {
        let operations = operations
            .map(serde_json::from_str::<Vec<String>>)
            .transpose()
            .map_err(|e| format!("stored filter_operations: {e}"))?;
        let outcomes = outcomes
            .map(serde_json::from_str::<Vec<String>>)
            .transpose()
            .map_err(|e| format!("stored filter_outcomes: {e}"))?
            .map(|v| v.iter().map(|o| Outcome::parse(o).ok_or("stored filter_outcomes: unknown outcome")).collect())
            .transpose()?;
        Ok(SinkFilter { operations, outcomes })
    }
}

/// The wait before try number `failures + 1` of a failing sink: full jitter
/// (a uniformly random wait up to `base * 2^(failures-1)`, capped), so many
/// sinks failing at once do not retry in step; a receiver's `Retry-After` is
/// a minimum. `unit` is a random number in `[0, 1)`.
pub fn backoff(base: Duration, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exp).min(MAX_BACKOFF);
    let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
    match retry_after {
        Some(min) => jittered.max(min.min(MAX_BACKOFF)),
        None => jittered,
    }
}

/// A `Retry-After` header in seconds (the HTTP-date form is not used by the receivers keyward targets).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A short, body-free description of a failed delivery.
pub fn short_error(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(MAX_ERROR_CHARS).collect()
}

/// The Standard Webhooks body of a batch.
pub fn webhook_body(timestamp_rfc3339: &str, events: Vec<Value>) -> Vec<u8> {
    let body = json!({"type": "keyward.audit.events", "timestamp": timestamp_rfc3339, "data": events});
    serde_json::to_vec(&body).expect("JSON of plain values")
}

/// The HEC batch form: one `{time, source, sourcetype, event}` object per event, one a line.
/// `time` is the event's time in epoch seconds with milliseconds.
pub fn hec_body(sourcetype: &str, events: Vec<(i64, Value)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (millis, event) in events {
        let line = json!({
            "time": millis as f64 / 1000.0,
            "source": "keyward",
            "sourcetype": sourcetype,
            "event": event,
        });
        serde_json::to_writer(&mut out, &line).expect("JSON of plain values");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for k in SinkKind::ALL {
            assert_eq!(SinkKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        for s in SinkState::ALL {
            assert_eq!(SinkState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
    }

    #[test]
    fn urls() {
        for ok in [
            "https://siem.example.com/hook",
            "https://splunk.example:8088/services/collector/event",
            "http://127.0.0.1:9000/x",
            "http://localhost/x",
            "http://[::1]:80/",
        ] {
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_URL_BYTES));
        for bad in [
            "",
            "ftp://a.example/",
            "http://siem.example.com/",
            "http://10.0.0.1/",
            "https://user:pw@a.example/",
            "https://user@a.example/",
            "https://a.example/#frag",
            "https://a.example/hook?key=AIza0123",
            "https://a.example/hook?",
            "https://a.example/\nx",
            "https://a.example/ x",
            "not a url",
            "/relative",
            long.as_str(),
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_tokens() {
        assert!(parse_name("Splunk prod").is_ok());
        assert!(parse_name("").is_err() && parse_name("  ").is_err() && parse_name("a\u{0}b").is_err());
        assert!(parse_name(&"x".repeat(101)).is_err() && parse_name(&"é".repeat(100)).is_ok());
        assert!(parse_hec_token("0c8a-11ee").is_ok());
        assert!(parse_hec_token("a b").is_err() && parse_hec_token("").is_err());
    }

    #[test]
    fn filters() {
        let ops = SinkFilter::parse_operations(Some(vec!["enterprise.key.create".into(), "auth.whoami".into()]));
        let ops = ops.unwrap();
        assert_eq!(ops.as_ref().map(Vec::len), Some(2));
        assert!(SinkFilter::parse_operations(Some(vec!["enterprise.key.leaked".into()])).is_ok());
        assert!(SinkFilter::parse_operations(Some(vec!["nope".into()])).is_err());
        assert!(SinkFilter::parse_operations(Some(vec![])).is_err());
        assert_eq!(SinkFilter::parse_operations(None), Ok(None));
        let outcomes = SinkFilter::parse_outcomes(Some(vec!["DENIED".into()])).unwrap();
        assert!(SinkFilter::parse_outcomes(Some(vec!["denied".into()])).is_err());
        let f = SinkFilter { operations: ops, outcomes };
        assert!(f.matches("auth.whoami", Outcome::Denied));
        assert!(!f.matches("auth.whoami", Outcome::Allowed));
        assert!(!f.matches("team.user.list", Outcome::Denied));
        let back = SinkFilter::from_stored(f.operations_json().as_deref(), f.outcomes_json().as_deref()).unwrap();
        assert_eq!(back, f);
        assert!(SinkFilter::default().matches("anything", Outcome::Allowed));
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1, None, 0.999_999).as_secs(), 0);
        assert!(backoff(base, 3, None, 0.999_999) <= Duration::from_secs(4));
        assert!(backoff(base, 3, None, 0.999_999) > Duration::from_millis(3990));
        assert_eq!(backoff(base, 40, None, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(base, 1, None, 0.0), Duration::ZERO);
        assert_eq!(backoff(base, 1, Some(Duration::from_secs(7)), 0.0), Duration::from_secs(7));
        assert_eq!(backoff(base, 1, Some(Duration::from_secs(100_000)), 0.0), MAX_BACKOFF);
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn bodies() {
        let w: Value = serde_json::from_slice(&webhook_body("2026-12-01T00:00:00Z", vec![json!({"seq": 1})])).unwrap();
        assert_eq!(w["type"], "keyward.audit.events");
        assert_eq!(w["data"][0]["seq"], 1);
        let hec =
            String::from_utf8(hec_body("keyward:audit", vec![(1_733_000_000_123, json!({"a": 1})), (5, json!(2))]))
                .unwrap();
        let lines: Vec<Value> = hec.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["time"].as_f64(), Some(1_733_000_000.123));
        assert_eq!(lines[0]["source"], "keyward");
        assert_eq!(lines[1]["event"], 2);
        assert_eq!(short_error(&"x\n".repeat(500)).len(), MAX_ERROR_CHARS);
    }
}
