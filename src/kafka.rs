//! How this process reaches Kafka: the connection settings the consumer and the producer share,
//! and the publisher behind `POST /events` (spec §2.8).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::Settings;

/// How to reach Kafka.
#[derive(Clone)]
pub struct KafkaSettings {
    pub bootstrap: String,
    pub group: String,
    pub session_timeout_ms: u32,
    pub sasl: bool,
    pub sasl_mechanism: String,
    pub sasl_username: String,
    pub sasl_password: String,
    pub tls: bool,
}

impl KafkaSettings {
    /// The configured cluster, or `embedded` (the in-process broker's bootstrap) when set.
    pub fn new(settings: &Settings, embedded: Option<&str>) -> KafkaSettings {
        let args = &settings.args;
        KafkaSettings {
            bootstrap: embedded.map_or_else(|| args.publisher_kafka_broker.join(","), str::to_owned),
            group: settings.publisher_queue_group.clone(),
            session_timeout_ms: SESSION_TIMEOUT_MS,
            sasl: args.publisher_kafka_sasl_enabled,
            sasl_mechanism: args.publisher_kafka_sasl_mechanism.clone(),
            sasl_username: args.publisher_kafka_sasl_username.clone(),
            sasl_password: args.publisher_kafka_sasl_password.0.clone(),
            tls: args.publisher_kafka_tls_enabled,
        }
    }

    /// Brokers, client id and security: what every client of ours sets.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", &self.group)
            // librdkafka backs off between reconnection attempts up to 10 s by default, so after
            // a broker outage of 20 s consumption resumed up to 13 s after the broker was back;
            // 1 s keeps the resume within the contract's 10 s (spec §10.5).
            .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS);
        match (self.sasl, self.tls) {
            (true, true) => c.set("security.protocol", "SASL_SSL"),
            (true, false) => c.set("security.protocol", "SASL_PLAINTEXT"),
            (false, true) => c.set("security.protocol", "SSL"),
            (false, false) => c.set("security.protocol", "PLAINTEXT"),
        };
        if self.sasl {
            let mechanism = if self.sasl_mechanism.is_empty() {
                "PLAIN"
            } else {
                &self.sasl_mechanism
            };
            c.set("sasl.mechanism", mechanism)
                .set("sasl.username", &self.sasl_username)
                .set("sasl.password", &self.sasl_password);
        }
        c
    }

    /// The worker's consumer: offsets stored only once outcomes are durable, committed by
    /// librdkafka's auto-commit of stored offsets.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        c.set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set("enable.partition.eof", "false")
            // A fetch returns once records are there; on a quiet topic the broker holds it at
            // most this long, which bounds how late a record can be seen (default 500 ms).
            .set("fetch.wait.max.ms", "10")
            // The pre-fetch queue (default 64 MiB) dominated the worker's memory.
            .set("queued.max.messages.kbytes", "16384");
        c
    }
}

/// How long the group coordinator keeps a silent member. Longer than a broker outage the
/// contract rides out (spec §10.5: 20 s): with 10 s the member gave its session up during such
/// an outage and rejoined as a new one, and the coordinator held the rebalance until the old
/// member expired, so delivery resumed 10 s after the broker was back. The cost: a member
/// killed without leaving holds its partitions this long before they are reassigned.
pub const SESSION_TIMEOUT_MS: u32 = 30_000;

/// The longest wait between two connection attempts to a broker that is down.
pub const RECONNECT_BACKOFF_MAX_MS: &str = "1000";

/// How long a record may wait for the broker's acknowledgement before the request fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes events as records: idempotent producer, acknowledged by all in-sync replicas.
pub struct Publisher {
    producer: FutureProducer,
    topics: Vec<String>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("topics", &self.topics).finish()
    }
}

impl Publisher {
    pub fn new(kafka: &KafkaSettings, topics: Vec<String>) -> Result<Publisher, KafkaError> {
        let producer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .create()?;
        Ok(Publisher { producer, topics })
    }

    /// The topics `POST /events` may name; the first is the default.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Sends every value as one record on `topic` with a fresh `_watermill_message_uuid` (and,
    /// when tracing, the `traceparent` of the request's span, so each delivery's trace continues
    /// the publisher's), and returns once the broker acknowledged them all (or the first failure).
    pub async fn publish(&self, topic: &str, values: &[&[u8]]) -> Result<(), KafkaError> {
        let traceparent = crate::telemetry::traces::traceparent(&tracing::Span::current());
        let sends = values.iter().map(|value| {
            let id = uuid::Uuid::new_v4().to_string();
            let mut headers = OwnedHeaders::new().insert(Header {
                key: "_watermill_message_uuid",
                value: Some(id.as_str()),
            });
            if let Some(traceparent) = &traceparent {
                headers = headers.insert(Header {
                    key: "traceparent",
                    value: Some(traceparent.as_str()),
                });
            }
            let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic).payload(*value).headers(headers);
            self.producer.send(record, DELIVERY_TIMEOUT)
        });
        for sent in futures_util::future::join_all(sends).await {
            sent.map_err(|(e, _)| e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(sasl: bool, tls: bool, mechanism: &str) -> KafkaSettings {
        KafkaSettings {
            bootstrap: "b1:9092,b2:9092".into(),
            group: "g".into(),
            session_timeout_ms: 10_000,
            sasl,
            sasl_mechanism: mechanism.into(),
            sasl_username: "u".into(),
            sasl_password: "p".into(),
            tls,
        }
    }

    #[test]
    fn at_least_once_settings() {
        let c = settings(false, false, "").consumer_config();
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("enable.auto.commit"), Some("true"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("client.id"), Some("g"));
        assert_eq!(c.get("bootstrap.servers"), Some("b1:9092,b2:9092"));
        assert_eq!(c.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(c.get("sasl.mechanism"), None);
        // A broker back from an outage is reconnected to within a second, and an outage of
        // 20 s does not end the member's session (spec §10.5).
        assert_eq!(c.get("reconnect.backoff.max.ms"), Some("1000"));
        let real = KafkaSettings::new(
            &crate::config::Settings::from_flags(&[]).unwrap_or_else(|e| panic!("{e}")),
            None,
        )
        .consumer_config();
        assert_eq!(real.get("session.timeout.ms"), Some("30000"));
    }

    #[test]
    fn sasl_and_tls_map_to_librdkafka_protocols() {
        let c = settings(true, true, "SCRAM-SHA-512").consumer_config();
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(
            (c.get("sasl.username"), c.get("sasl.password")),
            (Some("u"), Some("p"))
        );
        let c = settings(true, false, "").consumer_config();
        assert_eq!(c.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
        let c = settings(false, true, "").consumer_config();
        assert_eq!(c.get("security.protocol"), Some("SSL"));
    }
}
