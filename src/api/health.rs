//! Operational routes: `/_healthcheck`, `/_info`, `/openapi.yaml` (spec §2.9).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{empty, json_response, ApiError, AppState};
use crate::VERSION;

/// Each dependency probe gets this long before it counts as down.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

pub async fn healthcheck(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let storage = tokio::time::timeout(PROBE_DEADLINE, state.store.ping()).await;
    if let Some(worker) = &state.worker {
        if !worker.storage_writes_ok() {
            return Err(ApiError::unavailable("storage unavailable"));
        }
        if matches!(storage, Ok(Ok(()))) && !worker.kafka_ok(PROBE_DEADLINE).await {
            tracing::warn!("health probe: kafka metadata unreachable");
            return Err(ApiError::unavailable("kafka unavailable"));
        }
    }
    match storage {
        Ok(Ok(())) => Ok(empty()),
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "health probe: storage unavailable");
            Err(ApiError::unavailable("storage unavailable"))
        }
        Err(_) => {
            tracing::warn!("health probe: storage did not answer within 2s");
            Err(ApiError::unavailable("storage unavailable"))
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info<'a> {
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kafka_bootstrap: Option<&'a str>,
}

pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    let kafka_bootstrap = state.worker.as_ref().and_then(|w| w.kafka_bootstrap.as_deref());
    json_response(
        actix_web::http::StatusCode::OK,
        &Info {
            version: VERSION,
            kafka_bootstrap,
        },
    )
}

/// The document at the repository root, with `info.version` set to the running version.
pub async fn openapi() -> HttpResponse {
    let doc =
        include_str!("../../openapi.yaml").replacen("version: 0.0.0-dev", &format!("version: {VERSION}"), 1);
    HttpResponse::Ok().content_type("application/yaml").body(doc)
}

/// Prometheus text exposition (spec §2.9).
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render())
}
