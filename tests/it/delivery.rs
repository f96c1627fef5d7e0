//! The worker end to end: a real Kafka-protocol broker, real receivers on 127.0.0.1, both
//! storage backends (spec §4, §5, §9.2).

use std::time::Duration;

use crate::both_backends;
use crate::harness::{eventually, Backend, Mode, Receiver, TestApp, TestDb};
use crate::kafka::{self, Producer};
use webhooks::domain::delivery::{AttemptOutcome, DeliveryStatus};
use webhooks::domain::event::delivery_id;
use webhooks::store::model::DeliveryRow;

const WAIT: Duration = Duration::from_secs(30);

/// `serve --worker` on the test broker, its own topic and group; extra flags appended.
async fn worker_app(backend: Backend, topic: &str, extra: &[&str]) -> TestApp {
    worker_app_on(TestDb::new(backend), topic, &kafka::unique("group"), extra).await
}

pub(crate) async fn worker_app_on(db: TestDb, topic: &str, group: &str, extra: &[&str]) -> TestApp {
    let mut args = vec!["--worker".to_owned()];
    args.extend(consumer_args(topic, group, extra));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestApp::spawn_on(db, &args).await
}

/// `webhooks worker` alone (no API) on the test broker, `topic` and `group`; extra flags appended.
pub(crate) async fn worker_only_on(db: TestDb, topic: &str, group: &str, extra: &[&str]) -> TestApp {
    let args = consumer_args(topic, group, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestApp::spawn_as(webhooks::serve::Role::Worker, db, &args).await
}

/// The flags that make a process consume `topic` as a member of `group` on the test broker.
fn consumer_args(topic: &str, group: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--publisher-kafka-enabled".to_owned(),
        format!("--publisher-kafka-broker={}", kafka::bootstrap()),
        format!("--kafka-topics={topic}"),
        format!("--publisher-queue-group={group}"),
        "--allow-private-endpoints".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

async fn topic() -> String {
    let topic = kafka::unique("events");
    kafka::create_topic(&kafka::bootstrap(), &topic, 1).await;
    topic
}

/// A config for type `t` on `receiver`, then one `{"type":"t"}` record; returns the config id.
async fn config_and_record(app: &TestApp, topic: &str, receiver: &Receiver) -> String {
    let c = app.create_config(&receiver.url("/h"), &["t"]).await;
    Producer::new(&kafka::bootstrap())
        .send(topic, br#"{"type":"t"}"#, None)
        .await;
    c["id"].as_str().unwrap_or_default().to_owned()
}

/// Waits for the config's first delivery in `status`.
async fn delivery_in(app: &TestApp, config_id: &str, status: &str) -> DeliveryRow {
    eventually(WAIT, &format!("a {status} delivery"), || async {
        app.deliveries(config_id)
            .await
            .into_iter()
            .find(|d| d.status.as_str() == status)
    })
    .await
}

const RECORD: &str = r#"{"app":"ledger","version":"v2","type":"COMMITTED_TRANSACTIONS","date":"2024-05-01T10:00:00Z","ledger":"default","payload":{"b":1,"a":2}}"#;
const BODY: &str = r#"{"idempotency_key":"","date":"2024-05-01T10:00:00Z","app":"ledger","version":"v2","type":"ledger.committed_transactions","payload":{"b":1,"a":2}}"#;

both_backends!(
    event_reaches_every_matching_active_config_signed,
    |backend| async move {
        let topic = topic().await;
        let app = worker_app(backend, &topic, &[]).await;
        let (exact, wildcard, inactive, deleted, other) = (
            Receiver::start(200).await,
            Receiver::start(200).await,
            Receiver::start(200).await,
            Receiver::start(200).await,
            Receiver::start(200).await,
        );
        let c_exact = app
            .create_config(&exact.url("/h"), &["ledger.committed_transactions"])
            .await;
        let c_wild = app.create_config(&wildcard.url("/h"), &["ledger.*"]).await;
        let c_inactive = app
            .create_config(&inactive.url("/h"), &["ledger.committed_transactions"])
            .await;
        let c_deleted = app
            .create_config(&deleted.url("/h"), &["ledger.committed_transactions"])
            .await;
        let c_other = app.create_config(&other.url("/h"), &["payments.created"]).await;
        let id = |c: &serde_json::Value| c["id"].as_str().unwrap_or_default().to_owned();
        app.request(
            "PUT",
            &format!("/configs/{}/deactivate", id(&c_inactive)),
            None,
            None,
        )
        .await;
        app.request("DELETE", &format!("/configs/{}", id(&c_deleted)), None, None)
            .await;

        Producer::new(&kafka::bootstrap())
            .send(&topic, RECORD.as_bytes(), None)
            .await;

        for (receiver, config) in [(&exact, &c_exact), (&wildcard, &c_wild)] {
            let got = eventually(WAIT, "the signed delivery", || async {
                receiver.received().first().cloned()
            })
            .await;
            assert_eq!(String::from_utf8_lossy(&got.body), BODY);
            assert!(got.signature_valid(config["secret"].as_str().unwrap_or_default()));
            let expected_id = delivery_id(&format!("{topic}/0/0"), &id(config));
            assert_eq!(got.header("formance-webhook-id"), Some(expected_id.as_str()));
            assert_eq!(got.header("formance-webhook-test"), Some("false"));
            assert_eq!(got.header("formance-webhook-idempotency-key"), None);
            let rows = eventually(WAIT, "the delivery row", || async {
                let rows = app.deliveries(&id(config)).await;
                rows.iter()
                    .all(|d| d.status == DeliveryStatus::Succeeded)
                    .then_some(rows)
                    .filter(|r| !r.is_empty())
            })
            .await;
            assert_eq!(rows.len(), 1);
            assert_eq!((rows[0].attempt_count, rows[0].last_status_code), (1, Some(200)));
            assert_eq!(rows[0].payload, BODY);
        }
        // The record's deliveries are written together; none exists for the others.
        for config in [&c_inactive, &c_deleted, &c_other] {
            assert!(app.deliveries(&id(config)).await.is_empty());
        }
        assert_eq!(inactive.count() + deleted.count() + other.count(), 0);

        // A config created now receives the next event.
        let late = Receiver::start(200).await;
        app.create_config(&late.url("/h"), &["ledger.*"]).await;
        Producer::new(&kafka::bootstrap())
            .send(&topic, RECORD.as_bytes(), Some("evt-2"))
            .await;
        eventually(WAIT, "the new config's delivery", || async {
            (late.count() == 1).then_some(())
        })
        .await;
    }
);

both_backends!(
    malformed_records_are_skipped_and_good_ones_delivered,
    |backend| async move {
        let topic = topic().await;
        let app = worker_app(backend, &topic, &["--max-record-bytes=1000"]).await;
        let too_large = format!(r#"{{"type":"t","payload":"{}"}}"#, "x".repeat(1000));
        let receiver = Receiver::start(200).await;
        app.create_config(&receiver.url("/h"), &["t"]).await;
        let producer = Producer::new(&kafka::bootstrap());
        for value in [
            &b"not json"[..],
            br#"{"type":"t","payload":1}"#,
            br#"{"type":""}"#,
            b"\xff\xfe",
            too_large.as_bytes(),
            br#"{"type":"t","date":"yesterday"}"#,
            br#"{"type":"t","payload":2}"#,
        ] {
            producer.send(&topic, value, None).await;
        }
        eventually(WAIT, "both good records", || async {
            (receiver.count() == 2).then_some(())
        })
        .await;
        let bodies: Vec<String> = receiver
            .received()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        assert!(bodies.iter().any(|b| b.ends_with("\"payload\":1}")), "{bodies:?}");
        assert!(bodies.iter().any(|b| b.ends_with("\"payload\":2}")), "{bodies:?}");
    }
);

/// The reference's e2e settings (spec §5.3).
const E2E: &[&str] = &["--retry-period=1s", "--min-backoff-delay=1s", "--abort-after=3s"];

both_backends!(
    always_500_makes_exactly_three_calls_then_fails,
    |backend| async move {
        let topic = topic().await;
        let app = worker_app(backend, &topic, E2E).await;
        let receiver = Receiver::start(500).await;
        let c = app.create_config(&receiver.url("/h"), &["t"]).await;
        let config_id = c["id"].as_str().unwrap_or_default().to_owned();
        Producer::new(&kafka::bootstrap())
            .send(&topic, br#"{"type":"t"}"#, None)
            .await;
        let row = eventually(WAIT, "the delivery to fail", || async {
            app.deliveries(&config_id)
                .await
                .into_iter()
                .find(|d| d.status == DeliveryStatus::Failed)
        })
        .await;
        assert_eq!(receiver.count(), 3);
        assert_eq!(
            (row.attempt_count, row.last_status_code, row.last_error.as_str()),
            (3, Some(500), "retry window exceeded")
        );
        let ids: Vec<Option<String>> = receiver
            .received()
            .iter()
            .map(|r| r.header("formance-webhook-id").map(str::to_owned))
            .collect();
        assert!(
            ids.iter().all(|i| i.as_deref() == Some(row.id.as_str())),
            "{ids:?}"
        );
        let attempts = app.attempts(&row.id).await;
        assert_eq!(attempts.len(), 3);
        assert!(attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::RetryableFailure && a.status_code == 500));
    }
);

both_backends!(status_500_then_200_succeeds_after_a_retry, |backend| async move {
    let topic = topic().await;
    let app = worker_app(backend, &topic, E2E).await;
    let receiver = Receiver::start(500).await;
    let config_id = config_and_record(&app, &topic, &receiver).await;
    eventually(WAIT, "the first call", || async {
        (receiver.count() >= 1).then_some(())
    })
    .await;
    receiver.set_status(200);
    let row = delivery_in(&app, &config_id, "succeeded").await;
    let attempts = app.attempts(&row.id).await;
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes.first(), Some(&"retryable_failure"));
    assert_eq!(outcomes.last(), Some(&"succeeded"));
    assert!(receiver.count() >= 2);
});

both_backends!(status_404_is_permanent_with_one_call, |backend| async move {
    let topic = topic().await;
    let app = worker_app(backend, &topic, E2E).await;
    let receiver = Receiver::start(404).await;
    let config_id = config_and_record(&app, &topic, &receiver).await;
    let row = delivery_in(&app, &config_id, "failed").await;
    assert_eq!(receiver.count(), 1);
    assert_eq!((row.attempt_count, row.next_attempt_at), (1, None));
    let attempts = app.attempts(&row.id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].outcome.as_str(), attempts[0].status_code),
        ("permanent_failure", 404)
    );
});

both_backends!(retry_after_pushes_the_next_attempt, |backend| async move {
    let topic = topic().await;
    let app = worker_app(
        backend,
        &topic,
        &["--retry-period=1s", "--min-backoff-delay=1s", "--abort-after=1h"],
    )
    .await;
    let receiver = Receiver::start(503).await;
    receiver.set_retry_after("120");
    let config_id = config_and_record(&app, &topic, &receiver).await;
    let row = delivery_in(&app, &config_id, "pending").await;
    let attempt = &app.attempts(&row.id).await[0];
    let next = row.next_attempt_at.map(|t| t.0.as_datetime()).unwrap_or_default();
    let done = attempt.created_at.0.as_datetime();
    assert!(
        next >= done + chrono::Duration::seconds(120),
        "next {next} vs completion {done}"
    );
});

both_backends!(graceful_shutdown_commits_what_was_done, |backend| async move {
    let topic = topic().await;
    let group = kafka::unique("group");
    let db = TestDb::new(backend);
    let receiver = Receiver::start(200).await;
    let producer = Producer::new(&kafka::bootstrap());
    let mut app = worker_app_on(db, &topic, &group, &[]).await;
    app.create_config(&receiver.url("/h"), &["t"]).await;
    for i in 0..20 {
        producer
            .send(
                &topic,
                format!(r#"{{"type":"t","payload":{i}}}"#).as_bytes(),
                None,
            )
            .await;
    }
    eventually(WAIT, "20 deliveries", || async {
        (receiver.count() == 20).then_some(())
    })
    .await;
    app.stop().await;
    // Same database, same group: nothing that succeeded is sent again.
    let db = app.into_db();
    let app = worker_app_on(db, &topic, &group, &[]).await;
    producer
        .send(&topic, br#"{"type":"t","payload":"marker"}"#, None)
        .await;
    eventually(WAIT, "the marker", || async {
        receiver
            .received()
            .iter()
            .any(|r| r.body.ends_with(b"\"marker\"}"))
            .then_some(())
    })
    .await;
    assert_eq!(
        receiver.count(),
        21,
        "a succeeded delivery was sent again after a clean restart"
    );
    drop(app);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_accepts_events_from_any_client() {
    let topic = kafka::unique("embedded");
    let topics = format!("--kafka-topics={topic}");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &["--worker", &topics, "--allow-private-endpoints"],
    )
    .await;
    let info = app.get("/_info").await.json();
    let bootstrap = info["kafkaBootstrap"].as_str().unwrap_or_default().to_owned();
    assert!(bootstrap.starts_with("127.0.0.1:"), "{info}");
    let receiver = Receiver::start(200).await;
    let c = app.create_config(&receiver.url("/h"), &["t"]).await;
    Producer::new(&bootstrap)
        .send(&topic, br#"{"type":"t"}"#, None)
        .await;
    let got = eventually(WAIT, "the delivery", || async {
        receiver.received().first().cloned()
    })
    .await;
    assert!(got.signature_valid(c["secret"].as_str().unwrap_or_default()));
    assert_eq!(app.get("/_healthcheck").await.status, 200);
    // POST /events publishes to the same embedded broker.
    let reply = app
        .send_json("POST", "/events", r#"{"type":"t","payload":{"via":"http"}}"#)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = eventually(WAIT, "the published event", || async {
        receiver.received().get(1).cloned()
    })
    .await;
    assert!(String::from_utf8_lossy(&got.body).ends_with(r#""payload":{"via":"http"}}"#));
}

both_backends!(hanging_endpoint_times_out_and_is_retried, |backend| async move {
    let topic = topic().await;
    let app = worker_app(
        backend,
        &topic,
        &["--http-timeout=300ms", "--min-backoff-delay=1h"],
    )
    .await;
    let receiver = Receiver::start(200).await;
    receiver.set_mode(Mode::Hang);
    let config_id = config_and_record(&app, &topic, &receiver).await;
    let row = delivery_in(&app, &config_id, "pending").await;
    let attempt = &app.attempts(&row.id).await[0];
    assert_eq!(
        (attempt.outcome.as_str(), attempt.status_code),
        ("retryable_failure", 0)
    );
    assert!(attempt.error.starts_with("timeout"), "{}", attempt.error);
    assert_eq!(row.last_status_code, None);
});

both_backends!(reset_connection_is_retryable, |backend| async move {
    let topic = topic().await;
    let app = worker_app(backend, &topic, &["--min-backoff-delay=1h"]).await;
    let receiver = Receiver::start(200).await;
    receiver.set_mode(Mode::Reset);
    let config_id = config_and_record(&app, &topic, &receiver).await;
    let row = delivery_in(&app, &config_id, "pending").await;
    let attempt = &app.attempts(&row.id).await[0];
    assert_eq!(
        (attempt.outcome.as_str(), attempt.status_code),
        ("retryable_failure", 0)
    );
    assert!(!attempt.error.is_empty());
});

both_backends!(
    deleting_a_config_cancels_its_pending_deliveries,
    |backend| async move {
        let topic = topic().await;
        let app = worker_app(backend, &topic, &["--min-backoff-delay=1h"]).await;
        let receiver = Receiver::start(500).await;
        let c = app.create_config(&receiver.url("/h"), &["t"]).await;
        let config_id = c["id"].as_str().unwrap_or_default().to_owned();
        Producer::new(&kafka::bootstrap())
            .send(&topic, br#"{"type":"t"}"#, None)
            .await;
        eventually(WAIT, "a pending delivery", || async {
            app.deliveries(&config_id)
                .await
                .into_iter()
                .find(|d| d.status == DeliveryStatus::Pending)
        })
        .await;
        assert_eq!(
            app.request("DELETE", &format!("/configs/{config_id}"), None, None)
                .await
                .status,
            200
        );
        let rows = app.deliveries(&config_id).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].status.as_str(), rows[0].next_attempt_at),
            ("cancelled", None)
        );
    }
);

both_backends!(inactive_configs_wait_and_resume, |backend| async move {
    let topic = topic().await;
    let app = worker_app(
        backend,
        &topic,
        &[
            "--retry-period=100ms",
            "--min-backoff-delay=1s",
            "--abort-after=1h",
        ],
    )
    .await;
    let receiver = Receiver::start(500).await;
    let config_id = config_and_record(&app, &topic, &receiver).await;
    let row = delivery_in(&app, &config_id, "pending").await;
    app.request("PUT", &format!("/configs/{config_id}/deactivate"), None, None)
        .await;
    let calls = receiver.count();
    // Let the due time pass with the sweep running every 100 ms: an inactive config is skipped.
    let due = row.next_attempt_at.map(|t| t.0.as_datetime()).unwrap_or_default();
    eventually(WAIT, "the retry to be overdue", || async {
        (chrono::Utc::now() > due + chrono::Duration::milliseconds(500)).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), calls, "an inactive config was called");
    assert_eq!(
        app.deliveries(&config_id).await[0].status,
        DeliveryStatus::Pending
    );
    receiver.set_status(200);
    app.request("PUT", &format!("/configs/{config_id}/activate"), None, None)
        .await;
    delivery_in(&app, &config_id, "succeeded").await;
});

/// A sweep that fails (storage gone) logs and tries again on time: once storage is back, the
/// due delivery is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_keeps_going_after_storage_errors() {
    let topic = topic().await;
    let (db, proxy) = crate::harness::postgres_behind_proxy().await;
    let app = worker_app_on(
        db,
        &topic,
        &kafka::unique("group"),
        &[
            "--retry-period=100ms",
            "--min-backoff-delay=1s",
            "--abort-after=1h",
        ],
    )
    .await;
    let receiver = Receiver::start(500).await;
    let config_id = config_and_record(&app, &topic, &receiver).await;
    delivery_in(&app, &config_id, "pending").await;
    proxy.cut();
    receiver.set_status(200);
    // Several sweep iterations fail while storage is away.
    eventually(WAIT, "the health check to see storage gone", || async {
        (app.get("/_healthcheck").await.status == 503).then_some(())
    })
    .await;
    proxy.restore();
    delivery_in(&app, &config_id, "succeeded").await;
}

/// `webhooks worker` serves only the operational routes, and reports an unreachable broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_process_reports_an_unreachable_broker() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let broker = format!("--publisher-kafka-broker={closed}");
    let app = TestApp::spawn_as(
        webhooks::serve::Role::Worker,
        TestDb::new(Backend::Sqlite),
        &["--publisher-kafka-enabled", &broker],
    )
    .await;
    app.get("/_healthcheck")
        .await
        .assert_error(503, "INTERNAL", "kafka unavailable");
    let info = app.get("/_info").await;
    assert_eq!(info.body, format!("{{\"version\":\"{}\"}}\n", webhooks::VERSION));
    app.get("/configs")
        .await
        .assert_error(404, "NOT_FOUND", "route not found");
}

/// `/metrics` counts what the worker did, with no id, endpoint or event type in any label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_records_attempts_and_requests() {
    let topic = topic().await;
    let app = worker_app(Backend::Sqlite, &topic, &[]).await;
    let receiver = Receiver::start(200).await;
    let config_id = config_and_record(&app, &topic, &receiver).await;
    Producer::new(&kafka::bootstrap())
        .send(&topic, b"not json", None)
        .await;
    delivery_in(&app, &config_id, "succeeded").await;
    let text = eventually(WAIT, "the invalid record to be counted", || async {
        let reply = app.get("/metrics").await;
        assert_eq!(reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
        reply.body.contains("outcome=\"invalid\"").then_some(reply.body)
    })
    .await;
    for needle in [
        format!("webhooks_events_consumed_total{{outcome=\"matched\",topic=\"{topic}\"}} 1"),
        format!("webhooks_events_consumed_total{{outcome=\"invalid\",topic=\"{topic}\"}} 1"),
        "webhooks_attempts_total{outcome=\"succeeded\",status_class=\"2xx\"}".to_owned(),
        "webhooks_deliveries_total{outcome=\"succeeded\"}".to_owned(),
        "webhooks_attempt_duration_seconds_bucket".to_owned(),
        "webhooks_http_requests_total{route=\"/configs\",status=\"200\"}".to_owned(),
    ] {
        assert!(text.contains(&needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(&config_id), "an id leaked into a label");
}

// The reference's durable-delivery scenario (spec §9.3), with idempotent replay.
both_backends!(
    failed_delivery_is_listed_and_replayed_once,
    |backend| async move {
        let topic = topic().await;
        let app = worker_app(
            backend,
            &topic,
            &[
                "--retry-period=100ms",
                "--min-backoff-delay=100ms",
                "--abort-after=3s",
            ],
        )
        .await;
        let receiver = Receiver::start(404).await;
        let c = app.create_config(&receiver.url("/h"), &["t"]).await;
        let config_id = c["id"].as_str().unwrap_or_default().to_owned();
        Producer::new(&kafka::bootstrap())
            .send(&topic, br#"{"type":"t","idempotency_key":"durable-event"}"#, None)
            .await;
        delivery_in(&app, &config_id, "failed").await;
        let listed = app
            .get(&format!("/deliveries?configId={config_id}&status=failed"))
            .await
            .json();
        let items = listed["cursor"]["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1);
        assert!(items[0].get("payload").is_none());
        let id = items[0]["id"].as_str().unwrap_or_default().to_owned();
        let one = app.get(&format!("/deliveries/{id}")).await.json();
        assert!(one["data"]["payload"]
            .as_str()
            .unwrap_or_default()
            .contains("durable-event"));
        assert_eq!(one["data"]["idempotencyKey"], "durable-event");

        receiver.set_status(204);
        let replay = |key: Option<&'static str>, id: String| {
            let app = &app;
            async move {
                let reply = app
                    .post_with_key(&format!("/deliveries/{id}/replay"), key, None)
                    .await;
                (reply.status, reply.body)
            }
        };
        let (status, first_body) = replay(Some("k1"), id.clone()).await;
        assert_eq!(status, 200, "{first_body}");
        let done = delivery_in(&app, &config_id, "succeeded").await;
        assert_eq!((done.replay_generation, done.attempt_count), (1, 1));
        assert_eq!(receiver.count(), 2);
        // The same request again: the stored response, nothing changes.
        assert_eq!(replay(Some("k1"), id.clone()).await, (200, first_body));
        assert_eq!(receiver.count(), 2);
        let (status, body) = replay(Some("k1"), "another-delivery".to_owned()).await;
        assert_eq!((status, body.as_str()), (409, "{\"errorCode\":\"CONFLICT\",\"errorMessage\":\"idempotency key already used with another request\"}\n"));
        let (status, body) = replay(None, id.clone()).await;
        assert_eq!(
            (status, body.as_str()),
            (
                400,
                "{\"errorCode\":\"VALIDATION\",\"errorMessage\":\"Idempotency-Key header is required\"}\n"
            )
        );
        let (status, body) = replay(Some("k2"), id.clone()).await;
        assert_eq!(
            (status, body.as_str()),
            (
                409,
                "{\"errorCode\":\"CONFLICT\",\"errorMessage\":\"delivery cannot be replayed\"}\n"
            )
        );
        let (status, _) = replay(Some("k3"), "unknown".to_owned()).await;
        assert_eq!(status, 404);
    }
);

/// Sends `{"type":<event_type>}` records until `receiver` got a request: a record consumed
/// before the worker knew the matching config matches nothing.
async fn records_until_delivered(topic: &str, event_type: &str, receiver: &Receiver) {
    let producer = Producer::new(&kafka::bootstrap());
    let record = format!("{{\"type\":\"{event_type}\"}}");
    eventually(WAIT, &format!("a {event_type} record delivered"), || {
        let (producer, record) = (&producer, &record);
        async move {
            if receiver.count() > 0 {
                return Some(());
            }
            producer.send(topic, record.as_bytes(), None).await;
            None
        }
    })
    .await;
}

// `webhooks worker` and `webhooks serve` as separate processes on one database: the worker's
// config cache follows configs created through serve (PostgreSQL: the change listener;
// SQLite: the change poll). The second config comes after the worker's cache has reloaded
// for the first, so it needs a change noticed while running, not the first load.
both_backends!(
    a_worker_process_follows_configs_created_by_serve,
    |backend| async move {
        let topic = topic().await;
        let broker = format!("--publisher-kafka-broker={}", kafka::bootstrap());
        let topics = format!("--kafka-topics={topic}");
        let group = format!("--publisher-queue-group={}", kafka::unique("group"));
        let worker = TestApp::spawn_as(
            webhooks::serve::Role::Worker,
            TestDb::new(backend),
            &[
                "--publisher-kafka-enabled",
                &broker,
                &topics,
                &group,
                "--allow-private-endpoints",
            ],
        )
        .await;
        let api = worker.beside().await;
        for event_type in ["t", "u"] {
            let receiver = Receiver::start(200).await;
            let config = api.create_config(&receiver.url("/h"), &[event_type]).await;
            records_until_delivered(&topic, event_type, &receiver).await;
            delivery_in(&worker, config["id"].as_str().unwrap_or_default(), "succeeded").await;
        }
    }
);
