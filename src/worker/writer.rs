//! The durable write path: outcomes are written in batches (one transaction for many
//! deliveries and their attempts), and only then are their records marked finished so their
//! offsets may be committed. A failing write is retried with backoff until it succeeds;
//! meanwhile nothing is acknowledged, back-pressure stops consumption, and health reports 503.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use super::tracker::{OffsetTracker, PartitionKey};
use crate::api::errors::error_chain;
use crate::domain::time::Timestamp;
use crate::store::model::{Completion, FirstAttempt};
use crate::store::Store;

/// Outcomes waiting to be written; the channel is bounded, so a slow database slows the senders.
pub const QUEUE: usize = 8192;
const BATCH: usize = 1000;

pub enum Job {
    First {
        row: Box<FirstAttempt>,
        partition: PartitionKey,
        offset: i64,
    },
    Complete(Box<Completion>),
}

/// Writes outcomes and then acknowledges their records.
pub struct Writer {
    pub store: Store,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub wake_sweep: Arc<Notify>,
    pub storage_ok: Arc<AtomicBool>,
}

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
            if in_flight.len() >= concurrent_batches {
                let _ = in_flight.join_next().await;
            }
            let writer = Arc::clone(&writer);
            in_flight.spawn(async move { writer.write(jobs).await });
        }
        while in_flight.join_next().await.is_some() {}
    }

    async fn write(&self, jobs: Vec<Job>) {
        let mut firsts = Vec::new();
        let mut acks = Vec::new();
        let mut completions = Vec::new();
        for job in jobs {
            match job {
                Job::First {
                    row,
                    partition,
                    offset,
                } => {
                    firsts.push(*row);
                    acks.push((partition, offset));
                }
                Job::Complete(c) => completions.push(*c),
            }
        }
        let pending = firsts.iter().any(|f| f.delivery.status == "pending")
            || completions.iter().any(|c| c.status == "pending");
        let (firsts, completions) = (Arc::new(firsts), Arc::new(completions));
        let mut delay = Duration::from_millis(100);
        loop {
            let (f, c) = (Arc::clone(&firsts), Arc::clone(&completions));
            let result = self
                .store
                .run(move |q| {
                    let now = Timestamp::now();
                    if !f.is_empty() {
                        q.record_first_attempts(&f, now)?;
                    }
                    if !c.is_empty() {
                        q.complete_claims(&c, now)?;
                    }
                    Ok(())
                })
                .await;
            match result {
                Ok(()) => break,
                Err(e) => {
                    self.storage_ok.store(false, Ordering::Relaxed);
                    tracing::error!(error = %error_chain(&e), retry_in = ?delay, "cannot store delivery outcomes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.storage_ok.store(true, Ordering::Relaxed);
        if let Ok(mut tracker) = self.tracker.lock() {
            for (partition, offset) in &acks {
                tracker.finish_one(partition, *offset);
            }
        }
        if pending {
            self.wake_sweep.notify_one();
        }
    }
}
