//! Which credential a request carries. Pure: works on header values only.

use crate::domain::key_format::has_key_prefix;

/// The raw header values that may carry a credential.
#[derive(Debug, Default, Clone, Copy)]
pub struct CredentialHeaders<'a> {
    pub x_api_key: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

/// The enterprise key a request presents, by SPEC §2 precedence:
/// `X-API-Key`, then `Api-Key`, then `Authorization: Api-Key <key>` or
/// `Authorization: Bearer <key>` when the value has the `kw_` prefix.
pub fn presented_key<'a>(h: &CredentialHeaders<'a>) -> Option<&'a str> {
    if let Some(v) = h.x_api_key {
        return Some(v.trim());
    }
    if let Some(v) = h.api_key {
        return Some(v.trim());
    }
    let auth = h.authorization?.trim();
    let (scheme, value) = auth.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("Api-Key") {
        return Some(value);
    }
    if scheme.eq_ignore_ascii_case("Bearer") && has_key_prefix(value) {
        return Some(value);
    }
    None
}

/// The console JWT a request presents: `Authorization: Bearer <jwt>` whose value is not a key.
pub fn presented_console_token<'a>(h: &CredentialHeaders<'a>) -> Option<&'a str> {
    let (scheme, value) = h.authorization?.trim().split_once(' ')?;
    let value = value.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !has_key_prefix(value) && !value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(x: Option<&'a str>, a: Option<&'a str>, auth: Option<&'a str>) -> CredentialHeaders<'a> {
        CredentialHeaders { x_api_key: x, api_key: a, authorization: auth }
    }

    #[test]
    fn precedence_is_x_api_key_then_api_key_then_authorization() {
        assert_eq!(presented_key(&h(Some("kw_a"), Some("kw_b"), Some("Bearer kw_c"))), Some("kw_a"));
        assert_eq!(presented_key(&h(None, Some("kw_b"), Some("Bearer kw_c"))), Some("kw_b"));
        assert_eq!(presented_key(&h(None, None, Some("Bearer kw_c"))), Some("kw_c"));
        assert_eq!(presented_key(&h(None, None, Some("Api-Key kw_d"))), Some("kw_d"));
        assert_eq!(presented_key(&h(None, None, Some("api-key kw_d"))), Some("kw_d"));
    }

    #[test]
    fn a_bearer_jwt_is_not_a_key_and_a_bearer_key_is_not_a_jwt() {
        assert_eq!(presented_key(&h(None, None, Some("Bearer eyJhbGciOi.x.y"))), None);
        assert_eq!(presented_console_token(&h(None, None, Some("Bearer eyJhbGciOi.x.y"))), Some("eyJhbGciOi.x.y"));
        assert_eq!(presented_console_token(&h(None, None, Some("Bearer kw_siem_x"))), None);
        assert_eq!(presented_key(&h(None, None, Some("Basic abc"))), None);
        assert_eq!(presented_key(&h(None, None, Some("Bearer"))), None);
        assert_eq!(presented_key(&h(None, None, None)), None);
    }
}
