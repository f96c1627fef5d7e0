//! The delivery worker: Kafka consumer group → match → signed POST → durable record, and the
//! retry sweep. See `consumer.rs` for the at-least-once rules and `sweep.rs` for retries.
//!
//! One shutdown path: stop consuming and claiming → let in-flight calls finish (each bounded by
//! `--http-timeout`) → flush the write queue → store and commit offsets.

mod attempt;
pub mod cache;
mod consumer;
pub mod embedded_broker;
pub mod retention;
mod sweep;
pub mod tracker;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::domain::backoff::RetryPolicy;
use crate::kafka::KafkaSettings;
use crate::outbound::Outbound;
use crate::store::Store;
use cache::ConfigCache;
use embedded_broker::EmbeddedBroker;
use tracker::OffsetTracker;

/// Everything the first-attempt path and the sweep share.
pub struct Shared {
    outbound: Outbound,
    policy: RetryPolicy,
    cache: Arc<ConfigCache>,
    permits: Arc<Semaphore>,
    writer: mpsc::Sender<writer::Job>,
    /// Larger records are skipped: the same bound as an API body (`--max-request-bytes`).
    max_record_bytes: usize,
}

/// What the HTTP side asks of a running worker.
pub struct WorkerStatus {
    consumer: Arc<StreamConsumer<consumer::Context>>,
    storage_ok: Arc<AtomicBool>,
    /// Set when this process runs the embedded broker.
    pub kafka_bootstrap: Option<String>,
}

impl std::fmt::Debug for WorkerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerStatus")
            .field("kafka_bootstrap", &self.kafka_bootstrap)
            .finish()
    }
}

impl WorkerStatus {
    /// Cluster metadata reachable within `deadline`.
    pub async fn kafka_ok(&self, deadline: Duration) -> bool {
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, deadline).is_ok())
            .await
            .unwrap_or(false)
    }

    /// False while outcome writes are failing (and being retried).
    pub fn storage_writes_ok(&self) -> bool {
        self.storage_ok.load(Ordering::Relaxed)
    }
}

/// A running worker.
pub struct Worker {
    pub status: Arc<WorkerStatus>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    _broker: Option<EmbeddedBroker>,
}

impl Worker {
    /// Connects to Kafka (or starts the embedded broker), loads configs and starts consuming.
    pub async fn start(settings: &Settings, store: Store, outbound: Outbound) -> anyhow::Result<Worker> {
        let broker = if settings.publisher_kafka_enabled {
            None
        } else {
            let topics = settings.kafka_topics.clone();
            Some(tokio::task::spawn_blocking(move || EmbeddedBroker::start(&topics)).await??)
        };
        let kafka = KafkaSettings::new(settings, broker.as_ref().map(EmbeddedBroker::bootstrap));
        let cache = Arc::new(ConfigCache::default());
        cache.load(&store).await.context("cannot load configs")?;
        let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
        let drain_timeout = settings.http.timeout + Duration::from_secs(10);
        let consumer: StreamConsumer<consumer::Context> = kafka
            .consumer_config()
            .create_with_context(consumer::Context {
                tracker: Arc::clone(&tracker),
                drain_timeout,
            })
            .context("cannot create the Kafka consumer")?;
        let topics: Vec<&str> = settings.kafka_topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .context("cannot subscribe to the Kafka topics")?;
        let consumer = Arc::new(consumer);

        let (writer_tx, writer_rx) = mpsc::channel(writer::QUEUE);
        let storage_ok = Arc::new(AtomicBool::new(true));
        let wake_sweep = store.due_notifications();
        let permits = Arc::new(Semaphore::new(settings.delivery_concurrency));
        let shared = Arc::new(Shared {
            outbound,
            policy: RetryPolicy {
                min_backoff: settings.retry.min_backoff,
                max_backoff: settings.retry.max_backoff,
                abort_after: settings.retry.abort_after,
                max_attempts: settings.retry.max_attempts,
            },
            cache: Arc::clone(&cache),
            permits: Arc::clone(&permits),
            writer: writer_tx,
            max_record_bytes: settings.max_request_bytes,
        });
        let shutdown = CancellationToken::new();
        let writer = tokio::spawn(
            writer::Writer {
                store: store.clone(),
                tracker: Arc::clone(&tracker),
                wake_sweep: Arc::clone(&wake_sweep),
                storage_ok: Arc::clone(&storage_ok),
            }
            .run(writer_rx),
        );
        let follow = tokio::spawn(Arc::clone(&cache).follow(store.clone(), shutdown.clone()));
        let retention = tokio::spawn(
            retention::Retention {
                period: settings.args.retention_period.0,
                success_delay: settings.args.retention_success_delay.0,
                failed_delay: settings.args.retention_failed_delay.0,
            }
            .run(store.clone(), shutdown.clone()),
        );
        let sweep = tokio::spawn(
            sweep::Sweep {
                shared: Arc::clone(&shared),
                store,
                retry_period: settings.retry.retry_period,
                lease: attempt::lease(settings.http.timeout),
                wake: wake_sweep,
                gauge_refreshed: None,
            }
            .run(shutdown.clone()),
        );
        let consume = tokio::spawn(consumer::consume(
            Arc::clone(&consumer),
            Arc::clone(&shared),
            Arc::clone(&tracker),
            shutdown.clone(),
        ));
        let total = u32::try_from(settings.delivery_concurrency).unwrap_or(u32::MAX);
        let in_flight_deadline = settings.http.timeout + Duration::from_secs(5);
        let status = Arc::new(WorkerStatus {
            consumer: Arc::clone(&consumer),
            storage_ok,
            kafka_bootstrap: broker.as_ref().map(|b| b.bootstrap().to_owned()),
        });
        let done = tokio::spawn(async move {
            let _ = consume.await;
            let _ = sweep.await;
            let _ = follow.await;
            let _ = retention.await;
            // Every permit back means no call is in flight and every outcome is queued.
            if tokio::time::timeout(in_flight_deadline, permits.acquire_many(total))
                .await
                .is_err()
            {
                tracing::warn!("in-flight deliveries did not finish in time; their records will be re-read");
            }
            drop(shared);
            let _ = writer.await;
            consumer::store_offsets(&*consumer, &tracker);
            let consumer = Arc::clone(&consumer);
            let committed =
                tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
            if let Ok(Err(e)) = committed {
                tracing::debug!(error = %e, "final offset commit");
            }
        });
        tracing::info!(topics = %settings.kafka_topics.join(","), group = %settings.publisher_queue_group, "worker started");
        Ok(Worker {
            status,
            shutdown,
            done,
            _broker: broker,
        })
    }

    /// The one shutdown path; returns once offsets are committed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
        tracing::info!("worker stopped");
    }
}
