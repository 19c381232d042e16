//! Which credential a request carries. Pure: works on header values only.
//!
//! A request carries one credential or none. Every value of every header
//! that may carry one is looked at, so that two credentials that disagree
//! (two `X-API-Key` headers, a key in `X-API-Key` and another in
//! `Authorization`, an unreadable `X-API-Key` beside a valid
//! `Authorization`) are refused as ambiguous instead of "first wins" or
//! "skip the broken one".

use crate::domain::key_format::has_key_prefix;

/// Every raw value of the headers that may carry a credential.
#[derive(Debug, Default, Clone)]
pub struct CredentialHeaders<'a> {
    pub x_api_key: Vec<&'a [u8]>,
    pub api_key: Vec<&'a [u8]>,
    pub authorization: Vec<&'a [u8]>,
}

/// The credential of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    /// An enterprise key, by precedence: `X-API-Key`, `Api-Key`,
    /// `Authorization: Api-Key <key>`, or `Authorization: Bearer <key>` with the `kw_` prefix.
    Key(&'a str),
    /// `Authorization: Bearer <value>` whose value is not a key (a console JWT, the ingest token).
    Bearer(&'a str),
    /// Two or more credentials that are not the same one.
    Ambiguous,
    /// One credential header whose value is not printable ASCII.
    Unreadable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate<'a> {
    Key(&'a str),
    Bearer(&'a str),
    Unreadable,
}

fn readable(value: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?;
    s.bytes().all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b)).then(|| s.trim())
}

/// What an `Authorization` value carries; None for schemes that are not keyward's (Basic…).
fn authorization(value: &[u8]) -> Option<Candidate<'_>> {
    let Some(v) = readable(value) else { return Some(Candidate::Unreadable) };
    let (scheme, value) = v.split_once(' ')?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("Api-Key") {
        return Some(Candidate::Key(value));
    }
    if scheme.eq_ignore_ascii_case("Bearer") {
        return Some(if has_key_prefix(value) { Candidate::Key(value) } else { Candidate::Bearer(value) });
    }
    None
}

/// The one credential of a request, or why there is not exactly one.
pub fn presented<'a>(h: &CredentialHeaders<'a>) -> Presented<'a> {
    let key_headers = h.x_api_key.iter().chain(&h.api_key).map(|v| match readable(v) {
        Some(s) => Candidate::Key(s),
        None => Candidate::Unreadable,
    });
    let mut candidates = key_headers.chain(h.authorization.iter().filter_map(|v| authorization(v)));
    let Some(first) = candidates.next() else { return Presented::None };
    for other in candidates {
        if other != first || other == Candidate::Unreadable {
            return Presented::Ambiguous;
        }
    }
    match first {
        Candidate::Key(k) => Presented::Key(k),
        Candidate::Bearer(t) => Presented::Bearer(t),
        Candidate::Unreadable => Presented::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(x: &[&'a str], a: &[&'a str], auth: &[&'a str]) -> CredentialHeaders<'a> {
        CredentialHeaders {
            x_api_key: x.iter().map(|s| s.as_bytes()).collect(),
            api_key: a.iter().map(|s| s.as_bytes()).collect(),
            authorization: auth.iter().map(|s| s.as_bytes()).collect(),
        }
    }

    #[test]
    fn each_header_form_carries_a_key() {
        assert_eq!(presented(&h(&["kw_a"], &[], &[])), Presented::Key("kw_a"));
        assert_eq!(presented(&h(&[], &["kw_b"], &[])), Presented::Key("kw_b"));
        assert_eq!(presented(&h(&[], &[], &["Bearer kw_c"])), Presented::Key("kw_c"));
        assert_eq!(presented(&h(&[], &[], &["Api-Key kw_d"])), Presented::Key("kw_d"));
        assert_eq!(presented(&h(&[], &[], &["api-key kw_d"])), Presented::Key("kw_d"));
        assert_eq!(presented(&h(&[" kw_a "], &[], &[])), Presented::Key("kw_a"));
    }

    #[test]
    fn the_same_key_twice_is_one_credential() {
        assert_eq!(presented(&h(&["kw_a"], &["kw_a"], &["Bearer kw_a"])), Presented::Key("kw_a"));
    }

    #[test]
    fn credentials_that_disagree_are_ambiguous() {
        assert_eq!(presented(&h(&["kw_a", "kw_b"], &[], &[])), Presented::Ambiguous);
        assert_eq!(presented(&h(&["kw_a"], &[], &["Bearer kw_b"])), Presented::Ambiguous);
        assert_eq!(presented(&h(&["kw_a"], &["kw_b"], &[])), Presented::Ambiguous);
        assert_eq!(presented(&h(&["kw_a"], &[], &["Bearer eyJhbGciOi.x.y"])), Presented::Ambiguous);
        assert_eq!(presented(&h(&[], &[], &["Bearer a", "Bearer b"])), Presented::Ambiguous);
        assert_eq!(presented(&h(&["kw_é"], &[], &["Bearer kw_c"])), Presented::Ambiguous);
        assert_eq!(presented(&h(&["kw_a"], &[], &["Bearer \u{1}"])), Presented::Ambiguous);
    }

    #[test]
    fn a_bearer_jwt_is_not_a_key_and_other_schemes_are_not_credentials() {
        assert_eq!(presented(&h(&[], &[], &["Bearer eyJhbGciOi.x.y"])), Presented::Bearer("eyJhbGciOi.x.y"));
        assert_eq!(presented(&h(&[], &[], &["Basic abc"])), Presented::None);
        assert_eq!(presented(&h(&["kw_a"], &[], &["Basic abc"])), Presented::Key("kw_a"));
        assert_eq!(presented(&h(&[], &[], &["Bearer"])), Presented::None);
        assert_eq!(presented(&h(&[], &[], &["Bearer   "])), Presented::None);
        assert_eq!(presented(&h(&[], &[], &[])), Presented::None);
        assert_eq!(presented(&h(&["k\u{e9}y"], &[], &[])), Presented::Unreadable);
    }
}
