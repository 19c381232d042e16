//! All cryptography: randomness, key hashing (HMAC-SHA256 with the pepper),
//! the audit hash chain (SHA-256), constant-time comparison (all `ring`), and
//! the audit checkpoints' C2SP signed notes (Ed25519, `signed_note`).

use crate::domain::key_format::{compose_secret, BASE62, RANDOM_LEN};
use crate::domain::KeyType;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

/// Hex of 32 zero bytes: the `prev_hash` of a chain's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A hash of the audit hash chain: SHA-256, stored as its 32 bytes, shown
/// (and chained, see [`chain_hash`]) as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// What the first event of a chain follows: the hex text is 64 zeros.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ChainHash> {
        bytes.try_into().ok().map(ChainHash)
    }

    /// 64 hex digits (either case); None for anything else.
    pub fn parse(text: &str) -> Option<ChainHash> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(ChainHash(out))
    }
}

impl std::fmt::Display for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl std::fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

impl PartialEq<str> for ChainHash {
    fn eq(&self, other: &str) -> bool {
        ChainHash::parse(other).is_some_and(|h| h == *self)
    }
}

impl serde::Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(&self.0))
    }
}

fn rng() -> &'static SystemRandom {
    static RNG: std::sync::OnceLock<SystemRandom> = std::sync::OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rng().fill(&mut out).expect("the system random source failed");
    out
}

/// Uniform base62 characters by rejection sampling (248 = 4 × 62).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>() {
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A fresh key secret of the given type.
pub fn new_key_secret(key_type: KeyType) -> String {
    compose_secret(key_type, &random_base62(RANDOM_LEN))
}

/// A random 256-bit secret, hex encoded (generated peppers and console secrets).
pub fn new_hex_secret() -> String {
    hex(&random_bytes::<32>())
}

/// The pepper-keyed hash of a key secret: the only thing stored about it.
#[derive(Clone)]
pub struct KeyHasher(hmac::Key);

impl KeyHasher {
    pub fn new(pepper: &[u8]) -> Self {
        KeyHasher(hmac::Key::new(hmac::HMAC_SHA256, pepper))
    }

    pub fn hash(&self, secret: &str) -> String {
        hex(hmac::sign(&self.0, secret.as_bytes()).as_ref())
    }
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher([redacted])")
    }
}

/// `SHA-256(prev_hash ‖ canonical event)`, hex. `prev_hash` is taken as its hex text.
pub fn chain_hash(prev_hash: &ChainHash, canonical_event: &[u8]) -> ChainHash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    // The previous hash as its hex text: what the chain has always hashed.
    let mut prev_hex = [0u8; 64];
    hex_into(&prev_hash.0, &mut prev_hex);
    ctx.update(&prev_hex);
    ctx.update(canonical_event);
    ChainHash(ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes"))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// A running SHA-256 (export files are hashed as they are read back).
pub struct Sha256Stream(digest::Context);

impl Sha256Stream {
    pub fn new() -> Self {
        Sha256Stream(digest::Context::new(&digest::SHA256))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish_hex(self) -> String {
        hex(self.0.finish().as_ref())
    }
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream::new()
    }
}

/// Signs and checks export download links: HMAC-SHA256 under a key derived
/// from the pepper (`HMAC(pepper, "keyward export links v1")`), so a link
/// signature never equals a key hash and every instance computes the same.
#[derive(Clone)]
pub struct LinkSigner(hmac::Key);

impl LinkSigner {
    pub fn new(pepper: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, pepper);
        let derived = hmac::sign(&root, b"keyward export links v1");
        LinkSigner(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    fn message(kind: &str, tenant_id: &str, uid: &str, expires: i64) -> String {
        format!("{kind}|{tenant_id}|{uid}|{expires}")
    }

    /// Hex signature over `kind|tenant|uid|expires`.
    pub fn sign(&self, kind: &str, tenant_id: &str, uid: &str, expires: i64) -> String {
        hex(hmac::sign(&self.0, Self::message(kind, tenant_id, uid, expires).as_bytes()).as_ref())
    }

    /// Constant-time check of a hex signature; malformed hex is simply wrong.
    pub fn verify(&self, kind: &str, tenant_id: &str, uid: &str, expires: i64, sig_hex: &str) -> bool {
        let Some(sig) = unhex(sig_hex) else { return false };
        hmac::verify(&self.0, Self::message(kind, tenant_id, uid, expires).as_bytes(), &sig).is_ok()
    }
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner([redacted])")
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// Constant-time equality for tokens compared in memory (the ingest token).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare digests so that lengths leak nothing either.
    let (da, db) = (digest::digest(&digest::SHA256, a), digest::digest(&digest::SHA256, b));
    da.as_ref().iter().zip(db.as_ref()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An Ed25519 key pair for tests and tooling: (PKCS#8 private DER, SPKI public PEM).
pub fn generate_ed25519() -> (Vec<u8>, String) {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng()).expect("ed25519 key generation");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("fresh pkcs8 parses");
    // SubjectPublicKeyInfo for Ed25519 is a fixed 12-byte prefix and the 32-byte key.
    let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    spki.extend_from_slice(pair.public_key().as_ref());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", base64_std(&spki));
    (pkcs8.as_ref().to_vec(), pem)
}

pub fn hex(bytes: &[u8]) -> String {
    let mut text = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut text);
    String::from_utf8(text).expect("hex digits are ASCII")
}

/// `bytes` as lowercase hex digits, into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[(b >> 4) as usize];
        pair[1] = DIGITS[(b & 15) as usize];
    }
}

fn base64_std(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Seals the credentials of SIEM sinks (webhook secrets, HEC tokens) at rest:
/// AES-256-GCM under a key derived from the pepper by HKDF-SHA256 (info
/// `keyward sink secrets v1`), a random 96-bit nonce per seal, and the sink's
/// id as associated data, so a sealed blob moved to another sink does not open.
/// Stored form: nonce ‖ ciphertext ‖ tag.
pub struct SecretSealer(ring::aead::LessSafeKey);

impl SecretSealer {
    pub fn new(pepper: &[u8]) -> SecretSealer {
        use ring::{aead, hkdf};
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(pepper);
        let okm =
            prk.expand(&[b"keyward sink secrets v1"], &aead::AES_256_GCM).expect("32 bytes is a valid HKDF length");
        SecretSealer(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
    }

    pub fn seal(&self, sink_id: &str, secret: &[u8]) -> Vec<u8> {
        use ring::aead;
        let nonce_bytes = random_bytes::<{ aead::NONCE_LEN }>();
        let mut sealed = secret.to_vec();
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce_bytes),
                aead::Aad::from(sink_id.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any message this short");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The secret, or None when the blob is not this sink's under this pepper.
    pub fn open(&self, sink_id: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        use ring::aead;
        if sealed.len() < aead::NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, body) = sealed.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self.0.open_in_place(nonce, aead::Aad::from(sink_id.as_bytes()), &mut body).ok()?;
        Some(plain.to_vec())
    }
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSealer([redacted])")
    }
}

/// The prefix Standard Webhooks gives a signing secret.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// A fresh webhook signing secret: `whsec_` and base64 of 32 random bytes.
pub fn new_webhook_secret() -> String {
    use base64::Engine;
    format!("{WEBHOOK_SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>()))
}

/// The `webhook-signature` value of a Standard Webhooks message:
/// `v1,` and base64 of HMAC-SHA256 under the secret's bytes over `{id}.{timestamp}.{body}`.
pub fn webhook_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_bytes = b64.decode(secret.strip_prefix(WEBHOOK_SECRET_PREFIX)?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{msg_id}.{timestamp}.").as_bytes());
    ctx.update(body);
    Some(format!("v1,{}", b64.encode(ctx.sign().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::key_format::parse_secret;

    #[test]
    fn fresh_secrets_are_valid_and_distinct() {
        let a = new_key_secret(KeyType::Siem);
        let b = new_key_secret(KeyType::Siem);
        assert_ne!(a, b);
        assert!(parse_secret(&a).is_ok());
    }

    #[test]
    fn hmac_depends_on_pepper() {
        let s = new_key_secret(KeyType::Siem);
        let h1 = KeyHasher::new(b"pepper-one").hash(&s);
        assert_eq!(h1, KeyHasher::new(b"pepper-one").hash(&s));
        assert_ne!(h1, KeyHasher::new(b"pepper-two").hash(&s));
        assert_eq!(h1.len(), 64);
        assert!(!h1.contains(&s));
    }

    #[test]
    fn chain_hash_binds_prev_and_event() {
        let h = chain_hash(&ChainHash::GENESIS, b"event");
        assert_ne!(h, chain_hash(&ChainHash::GENESIS, b"evenT"));
        assert_ne!(h, chain_hash(&h, b"event"));
        assert_eq!(ChainHash::GENESIS.to_string(), GENESIS_HASH);
        assert_eq!(ChainHash::parse(&h.to_string()), Some(h));
        assert_eq!(ChainHash::parse(&h.to_string().to_uppercase()), Some(h));
        assert_eq!(ChainHash::parse("zz"), None);
        assert_eq!(ChainHash::parse(&"g".repeat(64)), None);
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn link_signatures_bind_every_field_and_the_pepper() {
        let s = LinkSigner::new(b"pepper-one");
        let sig = s.sign("EDISCOVERY", "t1", "u1", 100);
        assert_eq!(sig.len(), 64);
        assert!(s.verify("EDISCOVERY", "t1", "u1", 100, &sig));
        assert!(!s.verify("COMPLIANCE", "t1", "u1", 100, &sig));
        assert!(!s.verify("EDISCOVERY", "t2", "u1", 100, &sig));
        assert!(!s.verify("EDISCOVERY", "t1", "u2", 100, &sig));
        assert!(!s.verify("EDISCOVERY", "t1", "u1", 101, &sig));
        assert!(!LinkSigner::new(b"pepper-two").verify("EDISCOVERY", "t1", "u1", 100, &sig));
        assert!(!s.verify("EDISCOVERY", "t1", "u1", 100, "zz"));
        assert!(!s.verify("EDISCOVERY", "t1", "u1", 100, &sig[..62]));
        assert_ne!(sig, KeyHasher::new(b"pepper-one").hash("EDISCOVERY|t1|u1|100"));
    }

    #[test]
    fn streamed_sha256_equals_one_shot() {
        let mut h = Sha256Stream::new();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish_hex(), sha256_hex(b"abc"));
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64_std(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_std(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64_std(b"foob"), "Zm9vYg==");
    }
}

/// The key that signs audit checkpoints: a C2SP signed-note signer key,
/// `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ Ed25519 seed)>`. Never
/// printed, stored in the database, logged or exported: only its verifier
/// key leaves the process.
pub struct CheckpointSigner {
    signer: signed_note::StandardSigner,
    verifier_key: String,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSigner({})", self.verifier_key)
    }
}

/// Ed25519's algorithm byte in signed-note keys.
const NOTE_ED25519: u8 = 0x01;

impl CheckpointSigner {
    /// Parses a signer key; the error says what is wrong without echoing it.
    pub fn parse(skey: &str) -> Result<CheckpointSigner, String> {
        use base64::Engine;
        let signer = signed_note::StandardSigner::new(skey.trim())
            .map_err(|e| format!("not a signed-note Ed25519 signer key ({e})"))?;
        // PRIVATE+KEY+name+id+key: the key is the fifth field (its base64 may hold `+`).
        let encoded = skey.trim().splitn(5, '+').nth(4).unwrap_or_default();
        let raw = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| "bad base64".to_string())?;
        let seed = raw.get(1..).filter(|s| s.len() == 32).ok_or("not an Ed25519 seed")?;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| "not an Ed25519 seed")?;
        let verifier_key = note_verifier_key(signed_note::Signer::name(&signer), pair_public(&pair));
        Ok(CheckpointSigner { signer, verifier_key })
    }

    /// A new signer key for `name` (a C2SP key name: no spaces or `+`).
    pub fn generate(name: &str) -> String {
        use base64::Engine;
        let seed: [u8; 32] = random_bytes();
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are a seed");
        let public = [&[NOTE_ED25519], pair_public(&pair)].concat();
        let private = [&[NOTE_ED25519], seed.as_slice()].concat();
        format!(
            "PRIVATE+KEY+{name}+{:08x}+{}",
            signed_note::key_id(name, &public),
            base64::engine::general_purpose::STANDARD.encode(private)
        )
    }

    /// The key name, which checkpoints' origins start with.
    pub fn name(&self) -> &str {
        signed_note::Signer::name(&self.signer)
    }

    /// `<name>+<key id>+<base64(0x01 ‖ public key)>`: what verifiers are given.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// `text` as a signed note with this key's signature line.
    pub fn sign_note(&self, text: &[u8]) -> Result<Vec<u8>, String> {
        let mut note = signed_note::Note::new(text, &[]).map_err(|e| e.to_string())?;
        note.add_sigs(&[&self.signer]).map_err(|e| e.to_string())?;
        Ok(note.to_bytes())
    }
}

fn pair_public(pair: &ring::signature::Ed25519KeyPair) -> &[u8] {
    use ring::signature::KeyPair;
    pair.public_key().as_ref()
}

fn note_verifier_key(name: &str, public: &[u8]) -> String {
    use base64::Engine;
    let key = [&[NOTE_ED25519], public].concat();
    format!("{name}+{:08x}+{}", signed_note::key_id(name, &key), base64::engine::general_purpose::STANDARD.encode(&key))
}

/// Whether `verifier_key` is a signed-note verifier key (`name+id+base64`) this code can check with.
pub fn check_verifier_key(verifier_key: &str) -> Result<(), String> {
    signed_note::StandardVerifier::new(verifier_key.trim()).map(|_| ()).map_err(|e| format!("not a verifier key ({e})"))
}

/// Checks a signed note against a verifier key: its text if a signature by
/// that key verifies, else why not.
pub fn open_note(note: &[u8], verifier_key: &str) -> Result<Vec<u8>, String> {
    let verifier =
        signed_note::StandardVerifier::new(verifier_key.trim()).map_err(|e| format!("bad verifier key: {e}"))?;
    let note = signed_note::Note::from_bytes(note).map_err(|e| format!("not a signed note: {e}"))?;
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&list).map_err(|e| format!("the signature does not verify: {e}"))?;
    Ok(note.text().to_vec())
}

#[cfg(test)]
mod checkpoint_signer_tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_notes_its_verifier_key_opens_and_no_other() {
        let skey = CheckpointSigner::generate("keyward.example");
        let signer = CheckpointSigner::parse(&skey).unwrap();
        assert!(signer.verifier_key().starts_with("keyward.example+"));
        assert!(!format!("{signer:?}").contains(&skey[12..]), "Debug shows no private key");
        let note = signer.sign_note(b"origin\n1\nAAAA\n").unwrap();
        assert_eq!(open_note(&note, signer.verifier_key()).unwrap(), b"origin\n1\nAAAA\n");
        let other = CheckpointSigner::parse(&CheckpointSigner::generate("keyward.example")).unwrap();
        assert!(open_note(&note, other.verifier_key()).is_err());
        let mut altered = note.clone();
        altered[0] ^= 1;
        assert!(open_note(&altered, signer.verifier_key()).is_err());
        assert!(CheckpointSigner::parse("PRIVATE+KEY+x+00000000+AAAA").is_err());
    }

    /// The signed-note specification's example: a verifier key and a note
    /// signed with it (c2sp.org/signed-note), opened by keyward's code.
    #[test]
    fn the_c2sp_example_note_verifies() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\
                    \n\
                    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let text = open_note(note.as_bytes(), vkey).unwrap();
        assert!(text.starts_with(b"If you think cryptography"));
    }
}

// ------------------------------------------------------------------ secret-scanning reports

/// The DER prefix of an X.509 SubjectPublicKeyInfo for an EC P-256 key
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes): the uncompressed
/// point follows it.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The public keys a secret-scanning partner signs its reports with (ECDSA
/// P-256 over SHA-256, ASN.1 DER signatures, base64), by identifier.
pub struct ScanningKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ScanningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|(id, _)| id)).finish()
    }
}

/// Why a report's signature is not accepted (the audit event's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureRefusal {
    /// No identifier or no signature header.
    Missing,
    /// An identifier none of the configured keys has.
    UnknownKey,
    /// Not base64, or not a valid signature of the body under that key.
    BadSignature,
}

impl SignatureRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            SignatureRefusal::Missing => "missing_signature",
            SignatureRefusal::UnknownKey => "unknown_signing_key",
            SignatureRefusal::BadSignature => "bad_signature",
        }
    }
}

impl ScanningKeys {
    /// GitHub's key document, as `GET https://api.github.com/meta/public_keys/secret_scanning`
    /// serves it: `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`.
    /// Every key listed verifies, current or not: reports signed before a rotation still arrive.
    pub fn parse(document: &str) -> Result<ScanningKeys, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            public_keys: Vec<Listed>,
        }
        #[derive(serde::Deserialize)]
        struct Listed {
            key_identifier: String,
            key: String,
        }
        let doc: Document = serde_json::from_str(document)
            .map_err(|e| format!("not a secret-scanning key document ({{\"public_keys\": [...]}}): {e}"))?;
        if doc.public_keys.is_empty() {
            return Err("the key document lists no key".into());
        }
        let keys = doc
            .public_keys
            .into_iter()
            .map(|k| {
                let point = p256_point_of_pem(&k.key).map_err(|e| format!("key {}: {e}", k.key_identifier))?;
                Ok((k.key_identifier, point))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ScanningKeys { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `signature_b64` over the raw `body` with the key named `key_identifier`.
    pub fn verify(
        &self,
        key_identifier: Option<&str>,
        signature_b64: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureRefusal> {
        use base64::Engine;
        let (Some(id), Some(sig)) = (key_identifier, signature_b64) else {
            return Err(SignatureRefusal::Missing);
        };
        let (_, point) = self.keys.iter().find(|(k, _)| k == id.trim()).ok_or(SignatureRefusal::UnknownKey)?;
        let sig =
            base64::engine::general_purpose::STANDARD.decode(sig.trim()).map_err(|_| SignatureRefusal::BadSignature)?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(body, &sig)
            .map_err(|_| SignatureRefusal::BadSignature)
    }
}

/// The uncompressed point of a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of P-256.
fn p256_point_of_pem(pem: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let body: String = pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| "not a PEM public key")?;
    match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(point.to_vec()),
        _ => Err("not an ECDSA P-256 public key (SubjectPublicKeyInfo)".into()),
    }
}

/// An ECDSA P-256 public key's PEM, as a partner publishes it (for tests and tools).
pub fn p256_public_key_pem(uncompressed_point: &[u8]) -> String {
    use base64::Engine;
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(uncompressed_point);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

#[cfg(test)]
mod scanning_key_tests {
    use super::*;
    use base64::Engine;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn partner() -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let pem = p256_public_key_pem(pair.public_key().as_ref());
        (pair, pem)
    }

    #[test]
    fn reports_verify_under_their_key_only() {
        let (pair, pem) = partner();
        let (other, other_pem) = partner();
        let doc = serde_json::json!({"public_keys": [
            {"key_identifier": "k1", "key": pem, "is_current": true},
            {"key_identifier": "k2", "key": other_pem, "is_current": false},
        ]});
        let keys = ScanningKeys::parse(&doc.to_string()).unwrap();
        assert_eq!(keys.len(), 2);
        let body = br#"[{"token":"t","type":"x"}]"#;
        let sign = |p: &EcdsaKeyPair, b: &[u8]| {
            let sig = p.sign(&SystemRandom::new(), b).unwrap();
            base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
        };
        assert_eq!(keys.verify(Some("k1"), Some(&sign(&pair, body)), body), Ok(()));
        assert_eq!(keys.verify(Some("k2"), Some(&sign(&other, body)), body), Ok(()));
        assert_eq!(keys.verify(Some("k1"), Some(&sign(&other, body)), body), Err(SignatureRefusal::BadSignature));
        let mut altered = body.to_vec();
        altered[3] ^= 1;
        assert_eq!(keys.verify(Some("k1"), Some(&sign(&pair, body)), &altered), Err(SignatureRefusal::BadSignature));
        assert_eq!(keys.verify(Some("k9"), Some(&sign(&pair, body)), body), Err(SignatureRefusal::UnknownKey));
        assert_eq!(keys.verify(Some("k1"), Some("%%%"), body), Err(SignatureRefusal::BadSignature));
        assert_eq!(keys.verify(None, Some("x"), body), Err(SignatureRefusal::Missing));
        assert_eq!(keys.verify(Some("k1"), None, body), Err(SignatureRefusal::Missing));
    }

    #[test]
    fn bad_documents_are_refused() {
        for doc in ["", "{}", r#"{"public_keys": []}"#, r#"{"public_keys": [{"key_identifier": "a", "key": "x"}]}"#] {
            assert!(ScanningKeys::parse(doc).is_err(), "{doc}");
        }
        // An Ed25519 key is not a P-256 key.
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
        let doc = serde_json::json!({"public_keys": [{"key_identifier": "a", "key": ed}]});
        assert!(ScanningKeys::parse(&doc.to_string()).is_err());
    }

    #[test]
    fn sealed_secrets_open_only_for_their_sink_and_pepper() {
        let sealer = SecretSealer::new(b"pepper-one");
        let sealed = sealer.seal("sink-a", b"hec-token-123");
        assert!(!sealed.windows(13).any(|w| w == b"hec-token-123"));
        assert_ne!(sealed, sealer.seal("sink-a", b"hec-token-123"), "a fresh nonce per seal");
        assert_eq!(sealer.open("sink-a", &sealed).as_deref(), Some(&b"hec-token-123"[..]));
        assert_eq!(sealer.open("sink-b", &sealed), None, "the sink id is bound as AAD");
        assert_eq!(SecretSealer::new(b"pepper-two").open("sink-a", &sealed), None);
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(sealer.open("sink-a", &tampered), None);
        assert_eq!(sealer.open("sink-a", &sealed[..10]), None);
    }

    #[test]
    fn webhook_signatures_follow_standard_webhooks() {
        // The Standard Webhooks reference example (svix test vector).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = webhook_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let fresh = new_webhook_secret();
        assert!(fresh.starts_with("whsec_") && fresh.len() == 6 + 44);
        assert!(webhook_signature("nope", "m", 1, b"").is_none());
    }
}
