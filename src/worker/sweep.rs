//! The retry sweep (spec §5.4): recover stale leases, claim due deliveries, send them with the
//! config's current endpoint and secret, complete through the writer, sleep until the
//! earliest due time (at most `--retry-period`). Errors end an iteration, never the sweep.
//!
//! ```text
//! pending ──claim (lease)──► delivering ──call──► succeeded | pending (next) | failed
//!    ▲                            │
//!    └──── lease expired ─────────┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::attempt::{self, fail_message, Call};
use super::writer::Job;
use super::Shared;
use crate::api::errors::error_chain;
use crate::domain::backoff;
use crate::domain::config::signing_previous_secret;
use crate::domain::time::Timestamp;
use crate::store::model::{Claimed, Completion};
use crate::store::Store;

/// Most deliveries claimed per statement.
const CLAIM_BATCH: usize = 1000;

pub struct Sweep {
    pub shared: Arc<Shared>,
    pub store: Store,
    pub retry_period: Duration,
    pub lease: Duration,
    pub wake: Arc<Notify>,
    /// When `webhooks_deliveries_pending` was last counted.
    pub gauge_refreshed: Option<std::time::Instant>,
}

/// How often the pending-deliveries gauge is recounted (the contract asks for once a minute).
const GAUGE_REFRESH: Duration = Duration::from_secs(30);

impl Sweep {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        while !shutdown.is_cancelled() {
            let wait = self.iteration(&mut tasks).await;
            while tasks.try_join_next().is_some() {}
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// One pass; returns how long to sleep before the next.
    async fn iteration(&mut self, tasks: &mut JoinSet<()>) -> Duration {
        let now = Timestamp::now();
        if self.gauge_refreshed.is_none_or(|t| t.elapsed() >= GAUGE_REFRESH) {
            match self.store.run(|q| Ok(q.count_with_status("pending")?)).await {
                Ok(n) => crate::metrics::metrics().deliveries_pending.set(n),
                Err(e) => tracing::error!(error = %error_chain(&e), "sweep: cannot count pending deliveries"),
            }
            self.gauge_refreshed = Some(std::time::Instant::now());
        }
        let cutoff = Timestamp::from_datetime(
            now.as_datetime() - chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX),
        );
        match self.store.run(move |q| Ok(q.recover_stale(cutoff, now)?)).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(recovered = n, "returned abandoned leases to pending"),
            Err(e) => tracing::error!(error = %error_chain(&e), "sweep: stale recovery failed"),
        }
        let free = self.shared.permits.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            return Duration::from_millis(50);
        }
        let limit = i64::try_from(free).unwrap_or(i64::MAX);
        let claimed = match self.store.run(move |q| Ok(q.claim_due(limit, now)?)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "sweep: claim failed");
                return self.retry_period.min(Duration::from_secs(1));
            }
        };
        let full = claimed.len() == free;
        for row in claimed {
            let Ok(permit) = Arc::clone(&self.shared.permits).acquire_owned().await else {
                break;
            };
            tasks.spawn(retry(Arc::clone(&self.shared), row, permit));
        }
        if full {
            return Duration::ZERO;
        }
        match self.store.run(|q| Ok(q.next_due()?)).await {
            Ok(Some(due)) => {
                let until = (due.as_datetime() - Timestamp::now().as_datetime())
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                until.min(self.retry_period)
            }
            Ok(None) => self.retry_period,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "sweep: cannot read the next due time");
                self.retry_period
            }
        }
    }
}

async fn retry(shared: Arc<Shared>, row: Claimed, permit: OwnedSemaphorePermit) {
    let Some(claimed_at) = row.claimed_at.map(|t| t.0) else {
        return;
    };
    let made_so_far = row.attempt_count;
    let due = row.next_attempt_at.map(|t| t.0).unwrap_or(claimed_at);
    let t0 = row.first_attempt_at.map(|t| t.0);
    let precheck = backoff::precheck(
        &shared.policy,
        u64::try_from(made_so_far).unwrap_or(0),
        t0.map(|t| t.as_datetime()),
        due.as_datetime(),
    );
    let completion = match precheck {
        Some(reason) => {
            let last_error = fail_message(reason, "");
            crate::metrics::metrics()
                .deliveries
                .with_label_values(&["failed"])
                .inc();
            tracing::info!(delivery.id = %row.id, config.id = %row.config_id, %last_error, "delivery failed");
            Completion {
                delivery_id: row.id,
                claimed_at,
                status: "failed",
                attempt_count: made_so_far,
                next_attempt_at: None,
                last_attempt_at: None,
                last_status_code: None,
                last_error,
                attempt: None,
            }
        }
        None => {
            let made = attempt::make(
                &shared.outbound,
                &shared.policy,
                Call {
                    delivery_id: &row.id,
                    endpoint: &row.endpoint,
                    secret: &row.secret,
                    previous_secret: signing_previous_secret(
                        row.previous_secret.as_deref(),
                        row.previous_secret_expires_at.map(|t| t.0),
                        Timestamp::now(),
                    ),
                    body: row.payload.as_bytes(),
                    idempotency_key: &row.idempotency_key,
                    attempt_number: made_so_far + 1,
                    replay_generation: row.replay_generation,
                    t0,
                    due: Some(due),
                },
            )
            .await;
            Completion {
                delivery_id: row.id,
                claimed_at,
                status: made.status,
                attempt_count: made_so_far + 1,
                next_attempt_at: made.next_attempt_at,
                last_attempt_at: Some(made.last_attempt_at),
                last_status_code: made.last_status_code,
                last_error: made.last_error,
                attempt: Some(made.attempt),
            }
        }
    };
    let _ = shared.writer.send(Job::Complete(Box::new(completion))).await;
    drop(permit);
}
