//! Authentication of Mitto's webhooks. Mitto signs nothing; it attaches the custom headers chosen
//! when a webhook is registered. So the shared secret travels in `X-Webhook-Secret` and is
//! compared in constant time with every configured secret (two may be active while one is
//! rotated). With no secret configured, every call is refused.

use crate::domain::{Error, Kind};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

pub const HEADER: &str = "x-webhook-secret";

/// Ok when the request carries one of `secrets`. Each comparison is of two SHA-256 digests, byte
/// by byte without an early exit, and every secret is compared: the time taken says nothing about
/// how much of a guess was right, nor which secret matched.
pub fn check(secrets: &[String], headers: &HeaderMap) -> Result<(), Error> {
    let given = headers.get(HEADER).map(|v| Sha256::digest(v.as_bytes()));
    let mut ok = false;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let want = Sha256::digest(secret.as_bytes());
        let diff = given.as_ref().map_or(1, |g| g.iter().zip(want.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)));
        ok |= diff == 0;
    }
    if ok {
        Ok(())
    } else {
        Err(Error::new(Kind::Unauthorized, "invalid_webhook_secret", "This webhook call does not carry a valid X-Webhook-Secret header."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(HEADER, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn any_configured_secret_passes_and_nothing_else() {
        let secrets = vec!["old-secret".to_string(), "new-secret".to_string()];
        assert!(check(&secrets, &headers(Some("old-secret"))).is_ok());
        assert!(check(&secrets, &headers(Some("new-secret"))).is_ok());
        assert!(check(&secrets, &headers(Some("new-secre"))).is_err());
        assert!(check(&secrets, &headers(None)).is_err());
        assert!(check(&[], &headers(Some(""))).is_err(), "no secret configured refuses everything");
        assert!(check(&[String::new()], &headers(Some(""))).is_err(), "an empty secret is no secret");
    }
}
