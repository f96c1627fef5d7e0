//! A broker outage (spec §10.5): once the broker is back, consumption resumes within 10 s.
//!
//! The broker is librdkafka's mock cluster hosted by this test (the embedded broker's code),
//! taken down and brought back with the mock's own controls: the shared test broker cannot be
//! stopped from a test. The fault procedure (./scripts/faults.sh) does the same with tansu
//! stopped for 20 s; that is where this was found: librdkafka's default reconnection backoff
//! grows to 10 s, and delivery resumed 13.4 s after tansu was back; with that fixed, 10 s after,
//! because the 10 s group session expired during the outage. Both settings are pinned by
//! `kafka::tests::at_least_once_settings`.

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;

use crate::harness::{eventually, Backend, Receiver, TestApp, TestDb};
use crate::kafka::{unique, Producer};

enum Command {
    Down,
    Up,
}

/// A one-broker mock cluster on its own thread (it is not `Send`), with one topic of one
/// partition; stops when dropped.
struct MockBroker {
    bootstrap: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockBroker {
    fn start(topic: &str) -> MockBroker {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel::<Command>();
        let topic = topic.to_owned();
        let thread = std::thread::spawn(move || {
            let cluster = MockCluster::new(1).unwrap_or_else(|e| panic!("mock cluster: {e}"));
            cluster
                .create_topic(&topic, 1, 1)
                .unwrap_or_else(|e| panic!("create topic: {e}"));
            let _ = ready_tx.send(cluster.bootstrap_servers());
            while let Ok(command) = rx.recv() {
                let result = match command {
                    Command::Down => cluster.broker_down(1),
                    Command::Up => cluster.broker_up(1),
                };
                result.unwrap_or_else(|e| panic!("mock broker: {e}"));
            }
        });
        let bootstrap = ready_rx
            .recv()
            .unwrap_or_else(|e| panic!("mock cluster did not start: {e}"));
        MockBroker {
            bootstrap,
            commands: Some(tx),
            thread: Some(thread),
        }
    }

    fn send(&self, command: Command) {
        if let Some(tx) = &self.commands {
            tx.send(command).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_resumes_within_10_s_of_the_broker_return() {
    let topic = unique("outage");
    let broker = MockBroker::start(&topic);
    let (bootstrap, topics, group) = (
        format!("--publisher-kafka-broker={}", broker.bootstrap),
        format!("--kafka-topics={topic}"),
        format!("--publisher-queue-group={}", unique("group")),
    );
    let app = TestApp::spawn_on(
        TestDb::new(Backend::Postgres),
        &[
            "--worker",
            "--publisher-kafka-enabled",
            &bootstrap,
            &topics,
            &group,
            "--allow-private-endpoints",
        ],
    )
    .await;
    let receiver = Receiver::start(200).await;
    app.create_config(&receiver.url("/h"), &["t"]).await;
    Producer::new(&broker.bootstrap)
        .send(&topic, br#"{"type":"t"}"#, None)
        .await;
    eventually(Duration::from_secs(30), "the first delivery", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;

    broker.send(Command::Down);
    // The outage itself (not a wait for a condition), as long as the contract's (spec §10.5):
    // the client's backoff between reconnection attempts grows to its ceiling, and a session
    // shorter than the outage expires (then the member rejoins as a new one and the coordinator
    // waits for the old one to expire: another session's length).
    tokio::time::sleep(Duration::from_secs(20)).await;
    broker.send(Command::Up);
    // A fresh producer: the test's own client must not be what is slow to reconnect.
    Producer::new(&broker.bootstrap)
        .send(&topic, br#"{"type":"t"}"#, None)
        .await;
    eventually(
        Duration::from_secs(10),
        "the delivery of a record published after the broker's return",
        || async { (receiver.count() == 2).then_some(()) },
    )
    .await;
    assert_eq!(app.get("/_healthcheck").await.status, 200);
}
