//! Generating and checking credentials: API keys, session tokens, passwords.
//!
//! API keys and session tokens are 160-bit random values, so a plain SHA-256 is enough to store
//! them (no brute force is possible); passwords are people-chosen, so they get argon2.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::domain::unsubscribe::{ALPHABET, CodeKey};

/// A fresh key for unsubscribe codes (the domain computes codes; the randomness is drawn here).
pub fn new_code_key() -> CodeKey {
    CodeKey::new(rand::random(), rand::random())
}

/// A random token of `len` characters from an unambiguous alphabet (~5.8 bits each).
pub fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Store API keys look like `sk_live_…`, operator keys like `sk_admin_…`: recognisable in logs
/// and by secret scanners.
pub fn new_api_key(prefix: &str) -> String {
    format!("{prefix}{}", random_token(32))
}

pub const STORE_KEY_PREFIX: &str = "sk_live_";
pub const ADMIN_KEY_PREFIX: &str = "sk_admin_";

/// The part of a key shown in listings, enough to tell keys apart.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default params").to_string()
}

/// A real hash to verify against when the user does not exist, so both paths cost the same.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no such user"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn keys_are_prefixed_and_random() {
        let a = new_api_key(STORE_KEY_PREFIX);
        assert!(a.starts_with("sk_live_") && a.len() == 40);
        assert_ne!(a, new_api_key(STORE_KEY_PREFIX));
    }
}
