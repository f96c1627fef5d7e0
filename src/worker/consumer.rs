//! The Kafka consumer (at-least-once) on its own thread, and the dispatcher that starts each
//! record's first attempts.
//!
//! ```text
//!  consumer thread:  poll ─► decode ─► tracker: queued ─► channel ─┐        (skipped records
//!    (rebalance callbacks run here)                                │         finish at once)
//!  dispatcher task:  ┌─────────────────────────────────────────────┘
//!                    └► match (cache) ─► per config: admit? ─► call ─► writer ─► durable ─► tracker
//!                                                    └ defer ─► pending row ─► writer ─► durable ─► tracker
//!  consumer thread, every 200 ms: store the tracker's committable offsets (auto-committed)
//! ```
//! `enable.auto.offset.store=false`: librdkafka's auto-commit only commits offsets we stored,
//! and we store an offset only once every earlier record of its partition is finished.
//!
//! librdkafka runs rebalance callbacks inside `poll`, and a revocation must wait until the
//! revoked partitions' started work is stored (spec §10.4). That wait is why polling has a
//! thread of its own: it never blocks a thread of the async runtime, so the calls and writes it
//! waits for keep running even on a single-threaded runtime.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::attempt::{self, Call};
use super::isolation::{DeferReason, Slot};
use super::tracker::{OffsetTracker, PartitionKey};
use super::writer::Job;
use super::Shared;
use crate::domain::event::{decode_record, delivery_id, event_id, Event, SkipReason};
use crate::domain::time::Timestamp;
use crate::metrics::metrics;
use crate::telemetry::{traces, SPANS};

/// Records read ahead of the dispatcher. When it is full the consumer thread waits, so a worker
/// whose slots are all busy stops reading instead of buffering.
pub const READ_AHEAD: usize = 512;
/// How often committable offsets are handed to librdkafka.
const STORE_EVERY: Duration = Duration::from_millis(200);
/// How often the consumer-lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(5);

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
        if let Ok(mut t) = self.tracker.lock() {
            for k in &keys {
                t.revoke(k);
            }
        }
        let deadline = Instant::now() + self.drain_timeout;
        let busy = || {
            self.tracker
                .lock()
                .map(|t| keys.iter().any(|k| t.in_flight(k) > 0))
                .unwrap_or(false)
        };
        // This is the consumer's own thread: the calls and writes finishing this work run on the
        // async runtime meanwhile.
        while busy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let drained = !busy();
        store_offsets(consumer, &self.tracker);
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "commit on revoke");
        }
        if let Ok(mut t) = self.tracker.lock() {
            for k in &keys {
                t.remove(k);
            }
        }
        for (topic, partition) in &keys {
            let _ = metrics()
                .kafka_consumer_lag
                .remove_label_values(&[topic.as_str(), &partition.to_string()]);
        }
        if drained {
            tracing::info!(partitions = keys.len(), "partitions revoked after draining");
        } else {
            tracing::warn!(
                partitions = keys.len(),
                "partitions revoked before their calls finished; their records will be read again"
            );
        }
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

/// A decoded record on its way to the dispatcher.
pub struct Record {
    pub partition: PartitionKey,
    pub offset: i64,
    pub event: Event,
    pub event_id: String,
    /// W3C trace context headers of the record, which parent its span (spec §8.2).
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// Why a record is skipped: the value's own problem, or its size.
#[derive(Debug)]
enum Skip {
    Invalid(SkipReason),
    TooLarge,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Invalid(reason) => reason.fmt(f),
            Skip::TooLarge => f.write_str("record too large"),
        }
    }
}

/// Polls until `stop` (or until the dispatcher is gone), on the calling thread.
pub fn poll(
    consumer: &BaseConsumer<Context>,
    tracker: &Mutex<OffsetTracker>,
    tx: &mpsc::Sender<Record>,
    max_record_bytes: usize,
    stop: &CancellationToken,
) {
    let mut stored = Instant::now();
    while !stop.is_cancelled() {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) => {
                if let Some(record) = read(&m, tracker, max_record_bytes) {
                    // Full: wait for the dispatcher (back-pressure). Gone: the worker stops.
                    if tx.blocking_send(record).is_err() {
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kafka consumer error");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if stored.elapsed() >= STORE_EVERY {
            store_offsets(consumer, tracker);
            stored = Instant::now();
        }
    }
}

/// Decodes a record; a skipped one is logged, counted and finished here (spec §4.2).
fn read(m: &BorrowedMessage<'_>, tracker: &Mutex<OffsetTracker>, max_record_bytes: usize) -> Option<Record> {
    let key: PartitionKey = (m.topic().to_owned(), m.partition());
    let offset = m.offset();
    let decoded = match m.payload() {
        Some(v) if v.len() > max_record_bytes => Err(Skip::TooLarge),
        payload => decode_record(payload).map_err(Skip::Invalid),
    };
    match decoded {
        Ok(event) => {
            let (mut id_header, mut traceparent, mut tracestate) = (None, None, None);
            for h in m.headers().into_iter().flat_map(|h| h.iter()) {
                let text = || {
                    h.value
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .map(str::to_owned)
                };
                match h.key {
                    "_watermill_message_uuid" => id_header = h.value,
                    "traceparent" => traceparent = text(),
                    "tracestate" => tracestate = text(),
                    _ => {}
                }
            }
            let event_id = event_id(id_header, &key.0, key.1, offset);
            if let Ok(mut t) = tracker.lock() {
                t.queue(&key, offset);
            }
            Some(Record {
                partition: key,
                offset,
                event,
                event_id,
                traceparent,
                tracestate,
            })
        }
        Err(reason) => {
            tracing::warn!(topic = %key.0, partition = key.1, offset, %reason, "skipping record");
            metrics()
                .events_consumed
                .with_label_values(&[key.0.as_str(), "invalid"])
                .inc();
            if let Ok(mut t) = tracker.lock() {
                t.finish_record(&key, offset);
            }
            None
        }
    }
}

/// Refreshes `webhooks_kafka_consumer_lag` every few seconds until `stop`. Its questions go to
/// the brokers, so it runs on the blocking pool, one refresh at a time, beside the polling.
pub async fn follow_lag(consumer: Arc<BaseConsumer<Context>>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(LAG_EVERY) => {}
        }
        let consumer = Arc::clone(&consumer);
        let _ = tokio::task::spawn_blocking(move || refresh_lag(&consumer)).await;
    }
}

/// High watermark − committed offset of each owned partition.
fn refresh_lag(consumer: &BaseConsumer<Context>) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    if assignment.count() == 0 {
        return;
    }
    let Ok(committed) = consumer.committed_offsets(assignment, Duration::from_secs(2)) else {
        return;
    };
    for e in committed.elements() {
        let Ok((low, high)) = consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(1))
        else {
            continue;
        };
        let from = match e.offset() {
            Offset::Offset(o) => o,
            // Nothing committed yet: everything retained is still to be read.
            _ => low.max(0),
        };
        metrics()
            .kafka_consumer_lag
            .with_label_values(&[e.topic(), &e.partition().to_string()])
            .set((high - from).max(0));
    }
}

/// Starts each record's first attempts, until `stop` or the end of the consumer.
pub async fn dispatch(
    mut rx: mpsc::Receiver<Record>,
    shared: Arc<Shared>,
    tracker: Arc<Mutex<OffsetTracker>>,
    stop: CancellationToken,
) {
    loop {
        let record = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            record = rx.recv() => match record {
                Some(r) => r,
                None => return,
            },
        };
        if !handle(record, &shared, &tracker, &stop).await {
            return;
        }
    }
}

/// What a first attempt does now.
enum Admission {
    /// Call, holding a global permit and one of the config's slots.
    Call(OwnedSemaphorePermit, Slot),
    /// Store the delivery `pending`, due at the time given, without a call.
    Defer(Timestamp, DeferReason),
    Stopping,
}

/// Whether a first attempt for `config_id` may call now. A circuit that is not closed defers
/// it at once (spec §10.2). Otherwise consumption waits for a global permit (back-pressure);
/// only then is the config's own slot taken, so slots count calls in flight, never waits, and a
/// busy config defers the delivery, due now, for the sweep (spec §10.1).
async fn admit(shared: &Shared, config_id: &str, stop: &CancellationToken) -> Admission {
    if let Some(due) = shared.isolation.circuit_deferral(config_id, Timestamp::now()) {
        return Admission::Defer(due, DeferReason::CircuitOpen);
    }
    let permit = tokio::select! {
        biased;
        () = stop.cancelled() => return Admission::Stopping,
        permit = Arc::clone(&shared.permits).acquire_owned() => match permit {
            Ok(p) => p,
            Err(_) => return Admission::Stopping,
        },
    };
    match shared.isolation.try_slot(config_id) {
        Some(slot) => Admission::Call(permit, slot),
        None => Admission::Defer(Timestamp::now(), DeferReason::EndpointBusy),
    }
}

/// Matches a record and starts or defers its deliveries; false when stopping.
async fn handle(
    record: Record,
    shared: &Arc<Shared>,
    tracker: &Mutex<OffsetTracker>,
    stop: &CancellationToken,
) -> bool {
    shared.cache.ensure_current(&shared.store).await;
    let configs = shared.cache.matching(&record.event.event_type);
    let Record {
        partition,
        offset,
        event,
        event_id,
        traceparent,
        tracestate,
    } = record;
    let started = tracker
        .lock()
        .map(|mut t| t.start(&partition, offset, configs.len()))
        .unwrap_or(false);
    if !started {
        // Its partition was revoked meanwhile: the next owner reads it.
        return true;
    }
    tracing::debug!(topic = %partition.0, partition = partition.1, offset, event.id = %event_id, matched = configs.len(), "record");
    let record_span = tracing::info_span!(
        target: SPANS,
        "webhooks.record",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = partition.0.as_str(),
        messaging.kafka.destination.partition = partition.1,
        messaging.kafka.message.offset = offset,
        webhooks.event_id = event_id.as_str(),
        webhooks.event_type = event.event_type.as_str(),
    );
    traces::set_parent(&record_span, traceparent.as_deref(), tracestate.as_deref());
    metrics()
        .events_consumed
        .with_label_values(&[
            partition.0.as_str(),
            if configs.is_empty() {
                "unmatched"
            } else {
                "matched"
            },
        ])
        .inc();
    let event = Arc::new((event, event_id));
    for config in configs {
        let (ev, ev_id) = &*event;
        let id = delivery_id(ev_id, &config.id);
        let ack = Some((partition.clone(), offset));
        let (permit, slot) = match admit(shared, &config.id, stop).await {
            Admission::Call(permit, slot) => (permit, slot),
            Admission::Defer(due, reason) => {
                metrics()
                    .deliveries_deferred
                    .with_label_values(&[reason.as_str()])
                    .inc();
                let row = attempt::deferred(ev, ev_id, &config.id, id, due);
                if shared.writer.send(Job::first(row, ack)).await.is_err() {
                    return false;
                }
                continue;
            }
            Admission::Stopping => return false,
        };
        let (shared, event) = (Arc::clone(shared), Arc::clone(&event));
        let span = attempt::span(&record_span, &id, &config.id, 1);
        if !span.is_disabled() {
            span.record("messaging.destination.name", partition.0.as_str());
            span.record("messaging.kafka.destination.partition", partition.1);
            span.record("messaging.kafka.message.offset", offset);
        }
        tokio::spawn(async move {
            let (event, event_id) = &*event;
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
                span,
            )
            .await;
            // The call is over: its slot frees now; the global permit is held until the writer
            // takes the outcome, so a slow database slows consumption instead.
            drop(slot);
            shared
                .isolation
                .record(&config.id, made.outcome, made.done(), &made.attempt.error);
            let row = attempt::first_attempt(event, event_id, &config.id, id, made);
            let _ = shared.writer.send(Job::first(row, ack)).await;
            drop(permit);
        });
    }
    true
}
