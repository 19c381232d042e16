//! Redaction of secrets from everything a caller controls, before it is
//! stored or logged. One [`Redactor`] serves the audit writer (every event's
//! caller-controlled fields) and the log writer (every line); the free
//! functions are the shape rules it applies, usable where no configured
//! secret is at hand (error messages, request bodies).
//!
//! What counts as a secret, wherever it stands (glued to other text, in any
//! header, path, query or body, percent-encoded or not):
//! - anything shaped like a keyward key: `kw_` and at least 17 more word
//!   characters, valid checksum or not;
//! - anything shaped like a JWT (a console token): `eyJ…` with two dots;
//! - the configured secrets handed to [`Redactor::new`] (the ingest token).

use serde_json::Value;
use std::borrow::Cow;

/// Field names whose values are never stored.
const SECRET_FIELDS: &[&str] = &["secret", "token", "password", "api_key", "apikey", "authorization", "key_secret"];

pub const REDACTED: &str = "[REDACTED]";

/// Characters of a run that may hold a key or a JWT (base62, base64url, `_`, `.`, `-`).
fn is_run_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Whether a run of [`is_run_char`] characters holds a key or a JWT.
fn is_secret_run(run: &str) -> bool {
    let key = run.match_indices(super::key_format::PREFIX).any(|(i, _)| {
        let tail = &run[i..];
        tail.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').count() >= 20
    });
    key || run.match_indices("eyJ").any(|(i, _)| {
        let mut parts = run[i..].split('.');
        // header.payload.signature: the first two at least a few characters long.
        matches!((parts.next(), parts.next(), parts.next()), (Some(h), Some(p), Some(_)) if h.len() >= 8 && p.len() >= 4)
    })
}

/// Cheap test before any scan: no `kw_`, no `eyJ`, nothing to redact by shape.
fn may_hold_shape(s: &str) -> bool {
    s.contains(super::key_format::PREFIX) || s.contains("eyJ")
}

/// Replaces every run that holds a key or a JWT.
fn scrub_shapes(text: &str) -> Cow<'_, str> {
    if !may_hold_shape(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        match (is_run_char(c) && i < text.len(), start) {
            (true, None) => start = Some(i),
            (true, Some(_)) => {}
            (false, s) => {
                if let Some(s) = s {
                    let run = &text[s..i];
                    if is_secret_run(run) {
                        out.push_str(REDACTED);
                        changed = true;
                    } else {
                        out.push_str(run);
                    }
                    start = None;
                }
                if i < text.len() {
                    out.push(c);
                }
            }
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` with percent-escapes decoded (invalid UTF-8 replaced), so that an
/// encoded secret is seen as the secret it is; up to three times, for text
/// encoded more than once (`%255F`).
fn percent_decoded(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for _ in 0..3 {
        if !out.contains('%') {
            break;
        }
        let decoded = percent_encoding_lossy(out.as_bytes()).into_owned();
        if decoded == *out {
            break;
        }
        out = Cow::Owned(decoded);
    }
    out
}

fn percent_encoding_lossy(bytes: &[u8]) -> Cow<'_, str> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Configured secrets for [`scrub`]: error messages are rendered where no
/// application state is at hand (actix's `ResponseError`), so the secrets an
/// app is configured with are registered here once, at its start.
static REGISTERED: std::sync::RwLock<Redactor> = std::sync::RwLock::new(Redactor { secrets: Vec::new() });

/// Makes [`scrub`] redact `secret` too, for the life of the process.
pub fn register(secret: &str) {
    REGISTERED.write().unwrap_or_else(|e| e.into_inner()).add(secret);
}

/// A text with every secret replaced, by shape and as registered (error messages that quote input).
pub fn scrub(text: &str) -> String {
    REGISTERED.read().unwrap_or_else(|e| e.into_inner()).text(text).into_owned()
}

/// Redacts secrets from caller-controlled text and JSON, by shape and by the
/// configured secrets' values.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Configured secrets, each as written and as escaped inside a JSON string.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new<'a>(configured: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut r = Redactor::default();
        configured.into_iter().for_each(|s| r.add(s));
        r
    }

    /// Redacts `secret` too, as written and as escaped inside a JSON string.
    fn add(&mut self, secret: &str) {
        if secret.is_empty() || self.secrets.iter().any(|s| s == secret) {
            return;
        }
        let escaped = serde_json::to_string(secret).expect("a string serializes");
        let escaped = &escaped[1..escaped.len() - 1];
        if escaped != secret {
            self.secrets.push(escaped.to_string());
        }
        self.secrets.push(secret.to_string());
    }

    fn holds_configured(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
    }

    /// `text` without secrets; borrowed (no copy) when it holds none.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let encoded = text.contains('%');
        if !encoded && !may_hold_shape(text) && !self.holds_configured(text) {
            return Cow::Borrowed(text);
        }
        // An encoded secret is caught in the decoded text, which then replaces the original.
        let decoded = percent_decoded(text);
        let mut out: Cow<'_, str> = match scrub_shapes(&decoded) {
            Cow::Borrowed(_) if !self.holds_configured(&decoded) => return Cow::Borrowed(text),
            scrubbed => Cow::Owned(scrubbed.into_owned()),
        };
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        out
    }

    /// Redacts every string and every object key of `value`, in place.
    pub fn json(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(clean) = self.text(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let dirty: Vec<String> =
                    map.keys().filter(|k| matches!(self.text(k), Cow::Owned(_))).cloned().collect();
                for k in dirty {
                    if let Some(v) = map.remove(&k) {
                        map.insert(self.text(&k).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.json(v));
            }
            _ => {}
        }
    }

    /// Whether `text` holds a secret.
    pub fn holds_secret(&self, text: &str) -> bool {
        matches!(self.text(text), Cow::Owned(_))
    }
}

/// A request body as a Tier 2 payload: secret-named fields and secret-shaped strings replaced.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    // A field *named* by a pasted secret loses its name too.
                    let name = scrub(k);
                    if SECRET_FIELDS.iter().any(|s| lower == *s || lower.ends_with(&format!("_{s}"))) {
                        (name, Value::String(REDACTED.into()))
                    } else {
                        (name, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(s) => Value::String(scrub(s)),
        other => other.clone(),
    }
}

/// Whether any string in a JSON document holds a NUL character (databases refuse them in text).
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Whether any string (key or value) in a JSON document holds a secret of `redactor`.
pub fn contains_secret(redactor: &Redactor, value: &Value) -> bool {
    match value {
        Value::String(s) => redactor.holds_secret(s),
        Value::Array(items) => items.iter().any(|v| contains_secret(redactor, v)),
        Value::Object(map) => map.iter().any(|(k, v)| redactor.holds_secret(k) || contains_secret(redactor, v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "kw_siem_abcdefghijklmnopqrstuvwxyz0123456";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtXzEifQ.c2lnbmF0dXJlX2J5dGVz";

    #[test]
    fn secrets_and_key_strings_are_redacted() {
        let body = json!({
            "label": "prod",
            "secret": "x",
            "nested": {"client_password": "p", "note": format!("leaked {KEY} oops")},
            "list": [{"token": "t"}]
        });
        let r = redact(&body);
        assert_eq!(r["label"], "prod");
        assert_eq!(r["secret"], REDACTED);
        assert_eq!(r["nested"]["client_password"], REDACTED);
        assert_eq!(r["nested"]["note"], format!("leaked {REDACTED} oops"));
        assert_eq!(r["list"][0]["token"], REDACTED);
    }

    #[test]
    fn scrub_removes_key_words_only() {
        let msg = format!("unknown variant `{KEY}`, expected `KEY_TYPE_SIEM`");
        assert_eq!(scrub(&msg), "unknown variant `[REDACTED]`, expected `KEY_TYPE_SIEM`");
        assert_eq!(scrub("plain kw_ text"), "plain kw_ text");
        let r = Redactor::default();
        assert!(contains_secret(&r, &json!({"a": ["x", KEY]})));
        assert!(contains_secret(&r, &json!({KEY: 1})));
        assert!(!contains_secret(&r, &json!({"label": "kw_ is our prefix"})));
        assert!(contains_secret(&r, &json!({"label": format!("prod_{KEY}")})));
        assert_eq!(scrub(&format!("x{KEY}!")), "[REDACTED]!");
        assert_eq!(redact(&json!({KEY: 1})), json!({"[REDACTED]": 1}));
    }

    #[test]
    fn jwts_configured_secrets_and_encoded_forms_are_redacted() {
        let r = Redactor::new(["ingest-token-0123456789-abcdefghijkl", "we\"ird\\token-0123456789abcdefghij"]);
        assert_eq!(r.text(&format!("Bearer {JWT}")), format!("Bearer {REDACTED}"));
        assert_eq!(r.text("curl/8 ingest-token-0123456789-abcdefghijkl"), format!("curl/8 {REDACTED}"));
        assert_eq!(r.text(r#"{"ua":"we\"ird\\token-0123456789abcdefghij"}"#), format!(r#"{{"ua":"{REDACTED}"}}"#));
        let encoded = KEY.replace('_', "%5F");
        assert_eq!(r.text(&format!("/v2/x?q={encoded}&a=1")), format!("/v2/x?q={REDACTED}&a=1"));
        assert_eq!(r.text("/v2/ingest%2Dtoken-0123456789-abcdefghijkl"), format!("/v2/{REDACTED}"));
        let twice = KEY.replace('_', "%255F");
        assert_eq!(r.text(&format!("/v2/{twice}")), format!("/v2/{REDACTED}"));
        // Clean text is borrowed, percent-escapes and all.
        assert!(matches!(r.text("/v2/a%20b eyJ kw_x"), Cow::Borrowed(_)));
        assert!(matches!(r.text("Mozilla/5.0 (X11; Linux x86_64)"), Cow::Borrowed(_)));
        let mut v = json!({"original_uri": format!("/scim/v2/Users?x={KEY}"), JWT: [JWT, 1]});
        r.json(&mut v);
        assert_eq!(v, json!({"original_uri": format!("/scim/v2/Users?x={REDACTED}"), REDACTED: [REDACTED, 1]}));
    }
}
