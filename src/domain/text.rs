//! Free text a caller gives with a change (reasons, notes): trimmed, bounded.

/// Most characters a reason (a revocation, a legal hold, its release) may hold.
pub const MAX_REASON_CHARS: usize = 500;

/// `s` trimmed, if it then holds 1 to `max` characters; otherwise the message
/// naming `field` that the caller gets.
pub fn bounded(field: &str, s: &str, max: usize) -> Result<String, String> {
    let t = s.trim();
    if !(1..=max).contains(&t.chars().count()) {
        return Err(format!("{field} must be 1 to {max} characters"));
    }
    Ok(t.to_string())
}

/// Why a change was made: trimmed, 1 to [`MAX_REASON_CHARS`] characters.
pub fn reason(s: &str) -> Result<String, String> {
    bounded("reason", s, MAX_REASON_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(reason("  audit finding  ").as_deref(), Ok("audit finding"));
        assert_eq!(reason(&"é".repeat(500)).map(|r| r.chars().count()), Ok(500));
        for bad in [String::new(), "   ".into(), "x".repeat(501)] {
            assert_eq!(reason(&bad), Err("reason must be 1 to 500 characters".to_string()), "{bad:?}");
        }
    }

    #[test]
    fn the_field_and_bound_name_the_message() {
        assert_eq!(bounded("note", "", 1000), Err("note must be 1 to 1000 characters".to_string()));
        assert_eq!(bounded("note", " ok ", 1000).as_deref(), Ok("ok"));
    }
}
