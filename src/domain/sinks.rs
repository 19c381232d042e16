//! SIEM sinks: where a tenant's audit events are pushed (a Standard Webhooks
//! receiver or Splunk HEC), which of them, and how a failing receiver is
//! retried. Pure rules: names, URLs, filters, backoff and the wire bodies.

use super::allowlist;
use super::authz::{Unrouted, OPERATIONS};
use super::event::Outcome;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
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

/// Where sinks may deliver: public addresses, and the networks the operator
/// allows (`KEYWARD_SINK_ALLOWED_NETWORKS`, none by default). A sink's URL is
/// chosen by a tenant owner, and keyward sends to it from inside the
/// operator's network: without this, an owner could make keyward post to a
/// cloud metadata service, a database port or an admin interface that only
/// the network trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    allowed: Vec<IpNet>,
}

impl Destinations {
    /// Addresses or CIDR blocks that sinks may reach although they are not public.
    pub fn allowing(entries: &[String]) -> Result<Destinations, String> {
        allowlist::parse_networks(entries).map(|allowed| Destinations { allowed })
    }

    /// Whether a sink may connect to this address.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        is_public(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }
}

/// Blocks that are not a public Internet host (RFC 6890's special-purpose
/// registries: private, shared, loopback, link-local, documentation,
/// benchmarking, multicast, reserved, unique-local, discard-only).
const NOT_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    // The unspecified and loopback addresses, and the deprecated IPv4-compatible ones.
    "::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "3fff::/20",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

fn not_public_blocks() -> &'static [IpNet] {
    static BLOCKS: std::sync::LazyLock<Vec<IpNet>> =
        std::sync::LazyLock::new(|| NOT_PUBLIC.iter().map(|b| b.parse().expect("a CIDR block")).collect());
    &BLOCKS
}

/// Whether an address is a public Internet host. An IPv6 address that
/// carries an IPv4 one (mapped, NAT64, 6to4) is as public as that address,
/// so `::ffff:127.0.0.1` or `64:ff9b::a00:1` cannot stand in for a private one.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if let IpAddr::V6(v6) = ip {
        let s = v6.segments();
        let embedded = match s {
            [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some((hi, lo)),
            [0x2002, hi, lo, ..] => Some((hi, lo)),
            _ => None,
        };
        if let Some((hi, lo)) = embedded {
            return is_public(IpAddr::V4(Ipv4Addr::from(((hi as u32) << 16) | lo as u32)));
        }
    }
    !not_public_blocks().iter().any(|b| b.contains(&ip))
}

/// A receiver's URL: `https://` anywhere, `http://` only to a loopback host
/// (a receiver on the same machine, as in tests); no user info (credentials
/// go in the token or the signature, never in a URL that list shows), no
/// query (for the same reason), no fragment, at most 2048 bytes. A host
/// written as an address must be one `destinations` permits; a host name is
/// checked at every connection instead (see `audit::sinks`), since what it
/// resolves to can change.
pub fn parse_url(raw: &str, destinations: &Destinations) -> Result<url::Url, String> {
    if raw.is_empty() || raw.len() > MAX_URL_BYTES {
        return Err(format!("url must be 1 to {MAX_URL_BYTES} bytes"));
    }
    // The URL parser silently drops tabs and newlines: refuse them instead.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url must not contain spaces or control characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("url is not a valid absolute URL: {e}"))?;
    let host = url.host().ok_or("url must name a host")?;
    // The host as an address, if it is written as one (None: a name).
    let address = match host {
        url::Host::Domain(_) => None,
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
    };
    let loopback = match address {
        Some(ip) => ip.is_loopback(),
        None => matches!(host, url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err("url must be https:// (http:// only to a loopback host)".into()),
        _ => return Err("url must be https://".into()),
    }
    if let Some(ip) = address.filter(|ip| !destinations.permits(*ip)) {
        return Err(format!(
            "url's host {ip} is not a public address (private, loopback, link-local or reserved): keyward delivers only to public addresses and to networks its operator allows"
        ));
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

    fn loopback_allowed() -> Destinations {
        Destinations::allowing(&["127.0.0.0/8".into(), "::1".into()]).unwrap()
    }

    #[test]
    fn urls() {
        for ok in [
            "https://siem.example.com/hook",
            "https://splunk.example:8088/services/collector/event",
            "https://8.8.8.8/hook",
            "http://127.0.0.1:9000/x",
            "http://localhost/x",
            "http://[::1]:80/",
        ] {
            assert!(parse_url(ok, &loopback_allowed()).is_ok(), "{ok}");
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
            assert!(parse_url(bad, &loopback_allowed()).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_hosts_must_be_permitted_when_the_url_is_written() {
        let none = Destinations::default();
        for bad in [
            "http://127.0.0.1:9000/x",
            "http://[::1]/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:169.254.169.254]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[fd00::1]/",
            "https://0.0.0.0/",
            // The URL parser reads these as 127.0.0.1, as a browser would.
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            let e = parse_url(bad, &none).unwrap_err();
            assert!(e.contains("not a public address"), "{bad}: {e}");
        }
        // A name is checked when connecting: what it resolves to can change.
        assert!(parse_url("http://localhost:9000/x", &none).is_ok());
        assert!(parse_url("https://93.184.215.14/x", &none).is_ok());
        let only = Destinations::allowing(&["10.1.0.0/16".into()]).unwrap();
        assert!(parse_url("https://10.1.2.3/", &only).is_ok());
        assert!(parse_url("https://10.2.0.1/", &only).is_err());
    }

    #[test]
    fn only_public_addresses_and_allowed_networks_are_permitted() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "2606:4700::1111",
            "2a00:1450::1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
        for internal in [
            "0.0.0.0",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::7f00:1",
            "::a9fe:a9fe",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:a00:1::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(internal)), "{internal}");
            assert!(!Destinations::default().permits(ip(internal)), "{internal}");
        }
        let d = Destinations::allowing(&["10.0.0.0/8".into(), " fd00::/8 ".into(), "127.0.0.1".into()]).unwrap();
        assert!(d.permits(ip("10.9.8.7")) && d.permits(ip("::ffff:10.9.8.7")) && d.permits(ip("fd00::5")));
        assert!(d.permits(ip("127.0.0.1")) && !d.permits(ip("127.0.0.2")));
        assert!(!d.permits(ip("192.168.1.1")) && d.permits(ip("8.8.8.8")));
        assert!(Destinations::allowing(&["localhost".into()]).is_err());
        assert!(Destinations::allowing(&["10.0.0.0/33".into()]).is_err());
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
