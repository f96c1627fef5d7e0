//! The delivery worker: Kafka consumer group → match → signed POST → durable record, and the
//! retry sweep. See `consumer.rs` for the at-least-once rules, `isolation.rs` for endpoint
//! isolation and circuits, `writer.rs` for durability and `sweep.rs` for retries.
//!
//! One stop path ([`Worker::stop`], spec §1.5): stop reading records, starting first attempts
//! and claiming retries at once → let in-flight calls finish (each bounded by `--http-timeout`)
//! → store their outcomes → store and commit offsets. The caller bounds the whole stop by
//! `--shutdown-timeout`.

mod attempt;
pub mod cache;
mod consumer;
pub mod embedded_broker;
mod isolation;
pub mod retention;
mod sweep;
pub mod tracker;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::domain::backoff::RetryPolicy;
use crate::kafka::KafkaSettings;
use crate::outbound::Outbound;
use crate::store::Store;
use cache::ConfigCache;
use embedded_broker::EmbeddedBroker;
use isolation::Isolation;
use tracker::OffsetTracker;

/// Everything the first-attempt path and the sweep share.
pub struct Shared {
    store: Store,
    outbound: Outbound,
    policy: RetryPolicy,
    cache: Arc<ConfigCache>,
    isolation: Isolation,
    /// `--delivery-concurrency`: calls in flight in this process.
    permits: Arc<Semaphore>,
    writer: mpsc::Sender<writer::Job>,
}

/// What the HTTP side asks of a running worker.
pub struct WorkerStatus {
    consumer: Arc<BaseConsumer<consumer::Context>>,
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

    /// False while outcome writes are failing for want of the database (and being retried).
    pub fn storage_writes_ok(&self) -> bool {
        self.storage_ok.load(Ordering::Relaxed)
    }
}

/// A running worker.
pub struct Worker {
    pub status: Arc<WorkerStatus>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    tracker: Arc<Mutex<OffsetTracker>>,
    unstored: Arc<AtomicUsize>,
    permits: Arc<Semaphore>,
    concurrency: usize,
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
        let consumer: BaseConsumer<consumer::Context> = kafka
            .consumer_config()
            .create_with_context(consumer::Context {
                tracker: Arc::clone(&tracker),
                drain_timeout: settings.http.timeout + Duration::from_secs(10),
            })
            .context("cannot create the Kafka consumer")?;
        let topics: Vec<&str> = settings.kafka_topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .context("cannot subscribe to the Kafka topics")?;
        let consumer = Arc::new(consumer);

        let (writer_tx, writer_rx) = mpsc::channel(writer::QUEUE);
        let storage_ok = Arc::new(AtomicBool::new(true));
        let unstored = Arc::new(AtomicUsize::new(0));
        let wake_sweep = store.due_notifications();
        let permits = Arc::new(Semaphore::new(settings.delivery_concurrency));
        let shared = Arc::new(Shared {
            store: store.clone(),
            outbound,
            policy: RetryPolicy {
                min_backoff: settings.retry.min_backoff,
                max_backoff: settings.retry.max_backoff,
                abort_after: settings.retry.abort_after,
                max_attempts: settings.retry.max_attempts,
            },
            cache: Arc::clone(&cache),
            isolation: Isolation::new(settings.isolation, settings.retry.max_backoff),
            permits: Arc::clone(&permits),
            writer: writer_tx,
        });
        let shutdown = CancellationToken::new();
        let writer = tokio::spawn(
            writer::Writer {
                store: store.clone(),
                tracker: Arc::clone(&tracker),
                wake_sweep: Arc::clone(&wake_sweep),
                storage_ok: Arc::clone(&storage_ok),
                auto_disable_after: settings.isolation.auto_disable_after,
                unstored: Arc::clone(&unstored),
                known_healthy: Mutex::default(),
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
                retry_period: settings.retry.retry_period,
                lease: attempt::lease(settings.http.timeout),
                wake: wake_sweep,
                gauge_refreshed: None,
            }
            .run(shutdown.clone()),
        );
        let (records_tx, records_rx) = mpsc::channel(consumer::READ_AHEAD);
        let poller = {
            let (consumer, tracker, stop) = (Arc::clone(&consumer), Arc::clone(&tracker), shutdown.clone());
            let max_record_bytes = settings.max_record_bytes;
            std::thread::Builder::new()
                .name("kafka-consumer".into())
                .spawn(move || consumer::poll(&consumer, &tracker, &records_tx, max_record_bytes, &stop))
                .context("cannot start the consumer thread")?
        };
        let lag = tokio::spawn(consumer::follow_lag(Arc::clone(&consumer), shutdown.clone()));
        let dispatch = tokio::spawn(consumer::dispatch(
            records_rx,
            Arc::clone(&shared),
            Arc::clone(&tracker),
            shutdown.clone(),
        ));
        let status = Arc::new(WorkerStatus {
            consumer: Arc::clone(&consumer),
            storage_ok,
            kafka_bootstrap: broker.as_ref().map(|b| b.bootstrap().to_owned()),
        });
        let concurrency = settings.delivery_concurrency;
        let all_permits = Arc::clone(&permits);
        let done_tracker = Arc::clone(&tracker);
        let done = tokio::spawn(async move {
            let _ = dispatch.await;
            let _ = tokio::task::spawn_blocking(move || poller.join()).await;
            let _ = sweep.await;
            let _ = follow.await;
            let _ = retention.await;
            let _ = lag.await;
            // Every permit back means no call is in flight and every outcome is queued.
            let total = u32::try_from(concurrency).unwrap_or(u32::MAX);
            let _ = all_permits.acquire_many(total).await;
            drop(shared);
            let _ = writer.await;
            consumer::store_offsets(&*consumer, &done_tracker);
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
            tracker,
            unstored,
            permits,
            concurrency,
            _broker: broker,
        })
    }

    /// A view of the stop's progress that outlives the worker (the stop consumes it).
    pub fn progress(&self) -> Progress {
        Progress {
            tracker: Arc::clone(&self.tracker),
            unstored: Arc::clone(&self.unstored),
            permits: Arc::clone(&self.permits),
            concurrency: self.concurrency,
        }
    }

    /// The one stop path; returns once offsets are committed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
        tracing::info!("worker stopped");
    }
}

/// Reads how far a stop got.
pub struct Progress {
    tracker: Arc<Mutex<OffsetTracker>>,
    unstored: Arc<AtomicUsize>,
    permits: Arc<Semaphore>,
    concurrency: usize,
}

impl Progress {
    /// What a stop cut short would leave unstored, for the error log (spec §1.5).
    pub fn unfinished(&self) -> Unfinished {
        Unfinished {
            calls_in_flight: self.concurrency.saturating_sub(self.permits.available_permits()),
            outcomes_unstored: self.unstored.load(Ordering::SeqCst),
            records_uncommitted: self.tracker.lock().map(|t| t.unfinished()).unwrap_or(0),
        }
    }
}

/// What a stop past its deadline leaves behind; those records are consumed again by the next
/// owner of their partitions (at-least-once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unfinished {
    pub calls_in_flight: usize,
    pub outcomes_unstored: usize,
    pub records_uncommitted: usize,
}
