//! Prints a well-formed key secret that was never issued (for `make bench`'s unknown-key scenario:
//! it passes the checksum, so every request reaches the lookup).
fn main() {
    println!("{}", keyward::crypto::new_key_secret(keyward::domain::KeyType::Siem));
}
