//! Property tests over the parsers that read hostile input: key secrets,
//! credential headers, console JWTs, cursors, SCIM filters and PATCH bodies,
//! IP allowlists and redaction. Pure functions only: no database, no server.
//!
//! Each property runs a fixed number of cases (see `config`) so CI stays fast;
//! a failure prints the smallest input proptest could shrink it to.

use keyward::api::pagination::{decode_cursor, encode_cursor, Page};
use keyward::auth::console::{mint_token, ConsoleVerifier};
use keyward::auth::credentials::{presented, CredentialHeaders, Presented};
use keyward::config::Settings;
use keyward::crypto::new_key_secret;
use keyward::domain::key_format::{parse_secret, MAX_SECRET_LEN};
use keyward::domain::scim::{
    most_selective, parse_filter, parse_patch, parse_resource, FilterAttr, ScimType, PATCH_OP_SCHEMA,
};
use keyward::domain::{allowlist, redact, KeyType};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// Cases per property: the functions are pure and take microseconds.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

// ------------------------------------------------------------------ generators

fn key_type() -> impl Strategy<Value = KeyType> {
    select(KeyType::ALL.to_vec())
}

/// Characters that parsers tend to trip over, plus any char at all.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => select(vec![
            '"', '\\', '[', ']', '(', ')', ' ', '\t', '\n', '.', ':', '_', '-', '=', '%', '/', '+', '0', 'a', 'Z',
            '\0', '\u{7f}', '\u{a0}', '\u{2028}', '\u{3000}', 'é', 'ß', '😀', '\u{feff}',
        ]),
    ]
}

/// Any string: mostly short, sometimes with hostile characters only.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(hostile_char(), 0..40).prop_map(|v| v.into_iter().collect()),
        prop::collection::vec(any::<u8>(), 0..60).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Substitute(Index, char),
    Insert(Index, char),
    Delete(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), hostile_char()).prop_map(|(i, c)| Edit::Substitute(i, c)),
        (any::<Index>(), hostile_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<Index>().prop_map(Edit::Delete),
    ]
}

/// Applies an edit on char boundaries, so the result stays a valid string.
fn apply(s: &str, e: &Edit) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    match e {
        Edit::Substitute(i, c) if !chars.is_empty() => {
            let i = i.index(chars.len());
            chars[i] = *c;
        }
        Edit::Insert(i, c) => {
            let i = i.index(chars.len() + 1);
            chars.insert(i, *c);
        }
        Edit::Delete(i) if !chars.is_empty() => {
            let i = i.index(chars.len());
            chars.remove(i);
        }
        _ => {}
    }
    chars.into_iter().collect()
}

fn apply_all(s: &str, edits: &[Edit]) -> String {
    edits.iter().fold(s.to_string(), |acc, e| apply(&acc, e))
}

// ------------------------------------------------------------------ key secrets

/// Every single-character substitution of a valid secret is refused, for
/// every position and every ASCII character (and a few non-ASCII ones):
/// the CRC32 catches any change of up to 32 bits, so this is exhaustive.
#[test]
fn every_single_substitution_of_a_secret_is_refused() {
    let mut alphabet: Vec<char> = (0u8..128).map(char::from).collect();
    alphabet.extend(['é', '\u{a0}', '😀', '\u{feff}']);
    for t in KeyType::ALL {
        let secret = new_key_secret(t);
        assert!(parse_secret(&secret).is_ok(), "{secret}");
        let chars: Vec<char> = secret.chars().collect();
        for i in 0..chars.len() {
            for &c in alphabet.iter().filter(|&&c| c != chars[i]) {
                let mut mutated = chars.clone();
                mutated[i] = c;
                let mutated: String = mutated.into_iter().collect();
                assert!(parse_secret(&mutated).is_err(), "accepted {mutated:?} (from {secret:?})");
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_secret_never_panics(s in hostile_string()) {
        let _ = parse_secret(&s);
    }

    #[test]
    fn parse_secret_never_panics_on_near_secrets(t in key_type(), edits in prop::collection::vec(edit(), 0..6)) {
        let secret = new_key_secret(t);
        let mutated = apply_all(&secret, &edits);
        match parse_secret(&mutated) {
            Ok(parsed) => {
                prop_assert_eq!(&mutated, &secret, "a mutated secret was accepted");
                prop_assert_eq!(parsed.key_type, t);
            }
            Err(_) => prop_assert_ne!(&mutated, &secret, "a valid secret was refused"),
        }
    }

    #[test]
    fn a_single_edit_of_a_secret_is_always_refused(t in key_type(), e in edit()) {
        let secret = new_key_secret(t);
        let mutated = apply(&secret, &e);
        if mutated != secret {
            prop_assert!(parse_secret(&mutated).is_err(), "accepted {:?} (from {:?})", mutated, secret);
        }
    }

    #[test]
    fn secrets_are_accepted_only_in_their_exact_form(t in key_type(), pad in "[ \t]{0,3}") {
        let secret = new_key_secret(t);
        prop_assert!(secret.len() <= MAX_SECRET_LEN);
        prop_assert!(parse_secret(&secret).is_ok());
        if !pad.is_empty() {
            let padded = format!("{pad}{secret}");
            prop_assert!(parse_secret(&padded).is_err());
            let suffixed = format!("{secret}{pad}");
            prop_assert!(parse_secret(&suffixed).is_err());
        }
    }
}

// ------------------------------------------------------------------ credential headers

fn header_value() -> impl Strategy<Value = Option<String>> {
    let scheme = || select(vec!["Bearer ", "bearer ", "Api-Key ", "API-KEY ", "Basic ", "Bearer", "", " Bearer  "]);
    prop_oneof![
        Just(None),
        hostile_string().prop_map(Some),
        (scheme(), hostile_string()).prop_map(|(s, v)| Some(format!("{s}{v}"))),
        (scheme(), key_type()).prop_map(|(s, t)| Some(format!("{s}{}", new_key_secret(t)))),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn credential_headers_never_panic_and_are_one_credential(
        x in prop::collection::vec(header_value(), 0..3),
        a in prop::collection::vec(header_value(), 0..3),
        auth in prop::collection::vec(header_value(), 0..3),
    ) {
        let (x, a, auth): (Vec<String>, Vec<String>, Vec<String>) =
            (x.into_iter().flatten().collect(), a.into_iter().flatten().collect(), auth.into_iter().flatten().collect());
        fn bytes(v: &[String]) -> Vec<&[u8]> {
            v.iter().map(|s| s.as_bytes()).collect()
        }
        let h = CredentialHeaders { x_api_key: bytes(&x), api_key: bytes(&a), authorization: bytes(&auth) };
        let p = presented(&h);
        let key_values: Vec<&String> = x.iter().chain(&a).collect();
        match p {
            Presented::Key(k) => {
                // Every key header says the same key, and no Authorization says another credential.
                prop_assert!(key_values.iter().all(|v| v.trim() == k), "{:?} from {:?}", k, key_values);
                prop_assert_eq!(k, k.trim());
            }
            Presented::Bearer(t) => {
                prop_assert!(key_values.is_empty(), "a token beside key headers {:?}", key_values);
                prop_assert!(!t.is_empty() && !t.starts_with("kw_"));
                prop_assert!(auth.iter().any(|v| v.contains(t)));
            }
            Presented::Ambiguous => prop_assert!(key_values.len() + auth.len() >= 2),
            Presented::Unreadable => prop_assert!(key_values.len() + auth.len() >= 1),
            Presented::None => prop_assert!(key_values.is_empty()),
        }
        let distinct: std::collections::BTreeSet<&str> = key_values.iter().map(|v| v.trim()).collect();
        if distinct.len() >= 2 {
            prop_assert_eq!(p, Presented::Ambiguous, "keys {:?}", distinct);
        }
    }
}

// ------------------------------------------------------------------ console JWTs

struct Jwt {
    settings: Settings,
    verifier: ConsoleVerifier,
    ed_private: Vec<u8>,
    ed_public_pem: String,
}

fn jwt() -> &'static Jwt {
    static JWT: OnceLock<Jwt> = OnceLock::new();
    JWT.get_or_init(|| {
        let (ed_private, ed_public_pem) = keyward::crypto::generate_ed25519();
        let vars: HashMap<&str, String> = HashMap::from([
            ("KEYWARD_DATABASE_URL", "sqlite:///nonexistent/keyward-properties.db".to_string()),
            ("KEYWARD_KEY_PEPPER", "p".repeat(40)),
            ("KEYWARD_CONSOLE_JWT_SECRET", "property-test-console-secret-0123456789".to_string()),
            ("KEYWARD_CHECKPOINT_KEY", keyward::crypto::CheckpointSigner::generate("keyward.test")),
            ("KEYWARD_CONSOLE_JWT_PUBLIC_KEY", ed_public_pem.clone()),
        ]);
        let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("settings");
        let verifier = ConsoleVerifier::new(&settings).expect("verifier");
        Jwt { settings, verifier, ed_private, ed_public_pem }
    })
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn claims(sub: &str, tid: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "tid": tid, "iss": "keyward-console", "aud": "keyward", "iat": now, "exp": now + 3600})
}

fn hs256_token() -> String {
    mint_token(&jwt().settings, "tnt_prop", "mem_prop", 3600).expect("mint")
}

fn eddsa_token() -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    encode(
        &Header::new(Algorithm::EdDSA),
        &claims("mem_prop", "tnt_prop"),
        &EncodingKey::from_ed_der(&jwt().ed_private),
    )
    .expect("sign")
}

/// A token mutated in one of its three parts (or in its structure).
fn mutated_token() -> impl Strategy<Value = (String, String)> {
    let base = prop_oneof![Just(()).prop_map(|_| hs256_token()), Just(()).prop_map(|_| eddsa_token())];
    let b64_char =
        || select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()).prop_map(char::from);
    let part_edit = prop_oneof![
        2 => edit(),
        3 => (any::<Index>(), b64_char()).prop_map(|(i, c)| Edit::Substitute(i, c)),
        1 => (any::<Index>(), b64_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
    ];
    (base, 0usize..3, prop::collection::vec(part_edit, 1..4), 0u8..8).prop_map(
        |(token, part, edits, shape): (String, usize, Vec<Edit>, u8)| {
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            match shape {
                // Structural changes.
                0 => parts.push(String::new()),
                1 => parts.truncate(2),
                2 => parts.swap(0, 1),
                3 => parts[2] = String::new(),
                // A part edited in place.
                _ => parts[part] = apply_all(&parts[part], &edits),
            }
            (token, parts.join("."))
        },
    )
}

/// Tokens whose header or payload were rewritten: alg none, alg confusion,
/// claims changed under the original signature.
fn forged_token() -> impl Strategy<Value = String> {
    let alg = select(vec!["none", "None", "HS256", "HS384", "HS512", "EdDSA", "RS256", "ES256", "", "hs256"]);
    (alg, any::<bool>(), "[a-z_]{0,12}").prop_map(|(alg, resign_with_public_key, sub)| {
        let orig = hs256_token();
        let sig = orig.rsplit('.').next().unwrap().to_string();
        let header = b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
        let payload = b64url(claims(&sub, "tnt_prop").to_string().as_bytes());
        let signing_input = format!("{header}.{payload}");
        if resign_with_public_key {
            // Algorithm confusion: HMAC keyed with the Ed25519 public key (PEM).
            use ring::hmac;
            let key = hmac::Key::new(hmac::HMAC_SHA256, jwt().ed_public_pem.as_bytes());
            format!("{signing_input}.{}", b64url(hmac::sign(&key, signing_input.as_bytes()).as_ref()))
        } else {
            format!("{signing_input}.{sig}")
        }
    })
}

#[test]
fn minted_tokens_verify() {
    let c = jwt().verifier.verify_token(&hs256_token()).expect("hs256 token verifies");
    assert_eq!((c.sub.as_str(), c.tid.as_str()), ("mem_prop", "tnt_prop"));
    assert!(jwt().verifier.verify_token(&eddsa_token()).is_ok(), "eddsa token verifies");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn verify_token_never_panics(s in hostile_string()) {
        prop_assert!(jwt().verifier.verify_token(&s).is_err());
    }

    #[test]
    fn verify_token_never_panics_on_three_parts(a in "[A-Za-z0-9_=+/-]{0,60}", b in "[A-Za-z0-9_=+/-]{0,60}", c in "[A-Za-z0-9_=+/-]{0,90}") {
        let token = format!("{a}.{b}.{c}");
        prop_assert!(jwt().verifier.verify_token(&token).is_err());
    }

    #[test]
    fn verify_token_never_accepts_a_mutated_token((orig, mutated) in mutated_token()) {
        if mutated != orig {
            prop_assert!(jwt().verifier.verify_token(&mutated).is_err(), "accepted {:?} (from {:?})", mutated, orig);
        }
    }

    #[test]
    fn verify_token_never_accepts_a_forged_header_or_payload(token in forged_token()) {
        prop_assert!(jwt().verifier.verify_token(&token).is_err(), "accepted {:?}", token);
    }
}

// ------------------------------------------------------------------ cursors

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cursors_round_trip(seq in prop_oneof![0i64..1_000_000, 0i64..=i64::MAX]) {
        prop_assert_eq!(decode_cursor(&encode_cursor(seq)).ok(), Some(seq));
    }

    #[test]
    fn negative_positions_are_refused(seq in i64::MIN..0) {
        prop_assert!(decode_cursor(&encode_cursor(seq)).is_err());
    }

    #[test]
    fn decode_cursor_never_panics(s in hostile_string()) {
        if let Ok(seq) = decode_cursor(&s) {
            prop_assert!(seq >= 0);
        }
    }

    #[test]
    fn mutated_cursors_error_or_decode_to_a_position(seq in 0i64..=i64::MAX, edits in prop::collection::vec(edit(), 1..4)) {
        let mutated = apply_all(&encode_cursor(seq), &edits);
        match decode_cursor(&mutated) {
            Ok(n) => prop_assert!(n >= 0),
            Err(e) => prop_assert_eq!(e.code.as_str(), "invalid_argument"),
        }
    }

    #[test]
    fn pages_never_panic(limit in proptest::option::of(any::<i64>()), offset in proptest::option::of(any::<i64>()), len in 0usize..50) {
        let items: Vec<usize> = (0..len).collect();
        if let Ok(page) = Page::new(limit, offset) {
            let got = page.slice(&items);
            prop_assert!(got.len() as i64 <= page.limit);
        }
    }
}

// ------------------------------------------------------------------ SCIM filters

const FILTER_ATTRS: &[(&str, Option<FilterAttr>)] = &[
    ("userName", Some(FilterAttr::UserName)),
    ("USERNAME", Some(FilterAttr::UserName)),
    ("externalId", Some(FilterAttr::ExternalId)),
    ("id", Some(FilterAttr::Id)),
    ("emails", Some(FilterAttr::Email)),
    ("emails.value", Some(FilterAttr::Email)),
    ("emails[type eq \"work\"].value", Some(FilterAttr::Email)),
    ("emails[type eq \"a]b\\\"c\"].value", Some(FilterAttr::Email)),
    ("urn:ietf:params:scim:schemas:core:2.0:User:userName", Some(FilterAttr::UserName)),
    ("displayName", None),
    ("name.givenName", None),
    ("emails[type eq \"work\"]", None),
    ("not", None),
    ("meta.lastModified", None),
];

/// A JSON string literal for `value`, as a filter carries it.
fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

/// Filters keyward supports: `attr eq "value"` joined with `and`.
fn valid_filter() -> impl Strategy<Value = (String, Vec<(FilterAttr, String)>)> {
    let clause = (select((0..9).collect::<Vec<usize>>()), select(vec!["eq", "EQ", "Eq"]), any::<String>());
    let ws = select(vec![" ", "  ", "\t", " \n "]);
    (prop::collection::vec((clause, ws.clone()), 1..4), ws, select(vec!["and", "AND", "And"])).prop_map(
        |(clauses, lead, and)| {
            let mut text = lead.to_string();
            let mut want = Vec::new();
            for (i, ((attr, op, value), ws)) in clauses.into_iter().enumerate() {
                if i > 0 {
                    text.push_str(&format!("{ws}{and}{ws}"));
                }
                let (name, parsed) = FILTER_ATTRS[attr];
                text.push_str(&format!("{name}{ws}{op}{ws}{}", quoted(&value)));
                want.push((parsed.unwrap(), value));
            }
            (text, want)
        },
    )
}

/// Grammar-shaped filters with any attribute, operator, value and joiner, plus noise.
fn noisy_filter() -> impl Strategy<Value = String> {
    let attr =
        prop_oneof![select(FILTER_ATTRS.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>()), hostile_string()];
    let op = prop_oneof![
        select(vec!["eq", "ne", "co", "sw", "ew", "pr", "gt", "EQ", ""]).prop_map(String::from),
        hostile_string()
    ];
    let value = prop_oneof![
        any::<String>().prop_map(|v| quoted(&v)),
        select(vec![
            "true",
            "null",
            "42",
            "\"unterminated",
            "\"\\",
            "\"\\u12\"",
            "\"\\ud800\"",
            "unquoted",
            "\"a\"\"b\""
        ])
        .prop_map(String::from),
        hostile_string(),
    ];
    let joiner = select(vec!["and", "or", "AND", "", "(", ")", "not"]);
    let clause = (attr, op, value).prop_map(|(a, o, v)| format!("{a} {o} {v}"));
    (prop::collection::vec((clause, joiner), 1..4), prop::collection::vec(edit(), 0..4)).prop_map(|(parts, noise)| {
        let text = parts.into_iter().map(|(c, j)| format!("{c} {j} ")).collect::<String>();
        apply_all(&text, &noise)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_filters_parse_to_their_clauses((text, want) in valid_filter()) {
        let f = parse_filter(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e:?}")))?;
        // Each conjunct is an indexed eq: its clause is its own most selective one.
        let got: Option<Vec<(FilterAttr, String)>> =
            f.conjuncts().into_iter().map(|c| most_selective(c).map(|c| (c.attr, c.value))).collect();
        prop_assert_eq!(got, Some(want));
    }

    #[test]
    fn parse_filter_never_panics(text in prop_oneof![noisy_filter(), hostile_string()]) {
        if let Err(e) = parse_filter(&text) {
            prop_assert_eq!(e.scim_type, ScimType::InvalidFilter);
            prop_assert!(!e.detail.is_empty());
        }
    }

    #[test]
    fn mutated_valid_filters_never_panic((text, _) in valid_filter(), edits in prop::collection::vec(edit(), 1..5)) {
        if let Err(e) = parse_filter(&apply_all(&text, &edits)) {
            prop_assert_eq!(e.scim_type, ScimType::InvalidFilter);
        }
    }
}

// ------------------------------------------------------------------ SCIM PATCH and resources

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "schemas",
            "Operations",
            "op",
            "path",
            "value",
            "userName",
            "emails",
            "name",
            "givenName",
            "familyName",
            "externalId",
            "active",
            "id",
            "meta",
            "primary",
            "type",
            "displayName",
            "name.givenName",
            "emails[type eq \"work\"].value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        ])
        .prop_map(String::from),
        hostile_string(),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        select(vec!["True", "false", "FALSE", " true ", "", " "]).prop_map(|s| Value::String(s.into())),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn scim_path() -> impl Strategy<Value = String> {
    let known = select(vec![
        "userName",
        "externalId",
        "active",
        "name",
        "name.givenName",
        "name.familyName",
        "emails",
        "emails.value",
        "emails[type eq \"work\"].value",
        "emails[type eq \"work\"]",
        "id",
        "meta",
        "schemas",
        "displayName",
        "phoneNumbers[type eq \"work\"]",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "urn:ietf:params:scim:schemas:core:2.0:User:",
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:x",
        "emails[",
        "emails]",
        "name..x",
        "[",
        "]",
        ".",
        "[]",
        "a[b].c.d",
        "emails[].value",
    ]);
    (known, prop::collection::vec(edit(), 0..3)).prop_map(|(p, edits)| apply_all(p, &edits))
}

fn patch_body() -> impl Strategy<Value = Value> {
    let op_name = prop_oneof![
        select(vec!["add", "replace", "remove", "Add", "Replace", "Remove", "REPLACE", "move", "", "copy"])
            .prop_map(|s| json!(s)),
        arb_json(),
    ];
    let path = prop_oneof![Just(None), scim_path().prop_map(|p| Some(json!(p))), arb_json().prop_map(Some)];
    let value = prop_oneof![Just(None), arb_json().prop_map(Some)];
    let op = (op_name, path, value).prop_map(|(op, path, value)| {
        let mut m = Map::new();
        m.insert("op".into(), op);
        if let Some(p) = path {
            m.insert("path".into(), p);
        }
        if let Some(v) = value {
            m.insert("value".into(), v);
        }
        Value::Object(m)
    });
    let schemas = prop_oneof![Just(None), Just(Some(json!([PATCH_OP_SCHEMA]))), arb_json().prop_map(Some)];
    (schemas, prop::collection::vec(prop_oneof![4 => op, 1 => arb_json()], 0..5)).prop_map(|(schemas, ops)| {
        let mut m = Map::new();
        if let Some(s) = schemas {
            m.insert("schemas".into(), s);
        }
        m.insert("Operations".into(), Value::Array(ops));
        Value::Object(m)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_patch_never_panics(body in prop_oneof![3 => patch_body(), 1 => arb_json()]) {
        let _ = parse_patch(&body);
    }

    #[test]
    fn parse_resource_never_panics(body in arb_json(), user_name in proptest::option::of(arb_json())) {
        let _ = parse_resource(&body);
        if let (Value::Object(mut m), Some(u)) = (body, user_name) {
            m.insert("userName".into(), u);
            let _ = parse_resource(&Value::Object(m));
        }
    }
}

// ------------------------------------------------------------------ allowlists

fn cidr() -> impl Strategy<Value = (String, IpAddr)> {
    prop_oneof![
        (any::<u32>(), proptest::option::of(0u8..=32)).prop_map(|(n, len)| {
            let ip = IpAddr::V4(Ipv4Addr::from(n));
            (len.map_or(ip.to_string(), |l| format!("{ip}/{l}")), ip)
        }),
        (any::<u128>(), proptest::option::of(0u8..=128)).prop_map(|(n, len)| {
            let ip = IpAddr::V6(Ipv6Addr::from(n));
            (len.map_or(ip.to_string(), |l| format!("{ip}/{l}")), ip)
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn allowlist_parse_never_panics(entries in prop::collection::vec(hostile_string(), 0..6), probe in any::<u128>()) {
        if let Ok(list) = allowlist::parse(&entries) {
            prop_assert_eq!(list.len(), entries.len());
            let _ = allowlist::allows(&list, IpAddr::V6(Ipv6Addr::from(probe)));
        }
    }

    #[test]
    fn valid_entries_parse_and_allow_their_address(entries in prop::collection::vec(cidr(), 1..6), pad in "[ \t]{0,2}") {
        let texts: Vec<String> = entries.iter().map(|(t, _)| format!("{pad}{t}{pad}")).collect();
        let list = allowlist::parse(&texts).map_err(TestCaseError::fail)?;
        for (_, ip) in &entries {
            prop_assert!(allowlist::allows(&list, *ip), "{} not allowed by {:?}", ip, texts);
        }
    }

    #[test]
    fn too_many_entries_are_refused(n in allowlist::MAX_ENTRIES + 1..allowlist::MAX_ENTRIES + 5) {
        prop_assert!(allowlist::parse(&vec!["10.0.0.1".to_string(); n]).is_err());
    }
}

// ------------------------------------------------------------------ redaction

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scrub_never_panics(s in hostile_string()) {
        let out = redact::scrub(&s);
        if !s.contains("kw_") {
            prop_assert_eq!(out, s);
        }
    }

    /// A secret quoted anywhere in a text never survives scrubbing, whatever surrounds it.
    #[test]
    fn scrub_never_leaves_a_secret(t in key_type(), before in hostile_string(), after in hostile_string()) {
        let secret = new_key_secret(t);
        let out = redact::scrub(&format!("{before}{secret}{after}"));
        prop_assert!(!out.contains(&secret), "secret survived in {:?}", out);
    }

    /// The same with the secret set off by a separator, as error messages quote values.
    #[test]
    fn scrub_removes_a_quoted_secret(
        t in key_type(), before in hostile_string(), after in hostile_string(),
        open in select(vec![" ", "`", "\"", "'", "=", ":", "(", "/", "\n"]),
        close in select(vec![" ", "`", "\"", "'", ",", ")", ".", "\n", ""]),
    ) {
        let secret = new_key_secret(t);
        let out = redact::scrub(&format!("{before}{open}{secret}{close}{after}"));
        prop_assert!(!out.contains(&secret), "secret survived in {:?}", out);
    }

    #[test]
    fn redact_and_contains_secret_never_panic(v in arb_json()) {
        let _ = redact::contains_secret(&redact::Redactor::default(), &v);
        let _ = redact::redact(&v);
    }

    /// A body with a secret anywhere is recognised, and its redacted copy holds no secret.
    #[test]
    fn a_secret_anywhere_in_a_body_is_found_and_redacted(
        t in key_type(), v in arb_json(), before in hostile_string(), after in hostile_string(), as_key in any::<bool>()
    ) {
        let secret = new_key_secret(t);
        let text = format!("{before}{secret}{after}");
        let mut item = Map::new();
        if as_key {
            item.insert(text, json!(1));
        } else {
            item.insert("note".into(), Value::String(text));
        }
        let doc = json!({"outer": v, "list": [Value::Object(item)]});
        prop_assert!(redact::contains_secret(&redact::Redactor::default(), &doc), "not found in {}", doc);
        let redacted = redact::redact(&doc).to_string();
        prop_assert!(!redacted.contains(&secret), "secret survived in {}", redacted);
    }
}

// ------------------------------------------------------------------ SCIM Groups

fn role() -> impl Strategy<Value = keyward::domain::Role> {
    select(keyward::domain::Role::ALL.to_vec())
}

/// Group member paths and filters as IDPs send them, mutated by hostile edits.
fn group_text() -> impl Strategy<Value = String> {
    let seeds = vec![
        r#"members[value eq "0193a0b2-7c1d-7e00-8000-000000000001"]"#,
        r#"displayName eq "Eng Admins" and externalId eq "00g1""#,
        r#"id eq "x""#,
        "members",
    ];
    (select(seeds), prop::collection::vec(edit(), 0..6), hostile_string()).prop_map(|(seed, edits, tail)| {
        let mut s = apply_all(seed, &edits);
        s.push_str(&tail);
        s
    })
}

proptest! {
    #![proptest_config(config())]

    /// The highest mapped role, never OWNER from a group; the owner keeps OWNER; no mapping keeps the assigned role.
    #[test]
    fn the_effective_role_is_the_highest_mapped_and_never_a_granted_owner(
        assigned in role(), mapped in prop::collection::vec(role(), 0..5)
    ) {
        use keyward::domain::groups::{effective_role, MappedRole};
        use keyward::domain::Role;
        let mapped: Vec<MappedRole> = mapped.into_iter().filter_map(|r| MappedRole::new(r).ok()).collect();
        let got = effective_role(assigned, &mapped);
        let rank = |r: Role| Role::ALL.len() - Role::ALL.iter().position(|x| *x == r).unwrap();
        if assigned == Role::Owner {
            prop_assert_eq!(got, Role::Owner);
        } else if mapped.is_empty() {
            prop_assert_eq!(got, assigned);
        } else {
            prop_assert!(got != Role::Owner);
            prop_assert!(mapped.iter().any(|m| m.role() == got));
            prop_assert!(mapped.iter().all(|m| rank(m.role()) <= rank(got)));
        }
    }

    #[test]
    fn group_filters_and_patches_never_panic(text in group_text(), value in arb_json(), op in hostile_string()) {
        use keyward::domain::groups::{parse_filter, parse_group, parse_patch};
        let _ = parse_filter(&text);
        let body = json!({"Operations": [{"op": op, "path": text, "value": value.clone()}]});
        let _ = parse_patch(&body);
        let _ = parse_patch(&json!({"Operations": [{"op": "remove", "path": text}]}));
        let _ = parse_group(&json!({"displayName": text, "members": value}));
    }
}
