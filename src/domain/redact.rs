//! Redaction of request bodies before they become Tier 2 audit payloads.

use serde_json::Value;

/// Field names whose values are never stored.
const SECRET_FIELDS: &[&str] = &[
    "secret",
    "token",
    "password",
    "api_key",
    "apikey",
    "authorization",
    "key_secret",
];

pub const REDACTED: &str = "[REDACTED]";

/// Replaces secret-looking fields and any string that looks like a keyward key.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SECRET_FIELDS
                        .iter()
                        .any(|s| lower == *s || lower.ends_with(&format!("_{s}")))
                    {
                        (k.clone(), Value::String(REDACTED.into()))
                    } else {
                        (k.clone(), redact(v))
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

fn looks_like_secret(s: &str) -> bool {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| word.starts_with(super::key_format::PREFIX) && word.len() >= 20)
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
}
