//! The operator console (`GET /console`): a single page and its assets, kept as plain files in
//! `console/` at the repository root and embedded in the binary, so it needs nothing at run time
//! (no CDN, no network). It is a client of the public API only (spec §2.2), run by the browser:
//! these routes are not part of the API, so they are in neither [`super::ROUTES`] nor
//! `openapi.yaml`. Only `serve` answers them; `webhooks worker` does not.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles, images and requests
//! from this origin only; no inline script or style), and an ETag with `Cache-Control: no-cache`:
//! the browser revalidates each load and gets a 304 until the binary changes.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page, served at `/console`; the rest under `/console/<name>`.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("chart.js", JS),
    asset!("metrics.js", JS),
    asset!("overview.js", JS),
    asset!("endpoints.js", JS),
    asset!("deliveries.js", JS),
];

/// `"<first 16 bytes of the SHA-256, hex>"` per asset, in [`ASSETS`] order.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// No inline script or style, nothing from elsewhere, no framing, no form posts.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Whether `path` is the page or one of its assets: they stay open with authentication on
/// (spec §11), as the page must load before the browser has a key to send; they carry no data.
pub(super) fn is_open(path: &str) -> bool {
    path == "/console"
        || path == "/console/"
        || path
            .strip_prefix("/console/")
            .is_some_and(|name| ASSETS.iter().skip(1).any(|a| a.name == name))
}

/// Registered on the API surface only.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(super::method_not_allowed));
    cfg.service(resource("/console").route(web::get().to(page)))
        .service(resource("/console/").route(web::get().to(to_page)))
        .service(resource("/console/{name}").route(web::get().to(asset)));
}

async fn page(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

/// `/console/` ⇒ `/console`, relative so that it also works behind a gateway's path prefix.
async fn to_page() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "../console"))
        .finish()
}

async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    // The page itself is only at `/console`, so that relative links resolve one way.
    match ASSETS.iter().skip(1).position(|a| a.name == name.as_str()) {
        Some(i) => Ok(serve(&req, i + 1)),
        None => Err(ApiError::not_found("route not found")),
    }
}

fn serve(req: &HttpRequest, index: usize) -> HttpResponse {
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == etag)
        });
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        res.finish()
    } else {
        res.content_type(asset.content_type).body(asset.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the page loads is embedded, and nothing is embedded twice.
    #[test]
    fn every_referenced_file_is_served() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            for (prefix, end) in [("=\"console/", '"'), ("from './", '\'')] {
                for part in text.split(prefix).skip(1) {
                    let name = part.split(end).next().unwrap_or_default();
                    assert!(
                        names.contains(&name),
                        "{} refers to {name}, which is not embedded",
                        asset.name
                    );
                }
            }
        }
    }
}
