//! Kafka for the tests: the real broker the test command started (`WEBHOOKS_TEST_KAFKA`), a
//! topic and a consumer group per test, and a producer.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The broker started by ./scripts/test.sh; a missing one fails loudly.
pub fn bootstrap() -> String {
    std::env::var("WEBHOOKS_TEST_KAFKA").unwrap_or_else(|_| {
        panic!(
            "WEBHOOKS_TEST_KAFKA is not set: run the suite with ./scripts/test.sh, which builds and \
             starts a Kafka-protocol broker (tansu) on 127.0.0.1, or point WEBHOOKS_TEST_KAFKA at one"
        )
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a topic (tansu does not auto-create them).
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap_or_else(|e| panic!("admin client: {e}"));
    let result = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap_or_else(|e| panic!("create topic {topic} on {bootstrap}: {e}"));
    for r in result {
        if let Err((name, code)) = r {
            panic!("create topic {name}: {code}");
        }
    }
}

// Known broker bug, tansu 0.6: a consumer killed without leaving its group (`kill -9`) is
// evicted for missed heartbeats only while the broker handles another member's request, and
// the member that joins the group after it never gets partitions: it heartbeats and fetches
// nothing, while tansu's `consumer_offset` table holds the killed member's commits. Even a
// throwaway member polling for 90 s did not get the dead member evicted. Reproduction: consume
// a topic in group G, `kill -9` the consumer, start another consumer in G: it receives nothing
// (Apache Kafka reassigns the partitions once `session.timeout.ms` passes). Tests that restart
// after a crash therefore join a new group.

pub struct Producer {
    inner: FutureProducer,
}

impl Producer {
    pub fn new(bootstrap: &str) -> Producer {
        let inner = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("message.timeout.ms", "30000")
            // Room for the large records of the size tests.
            .set("message.max.bytes", "33554432")
            .set("compression.type", "none")
            .create()
            .unwrap_or_else(|e| panic!("producer: {e}"));
        Producer { inner }
    }

    /// Publishes one record and waits for the broker's acknowledgement.
    pub async fn send(&self, topic: &str, value: &[u8], watermill_uuid: Option<&str>) {
        let mut record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic).payload(value);
        if let Some(id) = watermill_uuid {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "_watermill_message_uuid",
                value: Some(id),
            }));
        }
        if let Err((e, _)) = self.inner.send(record, Duration::from_secs(30)).await {
            panic!("publish to {topic}: {e}");
        }
    }
}

/// How many records `topic` holds over its first `partitions` partitions (high watermarks).
pub async fn record_count(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("watermarks"))
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .map(|(_, high)| high)
                    .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"))
            })
            .sum()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The offset `group` committed for a partition of `topic`, None when it committed none.
pub async fn committed(group: &str, topic: &str, partition: i32) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    tokio::task::spawn_blocking(move || {
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("committed offsets of {partition}: {e}"));
        committed.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}
