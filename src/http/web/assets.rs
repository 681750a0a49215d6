//! The one stylesheet and the one script, compiled into the binary and served under names that
//! carry a hash of their bytes: browsers may cache them for a year, and a new build gets new names.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const CSS: &str = include_str!("../../../static/app.css");
const JS: &str = include_str!("../../../static/app.js");

pub struct Asset {
    pub url: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset(ext: &str, body: &'static str, content_type: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
    Asset { url: format!("/static/app.{hash}.{ext}"), body, content_type }
}

pub static STYLE: LazyLock<Asset> = LazyLock::new(|| asset("css", CSS, "text/css; charset=utf-8"));
pub static SCRIPT: LazyLock<Asset> = LazyLock::new(|| asset("js", JS, "text/javascript; charset=utf-8"));

/// `GET /static/{file}`: only the current names exist; an old hash is a 404, never stale bytes.
pub async fn serve(Path(file): Path<String>) -> Response {
    for a in [&*STYLE, &*SCRIPT] {
        if a.url.strip_prefix("/static/") == Some(file.as_str()) {
            return ([(CONTENT_TYPE, a.content_type), (CACHE_CONTROL, "public, max-age=31536000, immutable")], a.body).into_response();
        }
    }
    super::not_found_page(super::i18n::Lang::En)
}
