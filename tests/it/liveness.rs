//! Liveness under bad endpoints and bad data (spec §10, §3): no endpoint, record or row stops
//! the delivery of everything else.

use std::collections::HashSet;
use std::time::Duration;

use crate::both_backends;
use crate::delivery::{worker_app_on, worker_only_on};
use crate::harness::{eventually, Backend, Mode, Receiver, TestApp, TestDb};
use crate::kafka::{self, Producer};
use webhooks::domain::delivery::DeliveryStatus;
use webhooks::store::model::DeliveryRow;

const WAIT: Duration = Duration::from_secs(30);

/// A fresh topic with `partitions` partitions.
pub(crate) async fn new_topic(partitions: i32) -> String {
    let topic = kafka::unique("live");
    kafka::create_topic(&kafka::bootstrap(), &topic, partitions).await;
    topic
}

/// `serve --worker` on the test broker, a fresh database, topic and group.
async fn worker(backend: Backend, topic: &str, extra: &[&str]) -> TestApp {
    worker_app_on(TestDb::new(backend), topic, &kafka::unique("group"), extra).await
}

fn id_of(config: &serde_json::Value) -> String {
    config["id"].as_str().unwrap_or_default().to_owned()
}

/// Waits until the config has `n` deliveries, all satisfying `ok`.
async fn deliveries_where(
    app: &TestApp,
    config_id: &str,
    n: usize,
    what: &str,
    ok: impl Fn(&DeliveryRow) -> bool,
) -> Vec<DeliveryRow> {
    eventually(WAIT, what, || async {
        let rows = app.deliveries(config_id).await;
        (rows.len() == n && rows.iter().all(&ok)).then_some(rows)
    })
    .await
}

/// A metric's value in the Prometheus text, 0 when absent.
pub(crate) fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// A gzip stream's first bytes (NUL among them) and a binary tail: what a receiver answering
/// with a compressed or binary body sends back.
const BINARY_BODY: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03binary\x00body\x00";

both_backends!(a_binary_error_body_stalls_nothing, |backend| async move {
    let topic = new_topic(1).await;
    let app = worker(backend, &topic, &[]).await;
    let binary = Receiver::start(500).await;
    binary.set_body(BINARY_BODY, &[("content-encoding", "gzip")]);
    let healthy = Receiver::start(200).await;
    let bad = id_of(&app.create_config(&binary.url("/h"), &["t"]).await);
    let good = id_of(&app.create_config(&healthy.url("/h"), &["t"]).await);
    let producer = Producer::new(&kafka::bootstrap());
    for _ in 0..3 {
        producer.send(&topic, br#"{"type":"t"}"#, None).await;
    }
    let rows = deliveries_where(&app, &bad, 3, "the binary receiver's deliveries pending", |d| {
        d.status == DeliveryStatus::Pending && d.attempt_count == 1
    })
    .await;
    let attempts = app.attempts(&rows[0].id).await;
    assert_eq!(
        attempts[0].response_excerpt,
        String::from_utf8_lossy(BINARY_BODY).replace('\0', "\u{FFFD}"),
        "the excerpt keeps the body, NUL replaced"
    );
    deliveries_where(&app, &good, 3, "the healthy receiver's deliveries", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    assert_eq!(app.get("/_healthcheck").await.status, 200);
    // Later records keep flowing.
    producer.send(&topic, br#"{"type":"t"}"#, None).await;
    deliveries_where(&app, &good, 4, "a later record", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    assert_eq!(app.get("/_healthcheck").await.status, 200);
});

both_backends!(
    records_with_nul_in_keys_and_headers_are_delivered,
    |backend| async move {
        let topic = new_topic(1).await;
        let app = worker(backend, &topic, &[]).await;
        let receiver = Receiver::start(200).await;
        let config = id_of(&app.create_config(&receiver.url("/h"), &["*"]).await);
        let producer = Producer::new(&kafka::bootstrap());
        producer
            .send(
                &topic,
                br#"{"app":"a\u0000b","type":"t\u0000x","idempotency_key":"k\u0000","payload":{"s":"\u0000"}}"#,
                Some("id\u{0}header"),
            )
            .await;
        producer.send(&topic, br#"{"type":"after"}"#, None).await;
        let rows = deliveries_where(&app, &config, 2, "both records delivered", |d| {
            d.status == DeliveryStatus::Succeeded
        })
        .await;
        let nul = rows
            .iter()
            .find(|d| d.event_type != "after")
            .unwrap_or_else(|| panic!("{rows:?}"));
        assert_eq!(nul.event_type, "a\u{FFFD}b.t\u{FFFD}x");
        assert_eq!(nul.idempotency_key, "k\u{FFFD}");
        assert_eq!(nul.event_id, "id\u{FFFD}header");
        assert!(!nul.payload.contains('\0'));
        // The receiver got the body as built from the record: escapes intact.
        let sent = receiver
            .received()
            .into_iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains("t\\u0000x"))
            .unwrap_or_else(|| panic!("the record with NULs was not sent as is"));
        assert_eq!(sent.header("formance-webhook-idempotency-key"), Some("k\u{FFFD}"));
    }
);

both_backends!(lookups_with_nul_find_nothing, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(200).await;
    app.create_config(&receiver.url("/h"), &["t"]).await;
    app.get("/configs/%00/test")
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
    for (method, path) in [
        ("PUT", "/configs/%00/activate"),
        ("PUT", "/configs/%00/deactivate"),
        ("DELETE", "/configs/%00"),
    ] {
        app.request(method, path, None, None)
            .await
            .assert_error(404, "NOT_FOUND", "config not found");
    }
    app.send_json(
        "PUT",
        "/configs/a%00b",
        r#"{"endpoint":"https://x","eventTypes":["t"]}"#,
    )
    .await
    .assert_error(404, "NOT_FOUND", "config not found");
    app.send_json("PUT", "/configs/%00/secret/change", "{}")
        .await
        .assert_error(404, "NOT_FOUND", "config not found");
    let list = app.get("/configs?id=%00").await;
    assert_eq!(
        (list.status, list.body.as_str()),
        (200, "{\"cursor\":{\"hasMore\":false,\"data\":[]}}\n")
    );
    app.get("/deliveries/%00")
        .await
        .assert_error(404, "NOT_FOUND", "delivery not found");
    app.get("/deliveries/%00/attempts")
        .await
        .assert_error(404, "NOT_FOUND", "delivery not found");
    app.post_with_key("/deliveries/%00/replay", Some("k"), None)
        .await
        .assert_error(404, "NOT_FOUND", "delivery not found");
    {
        use base64::Engine as _;
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"createdAt":"2026-01-01T00:00:00Z","id":"a\u0000"}"#);
        app.get(&format!("/deliveries?cursor={cursor}"))
            .await
            .assert_error(400, "VALIDATION", "invalid cursor");
        app.get(&format!("/deliveries/x/attempts?cursor={cursor}"))
            .await
            .assert_error(400, "VALIDATION", "invalid cursor");
    }
    app.send_json(
        "POST",
        "/configs",
        r#"{"endpoint":"https://x","eventTypes":["a\u0000"]}"#,
    )
    .await
    .assert_error(400, "VALIDATION", "invalid config: eventTypes should be filled");
});

// One endpoint hanging until the timeout never slows another (spec §10.1).
both_backends!(a_hanging_endpoint_is_isolated, |backend| async move {
    let topic = new_topic(1).await;
    let app = worker(
        backend,
        &topic,
        &[
            "--delivery-concurrency=8",
            "--endpoint-concurrency=4",
            "--http-timeout=5s",
        ],
    )
    .await;
    let hanging = Receiver::start(200).await;
    hanging.set_mode(Mode::Hang);
    let healthy = Receiver::start(200).await;
    let stuck = id_of(&app.create_config(&hanging.url("/h"), &["t"]).await);
    let fine = id_of(&app.create_config(&healthy.url("/h"), &["t"]).await);
    let producer = Producer::new(&kafka::bootstrap());
    for n in 0..100 {
        producer
            .send(
                &topic,
                format!(r#"{{"type":"t","payload":{n}}}"#).as_bytes(),
                None,
            )
            .await;
    }
    // Without isolation the hanging endpoint holds every slot: 100 events / 4 slots × 5 s.
    eventually(
        Duration::from_secs(20),
        "the healthy endpoint to receive all 100",
        || async { (healthy.count() == 100).then_some(()) },
    )
    .await;
    assert_at_most_in_flight(&hanging, 4, Duration::from_secs(5));
    deliveries_where(&app, &fine, 100, "the healthy deliveries", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    let rows = deliveries_where(
        &app,
        &stuck,
        100,
        "every delivery of the hanging endpoint stored",
        |d| d.status != DeliveryStatus::Succeeded,
    )
    .await;
    assert!(
        rows.iter().any(|d| d.attempt_count == 0),
        "deferred deliveries are stored without a call"
    );
    let metrics = app.get("/metrics").await.body;
    assert!(
        metric(
            &metrics,
            "webhooks_deliveries_deferred_total{reason=\"endpoint_busy\"}"
        ) > 0.0
    );
    assert_at_most_in_flight(&hanging, 4, Duration::from_secs(5));
});

/// A hanging receiver's calls each last until the caller's `timeout` (measured from before
/// they arrive), so the overlap of [arrival, arrival + timeout − 200 ms) is a lower bound of
/// how many were in flight at once: it must not pass `cap`.
fn assert_at_most_in_flight(receiver: &Receiver, cap: usize, timeout: Duration) {
    let held = timeout - Duration::from_millis(200);
    let arrivals: Vec<std::time::Instant> = receiver.received().iter().map(|r| r.at).collect();
    let most = arrivals
        .iter()
        .map(|&t| arrivals.iter().filter(|&&a| a <= t && t < a + held).count())
        .max()
        .unwrap_or(0);
    assert!(most <= cap, "{most} calls in flight at once (at most {cap})");
    assert!(!arrivals.is_empty(), "the hanging endpoint was never called");
}

// Opens after 3 failures, probes once per half-open period, closes on success (spec §10.2).
both_backends!(the_circuit_opens_probes_and_closes, |backend| async move {
    let topic = new_topic(1).await;
    let app = worker(
        backend,
        &topic,
        &[
            "--circuit-breaker-failures=3",
            "--circuit-breaker-cooldown=3s",
            "--min-backoff-delay=1h",
            "--retry-period=100ms",
        ],
    )
    .await;
    let receiver = Receiver::start(500).await;
    let config = id_of(&app.create_config(&receiver.url("/h"), &["t"]).await);
    let producer = Producer::new(&kafka::bootstrap());
    for n in 0..3 {
        producer
            .send(
                &topic,
                format!(r#"{{"type":"t","payload":{n}}}"#).as_bytes(),
                None,
            )
            .await;
        eventually(WAIT, "the call to be recorded", || async {
            (app.deliveries(&config).await.len() == n + 1).then_some(())
        })
        .await;
    }
    // Open: more events arrive and are deferred to the end of the open period, not called.
    for n in 3..8 {
        producer
            .send(
                &topic,
                format!(r#"{{"type":"t","payload":{n}}}"#).as_bytes(),
                None,
            )
            .await;
    }
    let rows = deliveries_where(&app, &config, 8, "the deferred deliveries", |_| true).await;
    let deferred: Vec<&DeliveryRow> = rows.iter().filter(|d| d.attempt_count == 0).collect();
    assert_eq!(deferred.len(), 5, "{rows:?}");
    assert!(deferred
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending && d.next_attempt_at.is_some()));
    let metrics = app.get("/metrics").await.body;
    assert!(
        metric(
            &metrics,
            "webhooks_deliveries_deferred_total{reason=\"circuit_open\"}"
        ) >= 5.0
    );
    assert_eq!(metric(&metrics, "webhooks_circuits_open"), 1.0);
    // Two probes, each alone in its half-open period, the second after twice the cooldown.
    eventually(WAIT, "two failed probes", || async {
        (outcomes(&app, &config).await == (5, 0)).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 5);
    receiver.set_status(200);
    // The endpoint recovered: the next probe closes the circuit and the other deferred rows
    // follow (the failed probes wait for their backoff, an hour away).
    eventually(WAIT, "the third probe and the rest", || async {
        (outcomes(&app, &config).await == (5, 3)).then_some(())
    })
    .await;
    let calls = receiver.received();
    assert_eq!(calls.len(), 8);
    let gap = |a: usize, b: usize| calls[b].at.duration_since(calls[a].at);
    assert!(
        gap(2, 3) >= Duration::from_secs(3),
        "first probe {:?} after the opening call",
        gap(2, 3)
    );
    assert!(
        gap(3, 4) >= Duration::from_secs(6),
        "second probe {:?} after the first",
        gap(3, 4)
    );
    assert!(
        gap(4, 5) >= Duration::from_secs(12),
        "third probe {:?} after the second",
        gap(4, 5)
    );
    assert_eq!(
        metric(&app.get("/metrics").await.body, "webhooks_circuits_open"),
        0.0
    );
});

/// (calls made and now pending, deliveries succeeded) of a config.
async fn outcomes(app: &TestApp, config: &str) -> (usize, usize) {
    let rows = app.deliveries(config).await;
    let called = rows
        .iter()
        .filter(|d| d.attempt_count == 1 && d.status == DeliveryStatus::Pending)
        .count();
    let succeeded = rows
        .iter()
        .filter(|d| d.status == DeliveryStatus::Succeeded)
        .count();
    (called, succeeded)
}

// All calls failing for longer than `--auto-disable-after` deactivate the config (spec §10.2).
both_backends!(a_failing_config_is_auto_disabled, |backend| async move {
    let topic = new_topic(1).await;
    let app = worker(
        backend,
        &topic,
        &[
            "--auto-disable-after=1s",
            "--circuit-breaker-failures=0",
            "--min-backoff-delay=300ms",
            "--retry-period=100ms",
        ],
    )
    .await;
    let receiver = Receiver::start(503).await;
    let config = id_of(&app.create_config(&receiver.url("/h"), &["t"]).await);
    Producer::new(&kafka::bootstrap())
        .send(&topic, br#"{"type":"t"}"#, None)
        .await;
    let listed = eventually(WAIT, "the config to be deactivated", || async {
        let list = app.get(&format!("/configs?id={config}")).await.json();
        (list["cursor"]["data"][0]["active"] == false).then_some(list)
    })
    .await;
    assert_eq!(listed["cursor"]["data"].as_array().map(Vec::len), Some(1));
    let store = app.store();
    let id = config.clone();
    let since = store
        .run(move |q| Ok(q.failing_since(&id)?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(since.is_some(), "failing_since is set");
    assert!(
        metric(
            &app.get("/metrics").await.body,
            "webhooks_configs_auto_disabled_total"
        ) >= 1.0
    );
    // Its pending delivery waits; re-activation clears failing_since and resumes it.
    let calls = receiver.count();
    receiver.set_status(200);
    let reply = app
        .request("PUT", &format!("/configs/{config}/activate"), None, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = config.clone();
    let since = store
        .run(move |q| Ok(q.failing_since(&id)?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(since, None);
    deliveries_where(&app, &config, 1, "the delivery to resume", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    assert!(receiver.count() > calls);
});

// A secret change reaches the list and the next first attempt at once (spec §2.5).
both_backends!(a_secret_change_is_seen_at_once, |backend| async move {
    let topic = new_topic(1).await;
    let app = worker(backend, &topic, &[]).await;
    let receiver = Receiver::start(200).await;
    let created = app.create_config(&receiver.url("/h"), &["t"]).await;
    let (id, old) = (
        id_of(&created),
        created["secret"].as_str().unwrap_or_default().to_owned(),
    );
    // Warm the rendered list with the old secret.
    assert!(app.get("/configs").await.body.contains(&old));
    let changed = app
        .send_json("PUT", &format!("/configs/{id}/secret/change"), "{}")
        .await
        .json();
    let new = changed["data"]["secret"].as_str().unwrap_or_default().to_owned();
    assert_ne!(new, old);
    for _ in 0..5 {
        let list = app.get("/configs").await.json();
        assert_eq!(list["cursor"]["data"][0]["secret"], new.as_str());
    }
    Producer::new(&kafka::bootstrap())
        .send(&topic, br#"{"type":"t"}"#, None)
        .await;
    eventually(WAIT, "the call", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    let call = &receiver.received()[0];
    assert!(call.signature_valid(&new), "signed with the new secret");
    assert!(!call.signature_valid(&old), "signed with the old secret");
});

/// Records up to --max-record-bytes are delivered, whatever the API body limit (spec §4.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_one_and_a_half_mib_is_delivered_whole() {
    let topic = new_topic(1).await;
    let app = worker(Backend::Postgres, &topic, &[]).await;
    let receiver = Receiver::start(200).await;
    let config = id_of(&app.create_config(&receiver.url("/h"), &["t"]).await);
    let big = "x".repeat(1536 * 1024);
    let value = format!(r#"{{"type":"t","payload":"{big}"}}"#);
    Producer::new(&kafka::bootstrap())
        .send(&topic, value.as_bytes(), None)
        .await;
    let rows = deliveries_where(&app, &config, 1, "the large delivery", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    let body = String::from_utf8_lossy(&receiver.received()[0].body).into_owned();
    assert!(
        body.ends_with(&format!("\"payload\":\"{big}\"}}")),
        "the body was cut"
    );
    assert_eq!(rows[0].payload, body);
}

/// Final states are counted once, from what the writes applied (spec §8.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_states_are_counted_once_and_cancellations_too() {
    let topic = new_topic(1).await;
    let db = TestDb::new(Backend::Postgres);
    let again_db = db.handle();
    let app = worker_app_on(db, &topic, &kafka::unique("group"), &["--min-backoff-delay=1h"]).await;
    let receiver = Receiver::start(200).await;
    let ok = id_of(&app.create_config(&receiver.url("/ok"), &["t"]).await);
    let producer = Producer::new(&kafka::bootstrap());
    for _ in 0..5 {
        producer.send(&topic, br#"{"type":"t"}"#, None).await;
    }
    deliveries_where(&app, &ok, 5, "five successes", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    let succeeded = |text: &str| metric(text, "webhooks_deliveries_total{outcome=\"succeeded\"}");
    let before = succeeded(&app.get("/metrics").await.body);
    assert_eq!(before, 5.0);
    // The same records consumed again by a new group: sent again, stored nothing, counted nothing.
    let group = kafka::unique("again");
    let second = worker_app_on(again_db, &topic, &group, &[]).await;
    eventually(WAIT, "the records to be re-read and finished", || async {
        (kafka::committed(&group, &topic, 0).await == Some(5)).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 10, "re-consumed records are sent again");
    assert_eq!(succeeded(&second.get("/metrics").await.body), before);
    // A pending delivery cancelled by deleting its config is counted by the process that did it.
    let failing = Receiver::start(500).await;
    let doomed = id_of(&app.create_config(&failing.url("/no"), &["u"]).await);
    producer.send(&topic, br#"{"type":"u"}"#, None).await;
    deliveries_where(&app, &doomed, 1, "a pending delivery", |d| {
        d.status == DeliveryStatus::Pending
    })
    .await;
    let cancelled = |text: &str| metric(text, "webhooks_deliveries_total{outcome=\"cancelled\"}");
    let before = cancelled(&app.get("/metrics").await.body);
    assert_eq!(
        app.request("DELETE", &format!("/configs/{doomed}"), None, None)
            .await
            .status,
        200
    );
    assert_eq!(cancelled(&app.get("/metrics").await.body), before + 1.0);
    // The consumer-lag gauge of the partition this process owns.
    let series = format!("webhooks_kafka_consumer_lag{{partition=\"0\",topic=\"{topic}\"}}");
    eventually(WAIT, "the lag gauge", || async {
        app.get("/metrics").await.body.contains(&series).then_some(())
    })
    .await;
    let ids: HashSet<String> = receiver
        .received()
        .iter()
        .filter_map(|r| r.header("formance-webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 5, "the same five deliveries, sent twice");
}

// A row the database refuses even alone is dropped, counted, and blocks nothing (spec §10.3):
// here the config of an in-flight first attempt vanishes from under it (a hard delete, as a
// careless purge would do), so its delivery row breaks the foreign key.
both_backends!(a_refused_row_blocks_nothing, |backend| async move {
    let topic = new_topic(1).await;
    let app = worker(backend, &topic, &[]).await;
    let slow = Receiver::start(200).await;
    slow.set_delay(Duration::from_millis(1500));
    let fast = Receiver::start(200).await;
    let doomed = id_of(&app.create_config(&slow.url("/h"), &["t"]).await);
    let good = id_of(&app.create_config(&fast.url("/h"), &["t"]).await);
    let producer = Producer::new(&kafka::bootstrap());
    producer.send(&topic, br#"{"type":"t"}"#, None).await;
    eventually(WAIT, "the slow call in flight", || async {
        (slow.count() == 1).then_some(())
    })
    .await;
    app.execute(&format!("DELETE FROM configs WHERE id = '{doomed}'"));
    let rejected = eventually(WAIT, "the refused row to be counted", || async {
        let n = metric(&app.get("/metrics").await.body, "webhooks_storage_rejected_total");
        (n >= 1.0).then_some(n)
    })
    .await;
    assert_eq!(rejected, 1.0);
    assert_eq!(app.get("/_healthcheck").await.status, 200);
    // The record finished: later records flow and the other config's rows are stored.
    producer.send(&topic, br#"{"type":"t"}"#, None).await;
    deliveries_where(&app, &good, 2, "the other config's deliveries", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    assert!(app.deliveries(&doomed).await.is_empty());
});

// A rebalance drains on a single-threaded runtime (spec §10.4): a second member joins while
// calls are in flight; the first finishes and stores them before giving its partitions up, so
// nothing is lost and nothing is sent twice.
#[tokio::test]
async fn a_rebalance_drains_on_a_single_threaded_runtime() {
    let topic = new_topic(4).await;
    let group = kafka::unique("group");
    let db = TestDb::new(Backend::Postgres);
    let second_db = db.handle();
    let receiver = Receiver::start(200).await;
    // Longer than the join takes (the first member learns of it at its next heartbeat, 3 s).
    receiver.set_delay(Duration::from_secs(8));
    let first = worker_app_on(db, &topic, &group, &[]).await;
    let config = id_of(&first.create_config(&receiver.url("/h"), &["t"]).await);
    let producer = Producer::new(&kafka::bootstrap());
    for n in 0..40 {
        producer
            .send(
                &topic,
                format!(r#"{{"type":"t","payload":{n}}}"#).as_bytes(),
                None,
            )
            .await;
    }
    eventually(WAIT, "calls in flight", || async {
        (receiver.count() > 0).then_some(())
    })
    .await;
    let second = worker_only_on(second_db, &topic, &group, &[]).await;
    // The second member owns partitions now: the first gave them up.
    let owned = "webhooks_kafka_consumer_lag{partition=";
    eventually(WAIT, "the second member to own partitions", || async {
        let text = second.get("/metrics").await.body;
        text.lines()
            .any(|l| l.starts_with(owned) && l.contains(&topic))
            .then_some(())
    })
    .await;
    deliveries_where(&first, &config, 40, "every event delivered and stored", |d| {
        d.status == DeliveryStatus::Succeeded
    })
    .await;
    let ids: HashSet<String> = receiver
        .received()
        .iter()
        .filter_map(|r| r.header("formance-webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 40);
    assert_eq!(
        receiver.count(),
        40,
        "a call was made twice: the drain did not store it in time"
    );
}
