//! Unsubscribe codes. The code at the end of every message's link is the message's id put through
//! a keyed permutation (a Feistel network whose rounds are SipHash-2-4 under a per-installation
//! key), written in the 57-letter token alphabet. So a code needs no column and no unique index
//! (those were the largest cost of materializing a campaign), maps back to exactly one message,
//! and without the key cannot be guessed, derived from another code, or tied to a message id: a
//! random 10-letter string names an existing message with the same odds as before (~n / 2^58).

use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// The unambiguous token alphabet (no 0/O, 1/l/I), shared with API keys and session tokens
/// (`secrets::random_token`).
pub const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// Characters in a code: 57^10 > 2^58, so every 58-bit value has a 10-letter spelling.
pub const CODE_LEN: usize = 10;
const HALF_BITS: u32 = 29;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const DOMAIN: u64 = 1 << (2 * HALF_BITS);
const ROUNDS: u64 = 8;

/// The secret behind every code of one installation (kept in the database's `settings`).
#[derive(Clone, PartialEq, Eq)]
pub struct CodeKey([u64; 2]);

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(…)")
    }
}

impl CodeKey {
    /// A key from its two halves; `secrets::new_code_key` draws a fresh one.
    pub fn new(k0: u64, k1: u64) -> CodeKey {
        CodeKey([k0, k1])
    }

    pub fn to_hex(&self) -> String {
        format!("{:016x}{:016x}", self.0[0], self.0[1])
    }

    pub fn from_hex(s: &str) -> Option<CodeKey> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        Some(CodeKey([u64::from_str_radix(&s[..16], 16).ok()?, u64::from_str_radix(&s[16..], 16).ok()?]))
    }

    /// An independent key for another kind of code (tracked links): codes of one kind cannot be
    /// turned into codes of the other, not even by someone holding many of both.
    pub fn derive(&self, purpose: u64) -> CodeKey {
        let part = |i: u64| {
            let mut h = SipHasher24::new_with_keys(self.0[0], self.0[1]);
            h.write_u64(u64::MAX - purpose);
            h.write_u64(i);
            h.finish()
        };
        CodeKey([part(0), part(1)])
    }

    fn round(&self, round: u64, half: u64) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.0[0], self.0[1]);
        h.write_u64(round << HALF_BITS | half);
        h.finish() & HALF_MASK
    }

    /// The code of message `id` (ids are positive and far below 2^58).
    pub fn code(&self, id: i64) -> String {
        debug_assert!((0..DOMAIN as i64).contains(&id), "message id {id} outside the code domain");
        let (mut l, mut r) = ((id as u64 >> HALF_BITS) & HALF_MASK, id as u64 & HALF_MASK);
        for i in 0..ROUNDS {
            (l, r) = (r, l ^ self.round(i, r));
        }
        let mut n = l << HALF_BITS | r;
        let base = ALPHABET.len() as u64;
        let mut out = [0u8; CODE_LEN];
        for c in out.iter_mut().rev() {
            *c = ALPHABET[(n % base) as usize];
            n /= base;
        }
        out.iter().map(|&b| b as char).collect()
    }

    /// The message a code names, if it is a well-formed code (whether that message exists is the
    /// database's answer).
    pub fn message_id(&self, code: &str) -> Option<i64> {
        if code.len() != CODE_LEN {
            return None;
        }
        let base = ALPHABET.len() as u64;
        let mut n = 0u64;
        for b in code.bytes() {
            n = n * base + ALPHABET.iter().position(|&a| a == b)? as u64;
        }
        if n >= DOMAIN {
            return None;
        }
        let (mut l, mut r) = (n >> HALF_BITS, n & HALF_MASK);
        for i in (0..ROUNDS).rev() {
            (l, r) = (r ^ self.round(i, l), l);
        }
        Some((l << HALF_BITS | r) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_look_like_tokens_and_differ_per_key() {
        let (a, b) = (CodeKey([1, 2]), CodeKey([3, 4]));
        let code = a.code(1);
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|c| ALPHABET.contains(&c)), "{code}");
        assert_ne!(a.code(1), b.code(1));
        assert_ne!(a.code(1), a.code(2));
        assert_eq!(b.message_id(&a.code(1)).filter(|&id| id == 1), None);
    }

    #[test]
    fn malformed_codes_name_nothing() {
        let k = CodeKey([7, 9]);
        for bad in ["", "short", "ABCDEFGHJKL", "ABCDEFGH0I", "zzzzzzzzzz", "ΑBCDEFGHJ"] {
            assert_eq!(k.message_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_hex_is_no_key() {
        assert_eq!(CodeKey::from_hex("not hex"), None);
    }

    proptest! {
        #[test]
        fn keys_survive_their_hex_form(k0: u64, k1: u64) {
            let k = CodeKey::new(k0, k1);
            prop_assert_eq!(CodeKey::from_hex(&k.to_hex()), Some(k));
        }

        #[test]
        fn every_code_leads_back_to_its_message(k0: u64, k1: u64, id in 0i64..(1 << 58)) {
            let k = CodeKey([k0, k1]);
            prop_assert_eq!(k.message_id(&k.code(id)), Some(id));
        }

        #[test]
        fn neighbouring_messages_get_unrelated_codes(k0: u64, k1: u64, id in 1i64..(1 << 40)) {
            let k = CodeKey([k0, k1]);
            let (a, b) = (k.code(id), k.code(id + 1));
            prop_assert_ne!(&a, &b);
            // A permutation of the whole 58-bit space: most letters change between neighbours.
            prop_assert!(a.bytes().zip(b.bytes()).filter(|(x, y)| x == y).count() < 6, "{} {}", a, b);
        }
    }
}
