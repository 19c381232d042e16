//! The one canonical form of a request path. Routing, the audit event, rate
//! limits and the authorizer all take the operation from it, so that no
//! spelling of a path can reach a handler under another name than the one
//! recorded, or skip the record.
//!
//! A path is canonical when it is plain ASCII, holds no control character, no
//! empty segment (`//`), no dot segment (`.` or `..`) and no percent-escape.
//! An escape of an unreserved character (RFC 3986 §2.3: letters, digits,
//! `-`, `.`, `_`, `~`) means that character (§6.2.2.2) and is decoded; any
//! other escape (`%2F`, `%25`, `%00`, non-ASCII bytes) would change what a
//! segment is, so a path holding one is refused rather than guessed at.

use std::borrow::Cow;

/// Why a path has no canonical form (the audit event's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// A byte outside printable ASCII, or a control character.
    ControlOrNonAscii,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// An escape of a reserved or non-ASCII byte (`%2F`, `%25`, `%00`, `%C3`…).
    EncodedReserved,
    /// `.` or `..` as a segment, written plainly or escaped.
    DotSegment,
    /// Two slashes in a row.
    EmptySegment,
    /// Not starting with `/`.
    NotAbsolute,
}

impl PathRefusal {
    /// The reason recorded in the audit event (what was wrong is in the message).
    pub const REASON: &'static str = "non_canonical_path";

    /// What the caller is told.
    pub fn describe(self) -> &'static str {
        match self {
            PathRefusal::ControlOrNonAscii => "the request path holds a control or non-ASCII character",
            PathRefusal::BadEscape => "the request path holds a malformed percent-escape",
            PathRefusal::EncodedReserved => {
                "the request path percent-encodes a reserved or non-ASCII character; send it unencoded or not at all"
            }
            PathRefusal::DotSegment => "the request path holds a `.` or `..` segment",
            PathRefusal::EmptySegment => "the request path holds an empty segment (`//`)",
            PathRefusal::NotAbsolute => "the request path must start with `/`",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical form of `raw` (a path without its query), borrowed when it
/// already is canonical, which is the case for every well-behaved client.
pub fn canonical(raw: &str) -> Result<Cow<'_, str>, PathRefusal> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathRefusal::NotAbsolute);
    }
    if bytes.iter().any(|&b| !(0x21..0x7f).contains(&b)) {
        return Err(PathRefusal::ControlOrNonAscii);
    }
    let decoded: Cow<'_, str> = if bytes.contains(&b'%') {
        let mut out = String::with_capacity(raw.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let (Some(hi), Some(lo)) =
                    (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
                else {
                    return Err(PathRefusal::BadEscape);
                };
                let b = hi << 4 | lo;
                if !is_unreserved(b) {
                    return Err(PathRefusal::EncodedReserved);
                }
                out.push(b as char);
                i += 3;
            } else {
                out.push(bytes[i] as char);
                i += 1;
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    // Skip the leading slash; a trailing slash is a path of its own (no route has one).
    let mut segments = decoded[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return Err(PathRefusal::DotSegment),
            "" if segments.peek().is_some() => return Err(PathRefusal::EmptySegment),
            _ => {}
        }
    }
    Ok(decoded)
}

/// The canonical path of a URI as a gateway forwards it (query and fragment
/// ignored), by the same rules as keyward's own paths.
pub fn canonical_uri(uri: &str) -> Result<Cow<'_, str>, PathRefusal> {
    let path = uri.split(['?', '#']).next().unwrap_or("");
    canonical(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass_unchanged_and_borrowed() {
        for p in ["/v2/auth.whoami", "/scim/v2/Users/abc-123", "/", "/v2/x/", "/healthz"] {
            assert!(matches!(canonical(p), Ok(Cow::Borrowed(s)) if s == p), "{p}");
        }
    }

    #[test]
    fn escapes_of_unreserved_characters_are_decoded_in_either_case() {
        assert_eq!(canonical("/%762/authz.check").unwrap(), "/v2/authz.check");
        assert_eq!(canonical("/v2/auth%2Ewhoami").unwrap(), "/v2/auth.whoami");
        assert_eq!(canonical("/v2/auth%2ewhoami").unwrap(), "/v2/auth.whoami");
        assert_eq!(canonical("/%69nternal/v2/team.asset.upsert").unwrap(), "/internal/v2/team.asset.upsert");
        assert_eq!(canonical("/%7E%5F%2D").unwrap(), "/~_-");
    }

    #[test]
    fn everything_else_is_refused() {
        use PathRefusal::*;
        let cases = [
            ("/v2/a%2Fb", EncodedReserved),
            ("/v2/a%2fb", EncodedReserved),
            ("/v2/%25", EncodedReserved),
            ("/v2/%00", EncodedReserved),
            ("/v2/%C3%A9", EncodedReserved),
            ("/v2/%", BadEscape),
            ("/v2/%4", BadEscape),
            ("/v2/%zz", BadEscape),
            ("/v2/../internal", DotSegment),
            ("/v2/./auth.whoami", DotSegment),
            ("/v2/%2E%2E/internal", DotSegment),
            ("/v2/%2e/x", DotSegment),
            ("/v2/..", DotSegment),
            ("//v2/auth.whoami", EmptySegment),
            ("/v2//auth.whoami", EmptySegment),
            ("/v2/a\u{1}b", ControlOrNonAscii),
            ("/v2/é", ControlOrNonAscii),
            ("/v2/a b", ControlOrNonAscii),
            ("v2/auth.whoami", NotAbsolute),
            ("", NotAbsolute),
        ];
        for (p, why) in cases {
            assert_eq!(canonical(p), Err(why), "{p:?}");
        }
    }

    #[test]
    fn a_gateway_uri_is_judged_by_its_path_alone() {
        assert_eq!(canonical_uri("/scim/v2/Users?filter=a%2Fb").unwrap(), "/scim/v2/Users");
        assert_eq!(
            canonical_uri("/scim/v2/Users/..%2F..%2Finternal%2Fv2%2Fteam.asset.delete"),
            Err(PathRefusal::EncodedReserved)
        );
        assert_eq!(canonical_uri("/scim/v2/Users/%2E%2E"), Err(PathRefusal::DotSegment));
    }
}
