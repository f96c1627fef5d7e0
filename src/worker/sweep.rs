//! The retry sweep (spec §5.4): recover stale leases, claim due deliveries within the global
//! and per-config free slots (§10.1) and the circuits (§10.2), send them with the config's
//! current endpoint and secret, complete through the writer, sleep until the earliest due time
//! or the next circuit probe (at most `--retry-period`). Errors end an iteration, never the sweep.
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
use super::isolation::Slot;
use super::writer::Job;
use super::Shared;
use crate::domain::backoff;
use crate::domain::config::signing_previous_secret;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::time::Timestamp;
use crate::metrics::metrics;
use crate::store::model::{Claimed, Completion};
use crate::telemetry::{error_chain, SPANS};

/// Most deliveries claimed per statement.
const CLAIM_BATCH: usize = 1000;

pub struct Sweep {
    pub shared: Arc<Shared>,
    pub retry_period: Duration,
    pub lease: Duration,
    /// Deliveries became due sooner than planned (new pending rows, replays).
    pub wake: Arc<Notify>,
    /// When `webhooks_deliveries_pending` was last counted.
    pub gauge_refreshed: Option<std::time::Instant>,
}

/// How often the pending-deliveries gauge is recounted (the contract asks for once a minute),
/// and the circuits of configs no longer active are forgotten.
const GAUGE_REFRESH: Duration = Duration::from_secs(30);

impl Sweep {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        let slot_freed = self.shared.isolation.slot_freed();
        while !shutdown.is_cancelled() {
            let wait = self.iteration(&mut tasks).await;
            while tasks.try_join_next().is_some() {}
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = slot_freed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // Claimed calls in flight finish (each bounded by --http-timeout) and are completed.
        while tasks.join_next().await.is_some() {}
    }

    /// One pass; returns how long to sleep before the next.
    async fn iteration(&mut self, tasks: &mut JoinSet<()>) -> Duration {
        let store = &self.shared.store;
        let now = Timestamp::now();
        if self.gauge_refreshed.is_none_or(|t| t.elapsed() >= GAUGE_REFRESH) {
            match store
                .run(|q| Ok(q.count_with_status(DeliveryStatus::Pending)?))
                .await
            {
                Ok(n) => metrics().deliveries_pending.set(n),
                Err(e) => tracing::error!(error = %error_chain(&e), "sweep: cannot count pending deliveries"),
            }
            self.gauge_refreshed = Some(std::time::Instant::now());
            let active = self.shared.cache.ids();
            self.shared
                .isolation
                .retain(&active.iter().map(String::as_str).collect());
        }
        let cutoff = Timestamp::from_datetime(
            now.as_datetime() - chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX),
        );
        match store.run(move |q| Ok(q.recover_stale(cutoff, now)?)).await {
            Ok((recovered, cancelled)) => {
                if recovered > 0 {
                    tracing::warn!(recovered, "returned abandoned leases to pending");
                }
                if cancelled > 0 {
                    metrics()
                        .deliveries
                        .with_label_values(&[DeliveryStatus::Cancelled.as_str()])
                        .inc_by(cancelled as u64);
                }
            }
            Err(e) => tracing::error!(error = %error_chain(&e), "sweep: stale recovery failed"),
        }
        let free = self.shared.permits.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            // Woken again when a call ends (its slot frees) or at the latest in 50 ms.
            return Duration::from_millis(50);
        }
        let limits = self.shared.isolation.claim_limits(free, now);
        let claimed = {
            let limits = limits.clone();
            match store.run(move |q| Ok(q.claim_due(&limits, now)?)).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "sweep: claim failed");
                    return self.retry_period.min(Duration::from_secs(1));
                }
            }
        };
        let full = claimed.len() == free;
        let iteration = if claimed.is_empty() {
            tracing::Span::none()
        } else {
            tracing::info_span!(target: SPANS, "webhooks.sweep", webhooks.claimed = claimed.len())
        };
        for row in claimed {
            self.shared.isolation.claimed(&row.config_id);
            let Ok(permit) = Arc::clone(&self.shared.permits).acquire_owned().await else {
                break;
            };
            let shared = Arc::clone(&self.shared);
            let span = attempt::span(&iteration, &row.id, &row.config_id, row.attempt_count + 1);
            tasks.spawn(async move {
                let Some(slot) = shared.isolation.acquire(&row.config_id).await else {
                    return;
                };
                retry(shared, row, permit, slot, span).await;
            });
        }
        if full {
            return Duration::ZERO;
        }
        // Rows of configs that cannot take a call now do not count: their slots freeing or
        // their circuits' probes wake the sweep instead.
        let excluded = self
            .shared
            .isolation
            .claim_limits(free, Timestamp::now())
            .excluded();
        let next_probe = self.shared.isolation.next_probe();
        let next_due = match store.run(move |q| Ok(q.next_due(&excluded)?)).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "sweep: cannot read the next due time");
                None
            }
        };
        [next_due, next_probe]
            .into_iter()
            .flatten()
            .min()
            .map_or(self.retry_period, |at| {
                (at.as_datetime() - Timestamp::now().as_datetime())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(self.retry_period)
            })
    }
}

async fn retry(
    shared: Arc<Shared>,
    row: Claimed,
    permit: OwnedSemaphorePermit,
    slot: Slot,
    span: tracing::Span,
) {
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
            // No call: a half-open circuit is still waiting for its probe.
            shared.isolation.no_call(&row.config_id);
            Completion {
                delivery_id: row.id,
                config_id: row.config_id,
                claimed_at,
                status: DeliveryStatus::Failed,
                attempt_count: made_so_far,
                next_attempt_at: None,
                last_attempt_at: None,
                last_status_code: None,
                last_error: fail_message(reason, ""),
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
                span,
            )
            .await;
            drop(slot);
            shared
                .isolation
                .record(&row.config_id, made.outcome, made.done(), &made.attempt.error);
            attempt::completion(row.id, row.config_id, claimed_at, made_so_far, made)
        }
    };
    let _ = shared.writer.send(Job::Complete(Box::new(completion))).await;
    drop(permit);
}
