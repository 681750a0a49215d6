//! Cross-site request forgery and the security headers of every response, for the whole router
//! (the JSON API and the web pages alike).
//!
//! A browser attaches the session cookie to a form another site posts to us. So a request that
//! changes something (any method but GET, HEAD, OPTIONS) must show it comes from our own pages
//! unless it carries an API key (`Authorization: Bearer …`, which a browser never adds on its own):
//! `Sec-Fetch-Site` must be `same-origin` or `none`; a browser too old to send it sends `Origin`,
//! which must then be our public URL or the `Host` the request was sent to. A request with
//! neither header is not from a browser and passes unless it relies on the session cookie. No
//! tokens: every browser we support sends one of the two headers (OWASP accepts fetch metadata
//! with an Origin fallback), and the cookie is SameSite=Lax besides.

use super::AppState;
use super::error::error_response;
use crate::domain::{Error, Kind};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The router-wide check (see the module comment).
pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || allowed(req.headers(), &state.settings.public_url) {
        return next.run(req).await;
    }
    error_response(
        Error::new(
            Kind::Forbidden,
            "cross_site_request",
            "This request came from another website, so it was refused. Use smscast's own pages, or an API key.",
        )
        .with_details(serde_json::json!({"origin": req.headers().get(ORIGIN).and_then(|v| v.to_str().ok())})),
    )
}

fn allowed(headers: &HeaderMap, public_url: &str) -> bool {
    let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("Bearer "));
    if bearer {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().map(origin_of).unwrap_or_default();
        let host = headers.get(HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
        return origin == origin_of(public_url) || host.is_some_and(|h| origin.split_once("://").is_some_and(|(_, o)| o == h));
    }
    super::extract::session_cookie_in(headers).is_none()
}

/// `scheme://host[:port]` of a URL, lower-cased, without a default port or a path: the form of
/// an `Origin` header.
fn origin_of(url: &str) -> String {
    let url = url.trim().to_ascii_lowercase();
    let Some((scheme, rest)) = url.split_once("://") else { return url };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = match scheme {
        "https" => authority.strip_suffix(":443").unwrap_or(authority),
        "http" => authority.strip_suffix(":80").unwrap_or(authority),
        _ => authority,
    };
    format!("{scheme}://{authority}")
}

/// Headers every response carries. API answers can hold secrets (a new key, a session, a store's
/// first password), so no `/api/` answer is ever stored by a browser or a proxy. Pages add their
/// own Content-Security-Policy.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if api {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins_compare_without_default_ports_or_paths() {
        assert_eq!(origin_of("https://Shop.Example:443/app/"), "https://shop.example");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn who_may_change_things() {
        let url = "https://sms.example.test";
        let cookie = ("cookie", "smscast_session=abc");
        assert!(allowed(&headers(&[cookie, ("sec-fetch-site", "same-origin")]), url));
        assert!(allowed(&headers(&[cookie, ("sec-fetch-site", "none")]), url));
        assert!(!allowed(&headers(&[cookie, ("sec-fetch-site", "cross-site")]), url));
        assert!(!allowed(&headers(&[cookie, ("sec-fetch-site", "same-site")]), url));
        assert!(allowed(&headers(&[cookie, ("origin", "https://sms.example.test")]), url));
        assert!(allowed(&headers(&[cookie, ("origin", "http://10.0.0.5:8080"), ("host", "10.0.0.5:8080")]), url));
        assert!(!allowed(&headers(&[cookie, ("origin", "https://evil.example"), ("host", "sms.example.test")]), url));
        assert!(!allowed(&headers(&[cookie, ("origin", "null")]), url));
        assert!(!allowed(&headers(&[cookie]), url), "a cookie alone proves nothing");
        assert!(allowed(&headers(&[]), url), "not a browser, no cookie: nothing to forge");
        assert!(!allowed(&headers(&[("sec-fetch-site", "cross-site")]), url), "nor a log-in from another site");
        assert!(allowed(&headers(&[cookie, ("authorization", "Bearer sk_live_x"), ("sec-fetch-site", "cross-site")]), url));
    }
}
