//! The durable write path: outcomes are written in batches (one transaction for many
//! deliveries and their attempts), and only then are their records marked finished so their
//! offsets may be committed (spec §4.8).
//!
//! A failed write is handled by why it failed (spec §10.3):
//! - the database is unavailable: the batch is retried with backoff until it succeeds;
//!   meanwhile nothing is acknowledged, back-pressure stops consumption, and health reports 503;
//! - the database refused the batch (a constraint, a value): the batch is retried row by row at
//!   once; every row stored alone is acknowledged, and a row refused alone is logged, counted in
//!   `webhooks_storage_rejected_total` and its record finishes, so no row can block the others.
//!
//! Final states are counted (`webhooks_deliveries_total`) from what the write applied, once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::tracker::{OffsetTracker, PartitionKey};
use crate::domain::delivery::{AttemptOutcome, DeliveryStatus};
use crate::domain::time::Timestamp;
use crate::metrics::metrics;
use crate::store::model::{Completion, FirstAttempt, NewAttempt};
use crate::store::{Applied, ConfigHealth, Failure, Store, StoreError};
use crate::telemetry::error_chain;

/// Outcomes waiting to be written; the channel is bounded, so a slow database slows the senders.
pub const QUEUE: usize = 8192;
const BATCH: usize = 1000;

pub enum Job {
    First {
        row: Box<FirstAttempt>,
        /// The record this delivery belongs to, finished once the row is durable.
        ack: Option<(PartitionKey, i64)>,
    },
    Complete(Box<Completion>),
}

impl Job {
    pub fn first(row: FirstAttempt, ack: Option<(PartitionKey, i64)>) -> Job {
        Job::First {
            row: Box::new(row),
            ack,
        }
    }

    fn delivery_id(&self) -> &str {
        match self {
            Job::First { row, .. } => &row.delivery.id,
            Job::Complete(c) => &c.delivery_id,
        }
    }

    fn config_id(&self) -> &str {
        match self {
            Job::First { row, .. } => &row.delivery.config_id,
            Job::Complete(c) => &c.config_id,
        }
    }

    fn status(&self) -> DeliveryStatus {
        match self {
            Job::First { row, .. } => row.delivery.status,
            Job::Complete(c) => c.status,
        }
    }

    fn attempt(&self) -> Option<&NewAttempt> {
        match self {
            Job::First { row, .. } => row.attempt.as_ref(),
            Job::Complete(c) => c.attempt.as_ref(),
        }
    }

    fn make_storable(&mut self) {
        match self {
            Job::First { row, .. } => row.make_storable(),
            Job::Complete(c) => c.make_storable(),
        }
    }
}

/// Writes outcomes and then acknowledges their records.
pub struct Writer {
    pub store: Store,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub wake_sweep: Arc<Notify>,
    pub storage_ok: Arc<AtomicBool>,
    /// `--auto-disable-after` (spec §10.2).
    pub auto_disable_after: Option<Duration>,
    /// Outcomes taken from the queue and not yet stored (what a stop past its deadline loses).
    pub unstored: Arc<AtomicUsize>,
    /// Configs whose `failing_since` this process stored or saw as NULL, and when: a batch of
    /// successes for them writes nothing until the belief is [`HEALTH_BELIEF`] old (another
    /// process's failures may have set it meanwhile).
    pub known_healthy: Mutex<HashMap<String, Instant>>,
}

/// How long a config counts as known healthy without asking the database again.
const HEALTH_BELIEF: Duration = Duration::from_secs(30);

impl Writer {
    /// Runs until every sender of `rx` is gone, the queue is drained and every batch is written.
    pub async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let concurrent_batches = self.store.concurrent_writers();
        let writer = Arc::new(self);
        let mut in_flight = tokio::task::JoinSet::new();
        while let Some(job) = rx.recv().await {
            let mut jobs = vec![job];
            while jobs.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            writer.unstored.fetch_add(jobs.len(), Ordering::SeqCst);
            if in_flight.len() >= concurrent_batches {
                let _ = in_flight.join_next().await;
            }
            let writer = Arc::clone(&writer);
            in_flight.spawn(async move { writer.write(jobs).await });
        }
        while in_flight.join_next().await.is_some() {}
    }

    async fn write(&self, mut jobs: Vec<Job>) {
        jobs.iter_mut().for_each(Job::make_storable);
        let health = health_of(&jobs);
        let jobs = Arc::new(jobs);
        let mut delay = Duration::from_millis(100);
        loop {
            let batch = Arc::clone(&jobs);
            let error = match self.store.run(move |q| apply(q, &batch)).await {
                Ok(applied) => {
                    self.done(&jobs, &applied);
                    break;
                }
                Err(e) => e,
            };
            if self.failure(&error).await == Failure::Refused {
                tracing::warn!(rows = jobs.len(), error = %error.refusal_code(), "the database refused a batch of outcomes; writing its rows one by one");
                if self.row_by_row(&jobs).await {
                    break;
                }
                continue;
            }
            self.storage_ok.store(false, Ordering::Relaxed);
            tracing::error!(error = %error_chain(&error), retry_in = ?delay, "cannot store delivery outcomes; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        self.storage_ok.store(true, Ordering::Relaxed);
        self.unstored.fetch_sub(jobs.len(), Ordering::SeqCst);
        self.record_health(health).await;
    }

    /// Unavailable or refused: an unclear error is judged by a probe of the database.
    async fn failure(&self, error: &StoreError) -> Failure {
        match error.failure() {
            Failure::Unclear if self.store.ping().await.is_ok() => Failure::Refused,
            Failure::Unclear => Failure::Unavailable,
            known => known,
        }
    }

    /// Writes each row of a refused batch alone. False when the database became unavailable
    /// meanwhile (the caller retries the whole batch: rows already stored are absorbed).
    async fn row_by_row(&self, jobs: &Arc<Vec<Job>>) -> bool {
        for i in 0..jobs.len() {
            let batch = Arc::clone(jobs);
            match self.store.run(move |q| apply(q, &batch[i..=i])).await {
                Ok(applied) => self.done(&jobs[i..=i], &applied),
                Err(e) => match self.failure(&e).await {
                    Failure::Refused => self.rejected(&jobs[i], &e),
                    _ => return false,
                },
            }
        }
        true
    }

    /// A row the database refuses even alone: logged (no values), counted, and its record
    /// finishes (spec §10.3).
    fn rejected(&self, job: &Job, error: &StoreError) {
        let event_id = match job {
            Job::First { row, .. } => row.delivery.event_id.as_str(),
            Job::Complete(_) => "",
        };
        tracing::error!(
            delivery.id = job.delivery_id(),
            config.id = job.config_id(),
            event.id = event_id,
            error = %error.refusal_code(),
            "the database refused a delivery outcome; it is dropped"
        );
        tracing::debug!(delivery.id = job.delivery_id(), error = %error_chain(error), "refused outcome");
        metrics().storage_rejected.inc();
        self.acknowledge(std::slice::from_ref(job));
    }

    /// After a successful write: count final states, log failures, finish records.
    fn done(&self, jobs: &[Job], applied: &Applied) {
        let m = metrics();
        let mut pending = false;
        for job in jobs {
            if !applied.ids.contains(job.delivery_id()) {
                continue;
            }
            let status = if applied.cancelled.contains(job.delivery_id()) {
                DeliveryStatus::Cancelled
            } else {
                job.status()
            };
            pending |= status == DeliveryStatus::Pending;
            if status.is_final() {
                m.deliveries.with_label_values(&[status.as_str()]).inc();
            }
            if status == DeliveryStatus::Failed {
                let (code, error) = match job {
                    Job::First { row, .. } => {
                        (row.delivery.last_status_code, row.delivery.last_error.as_str())
                    }
                    Job::Complete(c) => (c.last_status_code, c.last_error.as_str()),
                };
                tracing::info!(
                    delivery.id = job.delivery_id(),
                    config.id = job.config_id(),
                    last_status_code = code,
                    last_error = error,
                    "delivery failed"
                );
            }
        }
        self.acknowledge(jobs);
        if pending {
            self.wake_sweep.notify_one();
        }
    }

    fn acknowledge(&self, jobs: &[Job]) {
        if let Ok(mut tracker) = self.tracker.lock() {
            for job in jobs {
                if let Job::First {
                    ack: Some((partition, offset)),
                    ..
                } = job
                {
                    tracker.finish_one(partition, *offset);
                }
            }
        }
    }

    /// `failing_since` and auto-disable (spec §10.2). Advisory: an error is logged, the
    /// deliveries are stored already and the next batch records the health again.
    async fn record_health(&self, mut health: Vec<ConfigHealth>) {
        let healthy = |h: &ConfigHealth| h.reset && h.failing_from.is_none();
        if let Ok(known) = self.known_healthy.lock() {
            health.retain(|h| {
                !healthy(h)
                    || known
                        .get(&h.config_id)
                        .is_none_or(|at| at.elapsed() >= HEALTH_BELIEF)
            });
        }
        if health.is_empty() {
            return;
        }
        let outcome: Vec<(String, bool)> = health.iter().map(|h| (h.config_id.clone(), healthy(h))).collect();
        let before = self.auto_disable_after.map(|d| {
            let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            Timestamp::from_datetime(
                Timestamp::now()
                    .as_datetime()
                    .checked_sub_signed(d)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
            )
        });
        let disabled = self
            .store
            .run(move |q| Ok(q.record_health(&health, before, Timestamp::now())?))
            .await;
        if disabled.is_ok() {
            if let Ok(mut known) = self.known_healthy.lock() {
                for (config_id, healthy) in outcome {
                    if healthy {
                        known.insert(config_id, Instant::now());
                    } else {
                        known.remove(&config_id);
                    }
                }
            }
        }
        match disabled {
            Ok(ids) if !ids.is_empty() => {
                self.store.notify_config_change();
                for id in &ids {
                    tracing::warn!(config.id = %id, "config deactivated: all its calls have failed for longer than --auto-disable-after");
                }
                metrics().configs_auto_disabled.inc_by(ids.len() as u64);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %error_chain(&e), "cannot record configs' health"),
        }
    }
}

/// One transaction for the first attempts, one for the completions.
fn apply(q: &mut dyn crate::store::Queries, jobs: &[Job]) -> Result<Applied, StoreError> {
    let mut firsts: Vec<&FirstAttempt> = Vec::new();
    let mut completions: Vec<&Completion> = Vec::new();
    for job in jobs {
        match job {
            Job::First { row, .. } => firsts.push(row),
            Job::Complete(c) => completions.push(c),
        }
    }
    let now = Timestamp::now();
    let mut applied = Applied::default();
    if !firsts.is_empty() {
        applied = q.record_first_attempts(&firsts, now)?;
    }
    if !completions.is_empty() {
        let settled = q.complete_claims(&completions, now)?;
        applied.ids.extend(settled.ids);
        applied.cancelled.extend(settled.cancelled);
    }
    Ok(applied)
}

/// What a batch's calls say of each config's health, in completion order.
fn health_of(jobs: &[Job]) -> Vec<ConfigHealth> {
    let mut calls: Vec<(&str, Timestamp, bool)> = jobs
        .iter()
        .filter_map(|j| {
            j.attempt().map(|a| {
                (
                    j.config_id(),
                    a.created_at.0,
                    a.outcome == AttemptOutcome::Succeeded,
                )
            })
        })
        .collect();
    calls.sort_by_key(|(_, done, _)| *done);
    let mut by_config: HashMap<&str, ConfigHealth> = HashMap::new();
    for (config_id, done, succeeded) in calls {
        let h = by_config.entry(config_id).or_insert_with(|| ConfigHealth {
            config_id: config_id.to_owned(),
            reset: false,
            failing_from: None,
        });
        if succeeded {
            h.reset = true;
            h.failing_from = None;
        } else if h.failing_from.is_none() {
            h.failing_from = Some(done);
        }
    }
    by_config.into_values().collect()
}
