//! The stop, on the binary with real signals (spec §1.5, §10.4): immediate, bounded, and a
//! second signal ends it at once.

use std::time::Duration;

use crate::cli::{serve, webhooks, Served};
use crate::harness::{eventually, postgres_behind_proxy, Backend, Mode, Receiver, TestDb};
use crate::kafka::{self, Producer};
use crate::liveness::new_topic;
use webhooks::domain::delivery::DeliveryStatus;
use webhooks::store::{Migrations, Store};

const WAIT: Duration = Duration::from_secs(30);

/// `webhooks serve --worker` on the test broker with a config for type `t` on `receiver`.
async fn started(db: &TestDb, topic: &str, receiver: &Receiver, extra: &[&str]) -> (Served, String) {
    let mut cmd = webhooks(&[
        "serve",
        "--worker",
        "--listen=127.0.0.1:0",
        "--auto-migrate",
        "--allow-private-endpoints",
        "--publisher-kafka-enabled",
    ]);
    cmd.arg(db.flag())
        .arg(format!("--publisher-kafka-broker={}", kafka::bootstrap()))
        .arg(format!("--kafka-topics={topic}"))
        .arg(format!("--publisher-queue-group={}", kafka::unique("group")))
        .args(extra);
    let served = serve(cmd).unwrap_or_else(|e| panic!("{e}"));
    let body = serde_json::json!({ "endpoint": receiver.url("/h"), "eventTypes": ["t"] }).to_string();
    let created = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .post(format!("http://{}/configs", served.addr))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let created: serde_json::Value =
        serde_json::from_str(&created).unwrap_or_else(|e| panic!("{created}: {e}"));
    let id = created["data"]["id"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "{created}");
    (served, id)
}

/// Runs blocking waits on the process without stalling the receiver on this runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_consuming_at_once_and_exits_0_once_the_call_is_stored() {
    let db = TestDb::new(Backend::Postgres);
    let topic = new_topic(1).await;
    let receiver = Receiver::start(200).await;
    receiver.set_delay(Duration::from_secs(2));
    let (mut served, config) = started(&db, &topic, &receiver, &[]).await;
    let producer = Producer::new(&kafka::bootstrap());
    producer.send(&topic, br#"{"type":"t","payload":1}"#, None).await;
    eventually(WAIT, "the call in flight", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    served.signal("TERM");
    blocking(|| served.wait_for_log("shutting down", WAIT));
    producer.send(&topic, br#"{"type":"t","payload":2}"#, None).await;
    assert_eq!(blocking(|| served.wait_exit(WAIT)), Some(0));
    assert_eq!(
        receiver.count(),
        1,
        "a record published after the signal was called"
    );
    let store = Store::open(&db.storage, Migrations::RequireCurrent).unwrap_or_else(|e| panic!("{e}"));
    let rows = store
        .run(move |q| Ok(q.deliveries_of_config(&config)?))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 1, "the in-flight call's outcome was stored");
    assert_eq!(rows[0].status, DeliveryStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_the_stop_ends_at_its_deadline_with_status_1() {
    let (db, proxy) = postgres_behind_proxy().await;
    let topic = new_topic(1).await;
    let receiver = Receiver::start(200).await;
    receiver.set_delay(Duration::from_secs(1));
    let (mut served, _) = started(&db, &topic, &receiver, &["--shutdown-timeout=3s"]).await;
    Producer::new(&kafka::bootstrap())
        .send(&topic, br#"{"type":"t"}"#, None)
        .await;
    eventually(WAIT, "the call in flight", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    proxy.cut();
    served.signal("TERM");
    // Without a bound the stop would wait for the database forever.
    assert_eq!(blocking(|| served.wait_exit(WAIT)), Some(1));
    let left = blocking(|| {
        served.wait_for_log(
            "the stop did not finish within --shutdown-timeout; these records will be consumed again by the next owner of their partitions",
            WAIT,
        )
    });
    assert_eq!(left["records_uncommitted"], 1, "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_stop_at_once() {
    let db = TestDb::new(Backend::Sqlite);
    let topic = new_topic(1).await;
    let receiver = Receiver::start(200).await;
    receiver.set_mode(Mode::Hang);
    let (mut served, _) = started(&db, &topic, &receiver, &["--http-timeout=60s"]).await;
    Producer::new(&kafka::bootstrap())
        .send(&topic, br#"{"type":"t"}"#, None)
        .await;
    eventually(WAIT, "the call in flight", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    served.signal("TERM");
    blocking(|| served.wait_for_log("shutting down", WAIT));
    served.signal("TERM");
    // The call would hold the first stop for 60 s (and its deadline is 60 s too).
    assert_eq!(blocking(|| served.wait_exit(Duration::from_secs(20))), Some(1));
}
