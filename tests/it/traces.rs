//! Trace export on the binary (spec §8.2): the spans, their attributes and parents, the
//! outbound `traceparent`, nothing secret, for every exporter — decoded by collectors this test
//! runs on 127.0.0.1 (OTLP over gRPC and over HTTP/protobuf) or read from stdout.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::net::TcpListener;

use crate::cli::{serve, serve_keeping_stdout, webhooks, Served};
use crate::harness::{eventually, Backend, Receiver, TestDb};
use crate::kafka;
use crate::liveness::new_topic;

const WAIT: Duration = Duration::from_secs(30);
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";
/// In the payload of the traced record: must never reach a span.
const PAYLOAD_MARK: &str = "payload-marker-91f3";

/// A span as the collectors received it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

type Spans = Arc<Mutex<Vec<Span>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn collect(request: &ExportTraceServiceRequest, into: &Spans) {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let attributes = s
                    .attributes
                    .iter()
                    .map(|kv| {
                        let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(any_value::Value::StringValue(v)) => v.clone(),
                            Some(any_value::Value::IntValue(v)) => v.to_string(),
                            Some(any_value::Value::BoolValue(v)) => v.to_string(),
                            Some(any_value::Value::DoubleValue(v)) => v.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), v)
                    })
                    .collect();
                out.push(Span {
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    attributes,
                });
            }
        }
    }
    if let Ok(mut all) = into.lock() {
        all.extend(out);
    }
}

/// An OTLP/gRPC collector on 127.0.0.1.
#[derive(Clone)]
struct Grpc(Spans);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        collect(request.get_ref(), &self.0);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_collector() -> (String, Spans) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let spans: Spans = Arc::default();
    let service = TraceServiceServer::new(Grpc(Arc::clone(&spans)));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), spans)
}

/// An OTLP/HTTP (protobuf) collector on 127.0.0.1.
async fn http_collector() -> (String, Spans) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let spans: Spans = Arc::default();
    let into = Arc::clone(&spans);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let into = Arc::clone(&into);
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let into = Arc::clone(&into);
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let decoded = ExportTraceServiceRequest::decode(body)
                            .unwrap_or_else(|e| panic!("not OTLP: {e}"));
                        collect(&decoded, &into);
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        )));
                        resp.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/x-protobuf"),
                        );
                        Ok::<_, std::io::Error>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), spans)
}

/// `serve --worker` on the test broker with the given trace flags.
fn started(db: &TestDb, topic: &str, trace_flags: &[&str], stdout: bool) -> Served {
    let mut cmd = webhooks(&[
        "serve",
        "--worker",
        "--listen=127.0.0.1:0",
        "--auto-migrate",
        "--allow-private-endpoints",
        "--publisher-kafka-enabled",
        "--min-backoff-delay=100ms",
        "--retry-period=100ms",
    ]);
    cmd.arg(db.flag())
        .arg(format!("--publisher-kafka-broker={}", kafka::bootstrap()))
        .arg(format!("--kafka-topics={topic}"))
        .arg(format!("--publisher-queue-group={}", kafka::unique("group")))
        .args(trace_flags);
    if stdout {
        cmd.stdout(Stdio::piped());
        serve_keeping_stdout(cmd).unwrap_or_else(|e| panic!("{e}"))
    } else {
        serve(cmd).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Creates a config for `t` and returns (id, secret).
async fn config(served: &Served, receiver: &Receiver) -> (String, String) {
    let body =
        serde_json::json!({ "endpoint": receiver.url("/h?token=q-secret"), "eventTypes": ["t"] }).to_string();
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .post(format!("http://{}/configs", served.addr))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let field = |k: &str| v["data"][k].as_str().unwrap_or_default().to_owned();
    (field("id"), field("secret"))
}

/// Publishes one record carrying a `traceparent`.
async fn traced_record(topic: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka::bootstrap())
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let payload = format!(r#"{{"type":"t","payload":{{"m":"{PAYLOAD_MARK}"}}}}"#);
    let record: FutureRecord<'_, (), str> =
        FutureRecord::to(topic)
            .payload(payload.as_str())
            .headers(OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(traceparent.as_str()),
            }));
    producer
        .send(record, Duration::from_secs(30))
        .await
        .unwrap_or_else(|(e, _)| panic!("publish: {e}"));
}

/// What every exporter must show (spec §8.2), given the spans it exported.
fn check(spans: &[Span], receiver: &Receiver, config_id: &str, secret: &str) {
    let record = spans
        .iter()
        .find(|s| s.name == "webhooks.record")
        .unwrap_or_else(|| panic!("no record span in {spans:#?}"));
    assert_eq!(
        (record.trace_id.as_str(), record.parent.as_str()),
        (TRACE_ID, PARENT_ID),
        "the record's traceparent parents its span"
    );
    assert_eq!(record.attr("messaging.kafka.message.offset"), "0");
    assert_eq!(record.attr("messaging.kafka.destination.partition"), "0");
    assert_eq!(record.attr("webhooks.event_type"), "t");
    assert!(!record.attr("messaging.destination.name").is_empty());
    assert!(!record.attr("webhooks.event_id").is_empty());
    let attempts: Vec<&Span> = spans.iter().filter(|s| s.name == "webhooks.attempt").collect();
    let first = attempts
        .iter()
        .find(|s| s.attr("webhooks.attempt_number") == "1")
        .unwrap_or_else(|| panic!("no first attempt span in {spans:#?}"));
    assert_eq!(
        (first.trace_id.as_str(), first.parent.as_str()),
        (TRACE_ID, record.span_id.as_str())
    );
    assert_eq!(first.attr("webhooks.config_id"), config_id);
    assert_eq!(first.attr("server.address"), "127.0.0.1");
    assert_eq!(first.attr("http.response.status_code"), "500");
    assert_eq!(first.attr("webhooks.outcome"), "retryable_failure");
    assert_eq!(first.attr("messaging.kafka.message.offset"), "0");
    let delivery_id = first.attr("webhooks.delivery_id");
    // The retry: a child of a sweep iteration's span.
    let retry = attempts
        .iter()
        .find(|s| s.attr("webhooks.attempt_number") == "2")
        .unwrap_or_else(|| panic!("no retry span in {spans:#?}"));
    assert_eq!(retry.attr("webhooks.outcome"), "succeeded");
    let sweep = spans
        .iter()
        .find(|s| s.span_id == retry.parent)
        .unwrap_or_else(|| panic!("the retry's parent was not exported: {spans:#?}"));
    assert_eq!(sweep.name, "webhooks.sweep");
    // Each call carried the traceparent of its own span.
    let calls = receiver.received();
    for (call, span) in calls.iter().zip([first, retry]) {
        assert_eq!(call.header("formance-webhook-id"), Some(delivery_id));
        let want = format!("00-{}-{}-01", span.trace_id, span.span_id);
        assert_eq!(call.header("traceparent"), Some(want.as_str()));
    }
    // The API request, parented by its traceparent.
    let api = spans
        .iter()
        .find(|s| s.name == "POST /configs")
        .unwrap_or_else(|| panic!("no API span in {spans:#?}"));
    assert_eq!(
        (api.trace_id.as_str(), api.parent.as_str()),
        (TRACE_ID, PARENT_ID)
    );
    assert_eq!(api.attr("http.route"), "/configs");
    assert_eq!(api.attr("http.response.status_code"), "200");
    // Nothing secret, no payload, no full endpoint.
    let all = format!("{spans:?}");
    for leak in [secret, PAYLOAD_MARK, "q-secret", "/h?token"] {
        assert!(!all.contains(leak), "{leak} reached a span");
    }
}

/// Runs the traced scenario against one exporter; `spans` reads what it exported.
async fn scenario<F, Fut>(flags: &[&str], stdout: bool, spans: F)
where
    F: Fn(&Served) -> Fut,
    Fut: std::future::Future<Output = Vec<Span>>,
{
    let db = TestDb::new(Backend::Sqlite);
    let topic = new_topic(1).await;
    let receiver = Receiver::start(500).await;
    let served = started(&db, &topic, flags, stdout);
    let (config_id, secret) = config(&served, &receiver).await;
    traced_record(&topic).await;
    eventually(WAIT, "the first call", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    receiver.set_status(200);
    eventually(WAIT, "the retry", || async {
        (receiver.count() == 2).then_some(())
    })
    .await;
    let exported = eventually(WAIT, "the spans to be exported", || async {
        let all = spans(&served).await;
        let done = all.iter().filter(|s| s.name == "webhooks.attempt").count() >= 2
            && all.iter().any(|s| s.name == "webhooks.sweep");
        done.then_some(all)
    })
    .await;
    check(&exported, &receiver, &config_id, &secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_over_grpc_exports_the_spans() {
    let (endpoint, spans) = grpc_collector().await;
    let flags = [
        "--otel-traces-exporter=otlp",
        &format!("--otel-traces-exporter-otlp-endpoint={endpoint}"),
    ];
    scenario(&flags, false, |_| {
        let spans = Arc::clone(&spans);
        async move { spans.lock().map(|s| s.clone()).unwrap_or_default() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_over_http_exports_the_spans_in_batches() {
    let (endpoint, spans) = http_collector().await;
    let flags = [
        "--otel-traces-exporter=otlp",
        "--otel-traces-exporter-otlp-mode=http",
        "--otel-traces-batch",
        "--otel-service-name=hooks-under-test",
        &format!("--otel-traces-exporter-otlp-endpoint={endpoint}"),
    ];
    scenario(&flags, false, |_| {
        let spans = Arc::clone(&spans);
        async move { spans.lock().map(|s| s.clone()).unwrap_or_default() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_prints_one_json_span_per_line() {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let db = TestDb::new(Backend::Sqlite);
    let topic = new_topic(1).await;
    let receiver = Receiver::start(500).await;
    let mut served = started(
        &db,
        &topic,
        &[
            "--otel-traces",
            "--otel-resource-attributes=deployment.environment=test",
        ],
        true,
    );
    let stdout = served.child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(mut all) = sink.lock() {
                all.push(line);
            }
        }
    });
    let (config_id, secret) = config(&served, &receiver).await;
    traced_record(&topic).await;
    eventually(WAIT, "the first call", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    receiver.set_status(200);
    eventually(WAIT, "the retry", || async {
        (receiver.count() == 2).then_some(())
    })
    .await;
    let parse = || {
        let all = lines.lock().map(|l| l.clone()).unwrap_or_default();
        all.iter()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON span: {l}: {e}"));
                assert_eq!(v["resource"]["deployment.environment"], "test", "{l}");
                assert_eq!(v["resource"]["service.name"], "webhooks", "{l}");
                let attributes = v["attributes"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Span {
                    name: v["name"].as_str().unwrap_or_default().to_owned(),
                    trace_id: v["traceId"].as_str().unwrap_or_default().to_owned(),
                    span_id: v["spanId"].as_str().unwrap_or_default().to_owned(),
                    parent: v["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                    attributes,
                }
            })
            .collect::<Vec<Span>>()
    };
    let spans = eventually(WAIT, "the spans on stdout", || async {
        let all = parse();
        let done = all.iter().filter(|s| s.name == "webhooks.attempt").count() >= 2
            && all.iter().any(|s| s.name == "webhooks.sweep");
        done.then_some(all)
    })
    .await;
    check(&spans, &receiver, &config_id, &secret);
}

/// A collector that cannot be reached slows nothing: every delivery goes, spans are dropped,
/// and the failure is logged once (at most once a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_slows_nothing() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let endpoint = format!("http://{}", closed.local_addr().unwrap_or_else(|e| panic!("{e}")));
    drop(closed);
    let db = TestDb::new(Backend::Postgres);
    let topic = new_topic(4).await;
    let receiver = Receiver::start(200).await;
    let flags = [
        "--otel-traces-exporter=otlp",
        &format!("--otel-traces-exporter-otlp-endpoint={endpoint}"),
    ];
    let served = started(&db, &topic, &flags, false);
    config(&served, &receiver).await;
    let producer = kafka::Producer::new(&kafka::bootstrap());
    for _ in 0..300 {
        producer.send(&topic, br#"{"type":"t"}"#, None).await;
    }
    // Were export holding delivery, each of the 600 spans would wait out a 5 s export timeout.
    eventually(Duration::from_secs(60), "every delivery", || async {
        (receiver.count() == 300).then_some(())
    })
    .await;
    let warned = tokio::task::block_in_place(|| {
        served.wait_for_log(
            "trace export failed; spans are dropped (logged at most once a minute)",
            WAIT,
        )
    });
    assert!(warned["error"].is_string(), "{warned}");
}
