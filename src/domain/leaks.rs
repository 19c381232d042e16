//! Keys reported leaked in public: a secret-scanning partner report (GitHub's
//! protocol: a JSON array of `{token, type, url, source}`), what a tenant does
//! with a leaked key, and the labels keyward answers with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a tenant has keyward do with a key reported leaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LeakedKeyAction {
    /// Revoke it at once (the default: a public secret is a used secret).
    #[default]
    Revoke,
    /// Mark it and tell the tenant; it keeps working.
    Notify,
}

impl LeakedKeyAction {
    pub const ALL: [LeakedKeyAction; 2] = [LeakedKeyAction::Revoke, LeakedKeyAction::Notify];

    pub fn as_str(self) -> &'static str {
        match self {
            LeakedKeyAction::Revoke => "REVOKE",
            LeakedKeyAction::Notify => "NOTIFY",
        }
    }

    pub fn parse(s: &str) -> Option<LeakedKeyAction> {
        LeakedKeyAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// What keyward did with one reported key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeakAction {
    Revoked,
    /// Notify-only tenants: recorded and told, still valid.
    Marked,
    /// Revoked before the report came.
    AlreadyRevoked,
}

impl LeakAction {
    pub const ALL: [LeakAction; 3] = [LeakAction::Revoked, LeakAction::Marked, LeakAction::AlreadyRevoked];

    pub fn as_str(self) -> &'static str {
        match self {
            LeakAction::Revoked => "REVOKED",
            LeakAction::Marked => "MARKED",
            LeakAction::AlreadyRevoked => "ALREADY_REVOKED",
        }
    }

    pub fn parse(s: &str) -> Option<LeakAction> {
        LeakAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What a key in this state gets from a report, under the tenant's policy.
    pub fn for_key(already_revoked: bool, policy: LeakedKeyAction) -> LeakAction {
        match (already_revoked, policy) {
            (true, _) => LeakAction::AlreadyRevoked,
            (false, LeakedKeyAction::Revoke) => LeakAction::Revoked,
            (false, LeakedKeyAction::Notify) => LeakAction::Marked,
        }
    }
}

/// At most this many tokens in one report.
pub const MAX_REPORTED_TOKENS: usize = 1000;
const MAX_TOKEN_CHARS: usize = 1024;
const MAX_TYPE_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2048;
const MAX_SOURCE_CHARS: usize = 100;

/// One match of a report. The token is a secret: it is never shown, logged or
/// stored; only its SHA-256 goes back to the reporter.
#[derive(Clone)]
pub struct ReportedToken {
    pub token: String,
    pub token_type: String,
    /// Where it was found, e.g. a commit's file on GitHub.
    pub url: Option<String>,
    /// What kind of place: `content`, `commit`, `issue_comment`, ...
    pub source: Option<String>,
}

impl std::fmt::Debug for ReportedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportedToken")
            .field("token", &"<secret>")
            .field("token_type", &self.token_type)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish()
    }
}

fn text(item: &serde_json::Map<String, Value>, field: &str, max: usize, i: usize) -> Result<Option<String>, String> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(format!("item {i}: `{field}` is longer than {max} characters"))
        }
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            Err(format!("item {i}: `{field}` must not contain control characters"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("item {i}: `{field}` must be a string")),
    }
}

/// The matches of a report body. Fields the protocol may add later are ignored.
pub fn parse_report(body: &[u8]) -> Result<Vec<ReportedToken>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "the report must be a JSON array".to_string())?;
    let Value::Array(items) = value else {
        return Err("the report must be a JSON array".into());
    };
    if items.is_empty() {
        return Err("the report holds no token".into());
    }
    if items.len() > MAX_REPORTED_TOKENS {
        return Err(format!("a report holds at most {MAX_REPORTED_TOKENS} tokens"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(item) = item else {
                return Err(format!("item {i}: must be an object"));
            };
            let token = text(item, "token", MAX_TOKEN_CHARS, i)?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| format!("item {i}: `token` is required"))?;
            Ok(ReportedToken {
                token,
                token_type: text(item, "type", MAX_TYPE_CHARS, i)?.unwrap_or_default(),
                url: text(item, "url", MAX_URL_CHARS, i)?,
                source: text(item, "source", MAX_SOURCE_CHARS, i)?,
            })
        })
        .collect()
}

/// keyward's judgement of a reported token, as the reporter takes feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A keyward key (live or already revoked).
    TruePositive,
    /// Not a key keyward issued.
    FalsePositive,
}

/// One line of the answer: the token named by its SHA-256 (hex), never itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenVerdict {
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for a in LeakedKeyAction::ALL {
            assert_eq!(LeakedKeyAction::parse(a.as_str()), Some(a));
        }
        for a in LeakAction::ALL {
            assert_eq!(LeakAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), serde_json::json!(a.as_str()));
        }
    }

    #[test]
    fn what_a_key_gets() {
        assert_eq!(LeakAction::for_key(false, LeakedKeyAction::Revoke), LeakAction::Revoked);
        assert_eq!(LeakAction::for_key(false, LeakedKeyAction::Notify), LeakAction::Marked);
        assert_eq!(LeakAction::for_key(true, LeakedKeyAction::Revoke), LeakAction::AlreadyRevoked);
        assert_eq!(LeakAction::for_key(true, LeakedKeyAction::Notify), LeakAction::AlreadyRevoked);
    }

    #[test]
    fn reports_parse_and_bad_ones_are_refused_without_their_tokens() {
        let ok = br#"[{"token":"kw_x","type":"keyward_key","url":"https://github.com/o/r/blob/c/f","source":"content","new":1}]"#;
        let items = parse_report(ok).unwrap();
        assert_eq!(items[0].token, "kw_x");
        assert_eq!(items[0].source.as_deref(), Some("content"));
        assert!(!format!("{:?}", items[0]).contains("kw_x"), "Debug never shows the token");
        for bad in [
            &b"{}"[..],
            b"[]",
            b"not json",
            br#"[{"type":"x"}]"#,
            br#"[{"token":""}]"#,
            br#"[{"token":7}]"#,
            br#"[1]"#,
            br#"[{"token":"a","url":"x\u0000y"}]"#,
        ] {
            let e = parse_report(bad).unwrap_err();
            assert!(!e.contains("kw_"), "{e}");
        }
        let many = format!("[{}]", vec![r#"{"token":"t"}"#; MAX_REPORTED_TOKENS + 1].join(","));
        assert!(parse_report(many.as_bytes()).is_err());
    }
}
