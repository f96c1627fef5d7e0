//! The Kafka consumer (at-least-once) and the first-attempt path.
//!
//! ```text
//! recv ─► decode ─► match (cache) ─► per config: permit ─► POST ─► writer ─► durable ─► tracker
//!   │                                                                                    │
//!   └──────────────── every 200 ms: store the tracker's committable offsets ◄─────────────┘
//! ```
//! `enable.auto.offset.store=false`: librdkafka's auto-commit only commits offsets we stored,
//! and we store an offset only once every earlier record of its partition is finished. On
//! revoke, in-flight work of the revoked partitions is drained before they are given up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::attempt::{self, Call};
use super::tracker::{OffsetTracker, PartitionKey};
use super::writer::Job;
use super::Shared;
use crate::domain::event::{decode_record, delivery_id, event_id};
use crate::domain::time::Timestamp;
use crate::metrics::metrics;
use crate::store::model::{FirstAttempt, NewDelivery};
use crate::store::types::DbTime;

/// librdkafka callbacks: rebalance draining.
pub struct Context {
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub drain_timeout: Duration,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        let keys: Vec<PartitionKey> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let deadline = Instant::now() + self.drain_timeout;
        let busy = || {
            self.tracker
                .lock()
                .map(|t| keys.iter().any(|k| t.in_flight(k) > 0))
                .unwrap_or(false)
        };
        // Blocks librdkafka's poll only: the calls and writes finishing this work run elsewhere.
        while busy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        store_offsets(consumer, &self.tracker);
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "commit on revoke");
        }
        if let Ok(mut t) = self.tracker.lock() {
            for k in &keys {
                t.remove(k);
            }
        }
        tracing::info!(partitions = keys.len(), "partitions revoked after draining");
    }
}

/// Hands the tracker's committable offsets to librdkafka (committed by its auto-commit timer).
pub fn store_offsets<C: Consumer<Context>>(consumer: &C, tracker: &Mutex<OffsetTracker>) {
    let ready = tracker
        .lock()
        .map(|mut t| t.take_committable())
        .unwrap_or_default();
    if ready.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in ready {
        if let Err(e) = tpl.add_partition_offset(&topic, partition, Offset::Offset(next)) {
            tracing::warn!(error = %e, "cannot list an offset to store");
        }
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        // A partition revoked meanwhile refuses the store; its new owner re-reads from the last commit.
        tracing::debug!(error = %e, "offset store refused");
    }
}

/// Consumes until `shutdown`, starting each record's first attempts as it goes.
pub async fn consume(
    consumer: Arc<StreamConsumer<Context>>,
    shared: Arc<Shared>,
    tracker: Arc<Mutex<OffsetTracker>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = tick.tick() => store_offsets(&*consumer, &tracker),
            message = consumer.recv() => match message {
                Ok(m) => handle(&m, &shared, &tracker).await,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Why a record is skipped: the value's own problem, or its size.
#[derive(Debug)]
enum Skip {
    Invalid(crate::domain::event::SkipReason),
    TooLarge(usize),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Invalid(reason) => reason.fmt(f),
            Skip::TooLarge(limit) => write!(f, "record larger than {limit} bytes"),
        }
    }
}

async fn handle(m: &BorrowedMessage<'_>, shared: &Arc<Shared>, tracker: &Mutex<OffsetTracker>) {
    let key: PartitionKey = (m.topic().to_owned(), m.partition());
    let offset = m.offset();
    let decoded = match m.payload() {
        Some(v) if v.len() > shared.max_record_bytes => Err(Skip::TooLarge(shared.max_record_bytes)),
        payload => decode_record(payload).map_err(Skip::Invalid),
    };
    let event = match decoded {
        Ok(e) => e,
        Err(reason) => {
            tracing::warn!(topic = %key.0, partition = key.1, offset, %reason, "skipping record");
            metrics()
                .events_consumed
                .with_label_values(&[key.0.as_str(), "invalid"])
                .inc();
            if let Ok(mut t) = tracker.lock() {
                t.register(&key, offset, 0);
            }
            return;
        }
    };
    let header = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == "_watermill_message_uuid")
            .and_then(|h| h.value)
    });
    let event_id = event_id(header, &key.0, key.1, offset);
    let configs = shared.cache.matching(&event.event_type);
    tracing::debug!(topic = %key.0, partition = key.1, offset, event.id = %event_id, matched = configs.len(), "record");
    let outcome = if configs.is_empty() {
        "unmatched"
    } else {
        "matched"
    };
    metrics()
        .events_consumed
        .with_label_values(&[key.0.as_str(), outcome])
        .inc();
    if let Ok(mut t) = tracker.lock() {
        t.register(&key, offset, configs.len());
    }
    if configs.is_empty() {
        return;
    }
    let event = Arc::new((event, event_id));
    for config in configs {
        // Back-pressure: with every slot busy, consumption waits here.
        let Ok(permit) = Arc::clone(&shared.permits).acquire_owned().await else {
            return;
        };
        let (shared, event, key) = (Arc::clone(shared), Arc::clone(&event), key.clone());
        tokio::spawn(async move {
            let (event, event_id) = &*event;
            let id = delivery_id(event_id, &config.id);
            let made = attempt::make(
                &shared.outbound,
                &shared.policy,
                Call {
                    delivery_id: &id,
                    endpoint: &config.endpoint,
                    secret: &config.secret,
                    previous_secret: config.previous_secret_at(Timestamp::now()),
                    body: &event.body,
                    idempotency_key: &event.idempotency_key,
                    attempt_number: 1,
                    replay_generation: 0,
                    t0: None,
                    due: None,
                },
            )
            .await;
            let created = DbTime(made.first_attempt_at);
            let row = FirstAttempt {
                delivery: NewDelivery {
                    id,
                    event_id: event_id.clone(),
                    idempotency_key: event.idempotency_key.clone(),
                    config_id: config.id.clone(),
                    event_type: event.event_type.clone(),
                    payload: String::from_utf8_lossy(&event.body).into_owned(),
                    status: made.status,
                    attempt_count: 1,
                    first_attempt_at: Some(created),
                    next_attempt_at: made.next_attempt_at.map(DbTime),
                    claimed_at: None,
                    last_attempt_at: Some(DbTime(made.last_attempt_at)),
                    last_status_code: made.last_status_code,
                    last_error: made.last_error,
                    replay_generation: 0,
                    created_at: created,
                    updated_at: created,
                },
                attempt: made.attempt,
            };
            let _ = shared
                .writer
                .send(Job::First {
                    row: Box::new(row),
                    partition: key,
                    offset,
                })
                .await;
            drop(permit);
        });
    }
}
