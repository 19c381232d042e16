//! The secret's wire format: `kw_<tag>_<random><checksum>`.
//!
//! `random` is 27 base62 characters (160.8 bits) and `checksum` is the CRC32
//! of everything before it, as 6 base62 characters. The checksum lets secret
//! scanners and keyward itself reject mistyped or forged strings before any
//! database work.

use super::key_type::KeyType;

pub const PREFIX: &str = "kw_";
pub const RANDOM_LEN: usize = 27;
pub const CHECKSUM_LEN: usize = 6;
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Longest possible secret; anything longer is refused before parsing.
pub const MAX_SECRET_LEN: usize = 3 + 10 + 1 + RANDOM_LEN + CHECKSUM_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretError {
    /// Not shaped like a keyward secret at all.
    Malformed,
    /// Shaped right, but the checksum does not match: mistyped or forged.
    BadChecksum,
}

/// A secret that passed format and checksum checks. Not yet known to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedSecret {
    pub key_type: KeyType,
}

fn checksum(body: &str) -> String {
    encode_base62_fixed(crc32fast::hash(body.as_bytes()) as u64, CHECKSUM_LEN)
}

fn encode_base62_fixed(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).expect("base62 is ASCII")
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Builds a secret from `random`, which must be RANDOM_LEN base62 characters.
pub fn compose_secret(key_type: KeyType, random: &str) -> String {
    assert!(random.len() == RANDOM_LEN && is_base62(random), "random part must be base62");
    let body = format!("{PREFIX}{}_{random}", key_type.tag());
    let sum = checksum(&body);
    body + &sum
}

/// Checks format and checksum; no I/O.
pub fn parse_secret(secret: &str) -> Result<ParsedSecret, SecretError> {
    if secret.len() > MAX_SECRET_LEN || !secret.is_ascii() {
        return Err(SecretError::Malformed);
    }
    let rest = secret.strip_prefix(PREFIX).ok_or(SecretError::Malformed)?;
    let (tag, tail) = rest.split_once('_').ok_or(SecretError::Malformed)?;
    let key_type = KeyType::from_tag(tag).ok_or(SecretError::Malformed)?;
    if tail.len() != RANDOM_LEN + CHECKSUM_LEN || !is_base62(tail) {
        return Err(SecretError::Malformed);
    }
    let (_, sum) = secret.split_at(secret.len() - CHECKSUM_LEN);
    let body = &secret[..secret.len() - CHECKSUM_LEN];
    if checksum(body) != sum {
        return Err(SecretError::BadChecksum);
    }
    Ok(ParsedSecret { key_type })
}

/// The display hint kept in the database: type prefix and the last four characters.
pub fn hint(secret: &str, key_type: KeyType) -> String {
    let tail = &secret[secret.len().saturating_sub(4)..];
    format!("{PREFIX}{}_…{tail}", key_type.tag())
}

/// Whether a value looks like it was meant to be a keyward key (for `Authorization: Bearer`).
pub fn has_key_prefix(value: &str) -> bool {
    value.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = "abcdefghijklmnopqrstuvwxyz0";

    #[test]
    fn composed_secrets_parse_back_for_every_type() {
        for t in KeyType::ALL {
            let s = compose_secret(t, RANDOM);
            assert!(s.starts_with(&format!("kw_{}_", t.tag())));
            assert_eq!(parse_secret(&s), Ok(ParsedSecret { key_type: t }));
            assert!(s.len() <= MAX_SECRET_LEN);
        }
    }

    #[test]
    fn random_part_carries_at_least_160_bits() {
        assert!((RANDOM_LEN as f64) * 62f64.log2() >= 160.0);
    }

    #[test]
    fn one_changed_character_breaks_the_checksum() {
        let s = compose_secret(KeyType::Siem, RANDOM);
        let mut bytes = s.clone().into_bytes();
        let i = "kw_siem_".len() + 3;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(bytes).unwrap();
        assert_eq!(parse_secret(&typo), Err(SecretError::BadChecksum));
    }

    #[test]
    fn changing_the_tag_breaks_the_checksum() {
        let s = compose_secret(KeyType::TeamAssetAudit, RANDOM);
        let forged = s.replacen("assetaudit", "assetmgmt", 1);
        assert_eq!(parse_secret(&forged), Err(SecretError::BadChecksum));
    }

    #[test]
    fn shapes_that_are_not_secrets_are_malformed() {
        for bad in [
            "",
            "kw_",
            "kw_siem",
            "kw_siem_",
            "kw_root_abcdefghijklmnopqrstuvwxyz0123456",
            "sk_siem_abcdefghijklmnopqrstuvwxyz0123456",
            "kw_siem_abc",
            "kw_siem_abcdefghijklmnopqrstuvwxyz012345!",
            "kw_siem_abcdefghijklmnopqrstuvwxyz01234567",
            "kw_siem_abcdefghijklmnopqrstuvwxyz01234é",
        ] {
            assert_eq!(parse_secret(bad), Err(SecretError::Malformed), "{bad}");
        }
        assert_eq!(parse_secret(&"k".repeat(10_000)), Err(SecretError::Malformed));
    }

    #[test]
    fn hint_shows_type_and_last_four_only() {
        let s = compose_secret(KeyType::Siem, RANDOM);
        let h = hint(&s, KeyType::Siem);
        assert!(h.starts_with("kw_siem_…"));
        assert!(h.ends_with(&s[s.len() - 4..]));
        assert!(!h.contains(RANDOM));
    }
}
