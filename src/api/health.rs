//! Operational routes: `/_healthcheck`, `/_info`, `/openapi.yaml` (spec §2.9).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{empty, json_response, ApiError, AppState};
use crate::VERSION;

/// Each dependency probe gets this long before it counts as down.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

pub async fn healthcheck(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(PROBE_DEADLINE, state.store.ping()).await {
        Ok(Ok(())) => Ok(empty()),
        Ok(Err(e)) => {
            tracing::warn!(error = %super::errors::error_chain(&e), "health probe: storage unavailable");
            Err(ApiError::unavailable("storage unavailable"))
        }
        Err(_) => {
            tracing::warn!("health probe: storage did not answer within 2s");
            Err(ApiError::unavailable("storage unavailable"))
        }
    }
}

#[derive(Serialize)]
struct Info {
    version: &'static str,
}

pub async fn info() -> HttpResponse {
    json_response(actix_web::http::StatusCode::OK, &Info { version: VERSION })
}

/// The document at the repository root, with `info.version` set to the running version.
pub async fn openapi() -> HttpResponse {
    let doc =
        include_str!("../../openapi.yaml").replacen("version: 0.0.0-dev", &format!("version: {VERSION}"), 1);
    HttpResponse::Ok().content_type("application/yaml").body(doc)
}
