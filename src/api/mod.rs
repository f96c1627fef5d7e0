//! The HTTP API (spec §2): one route table, one module per resource, JSON everywhere.

pub mod auth;
mod configs;
mod console;
mod deliveries;
pub mod errors;
mod events;
mod extract;
mod health;
mod replay;

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use serde::Serialize;

use crate::kafka::Publisher;
use crate::outbound::Outbound;
use crate::store::Store;
use crate::worker::WorkerStatus;
pub use errors::ApiError;
use std::sync::Arc;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub outbound: Outbound,
    pub max_request_bytes: usize,
    /// Set in a process that runs the worker (`serve --worker`, `worker`).
    pub worker: Option<Arc<WorkerStatus>>,
    /// Where `POST /events` publishes; None when this process has no broker to publish to.
    pub publisher: Option<Arc<Publisher>>,
    /// The unfiltered `GET /configs` answer as last rendered.
    pub config_list: Arc<configs::RenderedList>,
    /// Set when `--auth-enabled` (spec §11).
    pub auth: Option<Arc<auth::Authenticator>>,
    /// How long a replaced secret keeps signing after a secret change (spec §2.5).
    pub secret_overlap: std::time::Duration,
}

/// Which routes a process answers: `serve` the whole API, `worker` only the operational ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Api,
    Operations,
}

/// Every (method, path) that `serve` answers; the OpenAPI document must list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/_healthcheck"),
    ("GET", "/_info"),
    ("GET", "/metrics"),
    ("GET", "/openapi.yaml"),
    ("GET", "/configs"),
    ("POST", "/configs"),
    ("PUT", "/configs/{id}"),
    ("DELETE", "/configs/{id}"),
    ("GET", "/configs/{id}/test"),
    ("PUT", "/configs/{id}/activate"),
    ("PUT", "/configs/{id}/deactivate"),
    ("PUT", "/configs/{id}/secret/change"),
    ("GET", "/deliveries"),
    ("GET", "/deliveries/{id}"),
    ("GET", "/deliveries/{id}/attempts"),
    ("POST", "/deliveries/replay"),
    ("POST", "/deliveries/{id}/replay"),
    ("POST", "/events"),
];

/// The route table. Each resource answers 405 for other methods; [`not_found`] covers the rest.
/// The operator console's page and assets come along, outside the API (not in [`ROUTES`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    operational_routes(cfg);
    console::routes(cfg);
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/openapi.yaml").route(web::get().to(health::openapi)))
        .service(
            resource("/configs")
                .route(web::get().to(configs::list))
                .route(web::post().to(configs::insert)),
        )
        .service(
            resource("/configs/{id}")
                .route(web::put().to(configs::update))
                .route(web::delete().to(configs::delete)),
        )
        .service(resource("/configs/{id}/test").route(web::get().to(configs::test)))
        .service(resource("/configs/{id}/activate").route(web::put().to(configs::activate)))
        .service(resource("/configs/{id}/deactivate").route(web::put().to(configs::deactivate)))
        .service(resource("/configs/{id}/secret/change").route(web::put().to(configs::change_secret)))
        .service(resource("/deliveries").route(web::get().to(deliveries::list)))
        .service(resource("/deliveries/replay").route(web::post().to(replay::bulk)))
        .service(resource("/deliveries/{id}").route(web::get().to(deliveries::get)))
        .service(resource("/deliveries/{id}/attempts").route(web::get().to(deliveries::attempts)))
        .service(resource("/deliveries/{id}/replay").route(web::post().to(replay::one)))
        .service(resource("/events").route(web::post().to(events::publish)));
}

/// What `webhooks worker` serves (spec §1.1).
pub fn operational_routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/_healthcheck").route(web::get().to(health::healthcheck)))
        .service(resource("/_info").route(web::get().to(health::info)))
        .service(resource("/metrics").route(web::get().to(health::metrics)));
}

/// 405 with the `Allow` header RFC 9110 requires: the methods [`ROUTES`] lists for the path.
async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    let mut resp = ApiError::method_not_allowed().error_response();
    let pattern = req.match_pattern().unwrap_or_default();
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, path)| *path == pattern)
        .map(|(method, _)| *method)
        .collect();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    resp
}

async fn not_found() -> HttpResponse {
    ApiError::not_found("route not found").error_response()
}

/// A JSON body: the value and the newline every body of the API ends with.
fn json_body<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut body = serde_json::to_vec(value)?;
    body.push(b'\n');
    Ok(body)
}

/// A JSON answer.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    match json_body(value) {
        Ok(body) => HttpResponse::build(status)
            .content_type("application/json")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            HttpResponse::InternalServerError()
                .content_type("application/json")
                .body("{\"errorCode\":\"INTERNAL\",\"errorMessage\":\"internal error\"}\n")
        }
    }
}

/// A 200 JSON answer whose body was rendered earlier ([`cursor_body`]).
pub fn rendered(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// `{"data":…}`
pub fn data<T: Serialize>(value: &T) -> HttpResponse {
    #[derive(Serialize)]
    struct Data<'a, T> {
        data: &'a T,
    }
    json_response(StatusCode::OK, &Data { data: value })
}

/// A 200 with an empty body (still `application/json`, spec §2.1).
pub fn empty() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").finish()
}

/// The list envelope `{"cursor":{"pageSize","hasMore","previous","next","data"}}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor<T> {
    #[serde(skip_serializing_if = "is_zero")]
    pub page_size: usize,
    pub has_more: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub previous: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next: String,
    pub data: Vec<T>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct CursorEnvelope<'a, T> {
    cursor: &'a Cursor<T>,
}

pub fn cursor<T: Serialize>(cursor: &Cursor<T>) -> HttpResponse {
    json_response(StatusCode::OK, &CursorEnvelope { cursor })
}

/// The body of [`cursor`]'s answer, for answers kept and served again.
pub fn cursor_body<T: Serialize>(cursor: &Cursor<T>) -> Result<web::Bytes, ApiError> {
    json_body(&CursorEnvelope { cursor })
        .map(web::Bytes::from)
        .map_err(|e| {
            tracing::error!(error = %e, "response serialisation failed");
            ApiError::internal()
        })
}

/// The span of one API request (spec §8.2), parented by its `traceparent` header: the method
/// and the route template, never ids, queries or credentials.
fn request_span(req: &actix_web::dev::ServiceRequest, route: &str) -> tracing::Span {
    let method = req.method().as_str();
    let span = tracing::info_span!(
        target: crate::telemetry::SPANS,
        "webhooks.http",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        crate::telemetry::traces::set_parent(&span, header("traceparent"), header("tracestate"));
    }
    span
}

/// A running API server.
pub struct Server {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `listen` and starts serving; signals are handled by the caller (one shutdown path).
/// `shutdown_timeout` bounds how long a graceful stop waits for requests in flight.
pub fn start(
    state: AppState,
    listen: &str,
    surface: Surface,
    shutdown_timeout: std::time::Duration,
) -> std::io::Result<Server> {
    let authenticate = state.auth.is_some();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            // Registered first, so it runs inside the metrics wrapper: refusals are counted too.
            .wrap(actix_web::middleware::Condition::new(
                authenticate,
                actix_web::middleware::from_fn(auth::require),
            ))
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service as _;
                use tracing::Instrument as _;
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                let span = request_span(&req, &route);
                let call = span.in_scope(|| srv.call(req));
                let current = span.clone();
                async move {
                    let res = call.await?;
                    current.record("http.response.status_code", i64::from(res.status().as_u16()));
                    if res.status().is_server_error() {
                        current.record("otel.status_code", "error");
                    }
                    crate::metrics::metrics()
                        .http_requests
                        .with_label_values(&[route.as_str(), res.status().as_str()])
                        .inc();
                    Ok(res)
                }
                .instrument(span)
            })
            .app_data(data.clone())
            .configure(match surface {
                Surface::Api => routes,
                Surface::Operations => operational_routes,
            })
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs().max(1))
    .bind(listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Server { addr, handle, task })
}
