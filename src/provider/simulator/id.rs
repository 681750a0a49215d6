//! Provider message ids: 128 bits, written like a ULID.

use serde::{Serialize, Serializer};

/// A 128-bit id rendered as 26 Crockford base32 characters, like a ULID.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct MessageId(pub(super) u128);

pub(super) const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl MessageId {
    pub(super) fn encode(self) -> [u8; 26] {
        let mut out = [0u8; 26];
        for (i, c) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *c = CROCKFORD[((self.0 >> shift) & 31) as usize];
        }
        out
    }

    /// None for anything that is not one of our ids (including ids that
    /// would overflow 128 bits).
    pub(super) fn parse(s: &str) -> Option<u128> {
        let bytes = s.as_bytes();
        if bytes.len() != 26 || !matches!(bytes[0], b'0'..=b'7') {
            return None;
        }
        bytes.iter().try_fold(0u128, |acc, &b| {
            let v = CROCKFORD.iter().position(|&c| c == b.to_ascii_uppercase())?;
            Some((acc << 5) | v as u128)
        })
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let buf = self.encode();
        // The alphabet is ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| std::fmt::Error)?)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let buf = self.encode();
        match std::str::from_utf8(&buf) {
            Ok(text) => s.serialize_str(text),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}
