//! Reading requests the way the contract wants (spec §2.1.1): the body size is checked while
//! reading, before anything is parsed; the media type is compared case-insensitively.

use actix_web::web::{Bytes, BytesMut, Payload};
use actix_web::HttpRequest;
use futures_util::StreamExt;

use super::ApiError;

/// Reads the whole body, refusing with 413 as soon as it passes `limit` bytes.
pub async fn read_body(req: &HttpRequest, mut payload: Payload, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, "request body read failed");
            ApiError::validation("Request body contains badly-formed JSON")
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Rule 8 of §2.1.1: the media type must be `application/json`, parameters ignored.
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let media_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    match media_type {
        Some(t) if t.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::validation(
            "Content-Type header should be application/json",
        )),
    }
}

/// The query string as decoded (name, value) pairs, in order, repetitions kept.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The query as single values, after the checks every route with a query shares: only `allowed`
/// names (unless `ignore_others`), each at most once.
pub fn single_values(
    req: &HttpRequest,
    allowed: &[&str],
    ignore_others: bool,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = query_pairs(req);
    if ignore_others {
        pairs.retain(|(k, _)| allowed.contains(&k.as_str()));
    } else if let Some((k, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(ApiError::validation(format!("unsupported query parameter: {k}")));
    }
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(other, _)| other == k) {
            return Err(ApiError::validation("query parameters must have one value"));
        }
    }
    Ok(pairs)
}

pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
