//! `POST /events` (spec §2.8): validation, publishing to the real broker, and delivery of what
//! was published.

use std::collections::HashSet;
use std::time::Duration;

use crate::both_backends;
use crate::delivery::worker_app_on;
use crate::harness::{eventually, Backend, Receiver, TestApp, TestDb};
use crate::kafka;

const WAIT: Duration = Duration::from_secs(60);

/// `serve --worker` publishing to and consuming from the test broker, on a new topic.
async fn app_on_new_topic(backend: Backend, partitions: i32) -> (TestApp, String) {
    let topic = kafka::unique("events");
    kafka::create_topic(&kafka::bootstrap(), &topic, partitions).await;
    let app = worker_app_on(TestDb::new(backend), &topic, &kafka::unique("group"), &[]).await;
    (app, topic)
}

both_backends!(
    a_thousand_events_are_published_and_delivered,
    |backend| async move {
        let (app, topic) = app_on_new_topic(backend, 2).await;
        let receiver = Receiver::start(200).await;
        let config = app.create_config(&receiver.url("/h"), &["ledger.x"]).await;
        let events: Vec<String> = (0..1000)
            .map(|n| format!(r#"{{"app":"ledger","type":"X","payload":{{"n":{n}}}}}"#))
            .collect();
        let reply = app
            .send_json("POST", "/events", &format!("[{}]", events.join(",")))
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "{\"data\":{\"accepted\":1000}}\n")
        );
        assert_eq!(kafka::record_count(&kafka::bootstrap(), &topic, 2).await, 1000);
        let got = eventually(WAIT, "1,000 deliveries", || async {
            let got = receiver.received();
            (got.len() >= 1000).then_some(got)
        })
        .await;
        let secret = config["secret"].as_str().unwrap_or_default();
        let mut numbers = HashSet::new();
        let mut ids = HashSet::new();
        for r in &got {
            assert!(r.signature_valid(secret));
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(body["type"], "ledger.x");
            numbers.insert(body["payload"]["n"].as_i64().unwrap_or(-1));
            ids.insert(r.header("formance-webhook-id").unwrap_or_default().to_owned());
        }
        assert_eq!(numbers, (0..1000).collect::<HashSet<i64>>());
        assert_eq!(ids.len(), 1000, "events share a delivery id");
        // Each record carries a fresh `_watermill_message_uuid`, which is the event id.
        let listed = app.get("/deliveries?pageSize=1").await.json();
        let event_id = listed["cursor"]["data"][0]["eventID"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            uuid::Uuid::parse_str(&event_id).map(|u| u.get_version_num()).ok(),
            Some(4),
            "{event_id}"
        );
    }
);

both_backends!(a_bad_event_publishes_nothing, |backend| async move {
    let (app, topic) = app_on_new_topic(backend, 1).await;
    let receiver = Receiver::start(200).await;
    app.create_config(&receiver.url("/h"), &["t"]).await;
    app.send_json("POST", "/events", r#"[{"type":"t"},{"app":"x"},{"type":"t"}]"#)
        .await
        .assert_error(400, "VALIDATION", "invalid event at index 1: type is required");
    assert_eq!(kafka::record_count(&kafka::bootstrap(), &topic, 1).await, 0);
    // The record value is the event's text as sent, whitespace included.
    let reply = app
        .send_json("POST", "/events", r#" {"type":"t","payload":{ "a" : [1, 2] }} "#)
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "{\"data\":{\"accepted\":1}}\n")
    );
    let got = eventually(WAIT, "the good event", || async {
        receiver.received().first().cloned()
    })
    .await;
    let body = String::from_utf8_lossy(&got.body).into_owned();
    assert!(body.ends_with(r#""payload":{ "a" : [1, 2] }}"#), "{body}");
    assert_eq!(kafka::record_count(&kafka::bootstrap(), &topic, 1).await, 1);
    assert_eq!(receiver.count(), 1);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_messages() {
    let (app, topic) = app_on_new_topic(Backend::Sqlite, 1).await;
    let many = format!("[{}]", vec![r#"{"type":"t"}"#; 1001].join(","));
    let cases: Vec<(String, String, &str)> = vec![
        (
            "".into(),
            "[]".into(),
            "Request body must contain between 1 and 1000 events",
        ),
        (
            "".into(),
            many,
            "Request body must contain between 1 and 1000 events",
        ),
        (
            "".into(),
            r#"{"app":"x"}"#.into(),
            "invalid event: type is required",
        ),
        (
            "".into(),
            r#"{"type":""}"#.into(),
            "invalid event: type is required",
        ),
        ("".into(), r#""t""#.into(), "invalid event: not a JSON object"),
        (
            "".into(),
            "[1]".into(),
            "invalid event at index 0: not a JSON object",
        ),
        (
            "".into(),
            r#"{"type":"t","date":"yesterday"}"#.into(),
            "invalid event: date must use RFC3339",
        ),
        (
            "".into(),
            r#"[{"type":"t"},{"type":"t","app":1}]"#.into(),
            "invalid event at index 1: app must be a string",
        ),
        (
            "".into(),
            r#"{"type":1}"#.into(),
            "invalid event: type must be a string",
        ),
        ("".into(), "".into(), "Request body must not be empty"),
        (
            "".into(),
            "[{]".into(),
            "Request body contains badly-formed JSON (at position 3)",
        ),
        ("".into(), "[".into(), "Request body contains badly-formed JSON"),
        (
            "".into(),
            r#"{"type":"t"} {"type":"t"}"#.into(),
            "Request body must only contain a single JSON object",
        ),
        (
            "?topic=nope".into(),
            r#"{"type":"t"}"#.into(),
            "unknown topic: nope",
        ),
        (
            "?foo=1".into(),
            r#"{"type":"t"}"#.into(),
            "unsupported query parameter: foo",
        ),
        (
            format!("?topic={topic}&topic={topic}"),
            r#"{"type":"t"}"#.into(),
            "query parameters must have one value",
        ),
    ];
    for (query, body, message) in &cases {
        app.send_json("POST", &format!("/events{query}"), body)
            .await
            .assert_error(400, "VALIDATION", message);
    }
    app.request("POST", "/events", Some(r#"{"type":"t"}"#), Some("text/plain"))
        .await
        .assert_error(
            400,
            "VALIDATION",
            "Content-Type header should be application/json",
        );
    assert_eq!(kafka::record_count(&kafka::bootstrap(), &topic, 1).await, 0);
    // A named topic among --kafka-topics is accepted.
    let reply = app
        .send_json("POST", &format!("/events?topic={topic}"), r#"{"type":"t"}"#)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(kafka::record_count(&kafka::bootstrap(), &topic, 1).await, 1);
}

/// `serve` alone has no broker to publish to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_broker_cannot_publish() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.send_json("POST", "/events", r#"{"type":"t"}"#)
        .await
        .assert_error(503, "INTERNAL", "event publishing unavailable");
}
