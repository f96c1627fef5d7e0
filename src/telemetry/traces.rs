//! Trace export (spec §8.2): the spans of [`SPANS`] become OpenTelemetry spans, exported as
//! JSON lines on stdout, or over OTLP (gRPC or HTTP/protobuf; `jaeger` is OTLP to a Jaeger
//! collector), with W3C trace context taken from records and requests and given to receivers.
//!
//! Export never holds delivery: spans go through a bounded queue to the exporter's own thread
//! and are dropped when it is full; an exporter that fails is logged at most once a minute.
//! With tracing off nothing here runs, and the spans' callsites are disabled (a branch each).

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The target of every span meant for export; log output never shows them.
pub const SPANS: &str = "webhooks::spans";

/// Whether a span export leaves each span on its own or batches them (`--otel-traces-batch`).
const QUEUE: usize = 4096;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// One JSON object per span per line on stdout.
    Stdout,
    Otlp {
        http: bool,
        /// Empty: the OTLP default for the transport.
        endpoint: String,
        insecure: bool,
    },
}

/// `--otel-*` (spec §1.3, §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    pub exporter: Exporter,
    pub batch: bool,
    pub service_name: String,
    pub resource_attributes: Vec<(String, String)>,
}

/// Builds the tracer provider; must run inside the async runtime (the gRPC and HTTP clients
/// spawn their connections on it).
pub fn provider(settings: &TraceSettings) -> anyhow::Result<SdkTracerProvider> {
    let exporter = match &settings.exporter {
        Exporter::Stdout => AnyExporter::Stdout(JsonLines::default()),
        Exporter::Otlp {
            http: false,
            endpoint,
            insecure,
        } => {
            let endpoint = with_scheme(endpoint, "localhost:4317", *insecure);
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT);
            if endpoint.starts_with("https://") {
                builder = builder.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new().with_enabled_roots(),
                );
            }
            AnyExporter::Otlp(Box::new(builder.build()?))
        }
        Exporter::Otlp {
            http: true,
            endpoint,
            insecure,
        } => {
            let mut endpoint = with_scheme(endpoint, "localhost:4318", *insecure);
            if url::Url::parse(&endpoint).is_ok_and(|u| u.path() == "/") {
                endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            }
            AnyExporter::Otlp(Box::new(
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_http_client(ReqwestClient::new()?)
                    .with_endpoint(endpoint)
                    .with_timeout(EXPORT_TIMEOUT)
                    .build()?,
            ))
        }
    };
    // Unbatched: each span is exported as soon as it ends, one per export.
    let batch = if settings.batch {
        BatchConfigBuilder::default().with_max_queue_size(QUEUE)
    } else {
        BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_max_export_batch_size(1)
            .with_scheduled_delay(Duration::from_millis(50))
    };
    let processor = BatchSpanProcessor::builder(Guarded::new(exporter))
        .with_batch_config(batch.build())
        .build();
    let name = if settings.service_name.is_empty() {
        "webhooks".to_owned()
    } else {
        settings.service_name.clone()
    };
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attributes(
            settings
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attribute(KeyValue::new("service.version", crate::VERSION))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// The tracing layer feeding `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("webhooks"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
}

/// `endpoint`, or `default`, with a scheme: `http://` when plain text is asked for, else
/// `https://` (a scheme given explicitly is kept).
fn with_scheme(endpoint: &str, default: &str, insecure: bool) -> String {
    let endpoint = if endpoint.is_empty() { default } else { endpoint };
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else if insecure {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

/// Sets `span`'s parent from a W3C `traceparent` (and `tracestate`), when valid.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    if span.is_disabled() {
        return;
    }
    struct Carrier<'a>(&'a str, Option<&'a str>);
    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => Some(self.0),
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    let cx = TraceContextPropagator::new()
        .extract_with_context(&Context::new(), &Carrier(traceparent, tracestate));
    let _ = span.set_parent(cx);
}

/// The W3C `traceparent` naming `span`, for an outbound call; None with tracing off.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    struct Carrier(Option<String>);
    impl Injector for Carrier {
        fn set(&mut self, key: &str, value: String) {
            if key == "traceparent" {
                self.0 = Some(value);
            }
        }
    }
    let mut carrier = Carrier(None);
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.0
}

/// The exporters this process may use, as one type for the batch processor.
#[derive(Debug)]
enum AnyExporter {
    Stdout(JsonLines),
    Otlp(Box<opentelemetry_otlp::SpanExporter>),
}

impl SpanExporter for AnyExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            AnyExporter::Stdout(e) => e.export(batch).await,
            AnyExporter::Otlp(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            AnyExporter::Stdout(e) => e.shutdown_with_timeout(timeout),
            AnyExporter::Otlp(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            AnyExporter::Stdout(e) => e.set_resource(resource),
            AnyExporter::Otlp(e) => e.set_resource(resource),
        }
    }
}

/// Logs export failures at most once a minute (the spans are dropped either way).
#[derive(Debug)]
struct Guarded<E> {
    inner: E,
    last_logged: Mutex<Option<Instant>>,
}

impl<E> Guarded<E> {
    fn new(inner: E) -> Self {
        Guarded {
            inner,
            last_logged: Mutex::new(None),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Guarded<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            let due = self.last_logged.lock().is_ok_and(|mut last| {
                let due = last.is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY);
                if due {
                    *last = Some(Instant::now());
                }
                due
            });
            if due {
                tracing::warn!(error = %e, spans, "trace export failed; spans are dropped (logged at most once a minute)");
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// `stdout`: one JSON object per span and line.
#[derive(Debug, Default)]
struct JsonLines {
    resource: Vec<(String, serde_json::Value)>,
}

impl SpanExporter for JsonLines {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = Vec::new();
        for span in batch {
            serde_json::to_writer(&mut out, &self.line(&span))
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
            out.push(b'\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource
            .iter()
            .map(|(k, v)| (k.to_string(), json_value(v)))
            .collect();
    }
}

impl JsonLines {
    fn line(&self, span: &SpanData) -> serde_json::Value {
        let parent = span.parent_span_id;
        let attributes: serde_json::Map<String, serde_json::Value> = span
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), json_value(&kv.value)))
            .collect();
        let (status, message): (&str, Cow<'_, str>) = match &span.status {
            Status::Unset => ("unset", Cow::Borrowed("")),
            Status::Ok => ("ok", Cow::Borrowed("")),
            Status::Error { description } => ("error", Cow::Borrowed(description.as_ref())),
        };
        serde_json::json!({
            "name": span.name,
            "traceId": span.span_context.trace_id().to_string(),
            "spanId": span.span_context.span_id().to_string(),
            "parentSpanId": (parent != opentelemetry::trace::SpanId::INVALID).then(|| parent.to_string()),
            "kind": format!("{:?}", span.span_kind).to_lowercase(),
            "startTimeUnixNano": unix_nanos(span.start_time),
            "endTimeUnixNano": unix_nanos(span.end_time),
            "attributes": attributes,
            "status": { "code": status, "message": message },
            "resource": serde_json::Map::from_iter(self.resource.iter().cloned()),
        })
    }
}

fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::I64(i) => serde_json::Value::from(*i),
        Value::F64(f) => serde_json::Value::from(*f),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        other => serde_json::Value::String(other.to_string()),
    }
}

/// The OTLP/HTTP transport on the project's reqwest (0.12) client. Requests run as tasks of the
/// runtime the exporter was built in, since the batch processor's thread has none of its own.
#[derive(Debug)]
struct ReqwestClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl ReqwestClient {
    fn new() -> anyhow::Result<ReqwestClient> {
        Ok(ReqwestClient {
            // A collector is chosen by the operator, not by API clients: no SSRF guard here.
            client: reqwest::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            runtime: tokio::runtime::Handle::try_current()?,
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ReqwestClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let response = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await??;
        let (status, body) = response;
        Ok(opentelemetry_http::Response::builder()
            .status(status)
            .body(body)?)
    }
}
