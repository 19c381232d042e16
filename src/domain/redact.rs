//! Redaction of request bodies before they become Tier 2 audit payloads.

use serde_json::Value;

/// Field names whose values are never stored.
const SECRET_FIELDS: &[&str] = &["secret", "token", "password", "api_key", "apikey", "authorization", "key_secret"];

pub const REDACTED: &str = "[REDACTED]";

/// Replaces secret-looking fields and any string that looks like a keyward key.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    // A field *named* by a pasted secret loses its name too.
                    let name = if looks_like_secret(k) { REDACTED.to_string() } else { k.clone() };
                    if SECRET_FIELDS.iter().any(|s| lower == *s || lower.ends_with(&format!("_{s}"))) {
                        (name, Value::String(REDACTED.into()))
                    } else {
                        (name, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(s) if s.contains(super::key_format::PREFIX) && looks_like_secret(s) => {
            Value::String(REDACTED.into())
        }
        other => other.clone(),
    }
}

/// A word holding `kw_` followed by enough characters to be a key, also when
/// glued to other text (`prod_kw_siem_…`).
fn is_secret_word(word: &str) -> bool {
    word.match_indices(super::key_format::PREFIX).any(|(i, _)| word.len() - i >= 20)
}

fn looks_like_secret(s: &str) -> bool {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(is_secret_word)
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

/// Whether any string (key or value) in a JSON document looks like a key secret.
pub fn contains_secret(value: &Value) -> bool {
    match value {
        Value::String(s) => looks_like_secret(s),
        Value::Array(items) => items.iter().any(contains_secret),
        Value::Object(map) => map.iter().any(|(k, v)| looks_like_secret(k) || contains_secret(v)),
        _ => false,
    }
}

/// A text with every key-looking word replaced (for error messages that quote input).
pub fn scrub(text: &str) -> String {
    if !text.contains(super::key_format::PREFIX) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        out.push_str(if is_secret_word(&word) { REDACTED } else { &word });
        word.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_key_strings_are_redacted() {
        let body = json!({
            "label": "prod",
            "secret": "x",
            "nested": {"client_password": "p", "note": "leaked kw_siem_abcdefghijklmnopqrstuvwxyz0123456 oops"},
            "list": [{"token": "t"}]
        });
        let r = redact(&body);
        assert_eq!(r["label"], "prod");
        assert_eq!(r["secret"], REDACTED);
        assert_eq!(r["nested"]["client_password"], REDACTED);
        assert_eq!(r["nested"]["note"], REDACTED);
        assert_eq!(r["list"][0]["token"], REDACTED);
    }

    #[test]
    fn scrub_removes_key_words_only() {
        let msg = "unknown variant `kw_siem_abcdefghijklmnopqrstuvwxyz0123456`, expected `KEY_TYPE_SIEM`";
        assert_eq!(scrub(msg), "unknown variant `[REDACTED]`, expected `KEY_TYPE_SIEM`");
        assert_eq!(scrub("plain kw_ text"), "plain kw_ text");
        assert!(contains_secret(&json!({"a": ["x", "kw_siem_abcdefghijklmnopqrstuvwxyz0123456"]})));
        assert!(contains_secret(&json!({"kw_siem_abcdefghijklmnopqrstuvwxyz0123456": 1})));
        assert!(!contains_secret(&json!({"label": "kw_ is our prefix"})));
        assert!(contains_secret(&json!({"label": "prod_kw_siem_abcdefghijklmnopqrstuvwxyz0123456"})));
        assert_eq!(scrub("xkw_siem_abcdefghijklmnopqrstuvwxyz0123456!"), "[REDACTED]!");
        let keyed = redact(&json!({"kw_siem_abcdefghijklmnopqrstuvwxyz0123456": 1}));
        assert_eq!(keyed, json!({"[REDACTED]": 1}));
    }
}
