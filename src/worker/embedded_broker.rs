//! The in-process Kafka-protocol broker used when no cluster is configured (librdkafka's mock
//! cluster), so `webhooks serve --worker` works on a bare machine. Its log lives in memory:
//! records not yet consumed are lost when the process stops. Not for production.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

/// A running embedded broker; stops when dropped.
#[derive(Debug)]
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the embedded Kafka broker: {0}")]
pub struct BrokerError(String);

/// Partitions of each topic created on the embedded broker. librdkafka's mock broker keeps
/// at most 5 MiB per partition and silently drops the oldest records beyond that, so the
/// partition count is what bounds the backlog it holds for the worker (about 160 MiB per topic).
pub const PARTITIONS: i32 = 32;

impl EmbeddedBroker {
    /// Starts the broker on 127.0.0.1 and creates `topics`.
    pub fn start(topics: &[String]) -> Result<EmbeddedBroker, BrokerError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let topics = topics.to_vec();
        // The mock cluster is not Send: it lives and dies on its own thread.
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                for topic in &topics {
                    if let Err(e) = cluster.create_topic(topic, PARTITIONS, 1) {
                        let _ = ready_tx.send(Err(format!("topic {topic}: {e}")));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| BrokerError(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|e| BrokerError(e.to_string()))?
            .map_err(BrokerError)?;
        tracing::warn!(
            %bootstrap,
            "embedded Kafka broker started: its log is in memory, records not yet consumed are lost when \
             the process stops, and a backlog beyond about 5 MiB per partition ({PARTITIONS} per topic) \
             drops its oldest records; not for production (use --publisher-kafka-enabled)"
        );
        Ok(EmbeddedBroker {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
