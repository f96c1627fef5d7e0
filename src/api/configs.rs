//! `/configs` routes (spec §2.5, §2.6).

use std::sync::RwLock;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::extract::{query_pairs, read_body, require_json};
use super::{cursor_body, data, empty, rendered, ApiError, AppState, Cursor};
use crate::domain::config::{secret_problem, Config, ConfigInput};
use crate::domain::endpoint::is_url_reference;
use crate::domain::json::{decode_object, FieldKind, FieldSpec};
use crate::domain::secret::{generate_secret, validate_secret};
use crate::domain::time::Timestamp;
use crate::outbound::SignedRequest;
use crate::store::ConfigFilter;

const CONFIG_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "endpoint",
        kind: FieldKind::String,
    },
    FieldSpec {
        name: "secret",
        kind: FieldKind::String,
    },
    FieldSpec {
        name: "eventTypes",
        kind: FieldKind::StringList,
    },
];

const SECRET_FIELDS: &[FieldSpec] = &[FieldSpec {
    name: "secret",
    kind: FieldKind::String,
}];

const BAD_LIST_PARAMS: &str = "invalid params: only 'id' and 'endpoint' with a valid URL are accepted";

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut filter = ConfigFilter::default();
    for (key, value) in query_pairs(&req) {
        let slot = match key.as_str() {
            "id" => &mut filter.id,
            "endpoint" if is_url_reference(&value) => &mut filter.endpoint,
            _ => return Err(ApiError::validation(BAD_LIST_PARAMS)),
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::validation(BAD_LIST_PARAMS));
        }
    }
    let unfiltered = filter.id.is_none() && filter.endpoint.is_none();
    // Read before the query: a change after this point makes what the query saw outdated.
    let generation = state.store.config_generation().filter(|_| unfiltered);
    if let Some(body) = generation.and_then(|g| state.config_list.current(g)) {
        return Ok(rendered(body));
    }
    let configs = state.store.run(move |q| Ok(q.list_configs(&filter)?)).await?;
    let body = cursor_body(&Cursor {
        page_size: 0,
        has_more: false,
        previous: String::new(),
        next: String::new(),
        data: configs,
    })?;
    if let Some(g) = generation {
        state.config_list.keep(g, body.clone());
    }
    Ok(rendered(body))
}

/// The unfiltered list answer, rendered once per change of the configs and then served from
/// memory: with 100 configs, querying and rendering (200 timestamps formatted) is almost all of
/// a request's cost. It is current while the store's config generation has not moved, which
/// follows this process's writes at once and other processes' within milliseconds (PostgreSQL
/// LISTEN; see `store/changes.rs`).
#[derive(Debug, Default)]
pub struct RenderedList {
    body: RwLock<Option<(u64, web::Bytes)>>,
}

impl RenderedList {
    fn current(&self, generation: u64) -> Option<web::Bytes> {
        match &*self.body.read().ok()? {
            Some((g, body)) if *g == generation => Some(body.clone()),
            _ => None,
        }
    }

    fn keep(&self, generation: u64, body: web::Bytes) {
        if let Ok(mut slot) = self.body.write() {
            if slot.as_ref().is_none_or(|(g, _)| *g <= generation) {
                *slot = Some((generation, body));
            }
        }
    }
}

/// Decodes and validates an insert/update body (§2.1.1 then §2.4).
async fn config_input(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<ConfigInput, ApiError> {
    let body = read_body(req, payload, state.max_request_bytes).await?;
    let decoded = decode_object(&body, CONFIG_FIELDS).map_err(|e| ApiError::validation(e.to_string()))?;
    require_json(req)?;
    ConfigInput::validate(
        decoded.string("endpoint"),
        decoded.string("secret"),
        decoded.string_list("eventTypes"),
    )
    .map_err(|e| ApiError::validation(e.to_string()))
}

pub async fn insert(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input = config_input(&req, payload, &state).await?;
    let now = Timestamp::now();
    let config = Config {
        endpoint: input.endpoint,
        secret: input.secret.unwrap_or_else(generate_secret),
        event_types: input.event_types,
        id: uuid::Uuid::new_v4().to_string(),
        active: true,
        name: None,
        created_at: now,
        updated_at: now,
        previous_secret: None,
    };
    let stored = config.clone();
    state
        .store
        .change_configs(move |q| Ok(q.insert_config(&stored)?))
        .await?;
    tracing::info!(config.id = %config.id, "config created");
    Ok(data(&config))
}

pub async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input = config_input(&req, payload, &state).await?;
    let id = id.into_inner();
    let found = state
        .store
        .change_configs(move |q| {
            Ok(q.update_config(
                &id,
                &input.endpoint,
                &input.event_types,
                input.secret.as_deref(),
                Timestamp::now(),
            )?)
        })
        .await?;
    if found {
        Ok(empty())
    } else {
        Err(ApiError::config_not_found())
    }
}

pub async fn delete(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let log_id = id.clone();
    let cancelled = state
        .store
        .change_configs(move |q| Ok(q.delete_config(&id, Timestamp::now())?))
        .await?
        .ok_or_else(ApiError::config_not_found)?;
    if cancelled > 0 {
        crate::metrics::metrics()
            .deliveries
            .with_label_values(&[crate::domain::delivery::DeliveryStatus::Cancelled.as_str()])
            .inc_by(cancelled as u64);
    }
    tracing::info!(config.id = %log_id, cancelled, "config deleted");
    Ok(empty())
}

async fn set_active(id: String, active: bool, state: &AppState) -> Result<HttpResponse, ApiError> {
    let config = state
        .store
        .change_configs(move |q| Ok(q.set_config_active(&id, active, Timestamp::now())?))
        .await?
        .ok_or_else(ApiError::config_not_found)?;
    Ok(data(&config))
}

pub async fn activate(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    set_active(id.into_inner(), true, &state).await
}

pub async fn deactivate(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    set_active(id.into_inner(), false, &state).await
}

/// The body is optional: nothing, `null`, `{}` or `{"secret":""}` all mean "generate one".
pub async fn change_secret(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.max_request_bytes).await?;
    let mut secret = None;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let decoded = decode_object(&body, SECRET_FIELDS).map_err(|e| ApiError::validation(e.to_string()))?;
        require_json(&req)?;
        secret = decoded
            .string("secret")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    let secret = match secret {
        Some(s) => {
            validate_secret(&s).map_err(|e| ApiError::validation(secret_problem(&e)))?;
            s
        }
        None => generate_secret(),
    };
    let id = id.into_inner();
    let now = Timestamp::now();
    // With --secret-overlap, the replaced secret keeps signing until then (spec §2.5). An
    // overlap too long for the calendar (beyond any Go duration) is treated as none.
    let keep_previous_until = chrono::TimeDelta::from_std(state.secret_overlap)
        .ok()
        .filter(|d| !d.is_zero())
        .and_then(|d| now.as_datetime().checked_add_signed(d))
        .map(Timestamp::from_datetime);
    let config = state
        .store
        .change_configs(move |q| Ok(q.change_config_secret(&id, &secret, keep_previous_until, now)?))
        .await?
        .ok_or_else(ApiError::config_not_found)?;
    Ok(data(&config))
}

/// What the test route answers (spec §2.6), keys in contract order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TestAttempt {
    id: String,
    #[serde(rename = "webhookID")]
    webhook_id: String,
    created_at: &'static str,
    updated_at: &'static str,
    config: Config,
    payload: &'static str,
    status_code: u16,
    retry_attempt: u32,
    status: &'static str,
    next_retry_after: &'static str,
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
const TEST_BODY: &str = "{\"data\":\"test\"}";

pub async fn test(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let config = state
        .store
        .run(move |q| Ok(q.get_config(&id)?))
        .await?
        .ok_or_else(ApiError::config_not_found)?;
    let webhook_id = uuid::Uuid::new_v4().to_string();
    let result = state
        .outbound
        .send(SignedRequest {
            endpoint: &config.endpoint,
            secret: &config.secret,
            previous_secret: config.previous_secret_at(Timestamp::now()),
            webhook_id: &webhook_id,
            body: TEST_BODY.as_bytes(),
            idempotency_key: "ik",
            test: true,
            traceparent: crate::telemetry::traces::traceparent(&tracing::Span::current()).as_deref(),
        })
        .await;
    let status_code = result.status_code();
    if let Err(e) = &result.response {
        tracing::info!(config.id = %config.id, error = %e.message(), "test call got no response");
    }
    Ok(data(&TestAttempt {
        id: uuid::Uuid::new_v4().to_string(),
        webhook_id,
        created_at: ZERO_TIME,
        updated_at: ZERO_TIME,
        config,
        payload: TEST_BODY,
        status_code,
        retry_attempt: 0,
        status: if (200..300).contains(&status_code) {
            "success"
        } else {
            "failed"
        },
        next_retry_after: ZERO_TIME,
    }))
}
